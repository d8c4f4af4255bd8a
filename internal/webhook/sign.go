package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Signing per the Standard Webhooks specification
// (https://www.standardwebhooks.com): the secret is "whsec_" and the
// base64 of the key; each attempt carries webhook-id, webhook-timestamp
// (Unix seconds) and webhook-signature "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>".

const secretPrefix = "whsec_"

// Secret is the key deliveries are signed with.
type Secret struct{ key []byte }

// NewSecret makes a secret of 32 random bytes, in its whsec_ text form.
func NewSecret() string {
	key := make([]byte, 32)
	rand.Read(key)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret reads the whsec_ text form of a secret. The specification
// asks for keys of 24 to 64 bytes.
func ParseSecret(text string) (Secret, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(text), secretPrefix)
	if !ok {
		return Secret{}, errors.New("a webhook secret starts with " + secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, errors.New("a webhook secret is whsec_ and the base64 of its key")
	}
	if len(key) < 24 || len(key) > 64 {
		return Secret{}, errors.New("the key of a webhook secret has 24 to 64 bytes")
	}
	return Secret{key: key}, nil
}

// String is the whsec_ text form, for the staff who set up receivers.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// Sign returns the webhook-signature of one attempt.
func (s Secret) Sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp, 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// secretSetting names the sealed signing secret among the settings.
const secretSetting = "webhook-secret"

// LoadSecret returns the signing secret: text, when the operator gives
// one, else the one the portal made up on its first start and keeps in the
// database, sealed with box (a copy of the database alone does not reveal
// it). Every replica of a database reads the same one.
func LoadSecret(ctx context.Context, st store.Store, box *secret.Box, text string) (Secret, error) {
	if text != "" {
		return ParseSecret(text)
	}
	var sealed string
	err := st.Update(ctx, func(tx store.Tx) (err error) {
		sealed, err = tx.InsertSetting(secretSetting, box.Seal(NewSecret(), secretSetting))
		return err
	})
	if err != nil {
		return Secret{}, err
	}
	plain, err := box.Open(sealed, secretSetting)
	if err != nil {
		return Secret{}, fmt.Errorf("webhook secret: %w", err)
	}
	return ParseSecret(plain)
}
