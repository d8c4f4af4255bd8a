package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portico-dev/portico/internal/portaltest"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

// The tests of this file run several `portico serve` replicas on one
// throwaway PostgreSQL server (issue 5): they share the definitions, the
// data directory (the session homes, which any replica may have to stop)
// and the database, each on a port of its own.

// noSession is the one refusal of a session request when capacity is
// short, word for word.
const noSession = "No session available"

// txTimeout is the longest a transaction of the PostgreSQL store may take
// (lock and connection waits included) before the request is answered 503
// with the database's reason: on an overloaded machine, a request queued
// behind hundreds of others for the environment's row lock may reach it.
const txTimeout = 15 * time.Second

// leaseLapse bounds how long a dead replica's reconciler lease outlives it:
// the lease lapses 6 s after its last renewal, and the other replicas try
// to take it every 2 s.
const leaseLapse = 8 * time.Second

// startBound bounds the waits for sessions to start: several at once, each
// a sandboxed host, take a while on a loaded machine, more so under the
// race detector, where a host may even miss the runtime's start timeout
// and be started again.
const startBound = 2 * time.Minute

// startReplicas writes defs and starts n portals on them at once, sharing
// one data directory and the database dsn, and waits until all of them
// answer; args are further flags of all of them. Cleanup stops them all
// before it kills the session processes left under the data directory.
func startReplicas(t *testing.T, defs, dsn string, n int, args ...string) []*portal {
	t.Helper()
	requireBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "config", "portal.yaml")
	if err := os.Mkdir(filepath.Dir(config), 0o700); err != nil {
		t.Fatal(err)
	}
	ps := make([]*portal, n)
	// Replicas of one database share the key of its sealed secrets.
	key := "PORTICO_SECRET_KEY=" + secret.NewKey()
	for i := range ps {
		p := &portal{
			t:       t,
			config:  config,
			dataDir: filepath.Join(dir, "data"),
			logPath: filepath.Join(dir, fmt.Sprintf("replica-%d.log", i)),
			addr:    freeAddr(t),
			args:    append([]string{"--database", dsn}, args...),
			env:     []string{key},
		}
		p.url = "http://" + p.addr
		ps[i] = p
	}
	ps[0].writeConfig(defs)
	t.Cleanup(func() {
		// All replicas go before their sessions are killed: a replica
		// still running would start the reserve again.
		var wg sync.WaitGroup
		for _, p := range ps {
			if p.running() {
				wg.Go(func() {
					p.cmd.Process.Signal(syscall.SIGTERM)
					p.cmd.Process.Signal(syscall.SIGCONT)
					if !p.awaitExit(15 * time.Second) {
						p.cmd.Process.Kill()
						<-p.exited
					}
				})
			}
		}
		wg.Wait()
		for i, p := range ps {
			if t.Failed() && p.cmd != nil {
				t.Logf("=== replica %d (%s), exited: %v", i, p.addr, p.cmd.ProcessState)
			}
			p.cleanup()
		}
	})
	// At once, as an orchestrator starts them: migrations and the
	// accounts of the definitions are set up by all of them together.
	for _, p := range ps {
		p.start()
	}
	for _, p := range ps {
		p.waitReady()
	}
	return ps
}

// stopReplicas shuts the running replicas down with SIGTERM and checks
// that each exits cleanly.
func stopReplicas(ps []*portal) {
	for _, p := range ps {
		if p.running() {
			p.stop()
		}
	}
}

// as returns a client of p that authenticates with bearer, a token any
// replica may have issued.
func (p *portal) as(bearer string) *client {
	c := p.client()
	c.bearer = bearer
	return c
}

// lead is what a replica's log says of the reconciler lease.
type lead struct {
	leading bool      // its last word: it reconciles
	since   time.Time // when it said so last
	replica string    // the name it gave itself
}

var leadLine = regexp.MustCompile(`^time=(\S+) level=\S+ msg="(this replica reconciles|another replica took over reconciliation|reconciler lease|reconciler lease lapsed)"(?: replica=(\S+))?`)

// leadOf reads what p's log says of the lease.
func leadOf(p *portal) lead {
	var l lead
	for line := range strings.Lines(p.output()) {
		m := leadLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if m[2] != "this replica reconciles" {
			l.leading = false
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			p.t.Fatalf("log line %q: %v", line, err)
		}
		l = lead{leading: true, since: at, replica: m[3]}
	}
	return l
}

// leader returns the one running replica that says it reconciles, and
// what is wrong when there is not exactly one, or when the name it gives
// itself is not <host>:<pid>:<address>.
func leader(ps []*portal) (*portal, lead, string) {
	var (
		found []int
		p     *portal
		l     lead
	)
	for i, q := range ps {
		if !q.running() {
			continue
		}
		if ql := leadOf(q); ql.leading {
			found = append(found, i)
			p, l = q, ql
		}
	}
	if len(found) != 1 {
		return nil, lead{}, fmt.Sprintf("replicas %v say they reconcile, want exactly one", found)
	}
	host, _ := os.Hostname()
	if want := fmt.Sprintf("%s:%d:%s", host, p.cmd.Process.Pid, p.addr); l.replica != want {
		return nil, lead{}, fmt.Sprintf("the leader calls itself %q, want %q", l.replica, want)
	}
	return p, l, ""
}

// awaitLeader waits until exactly one running replica reconciles.
func awaitLeader(t *testing.T, ps []*portal) (*portal, lead) {
	t.Helper()
	var (
		p *portal
		l lead
	)
	if msg := eventually(settle, func() (msg string) {
		p, l, msg = leader(ps)
		return msg
	}); msg != "" {
		t.Fatal(msg)
	}
	return p, l
}

// awaitSettled waits until every running replica's catalog shows the
// environment settled (every allocated session with one host, the reserve
// topped up, no orphan process) with allocated sessions (any number if
// negative), and returns it.
func awaitSettled(t *testing.T, ps []*portal, bearer string, reserved, allocated int) environment {
	t.Helper()
	var env environment
	if msg := eventually(startBound, func() string {
		for i, p := range ps {
			if !p.running() {
				continue
			}
			e, ok := p.as(bearer).catalogEnvironment()
			if !ok {
				return fmt.Sprintf("replica %d: environment %s not in the catalog", i, envName)
			}
			if bad := slices.Concat(catalogInvariants(e, e.Capacity), settledProblems(e, processesBySession(p.dataDir), reserved)); len(bad) > 0 {
				return fmt.Sprintf("replica %d: %s", i, strings.Join(bad, "; "))
			}
			if allocated >= 0 && e.Allocated != allocated {
				return fmt.Sprintf("replica %d: %s; want %d allocated", i, e, allocated)
			}
			env = e
		}
		return ""
	}); msg != "" {
		t.Fatalf("not settled after %s: %s", startBound, msg)
	}
	return env
}

