// Package postgres is the store for several portal replicas sharing one
// PostgreSQL database, on pgx through database/sql. The queries are
// sqlstore's; this package adds row locks (FOR NO KEY UPDATE, SKIP LOCKED),
// an advisory lock for portal-wide checks, retries of transactions that
// lost a race, and a LISTEN connection that wakes the replicas when one of
// them commits.
//
// Transactions run in READ COMMITTED: once a row lock is granted, every
// later statement of the transaction sees what the previous holder
// committed, which is what makes LockEnvironment-then-count exact.
// Reads (View) run in a read-only REPEATABLE READ snapshot, like SQLite's.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlstore"
)

// Advisory lock keys ("portico\x00", "portico\x01"): the session lock held
// while migrating, and the transaction lock that stands for the portal.
const (
	migrationLock = 8101820098972708608
	portalLock    = 8101820098972708609
)

// Channel is the NOTIFY channel on which committed changes are announced.
const Channel = "portico_changes"

// Limits. A request must fail within seconds while the database is down,
// not hang: connecting gives up after connectTimeout, and a transaction
// (one attempt) after txTimeout, the longest any lock wait may take.
const (
	maxConns        = 20
	connectTimeout  = 5 * time.Second
	txTimeout       = 15 * time.Second
	maxAttempts     = 8 // of a transaction that hits serialization failures or deadlocks
	listenIdleCheck = 30 * time.Second
	minBackoff      = 100 * time.Millisecond
	maxBackoff      = 5 * time.Second
)

var dialect = sqlstore.Dialect{
	Numbered: true,
	// NO KEY UPDATE excludes the other lockers exactly like FOR UPDATE
	// but lets foreign-key checks through (FOR KEY SHARE): inserting a
	// token for a user does not wait for that user's allocation.
	Lock:       "FOR NO KEY UPDATE",
	Claim:      "FOR UPDATE OF s SKIP LOCKED",
	PortalLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", portalLock),
	// FOR SHARE conflicts with the lock an update takes, so a lease
	// checked by a write cannot change hands before that write commits.
	Share: "FOR SHARE",
	// The start of the transaction, by the database server's clock.
	Now:      "(extract(epoch FROM now()) * 1000)::bigint",
	IsUnique: func(err error) bool { return sqlState(err) == "23505" },
}

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a store.Store on a PostgreSQL database.
type DB struct {
	db      *sql.DB
	cfg     *pgx.ConnConfig
	changes chan struct{}
	stop    context.CancelFunc
	done    chan struct{} // closed when the listener has stopped
	once    sync.Once
}

var _ store.Store = (*DB)(nil)

// Open connects to the database a DSN names (postgres://user:pass@host/db?…
// or key=value pairs; connect_timeout defaults to 5 s), brings its schema up
// to date and starts listening for the other replicas' changes. Replicas
// may Open the same database at the same time.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	// Notice a peer that vanished without closing the connection within
	// about half a minute rather than the kernel's two hours.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.DialFunc = dialer.DialContext

	pool := stdlib.OpenDB(*cfg)
	pool.SetMaxOpenConns(maxConns)
	pool.SetMaxIdleConns(maxConns)
	pool.SetConnMaxLifetime(30 * time.Minute)
	pool.SetConnMaxIdleTime(5 * time.Minute)

	db := &DB{db: pool, cfg: cfg, changes: make(chan struct{}, 1), done: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	lctx, stop := context.WithCancel(context.Background())
	db.stop = stop
	listening := make(chan struct{})
	go db.listen(lctx, listening)
	// Changes committed once Open has returned are not missed; should the
	// listener not connect at once it keeps trying in the background.
	select {
	case <-listening:
	case <-ctx.Done():
	}
	return db, nil
}

// Close stops the listener and closes the pool.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.stop()
		<-db.done
		err = db.db.Close()
	})
	return err
}

// Changes signals after any replica (this one included) has committed a
// change.
func (db *DB) Changes() <-chan struct{} { return db.changes }

func (db *DB) signal() {
	select {
	case db.changes <- struct{}{}:
	default:
	}
}

// Now is the database server's time: the clock every replica shares (see
// internal/dbclock).
func (db *DB) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := db.db.QueryRowContext(ctx, "SELECT clock_timestamp()").Scan(&t)
	if err != nil {
		return t, unavailable(ctx, err)
	}
	return t, nil
}

