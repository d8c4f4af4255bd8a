package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/portico-dev/portico/internal/secret"
)

// envSecretKey keeps the secret key off the command line, where every user
// of the machine can read it (ps, /proc/<pid>/cmdline).
const envSecretKey = "PORTICO_SECRET_KEY"

// fromEnv returns the value of an environment variable and removes it from
// the portal's environment, so that the programs it runs do not inherit it.
func fromEnv(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	os.Unsetenv(name)
	return v, ok
}

// privateFile closes a file the portal made to other users (0600), if it
// exists.
func privateFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Perm() != 0o600:
		return os.Chmod(path, 0o600)
	}
	return nil
}

// secretBox returns the box that seals config passwords in the database.
// Its key comes from $PORTICO_SECRET_KEY, else from the key file; with
// SQLite the key file is made on the first start, with PostgreSQL
// (shared) it must exist: replicas that each made up their own key could
// not read each other's sessions.
func secretBox(keyFile, dataDir string, shared bool) (*secret.Box, error) {
	if text, ok := fromEnv(envSecretKey); ok {
		key, err := secret.ParseKey(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envSecretKey, err)
		}
		return secret.NewBox(key)
	}
	path := cmp.Or(keyFile, filepath.Join(dataDir, "secret.key"))
	var (
		key []byte
		err error
	)
	switch {
	case shared:
		key, err = secret.ReadKeyFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no secret key in %s: with --database, every replica needs the same key to read the "+
				"sessions' config passwords; give it with --secret-key-file or %s (make one with: head -c %d /dev/urandom | base64)",
				path, envSecretKey, secret.KeySize)
		}
	default:
		key, err = secret.CreateKeyFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if keyFile == "" {
		if err := privateFile(path); err != nil {
			return nil, err
		}
	}
	return secret.NewBox(key)
}
