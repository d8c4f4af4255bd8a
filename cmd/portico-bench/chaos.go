package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

// The chaos scenario (issue 15) runs three replicas on one PostgreSQL with
// the local runtime, sends them a rush of session requests, activations and
// terminations, and injects faults one after another for a set time: a
// replica (the leader or another) killed or frozen, PostgreSQL restarted, a
// session host killed, a replica restarted with its clock off by minutes. A
// checker reads the database and the process table all along, and after the
// faults, once everything had time to settle and every session to reach its
// end: any break of the allocation invariants is a violation, and the
// scenario fails when there is one.

// chaosSetup is the size and pace of a chaos run.
type chaosSetup struct {
	capacity, reserved int
	workers, users     int
	expires            time.Duration // of a session once activated
	activation         time.Duration // the request's activation timeout
	// grace is how long the checker gives the portal to repair what a
	// fault broke (a session without its host, a host without its
	// session, a session past its end) before it is a violation: a frozen
	// leader's lease lapses after 6 s, a frozen replica's freeze lasts up
	// to maxFreeze, and the machine is shared.
	grace              time.Duration
	minGap, maxGap     time.Duration // between faults
	minFreeze          time.Duration
	maxFreeze          time.Duration
	maxDown            time.Duration // of a killed replica, or of PostgreSQL
	minSkew, maxSkew   time.Duration // a skewed clock is off by this much, either way
	minSkewed, maxSkwd time.Duration // for this long
}

func chaosSetupFor(quick bool) chaosSetup {
	if quick {
		return chaosSetup{capacity: 6, reserved: 2, workers: 6, users: 12, expires: 40 * time.Second,
			activation: 30 * time.Second, grace: 45 * time.Second, minGap: time.Second, maxGap: 2 * time.Second,
			minFreeze: 2 * time.Second, maxFreeze: 9 * time.Second, maxDown: 3 * time.Second,
			minSkew: 2 * time.Minute, maxSkew: 3 * time.Minute, minSkewed: 5 * time.Second, maxSkwd: 10 * time.Second}
	}
	return chaosSetup{capacity: 10, reserved: 3, workers: 12, users: 30, expires: 2 * time.Minute,
		activation: 45 * time.Second, grace: time.Minute, minGap: 3 * time.Second, maxGap: 10 * time.Second,
		minFreeze: 3 * time.Second, maxFreeze: 20 * time.Second, maxDown: 6 * time.Second,
		minSkew: 2 * time.Minute, maxSkew: 5 * time.Minute, minSkewed: 30 * time.Second, maxSkwd: 90 * time.Second}
}

// Fault kinds, as the report names them.
const (
	faultKillLeader   = "SIGKILL of the leader"
	faultKillOther    = "SIGKILL of another replica"
	faultFreezeLeader = "SIGSTOP/SIGCONT of the leader"
	faultFreezeOther  = "SIGSTOP/SIGCONT of another replica"
	faultPostgres     = "PostgreSQL restarted"
	faultHost         = "session host killed"
	faultClock        = "replica restarted with its clock off"
)

var faultKinds = []string{faultKillLeader, faultKillOther, faultFreezeLeader, faultFreezeOther, faultPostgres, faultHost, faultClock}

// faultNames name the kinds in --faults.
var faultNames = map[string]string{"kill-leader": faultKillLeader, "kill-other": faultKillOther,
	"freeze-leader": faultFreezeLeader, "freeze-other": faultFreezeOther, "postgres": faultPostgres,
	"host": faultHost, "clock": faultClock}

// chaosReplica is one of the replicas, restarted as faults require.
type chaosReplica struct {
	i int
	// busy serialises the faults that act on this replica.
	busy sync.Mutex

	mu     sync.Mutex
	p      *portal // nil while down
	frozen bool
	offset time.Duration // of its clock
}

func (r *chaosReplica) current() (p *portal, faulted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p, r.p == nil || r.frozen
}

// chaos is one chaos run.
type chaos struct {
	b        *bench
	set      chaosSetup
	pg       *pgServer
	pgBin    string
	dsn      string
	dataDir  string
	key      string
	replicas []*chaosReplica
	token    string
	http     *http.Client
	stopLoad chan struct{}

	mu         sync.Mutex
	pgDown     bool // PostgreSQL is stopped by a fault
	faults     map[string]int
	faultLog   []string
	served     int
	refusals   map[string]int // "<status> <reason>"
	noAnswer   int            // from a replica the harness had killed or frozen
	lostAnswer []string       // no answer from a replica that ran
	violations map[string]int
	examples   []string
	grants     map[string]grant     // session → the user it was given to
	terminated map[string]time.Time // sessions the load ended
	hostKilled map[string]time.Time // sessions whose host a fault killed
	ended      map[string]string    // how each session given out ended
	checks     int
	dbMissed   int
	// What the checker saw of the reconciler lease: takeovers, stretches
	// without a live, thawed holder, leases dated ahead of the real clock.
	takeovers     int
	leaderless    []time.Duration
	leaseAhead    time.Duration
	leaseAheadLog []string
}

