package pgtest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

func TestStopStart(t *testing.T) {
	srv := pgtest.Start(t)
	pgtest.Query(t, srv.DSN, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept')")
	if got := pgtest.Query(t, srv.DSN, "SELECT current_setting('fsync')"); got != "off\n" {
		t.Errorf("fsync = %q", got)
	}
	if os.Geteuid() == 0 {
		if got := pgtest.Query(t, srv.DSN, "SELECT current_user"); got != "postgres\n" {
			t.Errorf("user %q", got)
		}
	}
	port := srv.Port()
	srv.Stop()
	srv.Stop() // twice is fine
	srv.Start()
	if srv.Port() != port {
		t.Errorf("port changed from %d to %d", port, srv.Port())
	}
	if got := pgtest.Query(t, srv.DSN, "SELECT v FROM t"); got != "kept\n" {
		t.Errorf("after restart: %q", got)
	}
	other := srv.NewDatabase(t)
	if other == srv.DSN || !strings.HasPrefix(other, "postgres://") {
		t.Errorf("new database %q (first %q)", other, srv.DSN)
	}
	pgtest.Query(t, other, "SELECT 1")
}
