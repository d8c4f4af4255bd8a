// Package sqlstore implements store.Tx on database/sql, for every SQL
// database Portico supports. The differences between them (placeholders,
// row locks) are a Dialect; the queries are written once.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/username"
)

// Dialect is what differs between databases.
type Dialect struct {
	// Numbered placeholders ($1, $2) instead of ?.
	Numbered bool
	// Lock is appended to a SELECT that must hold its rows until commit
	// ("FOR UPDATE"); empty where the whole transaction is already
	// exclusive (SQLite's BEGIN IMMEDIATE).
	Lock string
	// Claim is appended to a SELECT of sessions (alias s) to claim ("FOR
	// UPDATE OF s SKIP LOCKED"); empty where not needed.
	Claim string
	// PortalLock is a statement that takes a transaction-scoped lock
	// standing for the whole portal; empty where not needed.
	PortalLock string
	// Share is appended to a SELECT that keeps its rows from being updated
	// by others until commit ("FOR SHARE"); empty where the whole
	// transaction is already exclusive.
	Share string
	// Now is an SQL expression for the database's current time in Unix
	// milliseconds: lease times come from it, never from a replica.
	Now string
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
}

// Tx is a store.Tx on one database/sql transaction.
type Tx struct {
	ctx   context.Context
	tx    *sql.Tx
	d     Dialect
	wrote bool
}

// ErrKeyTaken is the ErrConflict of an insert whose key (name, username,
// hash) another row already has. The insert does not abort the
// transaction (ON CONFLICT DO NOTHING), so the caller may go on. When the
// other row comes from a concurrent transaction, running the whole
// transaction again sees it: stores with concurrent writers retry on it.
var ErrKeyTaken = fmt.Errorf("%w: key taken", store.ErrConflict)

// Wrote reports whether the transaction changed any shared state so far
// (lease renewals do not count): stores announce such commits to other
// replicas.
func (t *Tx) Wrote() bool { return t.wrote }

// New wraps an open transaction.
func New(ctx context.Context, tx *sql.Tx, d Dialect) *Tx {
	return &Tx{ctx: ctx, tx: tx, d: d}
}

var _ store.Tx = (*Tx)(nil)

// bind rewrites ? placeholders for dialects that number them. Queries here
// never contain a literal question mark.
func (t *Tx) bind(q string) string {
	if !t.d.Numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Exec runs a statement; exported for migrations.
func (t *Tx) Exec(q string, args ...any) (sql.Result, error) {
	r, err := t.tx.ExecContext(t.ctx, t.bind(q), args...)
	return r, t.wrap(err)
}

// write runs a statement that changes state, noting when it did.
func (t *Tx) write(q string, args ...any) (sql.Result, error) {
	r, err := t.Exec(q, args...)
	if err == nil {
		if n, err := r.RowsAffected(); err != nil || n > 0 {
			t.wrote = true
		}
	}
	return r, err
}

// insert runs an INSERT … ON CONFLICT DO NOTHING: no row means the key is
// taken.
func (t *Tx) insert(what, key, q string, args ...any) error {
	r, err := t.write(q, args...)
	if err != nil {
		return err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return t.wrap(err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s %q", ErrKeyTaken, what, key)
	}
	return nil
}

// insertID runs an INSERT … ON CONFLICT DO NOTHING RETURNING id.
func (t *Tx) insertID(what, key string, id *int64, q string, args ...any) error {
	err := t.QueryRow(q, args...).Scan(id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s %q", ErrKeyTaken, what, key)
	case err != nil:
		return t.wrap(err)
	}
	t.wrote = true
	return nil
}

func (t *Tx) query(q string, args ...any) (*sql.Rows, error) {
	rows, err := t.tx.QueryContext(t.ctx, t.bind(q), args...)
	return rows, t.wrap(err)
}

// QueryRow runs a query returning one row; exported for migrations.
func (t *Tx) QueryRow(q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(t.ctx, t.bind(q), args...)
}

func (t *Tx) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case t.d.IsUnique != nil && t.d.IsUnique(err):
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	default:
		// The cause stays in the chain: stores look for the database's
		// own codes (serialization failures) in it.
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
}

// Times are stored as Unix milliseconds, 0 meaning unset.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own record types are marshalled here; they always encode.
		panic(fmt.Sprintf("sqlstore: encode %T: %v", v, err))
	}
	return string(b)
}

