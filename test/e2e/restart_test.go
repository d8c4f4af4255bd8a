package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestRestartUnderLoad kills the real binary with SIGKILL while concurrent
// requests allocate and terminate sessions, and restarts it on the same
// data directory: the invariants hold, tokens and activation URLs issued
// before still work, and no session process is left without its session.
func TestRestartUnderLoad(t *testing.T) {
	const capacity, reserved = 6, 2
	p := startPortal(t, definitions(entry{Capacity: capacity, Reserved: reserved}))
	robot := p.robot()

	// Sessions held across the crash: two activated, two not. timeout=0:
	// the unactivated ones wait for their owner however long the test takes.
	type held struct {
		allocation
		activated bool
	}
	var early []held
	for i, user := range []string{"early-0", "early-1@example.com", "early:2", "early.3"} {
		a := robot.request(user, "timeout=0")
		if i < 2 {
			p.activate(a)
		}
		early = append(early, held{a, i < 2})
	}
	isEarly := func(user string) bool {
		return slices.ContainsFunc(early, func(h held) bool { return h.User == user })
	}

	// The load: distinct users, users asking again and again, and the early
	// users asking again (which hands them the session they have, with a
	// fresh activation URL). Sessions granted to the others are terminated
	// at once, so that hosts keep starting and stopping.
	var users []string
	for i := range 40 {
		users = append(users, fmt.Sprintf("load-%02d", i))
	}
	for i := range 5 {
		for range 4 {
			users = append(users, fmt.Sprintf("again-%d@example.com", i))
		}
	}
	for _, h := range early {
		users = append(users, h.User, h.User)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })

	ld := newLoad(p, robot.bearer, capacity)
	ld.start(16, users, isEarly)
	progress := func() string {
		return fmt.Sprintf("%d answers (%d granted, %d refused, %d terminated), %d transport errors",
			ld.answers.Load(), ld.granted.Load(), ld.refused.Load(), ld.terminated.Load(), ld.transportErrs.Load())
	}
	if msg := eventually(settle, func() string {
		if ld.answers.Load() < 100 || ld.granted.Load() < 8 || ld.terminated.Load() < 4 {
			return "the load made too little progress before the kill: " + progress()
		}
		return ""
	}); msg != "" {
		ld.stop()
		t.Fatal(msg)
	}
	p.kill9()
	ld.stop()
	t.Logf("load until the kill: %s", progress())
	for _, v := range ld.problems() {
		t.Errorf("during the load: %s", v)
	}

	p.restart()

	// The robot's token from before the crash still works.
	if status := robot.get("/workshops/catalog/environments/", nil); status != http.StatusOK {
		t.Errorf("robot token from before the restart: %d", status)
	}

	// The activation URLs handed out before still activate (those already
	// used too: they work while the session lives), and the sessions
	// activated before still run: at once, or, when the kill came while
	// their host was still starting, once the restarted portal has
	// started it.
	for _, h := range early {
		p.activate(h.allocation)
		if h.activated {
			if msg := eventually(settle, func() string {
				var sc schedule
				resp, raw := robot.do("GET", "/workshops/session/"+h.Name+"/schedule/", nil)
				if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &sc) != nil || sc.Status != "RUNNING" {
					return fmt.Sprintf("schedule of %s (activated before the restart): %d %s", h.Name, resp.StatusCode, raw)
				}
				return ""
			}); msg != "" {
				t.Error(msg)
			}
		}
	}

	// The invariants, once the reconciler has re-adopted the sessions and
	// stopped what was left over.
	var env environment
	var procs map[string][]sessionProc
	msg := eventually(settle, func() string {
		env = robot.environment()
		procs = processesBySession(p.dataDir)
		if hard := catalogInvariants(env, capacity); len(hard) > 0 {
			t.Fatalf("after the restart: %s", strings.Join(hard, "; "))
		}
		return strings.Join(settledProblems(env, procs, reserved), "; ")
	})
	if msg != "" {
		t.Errorf("not settled %s after the restart: %s", settle, msg)
	}
	owner := map[string]string{} // session → user, from the catalog
	for _, s := range *env.Sessions {
		if s.State != "STOPPING" {
			owner[s.Name] = s.User
		}
	}
	t.Logf("after the restart: %d sessions allocated, %d available, processes of %v", env.Allocated, env.Available, sortedKeys(procs))

	// Nothing granted was lost: the early sessions, and those granted by
	// the load that it did not try to terminate.
	for _, h := range early {
		if owner[h.Name] != h.User {
			t.Errorf("%s's session %s from before the restart is gone (catalog: %v)", h.User, h.Name, owner)
		}
	}
	for session, user := range ld.unterminated() {
		if owner[session] != user {
			t.Errorf("session %s granted to %s during the load is gone after the restart (catalog: %v)", session, user, owner)
		}
	}

	// Every user's own list agrees with the catalog: one session at most,
	// and no session of somebody else.
	seen := map[string]bool{}
	for _, user := range users {
		if seen[user] {
			continue
		}
		seen[user] = true
		type userSession struct{ Name, Environment string }
		var mine struct {
			User     string
			Sessions []userSession
		}
		robot.mustGet("/workshops/user/"+url.PathEscape(user)+"/sessions/", &mine)
		if mine.User != user || len(mine.Sessions) > 1 {
			t.Errorf("sessions of %s: %+v", user, mine)
		}
		for _, s := range mine.Sessions {
			if s.Environment != envName || owner[s.Name] != user {
				t.Errorf("%s lists %+v, which the catalog gives to %q", user, s, owner[s.Name])
			}
		}
		for session, u := range owner {
			if u == user && !slices.ContainsFunc(mine.Sessions, func(s userSession) bool { return s.Name == session }) {
				t.Errorf("the catalog gives %s to %s, whose own list is %+v", session, user, mine.Sessions)
			}
		}
	}

	if t.Failed() {
		return // cleanup kills the portal and the sessions
	}

	// A clean end: the sessions terminated through the API, then the portal
	// stopped by SIGTERM (the reserve keeps running; cleanup kills it).
	for _, s := range *env.Sessions {
		robot.mustGet("/workshops/session/"+s.Name+"/terminate/", nil)
	}
	if msg := eventually(settle, func() string {
		env := robot.environment()
		procs := processesBySession(p.dataDir)
		if env.Allocated != 0 || len(procs) != env.Available {
			return fmt.Sprintf("after terminating every session: %d allocated, %d available, processes of %v", env.Allocated, env.Available, sortedKeys(procs))
		}
		return ""
	}); msg != "" {
		t.Error(msg)
	}
	p.stop()
}

