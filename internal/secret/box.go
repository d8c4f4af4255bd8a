package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of the key of a Box: AES-256.
const KeySize = 32

// sealedPrefix starts every sealed value. What the portal sealed before
// (config passwords from Alnum) never holds a ':', so clear text and sealed
// text cannot be confused.
const sealedPrefix = "v1:"

// Box seals short secrets that the portal must read back (the config
// passwords of sessions) with AES-256-GCM, under a key kept apart from the
// database: a copy of the database alone does not reveal them.
type Box struct {
	aead cipher.AEAD
	id   string
}

// NewBox returns a Box on a KeySize-byte key.
func NewBox(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("the secret key must be %d bytes, not %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("portico secret key id\x00"), key...))
	return &Box{aead: aead, id: hex.EncodeToString(sum[:4])}, nil
}

// ID names the key without revealing it: sealed values carry it, so that
// a portal given another key says so instead of failing to decrypt.
func (b *Box) ID() string { return b.id }

// Seal encrypts plain for the record named by context (the session):
// the sealed value opens for that record only, so values cannot be swapped
// between rows.
func (b *Box) Seal(plain, context string) string {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, []byte(plain), []byte(context))
	return sealedPrefix + b.id + ":" + base64.RawURLEncoding.EncodeToString(out)
}

// ErrOtherKey: a value was sealed with another key than the box's.
var ErrOtherKey = errors.New("sealed with another secret key")

// Open returns the clear text of a value Seal made for context. A value
// that is not sealed (stored before sealing existed) is returned as it is.
func (b *Box) Open(value, context string) (string, error) {
	id, sealed, ok := parseSealed(value)
	if !ok {
		return value, nil
	}
	if id != b.id {
		return "", fmt.Errorf("%w (key %s, not this portal's key %s)", ErrOtherKey, id, b.id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", errors.New("sealed value is malformed")
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, raw[:n], raw[n:], []byte(context))
	if err != nil {
		return "", errors.New("sealed value does not open: altered, or moved from another record")
	}
	return string(plain), nil
}

// Sealed reports whether value was made by Seal, and with which key.
func Sealed(value string) (keyID string, ok bool) {
	id, _, ok := parseSealed(value)
	return id, ok
}

func parseSealed(value string) (id, sealed string, ok bool) {
	rest, ok := strings.CutPrefix(value, sealedPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}

// NewKey returns a random key, as text (base64) for a key file or
// PORTICO_SECRET_KEY.
func NewKey() string {
	key := make([]byte, KeySize)
	rand.Read(key)
	return base64.StdEncoding.EncodeToString(key)
}

// ParseKey reads a key written as NewKey writes it (standard base64 of
// KeySize bytes; surrounding white space is ignored).
func ParseKey(text string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("not a secret key: want the base64 of %d random bytes (head -c %d /dev/urandom | base64)", KeySize, KeySize)
	}
	return key, nil
}

// ReadKeyFile reads the key in path; fs.ErrNotExist when there is none.
func ReadKeyFile(path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// CreateKeyFile reads the key in path, first writing a new one there
// (mode 0600) when there is none. Portals starting at once on one
// directory agree on one key: the file appears whole or not at all, and
// the first one written wins.
func CreateKeyFile(path string) ([]byte, error) {
	key, err := ReadKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(NewKey() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// link(2) fails when path exists: another portal was first.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return ReadKeyFile(path)
}
