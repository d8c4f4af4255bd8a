package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portico-dev/portico/internal/secret"
)

// rushReplicas is how many portals share the PostgreSQL database of the
// rush: several replicas are what a room of that size would be served by.
const rushReplicas = 3

// rushResult is one rush: n requests released at once, each over a
// connection of its own.
type rushResult struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	Makespan float64 `json:"makespan_ms"` // release to the last answer
	Latency  stats   `json:"latency"`
	// Distinct is how many different sessions the answers named.
	Distinct   int    `json:"distinct_sessions"`
	FirstError string `json:"first_error,omitempty"`
}

// rushScenario measures a room pressing "start" in the same second (issue
// 14, goal 3): N session requests released at once, each for a new user
// over a new TCP connection, against a reserve of N, on SQLite and (with
// --postgres) on three replicas sharing one PostgreSQL database. The
// trivial handler under the same pattern is the reference.
func (b *bench) rushScenario(ctx context.Context) error {
	o := b.opts
	if err := raiseFileLimit(o.rush[len(o.rush)-1]); err != nil {
		return err
	}
	// Started after the limit is raised: it inherits it.
	fx, err := b.startFixedServer(ctx)
	if err != nil {
		return err
	}
	defer fx.stop()
	stores := []string{"sqlite"}
	if o.postgres {
		stores = append(stores, "postgres")
	}
	var errs []error
	for _, store := range stores {
		if err := b.rushOn(ctx, store, fx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", store, err))
		}
	}
	return errors.Join(errs...)
}

// raiseFileLimit lifts the soft limit of open files to the hard one when n
// connections at once, on each side, need more: portals started afterwards
// inherit it.
func raiseFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	// Each side holds n sockets, plus its database, logs and listeners.
	need := uint64(n) + 512
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("a rush of %d needs %d open files, the hard limit is %d (raise it: ulimit -Hn %d)", n, need, lim.Max, need)
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

func (b *bench) rushOn(ctx context.Context, store string, fx *fixed) error {
	o := b.opts
	name, profileName, replicas := "rush", "rush", 1
	var pg *pgServer
	if store == "postgres" {
		var err error
		if pg, err = b.startPostgres(ctx); err != nil {
			return err
		}
		defer pg.stop()
		name, profileName, replicas = fmt.Sprintf("rush (PostgreSQL, %d replicas)", rushReplicas), "rush-postgres", rushReplicas
	}
	b.report.section(name, fmt.Sprintf("N requests GET /workshops/environment/<env>/request/?user=<new user> released at once, "+
		"each over a new TCP connection (no keep-alive), against a reserve of N: portal on %s with the NOOP runtime, %d "+
		"replica(s) taking the requests in turn, a fresh portal per N. Latency of each request from its dial to its answer; "+
		"makespan from the release to the last answer. Every answer must name a session of its own, and the database must "+
		"hold exactly those sessions, one per user. Reference: the trivial Go handler in its own process under the same pattern.",
		storeName(store), replicas))
	for _, n := range o.rush {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := b.rushLevel(ctx, store, pg, fx, n, replicas, name, profileName); err != nil {
			return fmt.Errorf("N = %d: %w", n, err)
		}
	}
	return nil
}