type grant struct {
	user string
	at   time.Time
}

func (b *bench) chaosScenario(ctx context.Context) error {
	set := chaosSetupFor(b.opts.quick)
	bin := pgtest.BinDir()
	pg, err := b.startPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.stop()
	dsn, err := pg.newDatabase(ctx)
	if err != nil {
		return err
	}
	root, err := b.tempDir("chaos")
	if err != nil {
		return err
	}
	c := &chaos{b: b, set: set, pg: pg, pgBin: bin, dsn: dsn, dataDir: filepath.Join(root, "data"), key: secret.NewKey(),
		http: newClient(set.workers), stopLoad: make(chan struct{}),
		faults: map[string]int{}, refusals: map[string]int{}, violations: map[string]int{},
		grants: map[string]grant{}, terminated: map[string]time.Time{}, hostKilled: map[string]time.Time{}, ended: map[string]string{}}
	// The load's client gives up on a frozen replica after a while, as a
	// front end would; of an activation, a browser's, the redirect is the
	// answer.
	c.http.Timeout = 20 * time.Second
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer c.http.CloseIdleConnections()

	b.logf("chaos: starting 3 replicas on one PostgreSQL, for %s of faults", b.opts.chaos)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		r := &chaosReplica{i: i}
		c.replicas = append(c.replicas, r)
		wg.Go(func() { errs[i] = c.start(ctx, r) })
	}
	wg.Wait()
	defer c.teardown()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := c.replicas[0].p.waitAvailable(ctx, set.reserved, 3*time.Minute); err != nil {
		return err
	}
	c.token = c.replicas[0].p.token

	checkCtx, stopChecks := context.WithCancel(ctx)
	checked := make(chan struct{})
	go func() { defer close(checked); c.checkLoop(checkCtx) }()
	var load sync.WaitGroup
	for w := range c.set.workers {
		load.Go(func() { c.work(ctx, w) })
	}
	c.injectFaults(ctx, b.opts.chaos)
	b.logf("chaos: faults over; healing every replica and letting the load run %s more", c.set.grace/3)
	c.heal(ctx)
	select {
	case <-time.After(c.set.grace / 3):
	case <-ctx.Done():
	}
	close(c.stopLoad)
	load.Wait()

	// Every session given out must reach its end: its time, or its
	// activation deadline, plus the grace the checker allows.
	limit := c.set.expires + c.set.activation + c.set.grace
	b.logf("chaos: load stopped; waiting up to %s for every session to be reaped", limit.Round(time.Second))
	settled := c.awaitReaped(ctx, limit)
	stopChecks()
	<-checked
	c.finalCheck(ctx, settled)
	c.report()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if n := c.violationCount(); n > 0 {
		return fmt.Errorf("%d invariant violations (see the report)", n)
	}
	return nil
}

// start (re)starts replica r, with its clock offset if it has one.
func (c *chaos) start(ctx context.Context, r *chaosReplica) error {
	r.mu.Lock()
	offset := r.offset
	r.mu.Unlock()
	cfg := portalConfig{name: fmt.Sprintf("replica%d", r.i), runtime: "local", capacity: c.set.capacity,
		reserved: c.set.reserved, expires: fmt.Sprintf("%ds", int(c.set.expires.Seconds())), database: c.dsn,
		dataDir: c.dataDir, secretKey: c.key, noReserveWait: true}
	if offset != 0 {
		cfg.env = []string{"PORTICO_TEST_CLOCK_OFFSET=" + offset.String()}
	}
	p, err := c.b.startPortal(ctx, cfg)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.p, r.frozen = p, false
	r.mu.Unlock()
	return nil
}

// kill SIGKILLs replica r (thawing it first, should it be frozen).
func (c *chaos) kill(r *chaosReplica) {
	r.mu.Lock()
	p := r.p
	r.p, r.frozen = nil, false
	r.mu.Unlock()
	if p != nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Process.Signal(syscall.SIGCONT)
		<-p.exited
		p.ctl.CloseIdleConnections()
	}
}

// restart starts a killed replica again; a replica that cannot start is a
// violation, as a portal must start whatever state it finds.
func (c *chaos) restart(ctx context.Context, r *chaosReplica) {
	for attempt := 1; ; attempt++ {
		err := c.start(ctx, r)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 3 {
			c.violation("replica start", "replica %d does not start: %v", r.i, err)
			return
		}
		c.b.logf("chaos: replica %d failed to start (attempt %d): %v", r.i, attempt, err)
	}
}