// TestKillWhileSessionStarts kills the portal while a session it handed out
// is starting, at two moments: as soon as it created the session's home, and
// once the host it started has published its address but before the portal
// recorded the start. The portal is frozen (SIGSTOP) at that moment, then
// killed and restarted: the session must neither be lost nor stuck, and it
// runs once its owner activates it.
func TestKillWhileSessionStarts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		freeze string // the file of the session home whose appearance freezes the portal
		wait   string // the file to wait for (bounded) before the kill
	}{
		{"after creating the session home", "", ""},
		{"after the host published its address", ".portico/pid", ".portico/address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No reserve: each request starts a session.
			p := startPortal(t, definitions(entry{Capacity: 4, Reserved: 0}))
			robot := p.robot()
			for _, user := range []string{"alice", "bob"} {
				a := robot.request(user, "timeout=0")
				home := filepath.Join(p.dataDir, "sessions", a.Name)
				for deadline := time.Now().Add(settle); ; {
					if _, err := os.Stat(filepath.Join(home, tc.freeze)); err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("the portal did not start %s within %s", a.Name, settle)
					}
				}
				p.signal(syscall.SIGSTOP)
				if tc.wait != "" {
					// The host carries on; the frozen portal cannot record it.
					eventually(10*time.Second, func() string {
						if _, err := os.Stat(filepath.Join(home, tc.wait)); err != nil {
							return err.Error()
						}
						return ""
					})
				}
				p.kill9()
				p.restart()

				p.activate(a)
				if msg := eventually(settle, func() string {
					var sc schedule
					resp, raw := robot.do("GET", "/workshops/session/"+a.Name+"/schedule/", nil)
					if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &sc) != nil || sc.Status != "RUNNING" {
						return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
					}
					return ""
				}); msg != "" {
					t.Fatalf("%s's session %s, activated after the restart: schedule %s after %s, want RUNNING", user, a.Name, msg, settle)
				}
				if procs := processesBySession(p.dataDir); hosts(procs[a.Name]) != 1 {
					t.Errorf("session %s has processes %+v, want one host", a.Name, procs[a.Name])
				}
			}
			p.stop()
		})
	}
}