func fromJSON(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("%w: corrupt column: %v", store.ErrUnavailable, err)
	}
	return nil
}

// checkOne turns an optimistic update that matched no row into ErrConflict.
func checkOne(r sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return store.ErrConflict
	}
	return nil
}

// ---- environments ----

const envColumns = `id, version, name, key, workshop, state, position, capacity, initial, reserved,
	expires, overtime, deadline, orphaned, overdue, refresh, env, labels, tally, created`

func scanEnv(row interface{ Scan(...any) error }) (store.Environment, error) {
	var (
		e                                       store.Environment
		workshop, env, labels                   string
		exp, over, dead, orph, due, refr, creat int64
	)
	err := row.Scan(&e.ID, &e.Version, &e.Name, &e.Key, &workshop, &e.State, &e.Position,
		&e.Capacity, &e.Initial, &e.Reserved, &exp, &over, &dead, &orph, &due, &refr,
		&env, &labels, &e.Tally, &creat)
	if err != nil {
		return e, err
	}
	e.Expires, e.Overtime, e.Deadline = msDur(exp), msDur(over), msDur(dead)
	e.Orphaned, e.Overdue, e.Refresh = msDur(orph), msDur(due), msDur(refr)
	e.Created = fromMS(creat)
	return e, errors.Join(fromJSON(workshop, &e.Workshop), fromJSON(env, &e.Env), fromJSON(labels, &e.Labels))
}

