package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", as in internal/store/sqlite
)

// fixedAnswer is what the trivial handler answers: a session request's
// answer of the usual size.
var fixedAnswer = []byte(`{"name":"bench-w01-s001","session":"bench-w01-s001","user":"u1-0-0",` +
	`"url":"/workshops/session/bench-w01-s001/activate/?token=xJEzrUQotZJYeybFTmXdPfIIcLwpvKCu&index_url=https%3A%2F%2Ffront-end.invalid%2F",` +
	`"namespace":"bench-w01-s001","workshop":"bench","environment":"bench-w01"}` + "\n")

// fixedServer is the hidden mode `portico-bench __fixed-server`: the HTTP
// ceiling. It serves fixedAnswer on the portal's route for session
// requests, behind an http.Server set up as `portico serve` sets up its
// own, prints its address on stdout, and exits when stdin closes (when the
// harness goes).
func fixedServer(args []string) error {
	fs := flag.NewFlagSet(fixedServerArg, flag.ContinueOnError)
	fs.String("dir", "", "the harness's directory for this server (marks the process as the run's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/workshops/environment/{name}/request/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(fixedAnswer)
	})
	// The same settings as cmd/portico's server.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(os.Stderr, "", 0),
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println(ln.Addr())
	return srv.Serve(ln)
}

// fixed is a running fixed server.
type fixed struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	url   string
	pid   int
}

func (b *bench) startFixedServer(ctx context.Context) (*fixed, error) {
	dir, err := b.tempDir("fixed")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.self, fixedServerArg, "--dir", dir)
	cmd.Env = append(os.Environ(), markerEnv+"="+b.root)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fixed{cmd: cmd, stdin: stdin, pid: cmd.Process.Pid}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("fixed server: %w", err)
	}
	f.url = "http://" + strings.TrimSpace(line)
	return f, nil
}

func (f *fixed) stop() {
	f.stdin.Close()
	done := make(chan struct{})
	go func() { f.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-done
	}
}

// storageResult is a storage ceiling: single-row update transactions, one
// after the other on one connection.
type storageResult struct {
	Store   string  `json:"store"`
	Txs     int     `json:"transactions"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate_per_s"`
	Latency stats   `json:"latency"`
}

// sqliteDSN is internal/store/sqlite's DSN for its writer connection.
func sqliteDSN(path string) string {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// sqliteCeiling runs single-row UPDATE transactions on a fresh SQLite file,
// opened as the portal opens its store (one writer connection, the same
// pragmas, BEGIN IMMEDIATE), for window after warmup.
func (b *bench) sqliteCeiling(ctx context.Context, warmup, window time.Duration) (storageResult, error) {
	dir, err := b.tempDir("sqlite-ceiling")
	if err != nil {
		return storageResult{}, err
	}
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(dir, "ceiling.db")))
	if err != nil {
		return storageResult{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
		INSERT INTO t (id, v) VALUES (1, 0)`); err != nil {
		return storageResult{}, err
	}
	tx := func(ctx context.Context) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE t SET v = v + 1 WHERE id = 1`); err != nil {
			tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	return loopCeiling(ctx, "sqlite", warmup, window, tx)
}

// postgresCeiling runs single-row UPDATE transactions on one connection to
// a fresh database of the server.
func (b *bench) postgresCeiling(ctx context.Context, pg *pgServer, warmup, window time.Duration) (storageResult, error) {
	dsn, err := pg.newDatabase(ctx)
	if err != nil {
		return storageResult{}, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return storageResult{}, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL); INSERT INTO t VALUES (1, 0)`); err != nil {
		return storageResult{}, err
	}
	tx := func(ctx context.Context) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE t SET v = v + 1 WHERE id = 1`); err != nil {
			tx.Rollback(ctx)
			return err
		}
		return tx.Commit(ctx)
	}
	return loopCeiling(ctx, "postgres", warmup, window, tx)
}

func loopCeiling(ctx context.Context, store string, warmup, window time.Duration, tx func(context.Context) error) (storageResult, error) {
	var firstErr error
	res := runLoad(ctx, 1, warmup, window, nil, func(ctx context.Context, _, _ int) error {
		err := tx(ctx)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return err
	})
	if firstErr != nil {
		return storageResult{}, fmt.Errorf("%s update loop: %w", store, firstErr)
	}
	if res.Requests == 0 {
		return storageResult{}, errors.New("no transaction completed")
	}
	return storageResult{Store: store, Txs: res.Requests, Seconds: res.Seconds, Rate: res.Rate, Latency: res.Latency}, nil
}