// leader returns the replica holding the reconciler lease, as the database
// says; nil when it cannot be told.
func (c *chaos) leader(ctx context.Context) *chaosReplica {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(qctx, c.dsn)
	if err != nil {
		return nil
	}
	defer conn.Close(context.Background())
	var holder string
	if conn.QueryRow(qctx, `SELECT holder FROM leases WHERE name = 'reconciler'`).Scan(&holder) != nil {
		return nil
	}
	// <host>:<pid>:<address>
	f := strings.SplitN(holder, ":", 3)
	if len(f) < 2 {
		return nil
	}
	pid, _ := strconv.Atoi(f[1])
	for _, r := range c.replicas {
		if p, _ := r.current(); p != nil && p.pid == pid {
			return r
		}
	}
	return nil
}

// injectFaults injects faults for d, in rounds in which every kind of
// --faults comes once, in a random order; the first round is completed
// even past d, so that a short run sees every kind.
func (c *chaos) injectFaults(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var skews sync.WaitGroup
	defer skews.Wait()
	end := time.Now().Add(d)
	for round := 0; round == 0 || time.Now().Before(end); round++ {
		deck := slices.Clone(c.b.opts.faults)
		rand.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		for _, kind := range deck {
			if round > 0 && !time.Now().Before(end) {
				break
			}
			if !sleepCtx(ctx, between(c.set.minGap, c.set.maxGap)) {
				return
			}
			if what := c.fault(ctx, kind, &skews); what != "" {
				c.mu.Lock()
				c.faults[kind]++
				c.faultLog = append(c.faultLog, fmt.Sprintf("%s %s", time.Now().UTC().Format("15:04:05"), what))
				c.mu.Unlock()
				c.b.logf("chaos: %s", what)
			}
		}
	}
}

// fault injects one fault of kind and returns what it did ("" for nothing:
// no target).
func (c *chaos) fault(ctx context.Context, kind string, skews *sync.WaitGroup) string {
	leader := c.leader(ctx)
	target := func(wantLeader bool) *chaosReplica {
		var pick []*chaosReplica
		for _, r := range c.replicas {
			if (r == leader) == wantLeader {
				pick = append(pick, r)
			}
		}
		if len(pick) == 0 {
			return nil
		}
		return pick[rand.IntN(len(pick))]
	}
	switch kind {
	case faultKillLeader, faultKillOther:
		r := target(kind == faultKillLeader)
		if r == nil {
			return ""
		}
		r.busy.Lock()
		defer r.busy.Unlock()
		c.kill(r)
		down := between(0, c.set.maxDown)
		sleepCtx(ctx, down)
		c.restart(context.WithoutCancel(ctx), r)
		return fmt.Sprintf("%s: replica %d, down %s", kind, r.i, down.Round(100*time.Millisecond))
	case faultFreezeLeader, faultFreezeOther:
		r := target(kind == faultFreezeLeader)
		if r == nil {
			return ""
		}
		r.busy.Lock()
		defer r.busy.Unlock()
		r.mu.Lock()
		p := r.p
		if p != nil {
			r.frozen = true
			p.cmd.Process.Signal(syscall.SIGSTOP)
		}
		r.mu.Unlock()
		if p == nil {
			return ""
		}
		frozen := between(c.set.minFreeze, c.set.maxFreeze)
		sleepCtx(ctx, frozen)
		r.mu.Lock()
		p.cmd.Process.Signal(syscall.SIGCONT)
		r.frozen = false
		r.mu.Unlock()
		return fmt.Sprintf("%s: replica %d, frozen %s", kind, r.i, frozen.Round(100*time.Millisecond))
	case faultPostgres:
		c.setPgDown(true)
		c.pg.stop()
		down := between(0, c.set.maxDown)
		sleepCtx(ctx, down)
		err := c.pg.start(context.WithoutCancel(ctx), c.pgBin)
		c.setPgDown(false)
		if err != nil {
			c.violation("harness", "PostgreSQL does not start again: %v", err)
		}
		return fmt.Sprintf("%s: down %s", kind, down.Round(100*time.Millisecond))
	case faultHost:
		var hosts []sessionProc
		for _, p := range sessionProcesses(filepath.Join(c.dataDir, "sessions")) {
			if p.host {
				hosts = append(hosts, p)
			}
		}
		if len(hosts) == 0 {
			return ""
		}
		h := hosts[rand.IntN(len(hosts))]
		c.mu.Lock()
		c.hostKilled[h.session] = time.Now()
		c.mu.Unlock()
		syscall.Kill(h.pid, syscall.SIGKILL)
		return fmt.Sprintf("%s: %s (pid %d)", kind, h.session, h.pid)
	case faultClock:
		r := target(rand.IntN(2) == 0)
		if r == nil || !r.busy.TryLock() {
			return ""
		}
		offset := between(c.set.minSkew, c.set.maxSkew).Round(time.Second)
		if rand.IntN(2) == 0 {
			offset = -offset
		}
		hold := between(c.set.minSkewed, c.set.maxSkwd)
		c.kill(r)
		r.mu.Lock()
		r.offset = offset
		r.mu.Unlock()
		c.restart(context.WithoutCancel(ctx), r)
		r.busy.Unlock()
		// Skewed for a while, other faults meanwhile; then set right.
		skews.Go(func() {
			sleepCtx(ctx, hold)
			r.busy.Lock()
			defer r.busy.Unlock()
			c.kill(r)
			r.mu.Lock()
			r.offset = 0
			r.mu.Unlock()
			c.restart(context.WithoutCancel(ctx), r)
		})
		return fmt.Sprintf("%s: replica %d off by %s for %s", kind, r.i, offset, hold.Round(time.Second))
	}
	return ""
}