func msDur(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func durMS(d time.Duration) int64 { return d.Milliseconds() }

func envArgs(e *store.Environment) []any {
	return []any{e.Name, e.Key, toJSON(e.Workshop), e.State, e.Position, e.Capacity, e.Initial, e.Reserved,
		durMS(e.Expires), durMS(e.Overtime), durMS(e.Deadline), durMS(e.Orphaned), durMS(e.Overdue),
		durMS(e.Refresh), toJSON(e.Env), toJSON(e.Labels), e.Tally, ms(e.Created)}
}

func (t *Tx) InsertEnvironment(e *store.Environment) error {
	if e.Labels == nil {
		e.Labels = map[string]string{}
	}
	if e.Env == nil {
		e.Env = []config.EnvVar{}
	}
	e.Version = 1
	return t.insertID("environment", e.Name, &e.ID, `INSERT INTO environments (name, key, workshop, state,
		position, capacity, initial, reserved, expires, overtime, deadline, orphaned, overdue, refresh, env,
		labels, tally, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING RETURNING id`, envArgs(e)...)
}

func (t *Tx) UpdateEnvironment(e *store.Environment) error {
	args := append(envArgs(e), e.ID, e.Version)
	err := checkOne(t.write(`UPDATE environments SET version = version + 1, name = ?, key = ?, workshop = ?,
		state = ?, position = ?, capacity = ?, initial = ?, reserved = ?, expires = ?, overtime = ?,
		deadline = ?, orphaned = ?, overdue = ?, refresh = ?, env = ?, labels = ?, tally = ?, created = ?
		WHERE id = ? AND version = ?`, args...))
	if err == nil {
		e.Version++
	}
	return err
}

func (t *Tx) Environment(name string) (store.Environment, error) {
	e, err := scanEnv(t.QueryRow(`SELECT `+envColumns+` FROM environments WHERE name = ?`, name))
	return e, t.wrap(err)
}

func (t *Tx) EnvironmentByID(id int64) (store.Environment, error) {
	e, err := scanEnv(t.QueryRow(`SELECT `+envColumns+` FROM environments WHERE id = ?`, id))
	return e, t.wrap(err)
}

func (t *Tx) LockEnvironment(id int64) (store.Environment, error) {
	e, err := scanEnv(t.QueryRow(`SELECT `+envColumns+` FROM environments WHERE id = ? `+t.d.Lock, id))
	return e, t.wrap(err)
}

func (t *Tx) Environments(states ...store.EnvState) ([]store.Environment, error) {
	q := `SELECT ` + envColumns + ` FROM environments`
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (` + placeholders(len(states)) + `)`
		for _, s := range states {
			args = append(args, s)
		}
	}
	rows, err := t.query(q+` ORDER BY position, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Environment
	for rows.Next() {
		e, err := scanEnv(rows)
		if err != nil {
			return nil, t.wrap(err)
		}
		out = append(out, e)
	}
	return out, t.wrap(rows.Err())
}

func (t *Tx) LockPortal() error {
	if t.d.PortalLock == "" {
		return nil
	}
	_, err := t.Exec(t.d.PortalLock)
	return err
}

// stateLiteral quotes a session state for SQL; states are our constants,
// and anything else matches nothing.
func stateLiteral(st store.SessionState) string {
	switch st {
	case store.Starting, store.Waiting, store.Running, store.Stopping, store.Stopped:
		return "'" + string(st) + "'"
	}
	return "NULL"
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ---- sessions ----

const sessionColumns = `s.name, s.version, s.sid, s.env_id, e.name, s.state, s.owner, COALESCE(u.username, ''),
	s.created, s.started, s.expires, s.activation, s.activated, s.delivered, s.params, s.index_url, s.analytics, s.password,
	s.address, s.failure, s.attempts, s.retry_at, s.check_at`

const sessionFrom = ` FROM sessions s JOIN environments e ON e.id = s.env_id LEFT JOIN users u ON u.id = s.owner`

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var (
		s                                           store.Session
		owner                                       sql.NullInt64
		created, started, expires, retryAt, checkAt int64
		params                                      string
	)
	err := row.Scan(&s.Name, &s.Version, &s.ID, &s.EnvID, &s.Environment, &s.State, &owner, &s.OwnerName,
		&created, &started, &expires, &s.Activation, &s.Activated, &s.Delivered, &params, &s.IndexURL, &s.Analytics, &s.Password,
		&s.Address, &s.Failure, &s.Attempts, &retryAt, &checkAt)
	if err != nil {
		return s, err
	}
	s.Owner = owner.Int64
	s.Created, s.Started, s.Expires = fromMS(created), fromMS(started), fromMS(expires)
	s.RetryAt, s.CheckAt = fromMS(retryAt), fromMS(checkAt)
	return s, fromJSON(params, &s.Params)
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

func sessionArgs(s *store.Session) []any {
	if s.Params == nil {
		s.Params = []config.EnvVar{}
	}
	return []any{s.ID, s.EnvID, s.State, nullID(s.Owner), ms(s.Created), ms(s.Started), ms(s.Expires),
		s.Activation, s.Activated, s.Delivered, toJSON(s.Params), s.IndexURL, s.Analytics, s.Password, s.Address, s.Failure,
		s.Attempts, ms(s.RetryAt), ms(s.CheckAt)}
}

func (t *Tx) InsertSession(s *store.Session) error {
	s.Version = 1
	return t.insert("session", s.Name, `INSERT INTO sessions (name, sid, env_id, state, owner, created,
		started, expires, activation, activated, delivered, params, index_url, analytics, password, address,
		failure, attempts, retry_at, check_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, append([]any{s.Name}, sessionArgs(s)...)...)
}

func (t *Tx) UpdateSession(s *store.Session) error {
	args := append(sessionArgs(s), s.Name, s.Version)
	err := checkOne(t.write(`UPDATE sessions SET version = version + 1, sid = ?, env_id = ?, state = ?,
		owner = ?, created = ?, started = ?, expires = ?, activation = ?, activated = ?, delivered = ?, params = ?,
		index_url = ?,
		analytics = ?, password = ?, address = ?, failure = ?, attempts = ?, retry_at = ?, check_at = ?
		WHERE name = ? AND version = ?`, args...))
	if err == nil {
		s.Version++
	}
	return err
}

func (t *Tx) Session(name string) (store.Session, error) {
	s, err := scanSession(t.QueryRow(`SELECT `+sessionColumns+sessionFrom+` WHERE s.name = ?`, name))
	return s, t.wrap(err)
}

func (t *Tx) where(q store.SessionQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if q.EnvID != 0 {
		add(`s.env_id = ?`, q.EnvID)
	}
	if q.Owner != 0 {
		add(`s.owner = ?`, q.Owner)
	}
	switch q.Ownership {
	case store.Owned:
		add(`s.owner IS NOT NULL`)
	case store.Unowned:
		add(`s.owner IS NULL`)
	}
	switch {
	// Literals, not parameters: SQLite uses a partial index only when the
	// query's terms match the index's own, and it takes s.state = 'X', not
	// s.state IN ('X'), to match a WHERE of state = 'X' OR ….
	case len(q.States) == 1:
		add(`s.state = ` + stateLiteral(q.States[0]))
	case len(q.States) > 0:
		lits := make([]string, len(q.States))
		for i, st := range q.States {
			lits[i] = stateLiteral(st)
		}
		add(`s.state IN (` + strings.Join(lits, ", ") + `)`)
	}
	if !q.ExpiresBy.IsZero() {
		add(`s.expires > 0 AND s.expires <= ?`, ms(q.ExpiresBy))
	}
	if !q.StartBy.IsZero() {
		add(`s.address = '' AND s.retry_at <= ?`, ms(q.StartBy))
	}
	if q.Healthy {
		add(`s.attempts = 0`)
	}
	if q.Undelivered {
		add(`s.owner IS NOT NULL AND NOT s.delivered AND s.address <> ''`)
	}
	if q.Failing {
		add(`s.attempts > 0`)
	}
	if !q.CheckBy.IsZero() {
		add(`s.check_at > 0 AND s.check_at <= ?`, ms(q.CheckBy))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return ` WHERE ` + strings.Join(conds, ` AND `), args
}

func (t *Tx) FindSessions(q store.SessionQuery) ([]store.Session, error) {
	where, args := t.where(q)
	query := `SELECT ` + sessionColumns + sessionFrom + where
	switch q.Order {
	case "-created":
		query += ` ORDER BY s.created DESC, s.name DESC`
	case "waiting-first":
		// WAITING sorts after STARTING, so descending puts the ready
		// reserves first, in the order of the sessions_reserve index.
		query += ` ORDER BY s.state DESC, s.created, s.name`
	default:
		query += ` ORDER BY s.created, s.name`
	}
	if q.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(q.Limit)
	}
	if q.Claim {
		query += " " + t.d.Claim
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, t.wrap(err)
		}
		out = append(out, s)
	}
	return out, t.wrap(rows.Err())
}

// ClaimReserved selects and updates the session in one statement, in the
// order of the sessions_reserve index. The SET expressions all see the
// row as it was, so the state decides the new state and check time.
func (t *Tx) ClaimReserved(envID int64, c store.Claim) (store.Session, error) {
	if c.Params == nil {
		c.Params = []config.EnvVar{}
	}
	direct := !c.Activation
	s, err := scanSession(t.QueryRow(`UPDATE sessions SET version = version + 1, owner = ?, params = ?,
		index_url = ?, analytics = ?, activation = ?, activated = ?, started = ?, expires = ?,
		state = CASE WHEN ? AND state = 'WAITING' THEN 'RUNNING' ELSE state END,
		check_at = CASE WHEN ? AND state = 'WAITING' THEN ? ELSE check_at END
		WHERE name = (SELECT s.name FROM sessions s WHERE s.env_id = ? AND s.owner IS NULL
			AND s.state IN ('WAITING', 'STARTING') AND s.attempts = 0
			ORDER BY s.state DESC, s.created, s.name LIMIT 1 `+t.d.Claim+`)
		AND owner IS NULL AND state IN ('WAITING', 'STARTING') AND attempts = 0
		RETURNING name, version, sid, env_id, (SELECT name FROM environments WHERE id = env_id), state, owner,
			(SELECT username FROM users WHERE id = owner), created, started, expires, activation,
			activated, delivered, params, index_url, analytics, password, address, failure, attempts,
			retry_at, check_at`,
		c.Owner, toJSON(c.Params), c.IndexURL, c.Analytics, c.Activation, direct, ms(c.Started), ms(c.Expires),
		direct, direct, ms(c.CheckAt), envID))
	if err != nil {
		return s, t.wrap(err)
	}
	t.wrote = true
	return s, nil
}

func (t *Tx) CountSessions(q store.SessionQuery) (int, error) {
	where, args := t.where(q)
	var n int
	err := t.QueryRow(`SELECT count(*) FROM sessions s`+where, args...).Scan(&n)
	return n, t.wrap(err)
}

func (t *Tx) EachHeld(envID int64, fn func(store.Held) error) error {
	rows, err := t.query(`SELECT s.name, s.state, u.username, s.started, s.expires
		FROM sessions s JOIN users u ON u.id = s.owner
		WHERE s.env_id = ? AND s.owner IS NOT NULL AND s.state IN ('STARTING', 'WAITING', 'RUNNING', 'STOPPING')
		ORDER BY s.created, s.name`, envID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			h                store.Held
			started, expires int64
		)
		if err := rows.Scan(&h.Name, &h.State, &h.OwnerName, &started, &expires); err != nil {
			return t.wrap(err)
		}
		h.Started, h.Expires = fromMS(started), fromMS(expires)
		if err := fn(h); err != nil {
			return err
		}
	}
	return t.wrap(rows.Err())
}

func (t *Tx) SessionCounts() (map[int64]store.SessionCounts, error) {
	rows, err := t.query(`SELECT env_id, count(CASE WHEN owner IS NOT NULL THEN 1 END),
		count(CASE WHEN owner IS NULL AND state = 'WAITING' THEN 1 END)
		FROM sessions WHERE state IN ('STARTING', 'WAITING', 'RUNNING', 'STOPPING') GROUP BY env_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]store.SessionCounts{}
	for rows.Next() {
		var (
			env int64
			c   store.SessionCounts
		)
		if err := rows.Scan(&env, &c.Allocated, &c.Available); err != nil {
			return nil, t.wrap(err)
		}
		out[env] = c
	}
	return out, t.wrap(rows.Err())
}

func (t *Tx) DeleteStoppedSessions(before time.Time) (int, error) {
	// Activation tokens of those sessions go with them.
	if _, err := t.write(`DELETE FROM tokens WHERE kind = 'activation' AND session IN
		(SELECT name FROM sessions WHERE state = 'STOPPED' AND expires <= ?)`, ms(before)); err != nil {
		return 0, err
	}
	return affected(t.write(`DELETE FROM sessions WHERE state = 'STOPPED' AND expires <= ?`, ms(before)))
}

func affected(r sql.Result, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}

func (t *Tx) NextDeadline() (time.Time, error) {
	var next sql.NullInt64
	err := t.QueryRow(`SELECT min(t) FROM (
		SELECT min(expires) AS t FROM sessions WHERE expires > 0 AND state IN ('STARTING', 'WAITING', 'RUNNING')
		UNION ALL SELECT min(retry_at) FROM sessions WHERE state = 'STARTING' AND address = ''
		UNION ALL SELECT min(check_at) FROM sessions WHERE check_at > 0
		UNION ALL SELECT min(created + refresh) FROM environments WHERE state = 'RUNNING' AND refresh > 0
	) AS deadlines`).Scan(&next)
	if err != nil {
		return time.Time{}, t.wrap(err)
	}
	return fromMS(next.Int64), nil
}

// ---- users ----

const userColumns = `id, username, email, first_name, last_name, password_hash, role, origin, origin_client, created`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var (
		u       store.User
		created int64
	)
	err := row.Scan(&u.ID, &u.Username, &u.Email, &u.FirstName, &u.LastName, &u.PasswordHash, &u.Role,
		&u.Origin, &u.Client, &created)
	u.Created = fromMS(created)
	return u, err
}

// InsertUser keys the account by the normalised form of its name: the
// unique index on it is what makes "alice", "Alice" and "ａｌｉｃｅ" one
// account on every database, whoever inserts.
func (t *Tx) InsertUser(u *store.User) error {
	key, err := username.Key(u.Username)
	if err != nil {
		return fmt.Errorf("user %q: %w", u.Username, err)
	}
	return t.insertID("user", u.Username, &u.ID, `INSERT INTO users (username, username_key, skeleton, email,
		first_name, last_name, password_hash, role, origin, origin_client, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id`,
		u.Username, key, username.Skeleton(u.Username), u.Email, u.FirstName, u.LastName, u.PasswordHash,
		u.Role, u.Origin, u.Client, ms(u.Created))
}

// UpdateUser leaves the name and origin of the account as they are: an
// account is never renamed into another's name, nor taken over.
func (t *Tx) UpdateUser(u *store.User) error {
	return checkOne(t.write(`UPDATE users SET email = ?, first_name = ?, last_name = ?,
		password_hash = ?, role = ? WHERE id = ?`,
		u.Email, u.FirstName, u.LastName, u.PasswordHash, u.Role, u.ID))
}

// User tries the exact name first: it is the only way to the accounts that
// kept no key in the upgrade to keyed names (see keyUsernames). Any other
// account with that exact name has the name's key too.
//
// Both in one query: a request for a session by a new user asks for it
// first, on the hot path.
func (t *Tx) User(name string) (store.User, error) {
	key, kerr := username.Key(name)
	if kerr != nil {
		u, err := scanUser(t.QueryRow(`SELECT `+userColumns+` FROM users WHERE username = ?`, name))
		return u, t.wrap(err)
	}
	u, err := scanUser(t.QueryRow(`SELECT `+userColumns+` FROM users WHERE username = ? OR username_key = ?
		ORDER BY CASE WHEN username = ? THEN 0 ELSE 1 END LIMIT 1`, name, key, name))
	return u, t.wrap(err)
}

func (t *Tx) UserLike(name string) (store.User, error) {
	u, err := scanUser(t.QueryRow(`SELECT `+userColumns+` FROM users WHERE skeleton = ? ORDER BY id LIMIT 1`,
		username.Skeleton(name)))
	return u, t.wrap(err)
}

func (t *Tx) UserByID(id int64) (store.User, error) {
	u, err := scanUser(t.QueryRow(`SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, t.wrap(err)
}

func (t *Tx) Users(limit int) ([]store.User, error) {
	rows, err := t.query(`SELECT `+userColumns+` FROM users ORDER BY created DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, t.wrap(err)
		}
		out = append(out, u)
	}
	return out, t.wrap(rows.Err())
}

// LockUser reads the user's row with the dialect's lock (none on SQLite,
// where the transaction is exclusive already), so an unknown user is
// ErrNotFound on every database.
func (t *Tx) LockUser(id int64) error {
	var got int64
	return t.wrap(t.QueryRow(`SELECT id FROM users WHERE id = ? `+t.d.Lock, id).Scan(&got))
}

func (t *Tx) DeleteIdleAnonymousUsers(before time.Time) (int, error) {
	idle := `role = 'anonymous' AND created <= ? AND NOT EXISTS (SELECT 1 FROM sessions WHERE owner = users.id)`
	if _, err := t.write(`DELETE FROM tokens WHERE user_id IN (SELECT id FROM users WHERE `+idle+`)`, ms(before)); err != nil {
		return 0, err
	}
	return affected(t.write(`DELETE FROM users WHERE `+idle, ms(before)))
}

// ---- clients and tokens ----

func (t *Tx) UpsertClient(c store.Client) error {
	_, err := t.write(`INSERT INTO clients (id, secret_hash, user_id) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, user_id = excluded.user_id`,
		c.ID, c.SecretHash, nullID(c.User))
	return err
}

func (t *Tx) Client(id string) (store.Client, error) {
	var (
		c    store.Client
		user sql.NullInt64
	)
	err := t.QueryRow(`SELECT id, secret_hash, user_id FROM clients WHERE id = ?`, id).Scan(&c.ID, &c.SecretHash, &user)
	c.User = user.Int64
	return c, t.wrap(err)
}

func (t *Tx) ClientOf(user int64) (store.Client, error) {
	var c store.Client
	err := t.QueryRow(`SELECT id, secret_hash, user_id FROM clients WHERE user_id = ? ORDER BY id LIMIT 1`, user).
		Scan(&c.ID, &c.SecretHash, &c.User)
	return c, t.wrap(err)
}

func (t *Tx) DeleteClient(id string) error {
	_, err := t.write(`DELETE FROM clients WHERE id = ?`, id)
	return err
}

func (t *Tx) InsertToken(k store.Token) error {
	return t.insert("token", k.Grant, `INSERT INTO tokens (hash, kind, grant_id, user_id, client, session,
		expires, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.Hash, k.Kind, k.Grant, k.User, k.Client, k.Session, ms(k.Expires), k.Revoked)
}

func (t *Tx) Token(hash []byte) (store.Token, error) {
	var (
		k       store.Token
		expires int64
	)
	err := t.QueryRow(`SELECT hash, kind, grant_id, user_id, client, session, expires, revoked
		FROM tokens WHERE hash = ?`, hash).Scan(&k.Hash, &k.Kind, &k.Grant, &k.User, &k.Client, &k.Session, &expires, &k.Revoked)
	k.Expires = fromMS(expires)
	return k, t.wrap(err)
}

func (t *Tx) TakeToken(hash []byte) (store.Token, error) {
	var (
		k       store.Token
		expires int64
	)
	// One statement, so that of two replicas taking the same token only
	// one gets it.
	err := t.QueryRow(`DELETE FROM tokens WHERE hash = ? AND revoked = ?
		RETURNING hash, kind, grant_id, user_id, client, session, expires, revoked`, hash, false).
		Scan(&k.Hash, &k.Kind, &k.Grant, &k.User, &k.Client, &k.Session, &expires, &k.Revoked)
	k.Expires = fromMS(expires)
	return k, t.wrap(err)
}

func (t *Tx) RevokeGrant(grant string) error {
	_, err := t.write(`UPDATE tokens SET revoked = ? WHERE grant_id = ?`, true, grant)
	return err
}

func (t *Tx) DeleteExpiredTokens(before time.Time) (int, error) {
	return affected(t.write(`DELETE FROM tokens WHERE expires > 0 AND expires <= ?`, ms(before)))
}

// ---- leases ----

// AcquireLease inserts the lease, or takes it over when it has expired, or
// extends it when holder has it already, all by the database's clock; it
// returns the generation holder holds it in, 0 when it does not. Only the
// row's own conditional upsert decides, so two replicas racing for it
// cannot both win. A change of holder (a take-over, or a lease released
// and taken again) is a new generation.
func (t *Tx) AcquireLease(name, holder string, ttl time.Duration) (int64, error) {
	var gen int64
	err := t.QueryRow(`INSERT INTO leases (name, holder, expires, generation) VALUES (?, ?, `+t.d.Now+` + ?, 1)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
		generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation ELSE leases.generation + 1 END
		WHERE leases.holder = excluded.holder OR leases.expires <= `+t.d.Now+`
		RETURNING generation`, name, holder, durMS(ttl)).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return gen, t.wrap(err)
}

// ReleaseLease gives the lease up when holder has it: the row stays, with
// nobody holding it and its generation, so generations never go back. It
// counts as a change, so the other replicas wake up and one of them takes
// over.
func (t *Tx) ReleaseLease(name, holder string) error {
	_, err := t.write(`UPDATE leases SET holder = '', expires = 0 WHERE name = ? AND holder = ?`, name, holder)
	return err
}

// CheckLease reads the lease with a share lock: a take-over (an update of
// the row) waits until this transaction ends, and one that came first is
// seen in the generation.
func (t *Tx) CheckLease(name, holder string, generation int64) error {
	var gen int64
	err := t.QueryRow(`SELECT generation FROM leases WHERE name = ? AND holder = ? `+t.d.Share, name, holder).Scan(&gen)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s is not held by %s", store.ErrFenced, name, holder)
	case err != nil:
		return t.wrap(err)
	case gen != generation:
		return fmt.Errorf("%w: %s is in generation %d, not %d", store.ErrFenced, name, gen, generation)
	}
	return nil
}
