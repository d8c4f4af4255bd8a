package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"
)

func cachingDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := openPool("file:" + filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range []string{`CREATE TABLE t (x INTEGER)`, `INSERT INTO t VALUES (1), (2), (3)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func cached(t *testing.T, db *sql.DB) int {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	n := 0
	err = conn.Raw(func(c any) error {
		n = len(c.(*cachingConn).stmts)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A statement run again on the same connection is the one prepared
// before, whatever its arguments.
func TestStatementsAreKept(t *testing.T) {
	db := cachingDB(t)
	before := cached(t, db)
	for i := range 5 {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t WHERE x > ?`, i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := max(3-i, 0); n != want {
			t.Fatalf("count of x > %d: %d, want %d", i, n, want)
		}
		if _, err := db.Exec(`UPDATE t SET x = x WHERE x = ?`, i); err != nil {
			t.Fatal(err)
		}
	}
	if got := cached(t, db) - before; got != 2 {
		t.Errorf("%d statements kept for two texts", got)
	}
}

// A query run while rows of the same text are still being read gets a
// statement of its own: the outer rows go on where they were.
func TestNestedQueryOfTheSameText(t *testing.T) {
	db := cachingDB(t)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = `SELECT x FROM t WHERE x >= ? ORDER BY x`
	rows, err := tx.Query(q, 1)
	if err != nil {
		t.Fatal(err)
	}
	var outer []int
	for rows.Next() {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		outer = append(outer, x)
		var inner []int
		in, err := tx.Query(q, 3)
		if err != nil {
			t.Fatal(err)
		}
		for in.Next() {
			var y int
			in.Scan(&y)
			inner = append(inner, y)
		}
		if err := in.Close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(inner, []int{3}) {
			t.Fatalf("inner query: %v", inner)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if !slices.Equal(outer, []int{1, 2, 3}) {
		t.Errorf("outer query: %v, want [1 2 3]", outer)
	}
}
