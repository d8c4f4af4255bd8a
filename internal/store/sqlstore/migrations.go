package sqlstore

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Migration is one embedded schema change, named by its file.
type Migration struct {
	Version string // file name without .sql, e.g. 0001_initial
	SQL     string
	// Then is the part of the change that SQL cannot make, run after SQL in
	// the same transaction; nil for most.
	Then func(*Tx) error
}

// steps are the Go parts of migrations, by version: the same for every
// store.
var steps = map[string]func(*Tx) error{
	"0005_accounts": keyUsernames,
}

// Migrations reads the *.sql files of dir in fsys, in name order: the order
// in which each store applies them.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		version := strings.TrimSuffix(path.Base(name), ".sql")
		out = append(out, Migration{Version: version, SQL: string(body), Then: steps[version]})
	}
	return out, nil
}

// Apply runs m in tx and records it, unless the database has it already.
// The table schema_migrations must exist.
func Apply(tx *Tx, m Migration) error {
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return tx.wrap(err)
	}
	if n > 0 {
		return nil
	}
	// As it is: the statements are the database's own, not bound by bind.
	if _, err := tx.tx.ExecContext(tx.ctx, m.SQL); err != nil {
		return fmt.Errorf("%s: %w", m.Version, tx.wrap(err))
	}
	if m.Then != nil {
		if err := m.Then(tx); err != nil {
			return fmt.Errorf("%s: %w", m.Version, err)
		}
	}
	_, err := tx.Exec(`INSERT INTO schema_migrations (version) VALUES (?)`, m.Version)
	return err
}