// awaitDelivered waits until the host of a session handed out from the
// reserve has its owner and request parameters (GREETING of the
// definitions), which the reconciler posts to it, then records in the
// session's row. A test whose subject is not the race of a request's
// write with that one (TestReplicasHandOutWhileReconciling) waits for it
// before it activates or ends the session.
func awaitDelivered(t *testing.T, c *client, session string) {
	t.Helper()
	var cfg struct{ URL, Password string }
	c.mustGet("/workshops/session/"+session+"/config/", &cfg)
	browser := &client{t: t, http: c.http}
	if msg := eventually(startBound, func() string {
		resp, raw := browser.do("GET", cfg.URL+"/config/environment?token="+url.QueryEscape(cfg.Password), nil)
		var vars map[string]string
		if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &vars) != nil || vars["GREETING"] != "Hello" {
			return fmt.Sprintf("config/environment of %s: %d %s", session, resp.StatusCode, raw)
		}
		return ""
	}); msg != "" {
		t.Fatalf("the host of %s was not given its owner: %s", session, msg)
	}
}

// userSessions lists a user's sessions through c.
func userSessions(c *client, user string) []struct{ Name, Environment string } {
	c.t.Helper()
	var mine struct {
		User     string
		Sessions []struct{ Name, Environment string }
	}
	c.mustGet("/workshops/user/"+url.PathEscape(user)+"/sessions/", &mine)
	if mine.User != user {
		c.t.Errorf("sessions of %s answer for %q", user, mine.User)
	}
	return mine.Sessions
}

// checkOwners checks, through every running replica, that the catalog
// gives each session to one user, each user at most one live session, and
// that the users' own lists agree with it; it returns the catalog's owners
// (session → user) of the live sessions.
func checkOwners(t *testing.T, ps []*portal, bearer string, capacity int, users []string) map[string]string {
	t.Helper()
	var owners map[string]string
	for i, p := range ps {
		if !p.running() {
			continue
		}
		c := p.as(bearer)
		env := c.environment()
		for _, v := range catalogInvariants(env, capacity) {
			t.Errorf("catalog of replica %d: %s", i, v)
		}
		got := map[string]string{}
		for _, s := range *env.Sessions {
			if s.State != "STOPPING" {
				got[s.Name] = s.User
			}
		}
		if owners == nil {
			owners = got
		} else if fmt.Sprint(got) != fmt.Sprint(owners) {
			t.Errorf("replica %d's catalog gives sessions to %v, the first replica's to %v", i, got, owners)
		}
	}
	for i, user := range users {
		c := ps[i%len(ps)].as(bearer)
		if !ps[i%len(ps)].running() {
			continue
		}
		mine := userSessions(c, user)
		if len(mine) > 1 {
			t.Errorf("%s has sessions %+v", user, mine)
		}
		for _, s := range mine {
			if s.Environment != envName || owners[s.Name] != user {
				t.Errorf("%s lists %+v, which the catalog gives to %q", user, s, owners[s.Name])
			}
		}
		for session, u := range owners {
			if u == user && !slices.ContainsFunc(mine, func(s struct{ Name, Environment string }) bool { return s.Name == session }) {
				t.Errorf("the catalog gives %s to %s, whose own list is %+v", session, user, mine)
			}
		}
	}
	return owners
}