// catalogInvariants returns what is wrong with an environment in the
// catalog at any moment: more live sessions than its capacity, a session
// listed twice, a user with two sessions that are not ending.
func catalogInvariants(env environment, capacity int) []string {
	var bad []string
	if env.Allocated+env.Available > capacity {
		bad = append(bad, fmt.Sprintf("%d allocated + %d available sessions, capacity %d", env.Allocated, env.Available, capacity))
	}
	if len(*env.Sessions) != env.Allocated {
		bad = append(bad, fmt.Sprintf("%d sessions listed, %d allocated", len(*env.Sessions), env.Allocated))
	}
	byName := map[string]string{}
	byUser := map[string]string{}
	for _, s := range *env.Sessions {
		if u, dup := byName[s.Name]; dup {
			bad = append(bad, fmt.Sprintf("session %s listed for %q and %q", s.Name, u, s.User))
		}
		byName[s.Name] = s.User
		if s.State == "STOPPING" {
			continue
		}
		if other, dup := byUser[s.User]; dup {
			bad = append(bad, fmt.Sprintf("user %q has sessions %s and %s", s.User, other, s.Name))
		}
		byUser[s.User] = s.Name
	}
	return bad
}

// settledProblems returns why an environment and the session processes are
// not in the state they settle in: every allocated session running or
// waiting with exactly one host process, a process only for allocated and
// available sessions (no orphans), the reserve topped up.
func settledProblems(env environment, procs map[string][]sessionProc, reserved int) []string {
	var bad []string
	owned := map[string]bool{}
	for _, s := range *env.Sessions {
		owned[s.Name] = true
		if s.State != "RUNNING" && s.State != "WAITING" {
			bad = append(bad, fmt.Sprintf("session %s of %s is %s", s.Name, s.User, s.State))
		}
		if hosts(procs[s.Name]) == 0 {
			bad = append(bad, fmt.Sprintf("session %s of %s has no host process", s.Name, s.User))
		}
	}
	var others []string
	for _, name := range sortedKeys(procs) {
		if list := procs[name]; hosts(list) != 1 {
			bad = append(bad, fmt.Sprintf("session %s has processes %+v, want one host", name, list))
		}
		if !owned[name] {
			others = append(others, name)
		}
	}
	// Reserved sessions are not listed by name: their number must match.
	if len(others) != env.Available {
		bad = append(bad, fmt.Sprintf("processes of unallocated sessions %v, but %d available (orphans?)", others, env.Available))
	}
	if want := min(reserved, env.Capacity-env.Allocated); env.Available != want {
		bad = append(bad, fmt.Sprintf("%d available, want %d", env.Available, want))
	}
	return bad
}

// load sends concurrent session requests as a front end's users would,
// terminating some of the sessions it gets, until stopped; a monitor
// checks the catalog and the session processes meanwhile.
type load struct {
	p        *portal
	bearer   string
	capacity int
	http     *http.Client
	stopped  chan struct{}
	wg       sync.WaitGroup

	answers, granted, refused, terminated, transportErrs atomic.Int64

	mu          sync.Mutex
	owners      map[string]string // session → user, from the answers
	terminating map[string]bool   // sessions a terminate was sent for
	violations  []string
}