// ---- transactions ----

// Update runs fn in a READ COMMITTED transaction. It runs fn again, after
// a short random pause, when the transaction hit a serialization failure
// or a deadlock, or when an insert lost a race for its key (the retry sees
// the winner's row). A commit that changed anything notifies the other
// replicas.
func (db *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.run(ctx, true, fn)
		if err == nil || !retryable(err, attempt) {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// View runs fn in a read-only snapshot.
func (db *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	return db.run(ctx, false, fn)
}

func (db *DB) run(ctx context.Context, write bool, fn func(store.Tx) error) error {
	tctx, cancel := context.WithTimeout(ctx, txTimeout)
	defer cancel()
	opts := &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	if !write {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	sqltx, err := db.db.BeginTx(tctx, opts)
	if err != nil {
		return unavailable(ctx, err)
	}
	tx := sqlstore.New(tctx, sqltx, dialect)
	if err := fn(tx); err != nil {
		sqltx.Rollback()
		return timedOut(ctx, tctx, err)
	}
	if !write {
		sqltx.Rollback()
		return nil
	}
	if tx.Wrote() {
		// Delivered to the listeners when (and only if) this commits.
		if _, err := tx.Exec(`SELECT pg_notify('` + Channel + `', '')`); err != nil {
			sqltx.Rollback()
			return timedOut(ctx, tctx, err)
		}
	}
	if err := sqltx.Commit(); err != nil {
		return unavailable(ctx, err)
	}
	return nil
}

func retryable(err error, attempt int) bool {
	switch sqlState(err) {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return attempt < maxAttempts
	}
	// One more run sees the row a concurrent transaction inserted first,
	// or the new version of a row another transaction updated after this
	// one read it (an optimistic update that matched nothing).
	return errors.Is(err, store.ErrConflict) && attempt < maxAttempts
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// unavailable marks errors of the database (as opposed to the caller's
// logic) so the API answers 503 for them. The caller's own cancellation
// stays what it is.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// timedOut turns the expiry of the transaction's own deadline (not the
// caller's) into ErrUnavailable.
func timedOut(ctx, tctx context.Context, err error) error {
	if ctx.Err() == nil && tctx.Err() != nil && !errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w: transaction not done within %s: %w", store.ErrUnavailable, txTimeout, err)
	}
	return err
}

// ---- migrations ----

// migrate applies the embedded migrations that have not run yet, on a
// connection of its own holding a session advisory lock: replicas starting
// together take turns. The connection is closed afterwards rather than
// returned to the pool, and the lock goes with it whatever happens.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return unavailable(ctx, err)
	}
	defer conn.Raw(func(any) error { return driver.ErrBadConn })
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLock)); err != nil {
		return unavailable(ctx, err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY)`); err != nil {
		return unavailable(ctx, err)
	}
	list, err := sqlstore.Migrations(migrations, "migrations")
	if err != nil {
		return err
	}
	for _, m := range list {
		sqltx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return unavailable(ctx, err)
		}
		if err := sqlstore.Apply(sqlstore.New(ctx, sqltx, dialect), m); err != nil {
			sqltx.Rollback()
			return err
		}
		if err := sqltx.Commit(); err != nil {
			return unavailable(ctx, err)
		}
	}
	return nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn.Close(ctx)
}

// ---- change notifications ----

// listen keeps one connection LISTENing on Channel, reconnecting with
// backoff after it is lost, until ctx ends. It closes listening once the
// first attempt is over. Notifications sent while it was disconnected are
// lost, so it signals after every reconnection. Its errors are not
// reported: the store's users see outages in their own transactions.
func (db *DB) listen(ctx context.Context, listening chan struct{}) {
	defer close(db.done)
	var once sync.Once
	ready := func() { once.Do(func() { close(listening) }) }
	backoff := minBackoff
	for first := true; ; first = false {
		db.listenOnce(ctx, func() {
			ready()
			if !first {
				db.signal()
			}
			backoff = minBackoff
		})
		ready()
		if ctx.Err() != nil {
			return
		}
		pause := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, db.cfg.Copy())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	listening()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdleCheck)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			db.signal()
		case ctx.Err() != nil:
			return ctx.Err()
		case pgconn.Timeout(err) && !conn.IsClosed():
			// Quiet for a while: make sure the connection still works.
			pctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
