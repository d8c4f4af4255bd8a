package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/postgres"
	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
	"github.com/portico-dev/portico/internal/store/storetest"
)

func open(t *testing.T, dsn string) *postgres.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv.NewDatabase(t)) })
}

// The server's time, which replicas share: the test server runs on this
// machine, so it is this machine's time.
func TestNow(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.DSN)
	got, err := db.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(got); d.Abs() > 5*time.Second {
		t.Errorf("database time %v is %v off", got, d)
	}
}

// Replicas starting together migrate the database once, in turn.
func TestConcurrentOpen(t *testing.T) {
	srv := pgtest.Start(t)
	dbs := make([]*postgres.DB, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dbs[i], errs[i] = postgres.Open(ctx, srv.DSN)
		})
	}
	wg.Wait()
	for i, db := range dbs {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { db.Close() })
	}
	if got := pgtest.Query(t, srv.DSN, "SELECT version FROM schema_migrations ORDER BY version"); got != "0001_initial\n0002_leases\n0003_delivered\n0004_reserve_index\n0005_accounts\n0006_lease_generation\n0007_webhooks\n0009_idle_indexes\n" {
		t.Errorf("schema_migrations:\n%s", got)
	}
	for i, db := range dbs {
		u := store.User{Username: fmt.Sprint("u", i), Role: store.RoleAnonymous, Created: time.Now()}
		if err := db.Update(t.Context(), func(tx store.Tx) error { return tx.InsertUser(&u) }); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	// And once more, on a migrated database.
	open(t, srv.DSN)
}

// A database of the release before keyed usernames keeps every account.
func TestUpgradeKeysUsernames(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range storetest.Legacy(t, "migrations") {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	conn.Close(ctx)
	storetest.CheckUpgrade(t, open(t, dsn))
}

// waitChange fails the test unless ch signals within a generous bound.
func waitChange(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("no change signalled after %s", what)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func insertUser(ctx context.Context, db store.Store, name string) error {
	u := store.User{Username: name, Role: store.RoleAnonymous, Created: time.Now()}
	return db.Update(ctx, func(tx store.Tx) error { return tx.InsertUser(&u) })
}

// A commit in one replica wakes the others; transactions that change
// nothing wake nobody.
func TestChanges(t *testing.T) {
	srv := pgtest.Start(t)
	a, b := open(t, srv.DSN), open(t, srv.DSN)
	if a.Changes() == nil || cap(a.Changes()) != 1 {
		t.Fatalf("Changes: %v, capacity %d", a.Changes(), cap(a.Changes()))
	}
	drain(a.Changes())
	if err := insertUser(t.Context(), b, "u1"); err != nil {
		t.Fatal(err)
	}
	waitChange(t, a.Changes(), "another handle's commit")

	// Nothing written, or rolled back: no signal.
	drain(a.Changes())
	b.Update(t.Context(), func(tx store.Tx) error { _, err := tx.User("u1"); return err })
	b.Update(t.Context(), func(tx store.Tx) error {
		u := store.User{Username: "x", Role: store.RoleAnonymous, Created: time.Now()}
		tx.InsertUser(&u)
		return errors.New("rolled back")
	})
	b.View(t.Context(), func(tx store.Tx) error { _, err := tx.User("u1"); return err })
	b.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.AcquireLease("rec", "b", time.Minute) // renewals are not changes
		return err
	})
	select {
	case <-a.Changes():
		t.Error("signalled without a change")
	case <-time.After(300 * time.Millisecond):
	}

	// A burst of commits while nobody reads: one pending signal, nothing
	// blocks.
	for i := range 20 {
		if err := insertUser(t.Context(), b, fmt.Sprint("burst", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitChange(t, a.Changes(), "a burst of commits")
	if n := len(a.Changes()); n > 1 {
		t.Errorf("%d signals pending", n)
	}
}

// While the server is down transactions fail at once with ErrUnavailable;
// once it is back the same handle works again, and so do notifications.
func TestOutage(t *testing.T) {
	srv := pgtest.Start(t)
	db, other := open(t, srv.DSN), open(t, srv.DSN)
	if err := insertUser(t.Context(), db, "before"); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"Update", func(ctx context.Context) error { return insertUser(ctx, db, "during") }},
		{"View", func(ctx context.Context) error {
			return db.View(ctx, func(tx store.Tx) error { _, err := tx.User("before"); return err })
		}},
		{"Open", func(ctx context.Context) error {
			db, err := postgres.Open(ctx, srv.DSN)
			if err == nil {
				db.Close()
			}
			return err
		}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // only against hangs
		start := time.Now()
		err := tc.run(ctx)
		cancel()
		took := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while the server is down: %v, want ErrUnavailable", tc.name, err)
		}
		if took > 15*time.Second {
			t.Errorf("%s took %v to fail", tc.name, took)
		}
		t.Logf("%s failed after %v: %v", tc.name, took.Round(time.Millisecond), err)
	}

	srv.Start()
	deadline := time.Now().Add(30 * time.Second)
	attempts := 0
	for {
		attempts++
		err := insertUser(t.Context(), db, "after")
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after restart (attempt %d): %v", attempts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("first write after restart: attempt %d", attempts)
	err := db.View(t.Context(), func(tx store.Tx) error {
		for _, name := range []string{"before", "after"} {
			if _, err := tx.User(name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		_, err := tx.User("during")
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("user written during the outage: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The listener reconnected by itself.
	waitFor(t, func() bool {
		drain(db.Changes())
		if err := insertUser(t.Context(), other, fmt.Sprint("ping", time.Now().UnixNano())); err != nil {
			return false
		}
		select {
		case <-db.Changes():
			return true
		case <-time.After(time.Second):
			return false
		}
	}, "notifications after the restart")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two transactions that lock two environments in opposite orders deadlock;
// the server aborts one and Update runs it again, so both succeed.
func TestUpdateRetriesDeadlock(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.DSN)
	var ids [2]int64
	err := db.Update(t.Context(), func(tx store.Tx) error {
		for i := range ids {
			e := store.Environment{Name: fmt.Sprint("p-w0", i), Key: "k", State: store.EnvRunning, Created: time.Now()}
			if err := tx.InsertEnvironment(&e); err != nil {
				return err
			}
			ids[i] = e.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		both     sync.WaitGroup // both hold their first lock (first attempts only)
		runs     atomic.Int32
		deadlock atomic.Bool
	)
	both.Add(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			first := true
			errs[i] = db.Update(t.Context(), func(tx store.Tx) error {
				runs.Add(1)
				if _, err := tx.LockEnvironment(ids[i]); err != nil {
					return err
				}
				if first {
					first = false
					both.Done()
					both.Wait()
				}
				e, err := tx.LockEnvironment(ids[1-i])
				if err != nil {
					if strings.Contains(err.Error(), "40P01") || strings.Contains(err.Error(), "deadlock") {
						deadlock.Store(true)
					}
					return err
				}
				e.Tally++
				return tx.UpdateEnvironment(&e)
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	if !deadlock.Load() || runs.Load() < 3 {
		t.Errorf("deadlock seen %v, %d runs: the test did not provoke a retry", deadlock.Load(), runs.Load())
	}
	db.View(t.Context(), func(tx store.Tx) error {
		for _, id := range ids {
			if e, err := tx.EnvironmentByID(id); err != nil || e.Tally != 1 {
				t.Errorf("environment %d: tally %d, %v", id, e.Tally, err)
			}
		}
		return nil
	})
}