func (c *chaos) setPgDown(down bool) {
	c.mu.Lock()
	c.pgDown = down
	c.mu.Unlock()
}

// heal leaves every replica running, thawed and with a right clock, and
// PostgreSQL up.
func (c *chaos) heal(ctx context.Context) {
	for _, r := range c.replicas {
		r.busy.Lock()
		p, _ := r.current()
		r.mu.Lock()
		skewed := r.offset != 0
		if p != nil && r.frozen {
			p.cmd.Process.Signal(syscall.SIGCONT)
			r.frozen = false
		}
		r.mu.Unlock()
		if skewed {
			c.kill(r)
			r.mu.Lock()
			r.offset = 0
			r.mu.Unlock()
		}
		if p, _ := r.current(); p == nil {
			c.restart(ctx, r)
		}
		r.busy.Unlock()
	}
}

// work is one client of the load: a person asks for a session on any
// replica, often opens it (the activation URL, on any replica), and
// sometimes ends it.
func (c *chaos) work(ctx context.Context, w int) {
	for n := 0; ; n++ {
		select {
		case <-c.stopLoad:
			return
		case <-ctx.Done():
			return
		default:
		}
		user := fmt.Sprintf("person%02d@chaos.test", rand.IntN(c.set.users))
		q := url.Values{"index_url": {indexURL}, "user": {user}, "timeout": {strconv.Itoa(int(c.set.activation.Seconds()))}}
		body, ok := c.send(ctx, "/workshops/environment/"+benchEnv+"/request/?"+q.Encode(), true)
		if !ok {
			sleepCtx(ctx, between(50*time.Millisecond, 300*time.Millisecond))
			continue
		}
		var al struct{ Name, URL string }
		if json.Unmarshal(body, &al) != nil || al.Name == "" {
			c.violation("bad answer", "session request for %s answered %q", user, body)
			continue
		}
		c.mu.Lock()
		if _, seen := c.grants[al.Name]; !seen {
			c.grants[al.Name] = grant{user, time.Now()}
		}
		c.mu.Unlock()
		if rand.IntN(10) < 7 {
			if u, err := url.Parse(al.URL); err == nil {
				c.send(ctx, u.RequestURI(), false)
			}
		}
		if rand.IntN(10) == 0 {
			c.mu.Lock()
			c.terminated[al.Name] = time.Now()
			c.mu.Unlock()
			c.send(ctx, "/workshops/session/"+al.Name+"/terminate/", true)
		}
		sleepCtx(ctx, between(20*time.Millisecond, 200*time.Millisecond))
	}
}

// send sends a GET to a random replica and classifies the answer; it
// returns the body of a 200.
func (c *chaos) send(ctx context.Context, path string, bearer bool) ([]byte, bool) {
	r := c.replicas[rand.IntN(len(c.replicas))]
	p, faulted := r.current()
	if p == nil {
		c.mu.Lock()
		c.noAnswer++
		c.mu.Unlock()
		return nil, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		panic(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		// Faulted at the start or by now: the harness killed or froze it.
		_, faultedNow := r.current()
		c.mu.Lock()
		defer c.mu.Unlock()
		if faulted || faultedNow || c.pgDown {
			c.noAnswer++
		} else {
			c.lostAnswer = append(c.lostAnswer, fmt.Sprintf("%s GET %s on replica %d: %v", time.Now().UTC().Format("15:04:05"), path, r.i, err))
		}
		return nil, false
	}
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusFound:
		c.mu.Lock()
		c.served++
		c.mu.Unlock()
		return body, resp.StatusCode == http.StatusOK
	}
	var e struct {
		Error string `json:"error"`
	}
	var fields map[string]any
	isJSON := json.Unmarshal(body, &fields) == nil && len(fields) == 1 && json.Unmarshal(body, &e) == nil && e.Error != ""
	// Refusals: Educates' 503 with a reason; a session already ended is
	// not found (404) when ended again.
	documented := resp.StatusCode == http.StatusServiceUnavailable ||
		resp.StatusCode == http.StatusNotFound && strings.HasSuffix(path, "/terminate/")
	if isJSON && documented {
		c.mu.Lock()
		c.refusals[fmt.Sprintf("%d %s", resp.StatusCode, e.Error)]++
		c.mu.Unlock()
		return nil, false
	}
	c.violation("bad refusal", "GET %s on replica %d: %d %.200q", path, r.i, resp.StatusCode, body)
	return nil, false
}

