package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/creack/pty"

	"github.com/portico-dev/portico/internal/secret"
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

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// generatedCredentials reads the file of generated credentials.
func generatedCredentials(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, "generated-credentials.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	creds := map[string]string{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			creds[k] = v
		}
	}
	return creds
}

// The data directory and the database are the portal's user's only, even
// when they were found open to others (issue 13: portico.db, -wal and
// -shm were 0644, and an existing data directory stayed 0755).
func TestDataFilesArePrivate(t *testing.T) {
	p := newPortal(t, "")
	if err := os.Mkdir(p.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p.dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.start()
	p.waitReady()

	private := []string{"portico.db", "portico.db-wal", "portico.db-shm", "secret.key", "generated-credentials.env"}
	check := func(when string) {
		t.Helper()
		if m := mode(t, p.dataDir); m != 0o700 {
			t.Errorf("%s: the data directory is %v, want 0700", when, m)
		}
		if m := mode(t, filepath.Join(p.dataDir, "sessions")); m != 0o700 {
			t.Errorf("%s: the sessions directory is %v, want 0700", when, m)
		}
		for _, f := range private {
			if m := mode(t, filepath.Join(p.dataDir, f)); m != 0o600 {
				t.Errorf("%s: %s is %v, want 0600", when, f, m)
			}
		}
	}
	check("first start in a directory open to all")

	p.stop()
	for _, f := range private {
		if err := os.Chmod(filepath.Join(p.dataDir, f), 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for _, d := range []string{p.dataDir, filepath.Join(p.dataDir, "sessions")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.restart()
	check("restart on files opened up")
}

// The credentials the portal makes up on its first start stay out of its
// log, which is collected and kept elsewhere: they are in the 0600 file,
// and the log says where (issue 13: they were logged).
func TestNoGeneratedSecretInTheLog(t *testing.T) {
	p := startPortal(t, "")
	creds := generatedCredentials(t, p.dataDir)
	log := p.output()
	for _, k := range []string{"PORTICO_ADMIN_PASSWORD", "PORTICO_ROBOT_PASSWORD", "PORTICO_CLIENT_SECRET"} {
		if creds[k] == "" {
			t.Fatalf("%s not generated: %v", k, creds)
		}
		if strings.Contains(log, creds[k]) {
			t.Errorf("the log holds %s", k)
		}
	}
	if !strings.Contains(log, filepath.Join(p.dataDir, "generated-credentials.env")) {
		t.Errorf("the log does not say where the credentials are:\n%s", log)
	}
}

// Run in a terminal, the portal shows what it generated there, once.
func TestGeneratedSecretsShownOnceOnATerminal(t *testing.T) {
	p := newPortal(t, "")
	terminal := func() string {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		logf, err := os.Create(p.logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(binary, "serve", "--data-dir", p.dataDir, "--listen", p.addr, "--runtime", "noop")
		cmd.Stdout, cmd.Stderr = logf, tty
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		var (
			mu  sync.Mutex
			out bytes.Buffer
		)
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				mu.Lock()
				out.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		msg := eventually(settle, func() string {
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(out.String(), "portal serving") {
				return "the portal does not serve:\n" + out.String()
			}
			return ""
		})
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if msg != "" {
			t.Fatal(msg)
		}
		mu.Lock()
		defer mu.Unlock()
		return out.String()
	}

	first := terminal()
	creds := generatedCredentials(t, p.dataDir)
	for _, k := range []string{"PORTICO_ADMIN_PASSWORD", "PORTICO_ROBOT_PASSWORD", "PORTICO_CLIENT_SECRET"} {
		if n := strings.Count(first, creds[k]); n != 1 {
			t.Errorf("the terminal shows %s %d times, want once:\n%s", k, n, first)
		}
	}
	if second := terminal(); strings.Contains(second, creds["PORTICO_ADMIN_PASSWORD"]) {
		t.Errorf("a second start shows the credentials again:\n%s", second)
	}
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

// The database URL, and its password, can be kept off the command line:
// PORTICO_DATABASE_URL, or pgx's PGPASSWORD and password file. Where it is
// on the command line, the debug endpoints that show the command line
// mask it (issue 13: /debug/pprof/cmdline and /debug/vars showed it).
func TestDatabasePasswordOffTheCommandLine(t *testing.T) {
	pg := pgtest.Start(t)
	password := "pw-" + secret.Alnum(20)
	dsn := pg.NewUser(t, "portico_app", password)
	withPassword := strings.Replace(dsn, "portico_app@", "portico_app:"+password+"@", 1)
	key := "PORTICO_SECRET_KEY=" + secret.NewKey()
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, fmt.Appendf(nil, "127.0.0.1:%d:*:portico_app:%s\n", pg.Port(), password), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(what string, env []string, args ...string) *portal {
		t.Helper()
		p := newPortal(t, definitions(entry{Capacity: 2, Reserved: 0}), append([]string{"--runtime", "noop"}, args...)...)
		p.env = append([]string{key}, env...)
		p.start()
		p.waitReady()
		if resp, raw := p.robot().do("GET", "/workshops/catalog/environments/", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: catalog %d %s", what, resp.StatusCode, raw)
		}
		if _, err := os.Stat(filepath.Join(p.dataDir, "portico.db")); err == nil {
			t.Errorf("%s: the portal keeps its state in SQLite, not in PostgreSQL", what)
		}
		return p
	}

	// Without a password anywhere, the server turns the portal away:
	// what follows proves that each source was read.
	refused := newPortal(t, definitions(entry{Capacity: 2, Reserved: 0}), "--runtime", "noop", "--database", dsn)
	refused.env = []string{key, "PGPASSFILE=" + filepath.Join(t.TempDir(), "none")}
	refused.start()
	if !refused.awaitExit(settle) || refused.cmd.ProcessState.Success() ||
		!strings.Contains(refused.output(), "password authentication failed") {
		t.Fatalf("a portal without the database password: %v\n%s", refused.cmd.ProcessState, refused.output())
	}

	run("PORTICO_DATABASE_URL", []string{"PORTICO_DATABASE_URL=" + withPassword}).stop()
	run("PGPASSWORD", []string{"PGPASSWORD=" + password}, "--database", dsn).stop()
	run("PGPASSFILE", []string{"PGPASSFILE=" + passfile}, "--database", dsn).stop()

	debug := freeAddr(t)
	p := run("--database with the password", nil, "--database", withPassword, "--debug-listen", debug)
	c := p.client()
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/vars"} {
		resp, raw := c.do("GET", "http://"+debug+path, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "portico_app:xxxxx@") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, raw)
		}
		if strings.Contains(string(raw), password) {
			t.Errorf("%s shows the database password: %s", path, raw)
		}
	}
	p.stop()
	if log := p.output(); strings.Contains(log, password) {
		t.Errorf("the log holds the database password:\n%s", log)
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
