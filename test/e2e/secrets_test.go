package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

// newPortal prepares a portal on defs (the bundled example when empty)
// without starting it, for tests that arrange its data directory or
// environment first.
func newPortal(t *testing.T, defs string, args ...string) *portal {
	t.Helper()
	requireBinary(t)
	dir := t.TempDir()
	p := &portal{
		t:       t,
		config:  filepath.Join(dir, "config", "portal.yaml"),
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "portal.log"),
		addr:    freeAddr(t),
		args:    args,
	}
	p.url = "http://" + p.addr
	if defs == "" {
		p.config = ""
	} else {
		if err := os.Mkdir(filepath.Dir(p.config), 0o700); err != nil {
			t.Fatal(err)
		}
		p.writeConfig(defs)
	}
	t.Cleanup(p.cleanup)
	return p
}

// Session config passwords are sealed in the database: its file holds
// none of them (issue 13: they were stored in clear text).
func TestConfigPasswordNotInClearInTheDatabase(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 3, Reserved: 0}))
	robot := p.robot()
	var passwords []string
	for _, user := range []string{"alice", "bob"} {
		a := robot.request(user, "")
		resp, raw := robot.do("GET", "/workshops/session/"+a.Name+"/config/", nil)
		var cfg struct{ Password string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &cfg) != nil || len(cfg.Password) != 32 {
			t.Fatalf("config of %s: %d %s", a.Name, resp.StatusCode, raw)
		}
		passwords = append(passwords, cfg.Password)
	}
	var db []byte
	for _, f := range []string{"portico.db", "portico.db-wal"} {
		b, err := os.ReadFile(filepath.Join(p.dataDir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		db = append(db, b...)
	}
	if len(db) == 0 {
		t.Fatal("no database file")
	}
	for _, pw := range passwords {
		if bytes.Contains(db, []byte(pw)) {
			t.Errorf("config password %s is in the database file in clear text", pw)
		}
	}
}

// Replicas of one database need one key for the sealed config passwords:
// a replica that has none refuses to start rather than make one up.
func TestReplicaWithoutTheSecretKeyRefusesToStart(t *testing.T) {
	pg := pgtest.Start(t)
	p := newPortal(t, definitions(entry{Capacity: 2, Reserved: 0}), "--runtime", "noop", "--database", pg.DSN)
	p.start()
	if !p.awaitExit(settle) || p.cmd.ProcessState.Success() {
		t.Fatalf("a replica without a secret key: %v", p.cmd.ProcessState)
	}
	if out := p.output(); !strings.Contains(out, "PORTICO_SECRET_KEY") {
		t.Errorf("the refusal does not say what to give:\n%s", out)
	}
}