func (c *chaos) violation(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations[kind]++
	if len(c.examples) < 40 {
		c.examples = append(c.examples, time.Now().UTC().Format("15:04:05")+" "+kind+": "+msg)
	}
	c.b.logf("chaos: VIOLATION %s: %s", kind, msg)
}

func (c *chaos) violationCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.violations {
		n += v
	}
	return n
}

// snapshot is what the checker reads of the database at once.
type snapshot struct {
	sessions []sessionRow
	capacity map[int64]int // by environment
	// The reconciler lease: its holder (<host>:<pid>:<address>) and when
	// it lapses, as the holder's clock put it; "" when nobody holds it.
	holder       string
	leaseExpires time.Time
}

// sessionRow is a session as the checker reads it.
type sessionRow struct {
	name, state, owner, failure string
	envID                       int64
	expires                     time.Time
}

// watch is what the checker remembers of a session from one look to the
// next.
type watch struct {
	owner       string
	state       string
	expires     time.Time // the last while the session was live
	noHostSince time.Time // RUNNING without a live host since
	overdue     bool      // reported as past its end
	ended       bool
}

// checker holds what the checks remember between looks.
type checker struct {
	conn     *pgx.Conn
	sessions map[string]*watch
	orphans  map[string]time.Time // hosts without a live session, since
	reported map[string]bool      // violations of states, reported once
	// leaderless is when the last stretch without a reconciling replica
	// began (zero while one reconciles).
	leaderless time.Time
	holder     string
}

func (c *chaos) checkLoop(ctx context.Context) {
	k := &checker{sessions: map[string]*watch{}, orphans: map[string]time.Time{}, reported: map[string]bool{}}
	defer func() {
		if k.conn != nil {
			k.conn.Close(context.Background())
		}
	}()
	for {
		c.check(ctx, k)
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return
		}
	}
}

// read reads the sessions, the capacities of the environments and the
// lease.
func (k *checker) read(ctx context.Context, dsn string) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if k.conn == nil {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return nil, err
		}
		k.conn = conn
	}
	fail := func(err error) (*snapshot, error) {
		k.conn.Close(context.Background())
		k.conn = nil
		return nil, err
	}
	// One snapshot for both reads.
	tx, err := k.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, `SELECT s.name, s.state, COALESCE(u.username, ''), s.failure, s.env_id, s.expires
		FROM sessions s LEFT JOIN users u ON u.id = s.owner`)
	if err != nil {
		return fail(err)
	}
	var out []sessionRow
	for rows.Next() {
		var s sessionRow
		var ms int64
		if err := rows.Scan(&s.name, &s.state, &s.owner, &s.failure, &s.envID, &ms); err != nil {
			return fail(err)
		}
		if ms > 0 {
			s.expires = time.UnixMilli(ms)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	caps := map[int64]int{}
	rows, err = tx.Query(ctx, `SELECT id, capacity FROM environments`)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return fail(err)
		}
		caps[id] = n
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	snap := &snapshot{sessions: out, capacity: caps}
	var ms int64
	err = tx.QueryRow(ctx, `SELECT holder, expires FROM leases WHERE name = 'reconciler'`).Scan(&snap.holder, &ms)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fail(err)
	default:
		snap.leaseExpires = time.UnixMilli(ms)
	}
	return snap, nil
}

