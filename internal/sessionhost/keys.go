package sessionhost

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"

	"github.com/portico-dev/portico/internal/atomicfile"
)

// keyPair is the session's SSH key pair in the formats served by
// /config/id_rsa and /config/id_rsa.pub.
type keyPair struct {
	private []byte // OpenSSH PEM
	public  []byte // authorized_keys line
}

// loadOrCreateKeys returns the key pair in dir, generating it on the first
// start of the session. A key already handed out must survive a restart of
// the host, hence the load.
//
// The files keep Educates' names (id_rsa, id_rsa.pub: they are part of the
// /config/<type> contract) but hold an Ed25519 key: RSA 2048 generation
// costs 45 ms median and up to 300 ms on a 2-core machine, more than the
// whole start budget of a session, while Ed25519 costs 20 µs and every
// OpenSSH since 6.5 accepts it.
func loadOrCreateKeys(dir, comment string) (keyPair, error) {
	privPath, pubPath := filepath.Join(dir, "id_rsa"), filepath.Join(dir, "id_rsa.pub")
	priv, perr := os.ReadFile(privPath)
	pub, qerr := os.ReadFile(pubPath)
	if perr == nil && qerr == nil {
		return keyPair{private: priv, public: pub}, nil
	}
	for _, err := range []error{perr, qerr} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return keyPair{}, err
		}
	}
	kp, err := generateKeys(comment)
	if err != nil {
		return keyPair{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return keyPair{}, err
	}
	if err := atomicfile.Write(privPath, kp.private, 0o600); err != nil {
		return keyPair{}, err
	}
	if err := atomicfile.Write(pubPath, kp.public, 0o644); err != nil {
		return keyPair{}, err
	}
	return kp, nil
}

func generateKeys(comment string) (keyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return keyPair{}, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return keyPair{}, err
	}
	line := bytes.TrimSuffix(ssh.MarshalAuthorizedKey(sshPub), []byte("\n"))
	if comment != "" {
		line = append(append(line, ' '), comment...)
	}
	return keyPair{private: pem.EncodeToMemory(block), public: append(line, '\n')}, nil
}

// loadOrCreateSecret returns the secret kept at path, generating it on the
// first start of the session.
func loadOrCreateSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return secret, atomicfile.Write(path, []byte(secret+"\n"), 0o600)
}