// fetch sends a GET with a bearer token; safe in any goroutine.
func fetch(hc *http.Client, target, bearer string) (int, []byte, error) {
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func loadClient(timeout time.Duration) *http.Client {
	tr := portaltest.LocalhostTransport() // sessions' origins are under localhost
	tr.MaxIdleConnsPerHost = 128
	return &http.Client{Timeout: timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// errorReason returns the reason of a JSON error answer {"error": reason},
// and whether the body is exactly that.
func errorReason(raw []byte) (string, bool) {
	var body map[string]any
	if json.Unmarshal(raw, &body) != nil || len(body) != 1 {
		return "", false
	}
	reason, ok := body["error"].(string)
	return reason, ok && reason != ""
}

// monitor samples the catalog through the replicas in turn, and the
// session processes, while a load runs: never more live sessions than
// capacity, no session listed twice, no user with two live sessions.
type monitor struct {
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once

	mu         sync.Mutex
	samples    int
	violations []string
}

func startMonitor(ps []*portal, bearer string, capacity int) *monitor {
	m := &monitor{stopped: make(chan struct{}), done: make(chan struct{})}
	hc := loadClient(settle)
	go func() {
		defer close(m.done)
		defer hc.CloseIdleConnections()
		for i := 0; ; i++ {
			p := ps[i%len(ps)]
			if procs := processesBySession(p.dataDir); len(procs) > capacity {
				m.violation("processes of %d sessions, capacity %d: %v", len(procs), capacity, sortedKeys(procs))
			}
			if p.running() {
				status, raw, err := fetch(hc, p.url+"/workshops/catalog/environments/?sessions=true", bearer)
				if err == nil && status == http.StatusOK {
					var cat struct{ Environments []environment }
					if err := json.Unmarshal(raw, &cat); err != nil || len(cat.Environments) != 1 || cat.Environments[0].Sessions == nil {
						m.violation("catalog of %s: %s", p.addr, raw)
					} else {
						for _, v := range catalogInvariants(cat.Environments[0], capacity) {
							m.violation("catalog of %s: %s", p.addr, v)
						}
						m.mu.Lock()
						m.samples++
						m.mu.Unlock()
					}
				}
			}
			select {
			case <-m.stopped:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *monitor) violation(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.violations) < 20 {
		m.violations = append(m.violations, fmt.Sprintf(format, args...))
	}
}

// stop ends the sampling and returns the number of catalogs sampled and
// what was wrong.
func (m *monitor) stop() (int, []string) {
	m.once.Do(func() { close(m.stopped) })
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.samples, slices.Clone(m.violations)
}

// answer is the answer of a replica to a request of a test's load.
type answer struct {
	replica    int
	user       string
	path       string
	status     int
	raw        []byte
	err        error
	sent, done time.Time
}

func (a answer) String() string {
	if a.err != nil {
		return fmt.Sprintf("GET %s on replica %d: %v after %s", a.path, a.replica, a.err, a.done.Sub(a.sent).Round(time.Millisecond))
	}
	return fmt.Sprintf("GET %s on replica %d: %d %s after %s", a.path, a.replica, a.status,
		strings.TrimSpace(string(a.raw)), a.done.Sub(a.sent).Round(time.Millisecond))
}

// TestReplicasShareOnePostgres runs three replicas on one database (issue
// 5, acceptance 2): a session requested on one is activated through
// another and managed through the third; then over 300 simultaneous
// requests spread over the three, from distinct and repeated users, for
// fewer places than users: capacity holds, no session has two owners, no
// user two sessions, and every refusal is Educates' 503.
func TestReplicasShareOnePostgres(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	// 10 minutes: the cross-replica session can be extended at once (a
	// step of 15 minutes, the overtime, within the 120 minute deadline).
	const capacity, reserved = 8, 3
	ps := startReplicas(t, definitions(entry{Capacity: capacity, Reserved: reserved, Expires: "10m"}), pg.DSN, 3)
	a, b, c := ps[0], ps[1], ps[2]
	robotA := a.robot() // its token works on every replica
	robotB, robotC := b.as(robotA.bearer), c.as(robotA.bearer)
	awaitLeader(t, ps)
	awaitSettled(t, ps, robotA.bearer, reserved, 0)

	// One session through the three replicas: requested on A, activated on
	// B with the token of its activation URL, managed on C.
	al := robotA.request("cross@example.com", "timeout=0")
	awaitDelivered(t, robotA, al.Name)
	awaitSettled(t, ps, robotA.bearer, reserved, 1)
	b.activate(al)
	session := "/workshops/session/" + al.Name
	var sc schedule
	if msg := eventually(settle, func() string {
		sc = schedule{}
		robotC.mustGet(session+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule on C after activation on B: %s", sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	var cfg struct{ URL, Password string }
	robotC.mustGet(session+"/config/", &cfg)
	if cfg.URL != sessionURL(c.url, al.Name) || len(cfg.Password) < 16 {
		t.Fatalf("config on C: %+v", cfg)
	}
	for i, p := range ps {
		vars := sessionEnvironment(t, p, sessionURL(p.url, al.Name), cfg.Password)
		if vars["SESSION_NAME"] != al.Name || vars["CONFIG_PASSWORD"] != cfg.Password {
			t.Errorf("config/environment through replica %d: SESSION_NAME=%q CONFIG_PASSWORD=%q", i, vars["SESSION_NAME"], vars["CONFIG_PASSWORD"])
		}
		if resp, raw := p.client().do("GET", sessionURL(p.url, al.Name)+"/config/environment?token=wrong", nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("config/environment with a wrong token through replica %d: %d %s", i, resp.StatusCode, raw)
		}
	}
	var ext schedule
	robotC.mustGet(session+"/extend/", &ext)
	if ext.Extended == nil || !*ext.Extended || ext.Expires <= sc.Expires || ext.Status != "RUNNING" {
		t.Errorf("extend on C: %s (schedule before: %s)", ext, sc)
	}
	for i, r := range []*client{robotA, robotB} {
		var got schedule
		r.mustGet(session+"/schedule/", &got)
		if got.Expires != ext.Expires {
			t.Errorf("schedule on replica %d after the extension on C: %s, want expiry %s", i, got, ext.Expires)
		}
	}
	var ended struct{ Started, Expires string }
	robotC.mustGet(session+"/terminate/", &ended)
	if ended.Started != sc.Started {
		t.Errorf("terminate on C: %+v (schedule %s)", ended, sc)
	}
	if msg := eventually(startBound, func() string {
		if status := robotA.get(session+"/schedule/", nil); status != http.StatusNotFound {
			return fmt.Sprintf("schedule on A of the session ended on C: %d, want 404", status)
		}
		if mine := userSessions(robotB, al.User); len(mine) != 0 {
			return fmt.Sprintf("sessions of %s on B after the end on C: %+v", al.User, mine)
		}
		if procs := processesBySession(a.dataDir)[al.Name]; len(procs) > 0 {
			return fmt.Sprintf("session %s ended on C still has processes %+v", al.Name, procs)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	awaitSettled(t, ps, robotA.bearer, reserved, 0)
	if t.Failed() {
		return
	}

	// The burst: 160 users asking once and 32 asking five times each, all
	// at once, spread over the replicas; 8 places.
	type ask struct {
		user    string
		replica int
	}
	var asks []ask
	var users []string
	for i := range 160 {
		users = append(users, fmt.Sprintf("solo-%03d", i))
		asks = append(asks, ask{user: users[len(users)-1]})
	}
	for i := range 32 {
		users = append(users, fmt.Sprintf("again-%02d@example.com", i))
		for range 5 {
			asks = append(asks, ask{user: users[len(users)-1]})
		}
	}
	rand.New(rand.NewPCG(5, 2)).Shuffle(len(asks), func(i, j int) { asks[i], asks[j] = asks[j], asks[i] })
	for i := range asks {
		asks[i].replica = i % len(ps)
	}

	mon := startMonitor(ps, robotA.bearer, capacity)
	defer mon.stop()
	hc := loadClient(2 * time.Minute) // a bound on hangs, not a speed requirement
	answers := make([]answer, len(asks))
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i, q := range asks {
		ready.Add(1)
		wg.Go(func() {
			path := requestPath(q.user, "timeout=0")
			ready.Done()
			<-gate
			an := answer{replica: q.replica, user: q.user, path: path, sent: time.Now()}
			an.status, an.raw, an.err = fetch(hc, ps[q.replica].url+path, robotA.bearer)
			an.done = time.Now()
			answers[i] = an
		})
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	took := time.Since(start)
	hc.CloseIdleConnections()

	sessionOf := map[string]string{} // user → the session granted
	ownerOf := map[string]string{}   // session → user
	perReplica := make([]int, len(ps))
	var granted, refused, overloaded int
	for _, an := range answers {
		if an.err != nil {
			t.Errorf("%s", an)
			continue
		}
		perReplica[an.replica]++
		switch an.status {
		case http.StatusOK:
			granted++
			var got allocation
			if err := json.Unmarshal(an.raw, &got); err != nil || got.Name == "" || got.User != an.user || got.Environment != envName {
				t.Errorf("%s: not an allocation for %s", an, an.user)
				continue
			}
			if s, ok := sessionOf[an.user]; ok && s != got.Name {
				t.Errorf("%s was granted sessions %s and %s", an.user, s, got.Name)
			}
			if u, ok := ownerOf[got.Name]; ok && u != an.user {
				t.Errorf("session %s was granted to %s and to %s", got.Name, u, an.user)
			}
			sessionOf[an.user], ownerOf[got.Name] = got.Name, an.user
		case http.StatusServiceUnavailable:
			refused++
			reason, ok := errorReason(an.raw)
			switch {
			case ok && reason == noSession:
			case ok && an.done.Sub(an.sent) >= txTimeout:
				if overloaded++; overloaded <= 3 {
					t.Logf("%s: the store's transaction bound, on an overloaded machine", an)
				}
			default:
				t.Errorf("%s: a refusal other than {\"error\": %q}", an, noSession)
			}
		default:
			t.Errorf("%s: want 200 or 503", an)
		}
	}
	t.Logf("%d simultaneous requests (%v per replica) answered in %s: %d granted, %d refused (%d after %s); %d distinct sessions for %d users",
		len(answers), perReplica, took.Round(time.Millisecond), granted, refused, overloaded, txTimeout, len(ownerOf), len(users))
	if len(ownerOf) > capacity {
		// Nothing ends a session during the burst, unless it failed to start.
		t.Errorf("%d sessions granted, capacity %d (did some fail to start and end?): %v", len(ownerOf), capacity, ownerOf)
	}
	// Every user who was refused found the environment full: with far more
	// users than places, every place is taken.
	if len(ownerOf) < capacity {
		t.Errorf("only %d sessions granted to %d users asking for %d places: refused while places were free", len(ownerOf), len(users), capacity)
	}

	// After the burst: every replica agrees with the answers, the hosts
	// run, the reserve is spent (the environment is full).
	env := awaitSettled(t, ps, robotA.bearer, reserved, len(ownerOf))
	owners := checkOwners(t, ps, robotA.bearer, capacity, users)
	if fmt.Sprint(owners) != fmt.Sprint(ownerOf) {
		t.Errorf("the catalog gives sessions to %v, the answers to %v", owners, ownerOf)
	}
	// Those who have a session get it again through any replica; the
	// others are still refused.
	for i, user := range sortedKeys(sessionOf) {
		if got := ps[i%len(ps)].as(robotA.bearer).request(user, "timeout=0"); got.Name != sessionOf[user] {
			t.Errorf("%s asks again on replica %d and gets %s, not %s", user, i%len(ps), got.Name, sessionOf[user])
		}
	}
	for i, user := range users[:6] {
		if _, ok := sessionOf[user]; ok {
			continue
		}
		resp, raw := ps[i%len(ps)].as(robotA.bearer).do("GET", requestPath(user, "timeout=0"), nil)
		if reason, _ := errorReason(raw); resp.StatusCode != http.StatusServiceUnavailable || reason != noSession {
			t.Errorf("%s asks again on the full environment: %d %s", user, resp.StatusCode, raw)
		}
	}
	samples, violations := mon.stop()
	t.Logf("monitor: %d catalogs sampled during and after the burst", samples)
	for _, v := range violations {
		t.Errorf("during the burst: %s", v)
	}
	if t.Failed() {
		return
	}

	// The end: every session terminated through the replicas in turn,
	// back to the reserve alone; the replicas stop cleanly.
	for i, s := range *env.Sessions {
		ps[i%len(ps)].as(robotA.bearer).mustGet("/workshops/session/"+s.Name+"/terminate/", nil)
	}
	awaitSettled(t, ps, robotA.bearer, reserved, 0)
	stopReplicas(ps)
}

// TestReconcilerFailover kills the replica that reconciles with SIGKILL
// while a session it runs is due to expire (issue 5, acceptance 3):
// another replica takes the lease over, reaps the session within 10 s of
// its expiry, whose timer lives in the database, and tops the reserve up.
func TestReconcilerFailover(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	// Capacity for the reserve only: once a reserved session is handed
	// out, its place comes back to the reserve only when it ends.
	const capacity, reserved = 2, 2
	ps := startReplicas(t, definitions(entry{Capacity: capacity, Reserved: reserved, Expires: "20s"}), pg.DSN, 3)
	old, _ := awaitLeader(t, ps)
	var others []*portal
	for _, p := range ps {
		if p != old {
			others = append(others, p)
		}
	}
	x, y := others[0], others[1]
	robot := x.robot()
	awaitSettled(t, ps, robot.bearer, reserved, 0)

	al := robot.request("fail-over@example.com", "timeout=0")
	awaitDelivered(t, robot, al.Name)
	y.activate(al)
	session := "/workshops/session/" + al.Name
	var sc schedule
	if msg := eventually(settle, func() string {
		sc = schedule{}
		robot.mustGet(session+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule after activation: %s", sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	expires, err := time.Parse(time.RFC3339Nano, sc.Expires)
	if err != nil {
		t.Fatalf("schedule %s: %v", sc, err)
	}
	// The environment is full: one session allocated, one in reserve.
	if msg := eventually(settle, func() string {
		if env := robot.status(); env.Allocated != 1 || env.Available != 1 {
			return fmt.Sprintf("status after the allocation: %+v, want 1 allocated, 1 available", env)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	killed := time.Now()
	old.kill9()
	remaining := expires.Sub(killed)
	// Within 10 s of the expiry, if the lease lapsed before it (it does
	// unless the machine is very slow to get here).
	deadline := expires.Add(10 * time.Second)
	if lapse := killed.Add(leaseLapse); lapse.After(expires) {
		t.Logf("the leader was killed only %s before the session expires: the bound runs from the lease's lapse", remaining)
		deadline = lapse.Add(10 * time.Second)
	}
	survivors := []*client{robot, y.as(robot.bearer)}
	var reaped time.Time
	for i := 0; ; i++ {
		msg := func() string {
			c := survivors[i%2]
			if mine := userSessions(c, al.User); len(mine) != 0 {
				return fmt.Sprintf("sessions of %s: %+v", al.User, mine)
			}
			if procs := processesBySession(x.dataDir)[al.Name]; len(procs) > 0 {
				return fmt.Sprintf("session %s still has processes %+v", al.Name, procs)
			}
			if env := c.status(); env.Allocated != 0 || env.Available != reserved {
				return fmt.Sprintf("status %+v, want 0 allocated, %d available", env, reserved)
			}
			return ""
		}()
		if msg == "" {
			reaped = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after the expiry of %s (the leader was killed %s before it): %s",
				time.Since(expires).Round(time.Millisecond), al.Name, remaining.Round(time.Millisecond), msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the leader was killed %s before %s expired; reaped and the reserve topped up %s after the expiry",
		remaining.Round(time.Millisecond), al.Name, reaped.Sub(expires).Round(time.Millisecond))

	next, l := awaitLeader(t, ps)
	if next == old || !l.since.After(killed.Add(-time.Second)) {
		t.Errorf("the leader after the kill is %s since %s (the kill was at %s)", l.replica, l.since, killed)
	}
	t.Logf("reconciliation moved from %s to %s", old.addr, next.addr)
	if status := robot.get(session+"/schedule/", nil); status != http.StatusNotFound {
		t.Errorf("schedule of the expired session: %d, want 404", status)
	}
	// The reserve the dead replica started is adopted: running, one host
	// each, no orphan.
	awaitSettled(t, ps, robot.bearer, reserved, 0)
	// And it is handed out as usual.
	bl := y.as(robot.bearer).request("after@example.com", "timeout=0")
	x.activate(bl)
	if msg := eventually(settle, func() string {
		var sc schedule
		robot.mustGet("/workshops/session/"+bl.Name+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule of a session granted after the fail-over: %s", sc)
		}
		return ""
	}); msg != "" {
		t.Error(msg)
	}
	stopReplicas(ps)
}

// outageLoad requests sessions through the replicas in turn and terminates
// those of the churning users through the next replica, recording every
// answer with its time.
type outageLoad struct {
	ps      []*portal
	bearer  string
	http    *http.Client
	stopped chan struct{}
	wg      sync.WaitGroup

	mu      sync.Mutex
	answers []answer
	granted map[string]string // session → user, from the answers
	ended   map[string]bool   // sessions whose terminate answered 200
}

func startOutageLoad(ps []*portal, bearer string, workers int, users []string, churn func(user string) bool) *outageLoad {
	l := &outageLoad{ps: ps, bearer: bearer, http: loadClient(time.Minute), stopped: make(chan struct{}),
		granted: map[string]string{}, ended: map[string]bool{}}
	var next atomic.Int64
	for range workers {
		l.wg.Go(func() {
			for !l.done() {
				n := int(next.Add(1))
				user, r := users[n%len(users)], n%len(ps)
				an := l.get(r, user, requestPath(user, "timeout=0"))
				ok := an.err == nil && an.status == http.StatusOK
				if ok {
					var got allocation
					if json.Unmarshal(an.raw, &got) == nil && got.Name != "" {
						l.mu.Lock()
						if _, seen := l.granted[got.Name]; !seen {
							l.granted[got.Name] = user
						}
						l.mu.Unlock()
						if churn(user) {
							tn := l.get((r+1)%len(ps), user, "/workshops/session/"+got.Name+"/terminate/")
							if tn.err == nil && tn.status == http.StatusOK {
								l.mu.Lock()
								l.ended[got.Name] = true
								l.mu.Unlock()
							}
						}
					}
				}
				if !ok {
					// Refused or failed: do not spin.
					select {
					case <-l.stopped:
					case <-time.After(30 * time.Millisecond):
					}
				}
			}
		})
	}
	return l
}

func (l *outageLoad) get(replica int, user, path string) answer {
	an := answer{replica: replica, user: user, path: path, sent: time.Now()}
	an.status, an.raw, an.err = fetch(l.http, l.ps[replica].url+path, l.bearer)
	an.done = time.Now()
	l.mu.Lock()
	l.answers = append(l.answers, an)
	l.mu.Unlock()
	return an
}

func (l *outageLoad) done() bool {
	select {
	case <-l.stopped:
		return true
	default:
		return false
	}
}

func (l *outageLoad) stop() {
	close(l.stopped)
	l.wg.Wait()
	l.http.CloseIdleConnections()
}

// since returns the answers to requests sent at or after t.
func (l *outageLoad) since(t time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []answer
	for _, an := range l.answers {
		if !an.sent.Before(t) {
			out = append(out, an)
		}
	}
	return out
}

// normal reports whether an answer is one of a portal whose database is
// up: a session or Educates' refusal; a terminated session, or one that
// has ended already (two workers may have been given the same session).
func normal(an answer) bool {
	if an.err != nil {
		return false
	}
	if an.status == http.StatusOK {
		return true
	}
	if strings.HasSuffix(an.path, "/terminate/") {
		return an.status == http.StatusNotFound
	}
	reason, _ := errorReason(an.raw)
	return an.status == http.StatusServiceUnavailable && reason == noSession
}

// probe is a request of any kind a replica serves, and the status it
// answers while the database is up.
type probe struct {
	method, path string
	auth         string // "bearer", "client" (HTTP Basic of the OAuth client) or none
	up           int
}

// probes are the requests of every kind that need the database: the REST
// API, the OAuth token endpoint, the activation URL and the session proxy.
func probes(held allocation, password string) []probe {
	session := "/workshops/session/" + held.Name
	return []probe{
		{"GET", "/workshops/catalog/environments/?sessions=true", "bearer", http.StatusOK},
		{"GET", "/workshops/environment/" + envName + "/status/", "bearer", http.StatusOK},
		{"GET", "/workshops/user/" + url.PathEscape(held.User) + "/sessions/", "bearer", http.StatusOK},
		{"GET", requestPath(held.User, "timeout=0"), "bearer", http.StatusOK},
		{"GET", session + "/schedule/", "bearer", http.StatusOK},
		{"GET", session + "/extend/", "bearer", http.StatusOK},
		{"GET", session + "/config/", "bearer", http.StatusOK},
		{"POST", "/oauth2/token/", "client", http.StatusOK},
		{"GET", held.URL, "", http.StatusFound},
		{"GET", sessionOriginPath + held.Name + "/config/environment?token=" + url.QueryEscape(password), "", http.StatusOK},
	}
}

// sessionOriginPath starts the path of a probe to a session's origin on the
// replica: <sessionOriginPath><session>/<path>.
const sessionOriginPath = "session-origin:"

// send sends a probe to replica r.
func (pr probe) send(hc *http.Client, ps []*portal, r int, bearer string) answer {
	an := answer{replica: r, path: pr.path, sent: time.Now()}
	var body io.Reader
	if pr.method == "POST" {
		body = strings.NewReader(url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}.Encode())
	}
	target := ps[r].url + pr.path
	if rest, ok := strings.CutPrefix(pr.path, sessionOriginPath); ok {
		name, path, _ := strings.Cut(rest, "/")
		target = sessionURL(ps[r].url, name) + "/" + path
	}
	req, err := http.NewRequest(pr.method, target, body)
	if err != nil {
		panic(err)
	}
	switch pr.auth {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+bearer)
	case "client":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, clientSecret)
	}
	resp, err := hc.Do(req)
	if err == nil {
		an.status = resp.StatusCode
		an.raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	an.err, an.done = err, time.Now()
	return an
}

// TestDatabaseOutage stops PostgreSQL under a steady load on three
// replicas and starts it again (issue 5, acceptance 4): meanwhile every
// request is answered 503 with a reason, promptly; afterwards the
// replicas serve again without a restart, a replica reconciles again, and
// the invariants hold, the sessions held from before included.
func TestDatabaseOutage(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	const capacity, reserved = 8, 3
	// The longest a request may take while the database is down: a
	// connection attempt gives up after 5 s, a transaction after 15 s.
	const hang = 20 * time.Second
	ps := startReplicas(t, definitions(entry{Capacity: capacity, Reserved: reserved}), pg.DSN, 3)
	robot := ps[0].robot()
	awaitLeader(t, ps)
	awaitSettled(t, ps, robot.bearer, reserved, 0)

	// Held across the outage: three activated sessions.
	held := map[string]string{} // session → user
	var users []string
	var first allocation
	for i := range 3 {
		user := fmt.Sprintf("held-%d@example.com", i)
		al := ps[i].as(robot.bearer).request(user, "timeout=0")
		awaitDelivered(t, robot, al.Name)
		ps[(i+1)%len(ps)].activate(al)
		held[al.Name] = user
		users = append(users, user, user) // they ask again during the load
		if i == 0 {
			first = al
		}
	}
	var cfg struct{ URL, Password string }
	robot.mustGet("/workshops/session/"+first.Name+"/config/", &cfg)
	sessionEnvironment(t, ps[0], cfg.URL, cfg.Password) // its host serves
	hc := loadClient(time.Minute)
	defer hc.CloseIdleConnections()
	for i := range 24 {
		users = append(users, fmt.Sprintf("churn-%02d", i))
	}
	rand.New(rand.NewPCG(4, 5)).Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
	churn := func(user string) bool { return strings.HasPrefix(user, "churn-") }

	mon := startMonitor(ps, robot.bearer, capacity)
	defer mon.stop()
	ld := startOutageLoad(ps, robot.bearer, 6, users, churn)
	defer func() {
		select {
		case <-ld.stopped:
		default:
			ld.stop()
		}
	}()
	progress := func(as []answer, what string, answers, granted, ended int) string {
		var a, g, e int
		for _, an := range as {
			if an.err != nil {
				continue
			}
			a++
			if an.status == http.StatusOK {
				if strings.HasSuffix(an.path, "/terminate/") {
					e++
				} else {
					g++
				}
			}
		}
		if a < answers || g < granted || e < ended {
			return fmt.Sprintf("%s: %d answers, %d granted, %d terminated; want %d, %d, %d", what, a, g, e, answers, granted, ended)
		}
		return ""
	}
	begin := time.Now()
	if msg := eventually(startBound, func() string { return progress(ld.since(begin), "before the outage", 60, 10, 6) }); msg != "" {
		t.Fatal(msg)
	}

	// The outage.
	stopping := time.Now()
	pg.Stop()
	down := time.Now()
	// Every kind of request is refused with a reason, promptly.
	for _, pr := range probes(first, cfg.Password) {
		for r := range ps {
			an := pr.send(hc, ps, r, robot.bearer)
			reason, isError := errorReason(an.raw)
			if an.err != nil || an.status != http.StatusServiceUnavailable || !isError || an.done.Sub(an.sent) > hang {
				t.Errorf("while the database is down: %s %s, want 503 with a JSON error within %s", pr.method, an, hang)
			} else if !strings.Contains(strings.ToLower(reason), "database") {
				t.Logf("while the database is down: %s %s: the reason does not name the database", pr.method, an)
			}
		}
	}
	if msg := eventually(time.Minute, func() string {
		perReplica := make([]int, len(ps))
		for _, an := range ld.since(down) {
			if an.err == nil {
				perReplica[an.replica]++
			}
		}
		if time.Since(down) < 3*time.Second || slices.Min(perReplica) < 5 {
			return fmt.Sprintf("%s down: %v answers per replica since", time.Since(down).Round(time.Millisecond), perReplica)
		}
		return ""
	}); msg != "" {
		t.Errorf("the replicas do not answer while the database is down: %s", msg)
	}
	starting := time.Now()
	pg.Start()
	up := time.Now()
	t.Logf("PostgreSQL down for %s (stopping took %s, starting %s)", up.Sub(stopping).Round(time.Millisecond),
		down.Sub(stopping).Round(time.Millisecond), up.Sub(starting).Round(time.Millisecond))

	// Recovery without a restart: every replica serves the load again, and
	// one of them reconciles again.
	var recovered time.Time
	if msg := eventually(settle, func() string {
		ok := make([]bool, len(ps))
		for _, an := range ld.since(up) {
			if normal(an) && !strings.HasSuffix(an.path, "/terminate/") {
				ok[an.replica] = true
			}
		}
		if slices.Contains(ok, false) {
			return fmt.Sprintf("replicas answering session requests again: %v", ok)
		}
		recovered = time.Now()
		return ""
	}); msg != "" {
		t.Fatalf("%s after PostgreSQL came back: %s", settle, msg)
	}
	t.Logf("every replica served again %s after PostgreSQL came back", recovered.Sub(up).Round(time.Millisecond))
	// Every kind of request is served again.
	for _, pr := range probes(first, cfg.Password) {
		for r := range ps {
			if an := pr.send(hc, ps, r, robot.bearer); an.err != nil || an.status != pr.up {
				t.Errorf("after the outage: %s %s, want %d", pr.method, an, pr.up)
			}
		}
	}
	if msg := eventually(settle, func() string { _, _, msg := leader(ps); return msg }); msg != "" {
		t.Errorf("after the outage: %s", msg)
	}
	if msg := eventually(startBound, func() string { return progress(ld.since(recovered), "after the outage", 30, 6, 4) }); msg != "" {
		t.Error(msg)
	}
	ld.stop()
	samples, violations := mon.stop()
	t.Logf("monitor: %d catalogs sampled", samples)
	for _, v := range violations {
		t.Errorf("during the load: %s", v)
	}

	// The answers, by when they were sent and received.
	var (
		before, during, after, between int
		reasons                        = map[string]int{}
		slowest                        time.Duration
		bad                            int
	)
	report := func(an answer, why string) {
		if bad++; bad <= 20 {
			t.Errorf("%s: %s", an, why)
		}
	}
	owners := map[string]string{}
	for _, an := range ld.since(begin) {
		took := an.done.Sub(an.sent)
		slowest = max(slowest, took)
		if took > hang {
			report(an, fmt.Sprintf("longer than %s", hang))
		}
		if an.err != nil {
			report(an, "no answer")
			continue
		}
		reason, isError := errorReason(an.raw)
		switch {
		case an.status == http.StatusOK:
		case an.status == http.StatusServiceUnavailable && isError:
		case an.status == http.StatusNotFound && strings.HasSuffix(an.path, "/terminate/"):
		default:
			report(an, "want 200, or 503 with a JSON error")
			continue
		}
		if an.status == http.StatusOK && !strings.HasSuffix(an.path, "/terminate/") {
			var got allocation
			if err := json.Unmarshal(an.raw, &got); err != nil || got.User != an.user {
				report(an, "not an allocation for "+an.user)
			} else if u, ok := owners[got.Name]; ok && u != an.user {
				report(an, fmt.Sprintf("session %s granted to %s and %s", got.Name, u, an.user))
			} else {
				owners[got.Name] = an.user
			}
		}
		switch {
		case an.done.Before(stopping), !an.sent.Before(recovered):
			before++
			if !normal(an) {
				report(an, "while the database was up")
			}
		case !an.sent.Before(down) && an.done.Before(starting):
			during++
			reasons[reason]++
			if an.status != http.StatusServiceUnavailable {
				report(an, "while the database was down")
			}
		case !an.sent.Before(up):
			after++
		default:
			between++
		}
	}
	t.Logf("answers: %d with the database up, %d while it was down (reasons %v), %d on its way back, %d across a stop or start; slowest %s",
		before, during, reasons, after, between, slowest.Round(time.Millisecond))
	if during == 0 {
		t.Error("no request was answered while the database was down")
	}

	// Afterwards, the invariants: capacity and ownership hold on every
	// replica, nothing held from before was lost, a session terminated
	// with 200 has ended.
	env := awaitSettled(t, ps, robot.bearer, reserved, -1)
	catalog := checkOwners(t, ps, robot.bearer, capacity, slices.Compact(slices.Sorted(slices.Values(users))))
	for session, user := range held {
		if catalog[session] != user {
			t.Errorf("%s's session %s, held across the outage, is gone (catalog: %v)", user, session, catalog)
		}
	}
	ld.mu.Lock()
	for session := range ld.ended {
		if u, ok := catalog[session]; ok {
			t.Errorf("session %s of %s was terminated (200) but lives on", session, u)
		}
	}
	ld.mu.Unlock()
	for session, user := range catalog {
		if u, ok := owners[session]; ok && u != user {
			t.Errorf("the catalog gives %s to %s, the answers to %s", session, user, u)
		}
		if _, ok := owners[session]; !ok && held[session] == "" {
			t.Logf("%s has session %s though no request of theirs was granted it (a 503 on a commit that went through)", user, session)
		}
		// Whoever has a session gets it again.
		if got := ps[0].as(robot.bearer).request(user, "timeout=0"); got.Name != session {
			t.Errorf("%s asks again and gets %s, not %s", user, got.Name, session)
		}
	}
	if t.Failed() {
		return
	}
	for i, s := range *env.Sessions {
		ps[i%len(ps)].as(robot.bearer).mustGet("/workshops/session/"+s.Name+"/terminate/", nil)
	}
	awaitSettled(t, ps, robot.bearer, reserved, 0)
	stopReplicas(ps)
}

// TestReplicasHandOutWhileReconciling hands reserved sessions out the way
// a front end does, as fast as it can: each user's session is requested on
// one replica, asked for again on another (which renews the activation
// deadline) and activated on the third, all while the replica that
// reconciles is giving the hosts of those very sessions their owners. No
// step may fail: a write of a request that meets a write of the reconciler
// on the same session row must wait for it or run again, never answer 500.
func TestReplicasHandOutWhileReconciling(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	const capacity, reserved, rounds = 8, 8, 6
	ps := startReplicas(t, definitions(entry{Capacity: capacity, Reserved: reserved}), pg.DSN, 3)
	robot := ps[0].robot()
	awaitLeader(t, ps)
	hc := loadClient(time.Minute)
	defer hc.CloseIdleConnections()

	var (
		mu     sync.Mutex
		failed []string
		steps  int
	)
	step := func(an answer, want int) bool {
		mu.Lock()
		defer mu.Unlock()
		steps++
		if an.err != nil || an.status != want {
			failed = append(failed, fmt.Sprintf("%s, want %d", an, want))
			return false
		}
		return true
	}
	for round := range rounds {
		awaitSettled(t, ps, robot.bearer, reserved, 0)
		var wg sync.WaitGroup
		for i := range capacity {
			wg.Go(func() {
				user := fmt.Sprintf("round-%d-user-%d", round, i)
				path := requestPath(user, "timeout=0")
				r := i % len(ps)
				first := probe{"GET", path, "bearer", http.StatusOK}.send(hc, ps, r, robot.bearer)
				if !step(first, http.StatusOK) {
					return
				}
				var al allocation
				if err := json.Unmarshal(first.raw, &al); err != nil {
					step(answer{path: path, err: err}, http.StatusOK)
					return
				}
				again := probe{"GET", path, "bearer", http.StatusOK}.send(hc, ps, (r+1)%len(ps), robot.bearer)
				step(again, http.StatusOK)
				step(probe{"GET", al.URL, "", http.StatusFound}.send(hc, ps, (r+2)%len(ps), robot.bearer), http.StatusFound)
			})
		}
		wg.Wait()
		env := awaitSettled(t, ps, robot.bearer, reserved, -1)
		for i, s := range *env.Sessions {
			ps[i%len(ps)].as(robot.bearer).mustGet("/workshops/session/"+s.Name+"/terminate/", nil)
		}
	}
	t.Logf("%d steps, %d failed", steps, len(failed))
	for _, f := range failed {
		t.Error(f)
	}
	awaitSettled(t, ps, robot.bearer, reserved, 0)
	stopReplicas(ps)
}

// TestReplicasWriteOneSessionAtOnce sends the writes a session's owner and
// a front end may send at the same moment (a double click, two tabs, a
// retry) to the three replicas at once: activations of one activation URL,
// extensions, terminations. Each must be answered as it is when sent
// alone: whichever transaction loses the race for the session's row waits
// for the winner or runs again; none answers 500.
func TestReplicasWriteOneSessionAtOnce(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	// 10 minutes: extendable at once, by 15 minutes, up to 120.
	ps := startReplicas(t, definitions(entry{Capacity: 4, Reserved: 1, Expires: "10m"}), pg.DSN, 3)
	robot := ps[0].robot()
	awaitLeader(t, ps)
	awaitSettled(t, ps, robot.bearer, 1, 0)
	hc := loadClient(time.Minute)
	defer hc.CloseIdleConnections()

	// at sends pr to the replicas in turn, n times at once.
	at := func(n int, pr probe) []answer {
		out := make([]answer, n)
		var ready, wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			ready.Add(1)
			wg.Go(func() {
				ready.Done()
				<-gate
				out[i] = pr.send(hc, ps, i%len(ps), robot.bearer)
			})
		}
		ready.Wait()
		close(gate)
		wg.Wait()
		return out
	}
	const n = 12
	al := robot.request("twice@example.com", "timeout=0")
	session := "/workshops/session/" + al.Name
	// The host of the reserved session has its owner; the reconciler
	// leaves the session alone from then on.
	awaitDelivered(t, robot, al.Name)

	for _, an := range at(n, probe{"GET", al.URL, "", http.StatusFound}) {
		if an.err != nil || an.status != http.StatusFound {
			t.Errorf("one of %d activations at once: %s, want 302", n, an)
		}
	}
	if msg := eventually(settle, func() string {
		var sc schedule
		robot.mustGet(session+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule after the activations: %s", sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	extended := 0
	for _, an := range at(n, probe{"GET", session + "/extend/", "bearer", http.StatusOK}) {
		var sc schedule
		if an.err != nil || an.status != http.StatusOK || json.Unmarshal(an.raw, &sc) != nil || sc.Extended == nil {
			t.Errorf("one of %d extensions at once: %s, want 200", n, an)
			continue
		}
		if *sc.Extended {
			extended++
		}
	}
	// 10 minutes left: one extension of 15 minutes, then 25 minutes are
	// left and the session is not extendable again yet.
	if extended != 1 {
		t.Errorf("%d of %d extensions at once extended the session, want 1", extended, n)
	}

	// One ends the session, the others find it ending (200) or, should it
	// be gone already, not there (404).
	for _, an := range at(n, probe{"GET", session + "/terminate/", "bearer", http.StatusOK}) {
		if an.err != nil || an.status != http.StatusOK && an.status != http.StatusNotFound {
			t.Errorf("one of %d terminations at once: %s, want 200 (or 404 once ended)", n, an)
		}
	}
	awaitSettled(t, ps, robot.bearer, 1, 0)
	stopReplicas(ps)
}

// gatedSetup is the setup script of gatedDefinitions' workshop: the
// session's start lasts until the test opens the gate (openGate).
const gatedSetup = `#!/bin/sh
while [ ! -e "$HOME/.gate" ] && [ ! -e "$HOME/workshop/gate-open" ]; do sleep 0.1; done
`

// gatedDefinitions is a portal with no reserve whose workshop starts its
// sessions with gatedSetup, written by writeGatedWorkshop next to the
// definitions.
func gatedDefinitions(t *testing.T) string {
	t.Helper()
	defs := definitions(entry{Capacity: 1, Reserved: 0})
	next := strings.Replace(defs, "  session:\n    env:", `  workshop:
    files:
      - directory:
          path: gated-lab
        includePaths:
          - /workshop/**
  session:
    env:`, 1)
	if next == defs {
		t.Fatal("definitions() has no session env to put the workshop files before: update gatedDefinitions")
	}
	return next
}

func writeGatedWorkshop(t *testing.T, p *portal) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(p.config), "gated-lab", "workshop", "setup.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00-gate.sh"), []byte(gatedSetup), 0o755); err != nil {
		t.Fatal(err)
	}
}

// openGate lets the setup of the session host under home and of every
// host started from now on finish.
func openGate(t *testing.T, p *portal, home string) {
	t.Helper()
	open := filepath.Join(filepath.Dir(p.config), "gated-lab", "workshop", "gate-open")
	if err := os.WriteFile(open, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".gate"), nil, 0o644); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// awaitLog waits until p's log has a line with one of msgs.
func awaitLog(t *testing.T, p *portal, msgs ...string) {
	t.Helper()
	if msg := eventually(startBound, func() string {
		out := p.output()
		for _, m := range msgs {
			if strings.Contains(out, m) {
				return ""
			}
		}
		return fmt.Sprintf("%s has not logged any of %q", p.addr, msgs)
	}); msg != "" {
		t.Fatal(msg)
	}
}

// TestReplicasLeaderFrozenWhileStarting freezes the leader (SIGSTOP, as a
// long stall of its machine would) while it starts a session, lets another
// replica take over, and wakes it (SIGCONT). The new leader takes the
// session over once the frozen one's lease and claim have lapsed, and the
// woken one's start is refused: the session ends up RUNNING with exactly
// one host, and nothing of the woken leader's start is left. Before
// fencing, the new leader could not touch the session while the frozen one
// held its claim, and once woken, the old leader's outcome overwrote the
// new one's and the session ended up without a host.
func TestReplicasLeaderFrozenWhileStarting(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	ps := startReplicas(t, gatedDefinitions(t), pg.DSN, 3)
	writeGatedWorkshop(t, ps[0])
	frozen, _ := awaitLeader(t, ps)
	var others []*portal
	for _, p := range ps {
		if p != frozen {
			others = append(others, p)
		}
	}
	robot := others[0].robot()
	al := robot.request("frozen@example.com", "timeout=0")
	home := filepath.Join(frozen.dataDir, "sessions", al.Name)

	// The leader has spawned the host, whose setup waits at the gate.
	if msg := eventually(startBound, func() string {
		if hosts(processesBySession(frozen.dataDir)[al.Name]) != 1 {
			return fmt.Sprintf("no host of %s yet", al.Name)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	frozen.signal(syscall.SIGSTOP)
	frozenAt := time.Now()
	defer func() {
		if frozen.running() {
			frozen.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	next, l := awaitLeader(t, others)
	if !l.since.After(frozenAt.Add(-time.Second)) {
		t.Fatalf("%s reconciles since %s, before the leader froze at %s", next.addr, l.since, frozenAt)
	}
	// The new leader breaks the frozen one's claim on the session home
	// once the frozen one has not touched it for a while.
	// (The host the frozen leader started may not outlive the freeze: its
	// network is that leader's to set up. The new leader starts another.)
	awaitLog(t, next, "breaking the claim of a stalled portal on a session")
	openGate(t, frozen, home)
	var env environment
	if msg := eventually(startBound, func() string {
		e, ok := next.as(robot.bearer).catalogEnvironment()
		if !ok || len(*e.Sessions) != 1 || (*e.Sessions)[0].State != "WAITING" {
			return fmt.Sprintf("catalog while the old leader is frozen: %s", e)
		}
		env = e
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	t.Logf("%s took over; the session started without the frozen leader: %s", next.addr, env)

	frozen.signal(syscall.SIGCONT)
	// The woken leader finds its lease gone, and its start ends without a
	// trace: cancelled, given up as its claim is gone, or refused once done.
	awaitLog(t, frozen, "another replica took over reconciliation", "reconciler lease lapsed")
	awaitLog(t, frozen, "session start cancelled", "session start given up", "session start not recorded")

	others[1].activate(al)
	if msg := eventually(startBound, func() string {
		var sc schedule
		robot.mustGet("/workshops/session/"+al.Name+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule after the activation: %s", sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	awaitSettled(t, ps, robot.bearer, 0, 1)
	if procs := processesBySession(frozen.dataDir); len(procs) != 1 || hosts(procs[al.Name]) != 1 {
		t.Errorf("session processes after the freeze: %+v, want one host of %s", procs, al.Name)
	}
	awaitDelivered(t, robot, al.Name)
	stopReplicas(ps)
}
