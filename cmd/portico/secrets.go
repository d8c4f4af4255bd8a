package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
)

// Environment variables that keep secrets off the command line, where
// every user of the machine can read them (ps, /proc/<pid>/cmdline).
const (
	envDatabaseURL = "PORTICO_DATABASE_URL"
	envSecretKey   = "PORTICO_SECRET_KEY"
)

// fromEnv returns the value of an environment variable and removes it from
// the portal's environment, so that the programs it runs do not inherit it.
func fromEnv(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	os.Unsetenv(name)
	return v, ok
}

// redactedArgs returns a copy of args in which the credentials of URLs
// (user:password@, and query parameters such as pgx's password=) are
// masked: os.Args is what /debug/pprof/cmdline and expvar's cmdline show.
func redactedArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		prefix, value := "", a
		if strings.HasPrefix(a, "-") {
			if flag, v, ok := strings.Cut(a, "="); ok {
				prefix, value = flag+"=", v
			}
		}
		out[i] = prefix + redactURL(value)
	}
	return out
}

const mask = "xxxxx"

// redactURL masks the credentials of a URL; anything else is returned
// unchanged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), mask)
		changed = true
	}
	q := u.Query()
	for k := range q {
		if secretParam(k) {
			q[k] = []string{mask}
			changed = true
		}
	}
	if !changed {
		return s
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"password", "passwd", "secret", "token", "key"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// privateDir makes dir, or finds it, and closes it to other users (0700):
// the data directory holds the database, the secret key and the generated
// credentials. A directory the portal's user does not own (the mount point
// of a volume) cannot be changed: the files in it are private still.
func privateDir(log *slog.Logger, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() == 0o700 {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		log.Warn("directory left open to other users: its files are private", "dir", dir, "mode", fi.Mode().Perm(), "err", err)
		return nil
	}
	log.Info("directory closed to other users", "dir", dir, "was", fi.Mode().Perm())
	return nil
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

// generatedFile, in the data directory, keeps the credentials that the
// portal made up.
const generatedFile = "generated-credentials.env"

// saveGenerated keeps the credentials made up on the first start in a
// file of the data directory that only the portal's user reads and that a
// shell can source (only hashes are in the database, so this is the one
// copy), and shows them once on terminal, when the portal runs in one.
// The log, which is collected and kept elsewhere, only says where the file
// is.
func saveGenerated(log *slog.Logger, terminal io.Writer, dataDir string, p config.Portal, gen auth.Generated) error {
	var lines []string
	if gen.AdminPassword != "" {
		lines = append(lines, "PORTICO_ADMIN_USERNAME="+p.Admin.Username, "PORTICO_ADMIN_PASSWORD="+gen.AdminPassword)
	}
	if gen.RobotPassword != "" {
		lines = append(lines, "PORTICO_ROBOT_USERNAME="+p.Robot.Username, "PORTICO_ROBOT_PASSWORD="+gen.RobotPassword)
	}
	if gen.ClientSecret != "" {
		lines = append(lines, "PORTICO_CLIENT_ID="+gen.ClientID, "PORTICO_CLIENT_SECRET="+gen.ClientSecret)
	}
	if len(lines) == 0 {
		return nil
	}
	path := filepath.Join(dataDir, generatedFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, strings.Join(lines, "\n")); err != nil {
		return err
	}
	if terminal != nil {
		fmt.Fprintf(terminal, "\nCredentials generated on this first start, shown here once and kept in %s:\n\n    %s\n\n",
			path, strings.Join(lines, "\n    "))
	}
	log.Info("generated credentials saved", "file", path)
	return nil
}
