// Package pgtest starts a throwaway PostgreSQL server for tests: initdb in
// a temporary directory, postgres on a free loopback port, removed when the
// test ends. Tests that call Start skip when PostgreSQL is not installed.
//
// As root (the CI machines) the server runs as the postgres user, since
// initdb and postgres refuse to run as root.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SkipMessage is why tests skip when the binaries are absent.
const SkipMessage = "PostgreSQL not installed: apt-get install -y postgresql"

// Server is a running (or stopped) throwaway PostgreSQL server.
type Server struct {
	// DSN names the database Start created, over TCP.
	DSN string

	t    testing.TB
	bin  string // directory with initdb and postgres
	cred *syscall.Credential
	dir  string // owned by the server's user: data/, the socket, the log
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	dbs  int
}

// Start creates and starts a server with one database, stopped and removed
// when the test ends. It skips the test when PostgreSQL is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		t.Skip(SkipMessage)
	}
	s := &Server{t: t, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("PostgreSQL refuses to run as root and there is no postgres user: apt-get install -y postgresql")
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	}
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(s.cleanup)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// The port is free when chosen but may be taken before postgres binds
	// it: try a few.
	for attempt := 1; ; attempt++ {
		s.port = freePort(t)
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(s.log(), "could not bind") {
			t.Fatalf("start postgres: %v\n%s", err, s.log())
		}
	}
	s.DSN = s.NewDatabase(t)
	return s
}

const (
	dirPrefix = "portico-pgtest-"
	ownerFile = "owner.pid" // the test process that made the directory
)

// removeStale removes the directories of test processes that died before
// their cleanup ran (their servers died with them: see Pdeathsig).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// BinDir is the directory holding initdb and postgres: that of initdb in
// PATH, or else the newest /usr/lib/postgresql/*/bin; "" when there is none.
// The benchmark harness starts its own server with them too.
func BinDir() string {
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
	}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(versions, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range append(dirs, versions...) {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d
		}
	}
	return ""
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) logPath() string { return filepath.Join(s.dir, "postgres.log") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir, "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		// Should the test binary die, the server goes with it (immediate
		// shutdown).
		Pdeathsig: syscall.SIGQUIT,
	}
	return cmd
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.logPath())
	return string(b)
}

// Port is the TCP port the server listens on, the same across restarts.
func (s *Server) Port() int { return s.port }

// Start starts the server again after Stop, on the same data and port.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restart postgres: %v\n%s", err, s.log())
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("already running")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.data(), "-p", strconv.Itoa(s.port),
		"-k", s.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("postgres exited: %v", cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("postgres not ready after 60 s: %v", err)
		}
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits until it has exited. Start brings it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *Server) cleanup() {
	s.Stop()
	if s.t.Failed() {
		l := s.log()
		if len(l) > 8000 {
			l = "…" + l[len(l)-8000:]
		}
		s.t.Logf("postgres log (%s):\n%s", s.logPath(), l)
	}
	os.RemoveAll(s.dir)
}

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.port, db)
}

// NewDatabase creates an empty database and returns its DSN. It is not
// dropped: the whole server goes when the test ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("portico%d", s.dbs)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("connect to postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return s.dsn(name)
}

// NewUser creates a role that logs in with password, and a database it
// owns, and makes the server ask that role for its password over TCP
// (the other roles keep trust). It returns the database's DSN without the
// password, for tests of where a client finds it.
func (s *Server) NewUser(t testing.TB, name, password string) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	db := fmt.Sprintf("portico%d", s.dbs)
	s.mu.Unlock()
	admin := s.dsn("postgres")
	Query(t, admin, fmt.Sprintf("SET password_encryption = 'scram-sha-256'; CREATE ROLE %s LOGIN PASSWORD '%s'",
		pgx.Identifier{name}.Sanitize(), strings.ReplaceAll(password, "'", "''")))
	Query(t, admin, fmt.Sprintf("CREATE DATABASE %s OWNER %s", db, pgx.Identifier{name}.Sanitize()))
	hba := filepath.Join(s.data(), "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rule := fmt.Sprintf("host all %s 127.0.0.1/32 scram-sha-256\n", name)
	if err := os.WriteFile(hba, append([]byte(rule), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	Query(t, admin, "SELECT pg_reload_conf()")
	// The reload is asynchronous: wait until the server asks.
	deadline := time.Now().Add(30 * time.Second)
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", name, s.port, db)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		cfg.Password = ""
		conn, err := pgx.ConnectConfig(ctx, cfg)
		cancel()
		if err != nil {
			return dsn
		}
		conn.Close(context.Background())
		if time.Now().After(deadline) {
			t.Fatalf("postgres still lets %s in without a password after reloading pg_hba.conf", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Query runs SQL on a database (a DSN) as the superuser, for tests that
// inspect or disturb the server, and returns the rows, one a line, columns
// separated by |.
func Query(t testing.TB, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var out bytes.Buffer
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				out.WriteByte('|')
			}
			fmt.Fprint(&out, v)
		}
		out.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out.String()
}
