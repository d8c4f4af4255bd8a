package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlite"
	"github.com/portico-dev/portico/internal/store/storetest"
)

func open(t *testing.T) store.Store {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portico.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}

// Opening an existing database applies no migration twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	for range 2 {
		db, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A database of the release before keyed usernames keeps every account.
func TestUpgradeKeysUsernames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range storetest.Legacy(t, "migrations") {
		if _, err := raw.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	raw.Close()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.CheckUpgrade(t, db)
}

// The database holds password hashes, tokens and sessions: its files are
// the portal's user's only, new or found with other modes.
func TestDatabaseFilesArePrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	files := []string{path, path + "-wal", path + "-shm"}
	check := func(when string) {
		t.Helper()
		for _, f := range files {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s has mode %v, want 0600", when, filepath.Base(f), fi.Mode().Perm())
			}
		}
	}
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	// A write makes the WAL and shared-memory files, if migrating did not.
	if err := db.Update(context.Background(), func(tx store.Tx) error {
		return tx.InsertUser(&store.User{Username: "alice", Role: store.RoleRegistered})
	}); err != nil {
		t.Fatal(err)
	}
	check("new database")
	for _, f := range files {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db2, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	check("database found readable by all")
	db2.Close()
	db.Close()
}

// An idle reconciler pass costs the same at 10,000 sessions held as at
// 1,000 (issue 14): the queries it runs every pass, as sqlstore writes
// them, reach what is due through an index that holds only rows that may
// be due, never through one every WAITING or RUNNING session is in, and
// never by reading the table. The catalog's listing of sessions held reads
// them in order, without sorting them on every request.
func TestIdlePassQueryPlans(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portico.db")
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for q, index := range map[string]string{
		// Broker.expire
		`SELECT count(*) FROM sessions s WHERE s.expires > 0 AND s.expires <= 1 AND s.state IN ('STARTING', 'WAITING', 'RUNNING')`: "sessions_expires",
		// Tx.NextDeadline, its first and second terms
		`SELECT min(expires) AS t FROM sessions WHERE expires > 0 AND state IN ('STARTING', 'WAITING', 'RUNNING')`: "sessions_expires",
		`SELECT min(retry_at) FROM sessions WHERE state = 'STARTING' AND address = ''`:                             "sessions_",
		// Broker.launch, starts and stops
		`SELECT s.name FROM sessions s WHERE s.state = 'STARTING' AND s.address = '' AND s.retry_at <= 1 ORDER BY s.created, s.name LIMIT 1000`: "sessions_",
		`SELECT s.name FROM sessions s WHERE s.state = 'STOPPING' ORDER BY s.created, s.name LIMIT 1000`:                                        "sessions_transient",
		// Broker.checkActivity
		`SELECT s.name FROM sessions s WHERE s.check_at > 0 AND s.check_at <= 1 AND s.state = 'RUNNING' ORDER BY s.created, s.name LIMIT 1000`: "sessions_check",
		// Broker.deliver
		`SELECT s.name FROM sessions s WHERE s.owner IS NOT NULL AND NOT s.delivered AND s.address <> '' AND s.state IN ('WAITING', 'RUNNING') ORDER BY s.created, s.name LIMIT 1000`: "sessions_undelivered",
		// Tx.EachHeld, in order without a sort
		`SELECT s.name, s.state, u.username, s.started, s.expires FROM sessions s JOIN users u ON u.id = s.owner WHERE s.env_id = 1 AND s.owner IS NOT NULL AND s.state IN ('STARTING', 'WAITING', 'RUNNING', 'STOPPING') ORDER BY s.created, s.name`: "sessions_held",
		// Tx.DeleteStoppedSessions
		`SELECT name FROM sessions WHERE state = 'STOPPED' AND expires <= 1`: "sessions_stopped",
	} {
		rows, err := raw.Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if !strings.Contains(text, " INDEX "+index) || strings.Contains(text, "sessions_state") ||
			index == "sessions_held" && strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s\n plan %q, want a search through %s…", q, text, index)
		}
	}
}