func newLoad(p *portal, bearer string, capacity int) *load {
	return &load{p: p, bearer: bearer, capacity: capacity, stopped: make(chan struct{}),
		owners: map[string]string{}, terminating: map[string]bool{},
		http: &http.Client{Timeout: settle, Transport: &http.Transport{MaxIdleConnsPerHost: 64},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (l *load) start(workers int, users []string, keep func(user string) bool) {
	for w := range workers {
		l.wg.Go(func() {
			for i := w; !l.done(); i += workers {
				user := users[i%len(users)]
				status, raw, err := l.get(requestPath(user, "timeout=0"))
				if err != nil {
					l.transportErrs.Add(1)
					continue
				}
				l.answers.Add(1)
				switch status {
				case http.StatusOK:
					l.granted.Add(1)
					var a allocation
					if err := json.Unmarshal(raw, &a); err != nil || a.Name == "" || a.User != user {
						l.violation("request for %s: %s", user, raw)
						continue
					}
					l.mu.Lock()
					if u, ok := l.owners[a.Name]; ok && u != user {
						l.violations = append(l.violations, fmt.Sprintf("session %s granted to %s and %s", a.Name, u, user))
					}
					l.owners[a.Name] = user
					// A user asking in two workers at once gets the same
					// session twice: it is terminated once.
					terminate := !keep(user) && !l.done() && !l.terminating[a.Name]
					if terminate {
						l.terminating[a.Name] = true
					}
					l.mu.Unlock()
					if !terminate {
						continue
					}
					status, raw, err := l.get("/workshops/session/" + a.Name + "/terminate/")
					switch {
					case err != nil:
						l.transportErrs.Add(1)
					case status == http.StatusOK:
						l.terminated.Add(1)
					default:
						l.violation("terminate %s: %d %s", a.Name, status, raw)
					}
				case http.StatusServiceUnavailable:
					l.refused.Add(1)
					if !strings.Contains(string(raw), "No session available") {
						l.violation("refusal for %s: %s", user, raw)
					}
				default:
					l.violation("request for %s: %d %s", user, status, raw)
				}
			}
		})
	}
	l.wg.Go(l.monitor)
}

// monitor checks the invariants of the catalog and of the processes while
// the load runs.
func (l *load) monitor() {
	for !l.done() {
		status, raw, err := l.get("/workshops/catalog/environments/?sessions=true")
		if err != nil || status != http.StatusOK {
			continue
		}
		var cat struct{ Environments []environment }
		if err := json.Unmarshal(raw, &cat); err != nil || len(cat.Environments) != 1 || cat.Environments[0].Sessions == nil {
			l.violation("catalog %s", raw)
			continue
		}
		for _, v := range catalogInvariants(cat.Environments[0], l.capacity) {
			l.violation("%s", v)
		}
		if procs := processesBySession(l.p.dataDir); len(procs) > l.capacity {
			l.violation("processes of %d sessions, capacity %d: %v", len(procs), l.capacity, sortedKeys(procs))
		}
		select {
		case <-l.stopped:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (l *load) get(path string) (int, []byte, error) {
	req, err := http.NewRequest("GET", l.p.url+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.bearer)
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func (l *load) done() bool {
	select {
	case <-l.stopped:
		return true
	default:
		return false
	}
}

func (l *load) stop() {
	close(l.stopped)
	l.wg.Wait()
	l.http.CloseIdleConnections()
}

func (l *load) violation(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.violations) < 20 {
		l.violations = append(l.violations, fmt.Sprintf(format, args...))
	}
}

func (l *load) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.violations)
}

// unterminated returns the sessions granted by the load that it never
// tried to terminate, with their users.
func (l *load) unterminated() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]string{}
	for s, u := range l.owners {
		if !l.terminating[s] {
			out[s] = u
		}
	}
	return out
}
