// Package sqlite is the embedded store: one SQLite file in the data
// directory, in WAL mode, with a single writer connection (SQLite allows one
// writer at a time; queueing writers in Go is cheaper than spinning on
// SQLITE_BUSY) and a pool of readers.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlstore"

	"modernc.org/sqlite"
)

// SQLite write transactions begin IMMEDIATE (see Open), so every write
// transaction already excludes the others: no row locks are needed.
var dialect = sqlstore.Dialect{
	// One process owns the file, so its clock is the database's.
	Now:      "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
	IsUnique: func(err error) bool { return strings.Contains(err.Error(), "UNIQUE constraint failed") },
}

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on one SQLite file.
type DB struct {
	write *sql.DB
	read  *sql.DB
	batch *batcher
}

// Open opens (creating when absent) the database file at path and brings
// its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	if err := private(path); err != nil {
		return nil, err
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)",
			// The savepoints of group commit journal the pages they change:
			// in memory, not in a temporary file.
			"temp_store(MEMORY)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	write, err := openPool(dsn("immediate"))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	read, err := openPool(dsn("deferred"))
	if err != nil {
		write.Close()
		return nil, err
	}
	// Readers stay open, with the statements they prepared.
	readers := max(4, runtime.GOMAXPROCS(0)*2)
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	db := &DB{write: write, read: read}
	db.startBatcher()
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return db, nil
}

// openPool opens a pool of connections that keep their prepared
// statements (see cachingConnector).
func openPool(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(cachingConnector{c}), nil
}

// private makes the database file, and the WAL and shared-memory files
// beside it, readable by the portal's user only (0600), whatever their
// modes were: they hold password hashes and sessions. SQLite creates the
// WAL and shared-memory files with the mode of the database file, so the
// database file is made here first.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case fi.Mode().Perm() != 0o600:
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	db.batch.close()
	return errors.Join(db.read.Close(), db.write.Close())
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
		return err
	}
	list, err := sqlstore.Migrations(migrations, "migrations")
	if err != nil {
		return err
	}
	for _, m := range list {
		if err := db.Update(ctx, func(tx store.Tx) error { return sqlstore.Apply(tx.(*sqlstore.Tx), m) }); err != nil {
			return err
		}
	}
	return nil
}

// Update runs fn in a write transaction, committed together with the
// others waiting at the time (see batcher).
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return db.batch.update(ctx, fn)
}

// View runs fn in a read transaction. It never commits: whatever fn
// writes is rolled back.
func (db *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	sqltx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer sqltx.Rollback()
	return fn(sqlstore.New(ctx, sqltx, dialect))
}

// Changes is nil: there is one process, and the broker wakes itself.
func (db *DB) Changes() <-chan struct{} { return nil }

// unavailable marks errors of the database itself (as opposed to errors of
// the caller's logic) so the API answers 503 for them.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