// watchLease follows the reconciler lease: who holds it, whether that
// replica runs (not killed, not frozen), and how far ahead of the real
// clock its expiry is, which a holder with a clock running ahead sets.
func (c *chaos) watchLease(k *checker, snap *snapshot) {
	now := time.Now()
	leading := false
	if snap.holder != "" && snap.leaseExpires.After(now) {
		if f := strings.SplitN(snap.holder, ":", 3); len(f) > 1 {
			pid, _ := strconv.Atoi(f[1])
			for _, r := range c.replicas {
				if p, faulted := r.current(); p != nil && p.pid == pid && !faulted {
					leading = true
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.holder != "" && snap.holder != k.holder {
		if k.holder != "" {
			c.takeovers++
		}
		k.holder = snap.holder
	}
	switch {
	case !leading && k.leaderless.IsZero():
		k.leaderless = now
	case leading && !k.leaderless.IsZero():
		c.leaderless = append(c.leaderless, now.Sub(k.leaderless))
		k.leaderless = time.Time{}
	}
	if ahead := snap.leaseExpires.Sub(now) - leaseTTL; ahead > 5*time.Second && ahead > c.leaseAhead+5*time.Second {
		c.leaseAhead = ahead
		c.leaseAheadLog = append(c.leaseAheadLog, fmt.Sprintf("%s lease of %s lapses %s later than a right clock would have it",
			now.UTC().Format("15:04:05"), snap.holder, ahead.Round(time.Second)))
	}
}

// leaseTTL is the reconciler lease's term (internal/broker): a lease that
// lapses later than that from now was dated by a clock running ahead.
const leaseTTL = 6 * time.Second

func live(state string) bool { return state == "STARTING" || state == "WAITING" || state == "RUNNING" }

// check looks at the database and the process table once.
func (c *chaos) check(ctx context.Context, k *checker) {
	snap, err := k.read(ctx, c.dsn)
	if err != nil {
		c.mu.Lock()
		c.dbMissed++
		c.mu.Unlock()
		return
	}
	rows, caps := snap.sessions, snap.capacity
	c.watchLease(k, snap)
	// Processes after rows: a host started meanwhile has its row already.
	hosts := map[string]int{}
	for _, p := range sessionProcesses(filepath.Join(c.dataDir, "sessions")) {
		if p.host {
			hosts[p.session]++
		}
	}
	now := time.Now()
	c.mu.Lock()
	c.checks++
	c.mu.Unlock()
	once := func(key, kind, format string, args ...any) {
		if !k.reported[key] {
			k.reported[key] = true
			c.violation(kind, format, args...)
		}
	}
	byName := map[string]sessionRow{}
	perEnv := map[int64]int{}
	perOwner := map[string][]string{}
	for _, s := range rows {
		byName[s.name] = s
		if s.state != "STOPPED" {
			perEnv[s.envID]++
		}
		if s.owner != "" && live(s.state) {
			key := fmt.Sprintf("%d/%s", s.envID, s.owner)
			perOwner[key] = append(perOwner[key], s.name)
		}
	}
	for id, n := range perEnv {
		if n > caps[id] {
			once(fmt.Sprintf("capacity %d %d", id, n), "over capacity", "environment %d holds %d live sessions, capacity %d", id, n, caps[id])
		}
	}
	for key, names := range perOwner {
		if len(names) > 1 {
			sort.Strings(names)
			once("two "+strings.Join(names, ","), "two sessions", "%s has sessions %v", key, names)
		}
	}
	for name, n := range hosts {
		if n > 1 {
			once("hosts "+name, "two hosts", "session %s has %d host processes", name, n)
		}
		if s, ok := byName[name]; ok && s.state != "STOPPED" {
			delete(k.orphans, name)
			continue
		}
		since, ok := k.orphans[name]
		if !ok {
			k.orphans[name] = now
		} else if now.Sub(since) > c.set.grace {
			once("orphan "+name, "host without a session", "host of %s runs %s after its session ended (or without one)", name, now.Sub(since).Round(time.Second))
		}
	}
	for name := range k.orphans {
		if hosts[name] == 0 {
			delete(k.orphans, name)
		}
	}

	c.mu.Lock()
	grants := maps.Clone(c.grants)
	terminated := maps.Clone(c.terminated)
	killed := maps.Clone(c.hostKilled)
	c.mu.Unlock()
	for _, s := range rows {
		w := k.sessions[s.name]
		if w == nil {
			w = &watch{}
			k.sessions[s.name] = w
		}
		if g, ok := grants[s.name]; ok && s.owner != "" && !strings.EqualFold(s.owner, g.user) {
			once("owner "+s.name, "session given to two people", "session %s was given to %s, the database says its owner is %s", s.name, g.user, s.owner)
		}
		if s.owner != "" {
			w.owner = s.owner
		}
		if live(s.state) {
			w.expires = s.expires
		}
		if s.state == "RUNNING" && hosts[s.name] == 0 {
			if w.noHostSince.IsZero() {
				w.noHostSince = now
			} else if now.Sub(w.noHostSince) > c.set.grace {
				once("nohost "+s.name, "running without a host", "session %s of %s RUNNING without a live host for %s", s.name, s.owner, now.Sub(w.noHostSince).Round(time.Second))
			}
		} else {
			w.noHostSince = time.Time{}
		}
		if s.owner != "" && live(s.state) && !s.expires.IsZero() && now.Sub(s.expires) > c.set.grace && !w.overdue {
			w.overdue = true
			c.violation("not reaped", "session %s of %s still %s %s after its end (%s)", s.name, s.owner, s.state,
				now.Sub(s.expires).Round(time.Second), s.expires.UTC().Format("15:04:05"))
		}
		w.state = s.state
	}
	// Sessions of people that ended since the last look.
	for name, w := range k.sessions {
		s, present := byName[name]
		if w.ended || w.owner == "" || present && live(s.state) {
			continue
		}
		w.ended = true
		g, given := grants[name]
		how := "ended"
		_, byLoad := terminated[name]
		_, byFault := killed[name]
		switch {
		case byLoad:
			how = "terminated by its owner"
		case byFault:
			how = "host killed by a fault"
		case given && now.Before(g.at.Add(min(c.set.activation, c.set.expires)-5*time.Second)) ||
			!w.expires.IsZero() && w.expires.After(now.Add(5*time.Second)):
			how = "lost"
			c.violation("session lost", "session %s of %s ended at %s before its end (%s; given at %s): %q", name, w.owner,
				now.UTC().Format("15:04:05"), w.expires.UTC().Format("15:04:05"), g.at.UTC().Format("15:04:05"), s.failure)
		default:
			how = "reached its end"
		}
		if given {
			c.mu.Lock()
			c.ended[name] = how
			c.mu.Unlock()
		}
	}
}

// awaitReaped waits until no session of a person is live any more and
// every host left belongs to a live session; false after limit.
func (c *chaos) awaitReaped(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	k := &checker{}
	defer func() {
		if k.conn != nil {
			k.conn.Close(context.Background())
		}
	}()
	for {
		snap, err := k.read(ctx, c.dsn)
		if err == nil && c.settled(snap.sessions) == "" {
			return true
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, time.Second) {
			return false
		}
	}
}

// settled says what is not settled: a person's session still live, a live
// started session without a host, a host without a live session.
func (c *chaos) settled(rows []sessionRow) string {
	hosts := map[string]int{}
	for _, p := range sessionProcesses(filepath.Join(c.dataDir, "sessions")) {
		if p.host {
			hosts[p.session]++
		}
	}
	var bad []string
	for _, s := range rows {
		switch {
		case s.owner != "" && s.state != "STOPPED":
			bad = append(bad, fmt.Sprintf("%s of %s is %s", s.name, s.owner, s.state))
		case s.state == "RUNNING" || s.state == "WAITING":
			if hosts[s.name] != 1 {
				bad = append(bad, fmt.Sprintf("%s is %s with %d hosts", s.name, s.state, hosts[s.name]))
			}
		}
		if s.state != "STOPPED" {
			delete(hosts, s.name)
		}
	}
	for name := range hosts {
		bad = append(bad, "host of "+name+" without a live session")
	}
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}

// finalCheck reports, once the run has settled (or given up), what is left
// that should not be.
func (c *chaos) finalCheck(ctx context.Context, settled bool) {
	k := &checker{}
	defer func() {
		if k.conn != nil {
			k.conn.Close(context.Background())
		}
	}()
	snap, err := k.read(ctx, c.dsn)
	if err != nil {
		c.violation("harness", "final read of the database: %v", err)
		return
	}
	if what := c.settled(snap.sessions); !settled && what != "" {
		c.violation("not settled", "after the run: %s", what)
	}
}

// teardown ends every session through the portal (a reserve of none, then
// each ended), so that their homes are unmounted, and stops the replicas.
func (c *chaos) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.heal(ctx)
	cfg := portalConfig{capacity: c.set.capacity, expires: fmt.Sprintf("%ds", int(c.set.expires.Seconds()))}
	var up *portal
	for _, r := range c.replicas {
		if p, _ := r.current(); p != nil {
			if err := os.WriteFile(filepath.Join(p.dir, "portal.yaml"), []byte(cfg.yaml()), 0o600); err == nil {
				p.cmd.Process.Signal(syscall.SIGHUP)
			}
			up = p
		}
	}
	if up != nil {
		k := &checker{}
		for ctx.Err() == nil {
			snap, err := k.read(ctx, c.dsn)
			if err == nil {
				left := 0
				for _, s := range snap.sessions {
					if s.state != "STOPPED" {
						left++
						if s.state != "STOPPING" {
							up.terminate(ctx, up.ctl, s.name)
						}
					}
				}
				if left == 0 && len(sessionProcesses(filepath.Join(c.dataDir, "sessions"))) == 0 {
					break
				}
			}
			sleepCtx(ctx, 500*time.Millisecond)
		}
		if k.conn != nil {
			k.conn.Close(context.Background())
		}
	}
	for _, r := range c.replicas {
		if p, _ := r.current(); p != nil {
			p.stop()
		}
	}
	unmountUnder(filepath.Join(c.dataDir, "sessions"))
}

// unmountUnder unmounts what is mounted under dir: the homes of sessions
// the teardown could not end (each is a filesystem of its own), which the
// run's stray processes would otherwise leave mounted.
func unmountUnder(dir string) {
	prefix := realPath(dir) + "/"
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		// id parent major:minor root mount-point ...
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			if err := syscall.Unmount(f[4], syscall.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "chaos: unmount %s: %v\n", f[4], err)
			}
		}
	}
}

