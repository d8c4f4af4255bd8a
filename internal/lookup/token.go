package lookup

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// tokenLifetime is how long an access token is good for, as Educates'
// lookup service has it (72 hours).
const tokenLifetime = 72 * time.Hour

// claims are those of Educates' lookup tokens: the client's name, the
// identity the client had when it logged in, and the expiry.
type claims struct {
	Subject  string `json:"sub"`
	Identity string `json:"jti"`
	Expires  int64  `json:"exp"`
}

var (
	b64       = base64.RawURLEncoding
	jwtHeader = b64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
)

// signToken makes an HS256 JSON Web Token of c.
func signToken(key []byte, c claims) string {
	body, _ := json.Marshal(c)
	unsigned := jwtHeader + "." + b64.EncodeToString(body)
	return unsigned + "." + b64.EncodeToString(mac(key, unsigned))
}

// parseToken checks a token's signature and expiry and returns its claims.
// Only the exact header signToken writes is accepted, so no token can pick
// its own algorithm ("none", or a public key read as an HMAC secret).
func parseToken(key []byte, token string, now time.Time) (claims, error) {
	var c claims
	head, rest, ok := strings.Cut(token, ".")
	if !ok || head != jwtHeader {
		return c, errUnauthorized("The access token is invalid")
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return c, errUnauthorized("The access token is invalid")
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, head+"."+body)) {
		return c, errUnauthorized("The access token is invalid")
	}
	raw, err := b64.DecodeString(body)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Subject == "" {
		return c, errUnauthorized("The access token is invalid")
	}
	if now.Unix() >= c.Expires {
		return c, errUnauthorized("The access token has expired")
	}
	return c, nil
}

func mac(key []byte, s string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return h.Sum(nil)
}
