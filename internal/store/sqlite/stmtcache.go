package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
)

// maxCached bounds the statements one connection keeps prepared. The
// queries of sqlstore are a small fixed set (a few dozen texts, the
// session filters included); a text beyond the bound is prepared and
// finalised per use, as every statement used to be.
const maxCached = 256

// cachingConnector opens connections that keep their prepared statements.
// The driver's own Exec and Query prepare the SQL text anew on every call
// (sqlite3_prepare_v2 was a third of the CPU of an allocation); a
// connection that offers database/sql no ExecerContext or QueryerContext
// makes it prepare through PrepareContext instead, which answers from the
// connection's cache, and close the statement after use, which keeps it.
type cachingConnector struct{ driver.Connector }

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: make(map[string]*cachedStmt)}, nil
}

// cachingConn is used by one goroutine at a time (database/sql holds the
// connection's lock around every call), so its cache needs no lock.
type cachingConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
}

// The optional interfaces of the driver's connections, minus ExecerContext
// and QueryerContext (see cachingConnector).
var (
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

// Unwrap is the driver's connection, for the driver's own helpers.
func (c *cachingConn) Unwrap() driver.Conn { return c.Conn }

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext answers with the statement prepared for the same text
// before, unless that one is still reading rows (a query nested in the
// iteration of another with the same text): then with a fresh statement
// that is finalised after use.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if s, ok := c.stmts[query]; ok && !s.reading {
		return s, nil
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if _, ok := c.stmts[query]; ok || len(c.stmts) >= maxCached {
		return st, nil
	}
	s := &cachedStmt{Stmt: st}
	c.stmts[query] = s
	return s, nil
}

// Close finalises the kept statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.Stmt.Close())
	}
	clear(c.stmts)
	return errors.Join(append(errs, c.Conn.Close())...)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

// cachedStmt is a statement its connection keeps: closing it after use
// leaves it prepared. reading is set while rows of it are open, as the
// driver's rows reset the statement when they close.
type cachedStmt struct {
	driver.Stmt
	reading bool
}

var (
	_ driver.StmtExecContext  = (*cachedStmt)(nil)
	_ driver.StmtQueryContext = (*cachedStmt)(nil)
)

// Close keeps the statement; its connection finalises it.
func (s *cachedStmt) Close() error { return nil }

func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.reading = true
	return &cachedRows{Rows: rows, stmt: s}, nil
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	r.stmt.reading = false
	return r.Rows.Close()
}