// report adds the run's figures to the report.
func (c *chaos) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.b.report
	r.section("chaos", fmt.Sprintf("three replicas on one PostgreSQL, local runtime, %d clients for %d people, "+
		"capacity %d, reserve %d, sessions of %s; faults for %s, one every %s–%s; violations allowed: none",
		c.set.workers, c.set.users, c.set.capacity, c.set.reserved, c.set.expires, c.b.opts.chaos, c.set.minGap, c.set.maxGap))
	total := 0
	for _, kind := range c.b.opts.faults {
		r.add(row{Case: "faults", Metric: kind, Value: float64(c.faults[kind]), Unit: "times"})
		total += c.faults[kind]
	}
	r.add(row{Case: "faults", Metric: "all", Value: float64(total), Unit: "times", Detail: c.faultLog})
	refusals := 0
	for _, n := range c.refusals {
		refusals += n
	}
	r.add(row{Case: "requests", Metric: "served (200, 302)", Value: float64(c.served), Unit: "requests"})
	r.add(row{Case: "requests", Metric: "refused (JSON 503, 404)", Value: float64(refusals), Unit: "requests", Detail: c.refusals})
	r.add(row{Case: "requests", Metric: "no answer from a faulted replica", Value: float64(c.noAnswer), Unit: "requests"})
	r.add(row{Case: "requests", Metric: "no answer from a running replica", Value: float64(len(c.lostAnswer)), Unit: "requests", Detail: c.lostAnswer})
	ends := map[string]int{}
	for _, how := range c.ended {
		ends[how]++
	}
	r.add(row{Case: "sessions", Metric: "given out", Value: float64(len(c.grants)), Unit: "sessions", Detail: ends})
	slices.Sort(c.leaderless)
	var longest, sum time.Duration
	for _, d := range c.leaderless {
		sum += d
		longest = max(longest, d)
	}
	r.add(row{Case: "lease", Metric: "takeovers", Value: float64(c.takeovers), Unit: "times"})
	r.add(row{Case: "lease", Metric: "stretches without a running leader", Value: float64(len(c.leaderless)), Unit: "times",
		Note: fmt.Sprintf("in all %s, the longest %s", sum.Round(100*time.Millisecond), longest.Round(100*time.Millisecond))})
	r.add(row{Case: "lease", Metric: "lapse dated ahead by a skewed clock, at most", Value: c.leaseAhead.Seconds(), Unit: "s", Detail: c.leaseAheadLog})
	for _, l := range c.leaseAheadLog {
		r.note("chaos: %s", l)
	}
	r.add(row{Case: "checker", Metric: "looks", Value: float64(c.checks), Unit: "looks",
		Note: fmt.Sprintf("%d missed while the database was down", c.dbMissed)})
	violations := 0
	for _, n := range c.violations {
		violations += n
	}
	r.add(row{Case: "invariants", Metric: "violations", Value: float64(violations), Unit: "violations", Met: met(violations == 0),
		Target: "0", Detail: map[string]any{"by kind": c.violations, "first": c.examples}})
	for _, how := range slices.Sorted(maps.Keys(ends)) {
		r.note("chaos: %d sessions given out %s", ends[how], how)
	}
	for _, reason := range slices.Sorted(maps.Keys(c.refusals)) {
		r.note("chaos: refused %d times: %s", c.refusals[reason], reason)
	}
	for _, kind := range slices.Sorted(maps.Keys(c.violations)) {
		r.note("chaos: VIOLATIONS %s: %d", kind, c.violations[kind])
	}
	for _, e := range c.examples {
		r.note("chaos: violation %s", e)
	}
	for i, l := range c.lostAnswer {
		if i == 10 {
			r.note("chaos: … %d more requests without an answer from a running replica", len(c.lostAnswer)-10)
			break
		}
		r.note("chaos: no answer: %s", l)
	}
}

// between is a random duration in [lo, hi].
func between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