func (b *bench) rushLevel(ctx context.Context, store string, pg *pgServer, fx *fixed, n, replicas int, name, profileName string) error {
	trivial := rush(ctx, n, func(int) string { return fx.url }, "token-of-the-same-length-as-a-portal-token-0123456789abcdef", nil)
	b.logf("trivial handler, rush of %d: p50 %.1f ms, p99 %.1f ms, makespan %.1f ms, %d errors",
		n, trivial.Latency.P50ms, trivial.Latency.P99ms, trivial.Makespan, trivial.Errors)
	if trivial.Errors > 0 {
		return fmt.Errorf("trivial handler: %d errors, first: %s", trivial.Errors, trivial.FirstError)
	}

	cfg := portalConfig{name: fmt.Sprintf("rush-%s-%d", store, n), runtime: "noop", capacity: reservedCapacity, reserved: n}
	if pg != nil {
		dsn, err := pg.newDatabase(ctx)
		if err != nil {
			return err
		}
		cfg.database, cfg.secretKey = dsn, secret.NewKey()
		dir, err := b.tempDir("rush-data")
		if err != nil {
			return err
		}
		cfg.dataDir = dir
	}
	var portals []*portal
	defer func() {
		for _, p := range portals {
			p.stop()
		}
	}()
	for i := range replicas {
		c := cfg
		if replicas > 1 {
			c.name = fmt.Sprintf("%s-replica%d", cfg.name, i)
			// The first one fills the reserve; the others only join.
			c.noReserveWait = i > 0
		}
		p, err := b.startPortal(ctx, c)
		if err != nil {
			return err
		}
		portals = append(portals, p)
	}
	if err := portals[0].waitAvailable(ctx, n, 5*time.Minute); err != nil {
		return err
	}
	if err := b.settle(ctx, portals[0]); err != nil {
		return err
	}

	var prof *profiler
	if b.opts.profiled(profileName, n) {
		prof = b.startProfiles(ctx, portals[0].debugURL, fmt.Sprintf("a rush of %d (replica 0)", n), 3*time.Second)
		// The profile begins once its request is in.
		time.Sleep(200 * time.Millisecond)
	}
	answers := make([]string, n)
	res := rush(ctx, n, func(i int) string { return portals[i%len(portals)].url }, portals[0].token, answers)
	if err := prof.wait(); err != nil {
		return err
	}
	b.logf("portico %s, rush of %d: p50 %.1f ms, p99 %.1f ms, makespan %.1f ms, %d errors, %d distinct sessions",
		store, n, res.Latency.P50ms, res.Latency.P99ms, res.Makespan, res.Errors, res.Distinct)
	// The figures are reported whatever went wrong: a rush that fails
	// shows how far it got.
	var failed error
	note := "checked against the database's owned sessions"
	if res.Errors > 0 {
		failed = fmt.Errorf("%d errors, first: %s", res.Errors, res.FirstError)
		note = fmt.Sprintf("%d requests failed, first: %s", res.Errors, res.FirstError)
	} else if held, err := heldSessions(ctx, store, cfg, portals[0]); err != nil {
		return fmt.Errorf("reading the sessions held from the database: %w", err)
	} else if failed = sameSessions(answers, held); failed != nil {
		note = failed.Error()
	}

	c := fmt.Sprintf("N = %d", n)
	b.report.add(row{Case: c, Metric: "distinct sessions", Value: float64(res.Distinct), Unit: "sessions", Reference: "requests", RefValue: float64(n),
		Target: "every request its own session, as in the database", Met: met(res.Distinct == n && failed == nil), Note: note})
	b.report.add(row{Case: c, Metric: "p50 latency", Value: res.Latency.P50ms, Unit: "ms", Reference: "trivial handler", RefValue: trivial.Latency.P50ms})
	b.report.add(row{Case: c, Metric: "p99 latency", Value: res.Latency.P99ms, Unit: "ms", Reference: "trivial handler", RefValue: trivial.Latency.P99ms,
		Target: "< 1000 ms", Met: met(res.Latency.P99ms < 1000)})
	b.report.add(row{Case: c, Metric: "makespan", Value: res.Makespan, Unit: "ms", Reference: "trivial handler", RefValue: trivial.Makespan,
		Target: "ratio ≤ 2", Met: met(res.Makespan <= 2*trivial.Makespan),
		Detail: map[string]any{"portico": res, "trivial_handler": trivial}})
	return failed
}

// rush releases n requests at once, request i to the base URL url(i), each
// for the new user rush-i over a connection of its own, and records the
// session each answer names in answers (when not nil).
func rush(ctx context.Context, n int, url func(int) string, token string, answers []string) rushResult {
	// No keep-alive: every request dials, as n browsers would.
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:        (&net.Dialer{Timeout: time.Minute}).DialContext,
			DisableKeepAlives:  true,
			DisableCompression: true,
		},
		Timeout: 2 * time.Minute,
	}
	defer client.CloseIdleConnections()
	reqs := make([]*http.Request, n)
	for i := range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url(i)+requestPath("rush-"+strconv.Itoa(i), ""), nil)
		if err != nil {
			return rushResult{Requests: n, Errors: n, FirstError: err.Error()}
		}
		req.Header.Set("Authorization", "Bearer "+token)
		reqs[i] = req
	}
	var (
		wg      sync.WaitGroup
		ready   sync.WaitGroup
		release = make(chan struct{})
		lat     = make([]time.Duration, n)
		errs    = make([]error, n)
		done    = make([]time.Time, n)
	)
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			ready.Done()
			<-release
			t0 := time.Now()
			body, err := do(client, reqs[i], http.StatusOK)
			done[i] = time.Now()
			lat[i] = done[i].Sub(t0)
			if err == nil && answers != nil {
				var s struct {
					Name string `json:"name"`
				}
				if err = json.Unmarshal(body, &s); err == nil && s.Name == "" {
					err = errors.New("an answer without a session name")
				}
				answers[i] = s.Name
			}
			errs[i] = err
		})
	}
	ready.Wait()
	start := time.Now()
	close(release)
	wg.Wait()
	res := rushResult{Requests: n}
	var ok []time.Duration
	last := start
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = errs[i].Error()
			}
			continue
		}
		ok = append(ok, lat[i])
		if done[i].After(last) {
			last = done[i]
		}
		if answers != nil && !seen[answers[i]] {
			seen[answers[i]] = true
			res.Distinct++
		}
	}
	res.Makespan = ms(last.Sub(start))
	res.Latency = summarise(ok)
	return res
}

// pending counts the sessions a portal's reconciler has still to start,
// stop or give their owner, read from its database.
func (p *portal) pending(ctx context.Context) (int, error) {
	const q = `SELECT count(*) FROM sessions WHERE state IN ('STARTING', 'STOPPING')
		OR owner IS NOT NULL AND state IN ('WAITING', 'RUNNING') AND NOT delivered`
	var n int
	if p.cfg.database != "" {
		conn, err := pgx.Connect(ctx, p.cfg.database)
		if err != nil {
			return 0, err
		}
		defer conn.Close(context.Background())
		return n, conn.QueryRow(ctx, q).Scan(&n)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.dir, "data", "portico.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return n, db.QueryRowContext(ctx, q).Scan(&n)
}

// heldSessions reads, from the portal's database itself, the live sessions
// that have an owner: owner's name to session.
func heldSessions(ctx context.Context, store string, cfg portalConfig, p *portal) (map[string][]string, error) {
	const q = `SELECT u.username, s.name FROM sessions s JOIN users u ON u.id = s.owner WHERE s.state <> 'STOPPED'`
	out := map[string][]string{}
	add := func(user, session string) { out[user] = append(out[user], session) }
	if store == "postgres" {
		conn, err := pgx.Connect(ctx, cfg.database)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(ctx, q)
		if err != nil {
			return nil, err
		}
		var user, session string
		_, err = pgx.ForEachRow(rows, []any{&user, &session}, func() error { add(user, session); return nil })
		return out, err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(p.dir, "data", "portico.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var user, session string
		if err := rows.Scan(&user, &session); err != nil {
			return nil, err
		}
		add(user, session)
	}
	return out, rows.Err()
}

// sameSessions checks that the database holds exactly one session for
// each user of the rush, the one its answer named, and no other.
func sameSessions(answers []string, held map[string][]string) error {
	if len(held) != len(answers) {
		return fmt.Errorf("the database has sessions for %d users, the rush had %d", len(held), len(answers))
	}
	for i, name := range answers {
		user := "rush-" + strconv.Itoa(i)
		if got := held[user]; len(got) != 1 || got[0] != name {
			return fmt.Errorf("user %s was answered session %s; the database has %v for them", user, name, got)
		}
	}
	return nil
}
