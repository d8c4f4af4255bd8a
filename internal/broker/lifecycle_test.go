package broker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// Lifecycle rules of spec §4.4 and §6, driven by a fake clock, the fake
// runtime and the real SQLite store.

var ctx = context.Background()

func start(t *testing.T, entry config.Entry, adjust ...func(*config.Definitions)) (*portaltest.Portal, *runtimetest.Runtime) {
	t.Helper()
	defs := portaltest.Definitions(entry)
	for _, f := range adjust {
		f(defs)
	}
	rt := runtimetest.New()
	return portaltest.Start(t, defs, portaltest.Options{Runtime: rt}), rt
}

func robot(t *testing.T, p *portaltest.Portal) store.User {
	t.Helper()
	var u store.User
	if err := p.Store.View(ctx, func(tx store.Tx) (err error) {
		u, err = tx.User(portaltest.RobotUser)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

func request(t *testing.T, p *portaltest.Portal, user string, timeout time.Duration) broker.Allocation {
	t.Helper()
	al, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: user,
		IndexURL: "https://hub.test/", Timeout: timeout})
	if err != nil {
		t.Fatalf("request for %s: %v", user, err)
	}
	return al
}

func activate(t *testing.T, p *portaltest.Portal, al broker.Allocation) store.Session {
	t.Helper()
	s, _, err := p.Broker.Activate(ctx, al.Session.Name, al.Token)
	if err != nil {
		t.Fatalf("activate %s: %v", al.Session.Name, err)
	}
	return s
}

func wantState(t *testing.T, p *portaltest.Portal, name string, want store.SessionState) store.Session {
	t.Helper()
	s := p.Session(name)
	if s.State != want {
		t.Fatalf("session %s is %s, want %s", name, s.State, want)
	}
	return s
}

func TestReservedSessionsAreStartedAndToppedUp(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 5, Reserved: 2, Initial: 2, Expires: time.Hour})
	if n := p.Count("portal-w01", store.Waiting); n != 2 {
		t.Fatalf("%d reserved sessions waiting, want 2", n)
	}
	if got := rt.Running(); len(got) != 2 {
		t.Fatalf("runtime runs %v, want 2 sessions", got)
	}
	al := request(t, p, "alice", time.Minute)
	if al.Session.Name != "portal-w01-s001" {
		t.Errorf("allocated %s, want the oldest reserved session portal-w01-s001", al.Session.Name)
	}
	p.Settle()
	if n := p.Count("portal-w01", store.Waiting); n != 3 { // 2 reserved + alice's pending one
		t.Errorf("%d sessions waiting after allocation, want 3 (reserve topped up)", n)
	}
	if n := p.Count("portal-w01"); n != 3 {
		t.Errorf("%d sessions in all, want 3", n)
	}
}

func TestReserveRespectsCapacity(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 2, Reserved: 2, Initial: 2, Expires: time.Hour})
	request(t, p, "alice", time.Minute)
	request(t, p, "bob", time.Minute)
	p.Settle()
	if n := p.Count("", store.Live...); n != 2 {
		t.Fatalf("%d live sessions, capacity is 2", n)
	}
	_, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: "carol", IndexURL: "/"})
	if broker.KindOf(err) != broker.Unavailable {
		t.Fatalf("third request: %v, want unavailable", err)
	}
}

func TestLazyReserveWithInitialZero(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 5, Reserved: 2, Initial: 0, Expires: time.Hour})
	if n := p.Count(""); n != 0 {
		t.Fatalf("%d sessions before any request, want none (initial 0)", n)
	}
	request(t, p, "alice", time.Minute)
	p.Settle()
	if n := p.Count("portal-w01", store.Waiting); n != 3 {
		t.Fatalf("%d waiting after the first request, want alice's and a reserve of 2", n)
	}
}

func TestReserveTrimmedWhenLowered(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 5, Reserved: 3, Initial: 3, Expires: time.Hour})
	defs := portaltest.Definitions(config.Entry{Capacity: 5, Reserved: 1, Initial: 1, Expires: time.Hour})
	if err := p.Broker.Apply(ctx, defs); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if n := p.Count("portal-w01", store.Waiting); n != 1 {
		t.Fatalf("%d reserved after lowering reserved to 1", n)
	}
	if got := rt.Running(); len(got) != 1 {
		t.Fatalf("runtime still runs %v", got)
	}
}

func TestActivationTimeout(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	al := request(t, p, "alice", 60*time.Second)
	p.Clock.Advance(59 * time.Second)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Waiting)
	p.Clock.Advance(2 * time.Second)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Stopped)
	if slices.Contains(rt.Running(), al.Session.Name) {
		t.Error("the session host still runs")
	}
	if _, _, err := p.Broker.Activate(ctx, al.Session.Name, al.Token); !errors.Is(err, broker.ErrEnded) {
		t.Errorf("activating an expired session: %v, want ErrEnded", err)
	}
	names := p.Events.Names(al.Session.Name)
	if !slices.Contains(names, "Session/Expired") {
		t.Errorf("events %v lack Session/Expired", names)
	}
}

func TestTimeoutZeroFallsBackToWorkshopExpiry(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: 30 * time.Minute})
	al := request(t, p, "alice", 0)
	p.Clock.Advance(29 * time.Minute)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Waiting)
	p.Clock.Advance(2 * time.Minute)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Stopped)
}

func TestActivationStartsTheClockAndExpiryEndsTheSession(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	al := request(t, p, "alice", time.Minute)
	p.Clock.Advance(30 * time.Second)
	s := activate(t, p, al)
	if s.State != store.Running || !s.Expires.Equal(p.Clock.Now().Add(time.Hour)) {
		t.Fatalf("after activation: %s expiring %v, want RUNNING expiring in an hour", s.State, s.Expires)
	}
	// Activating again is harmless: the URL keeps working for its owner.
	again := activate(t, p, al)
	if !again.Expires.Equal(s.Expires) {
		t.Errorf("second activation moved the expiry to %v", again.Expires)
	}
	p.Clock.Advance(time.Hour - time.Second)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Running)
	p.Clock.Advance(2 * time.Second)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Stopped)
}

func TestActivationRejectsOtherSessionsToken(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 2, Initial: 2, Expires: time.Hour})
	a := request(t, p, "alice", time.Minute)
	b := request(t, p, "bob", time.Minute)
	_, _, err := p.Broker.Activate(ctx, a.Session.Name, b.Token)
	if broker.KindOf(err) != broker.Invalid {
		t.Fatalf("activating alice's session with bob's token: %v, want invalid", err)
	}
	wantState(t, p, a.Session.Name, store.Waiting)
}

func TestExtension(t *testing.T) {
	tests := []struct {
		name     string
		entry    config.Entry
		at       time.Duration // time after activation of the first attempt
		step     time.Duration // what one extension adds
		finalEnd time.Duration // expiry after repeated extensions, from start
	}{
		// threshold = 25 % of 60 m = 15 m; step = threshold; cap = deadline.
		{"default step", config.Entry{Expires: time.Hour, Deadline: 2 * time.Hour}, 46 * time.Minute, 15 * time.Minute, 2 * time.Hour},
		// overtime 30 m: extendable once less than 30 m remain.
		{"overtime", config.Entry{Expires: time.Hour, Overtime: 30 * time.Minute, Deadline: 100 * time.Minute}, 31 * time.Minute, 30 * time.Minute, 100 * time.Minute},
		// short workshop: the threshold is at least 5 minutes.
		{"short", config.Entry{Expires: 10 * time.Minute, Deadline: 20 * time.Minute}, 5*time.Minute + time.Second, 5 * time.Minute, 20 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.entry.Capacity, tc.entry.Reserved, tc.entry.Initial = 2, 1, 1
			p, _ := start(t, tc.entry)
			al := request(t, p, "alice", time.Minute)
			s := activate(t, p, al)
			user := userOf(t, p, "alice")

			sc, err := p.Broker.Extend(ctx, user, s.Name)
			if err != nil || sc.Extended || sc.Extendable {
				t.Fatalf("extend at start: %+v %v, want not extendable", sc, err)
			}
			p.Clock.Advance(tc.at - time.Minute - time.Second)
			if sc, _ := p.Broker.Extend(ctx, user, s.Name); sc.Extended {
				t.Fatalf("extended a minute too early: %+v", sc)
			}
			p.Clock.Advance(time.Minute + time.Second)
			sc, err = p.Broker.Extend(ctx, user, s.Name)
			if err != nil || !sc.Extended {
				t.Fatalf("extend when due: %+v %v", sc, err)
			}
			if want := s.Expires.Add(tc.step); !sc.Expires.Equal(want) {
				t.Errorf("extended to %v, want %v", sc.Expires, want)
			}
			// Keep extending whenever allowed: never past the deadline.
			for range 20 {
				p.Clock.Advance(sc.Expires.Sub(p.Clock.Now()) - time.Second)
				next, err := p.Broker.Extend(ctx, user, s.Name)
				if err != nil {
					t.Fatal(err)
				}
				sc = next
				if !sc.Extended {
					break
				}
			}
			if want := s.Started.Add(tc.finalEnd); !sc.Expires.Equal(want) {
				t.Errorf("final expiry %v, want the deadline %v", sc.Expires, want)
			}
			if sc.Extendable {
				t.Error("still extendable at the deadline")
			}
		})
	}
}

func TestNotExtendableWithoutDeadline(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
	s := activate(t, p, request(t, p, "alice", time.Minute))
	p.Clock.Advance(59 * time.Minute)
	sc, err := p.Broker.Extend(ctx, userOf(t, p, "alice"), s.Name)
	if err != nil || sc.Extended || sc.Extendable || !sc.Expiring {
		t.Fatalf("deadline = expires: %+v %v, want expiring and not extendable", sc, err)
	}
}

func userOf(t *testing.T, p *portaltest.Portal, name string) store.User {
	t.Helper()
	var u store.User
	if err := p.Store.View(ctx, func(tx store.Tx) (err error) {
		u, err = tx.User(name)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestOrphanedSessionsEnd(t *testing.T) {
	entry := config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: 2 * time.Hour, Orphaned: 10 * time.Minute}
	t.Run("idle", func(t *testing.T) {
		p, rt := start(t, entry)
		s := activate(t, p, request(t, p, "alice", time.Minute))
		rt.SetActivity(s.Name, runtime.Activity{Idle: 5 * time.Minute})
		p.Clock.Advance(10 * time.Minute)
		p.Settle()
		wantState(t, p, s.Name, store.Running)
		rt.SetActivity(s.Name, runtime.Activity{Idle: 10 * time.Minute})
		p.Clock.Advance(5 * time.Minute)
		p.Settle()
		wantState(t, p, s.Name, store.Stopped)
		if !slices.Contains(p.Events.Names(s.Name), "Session/Orphaned") {
			t.Errorf("events %v lack Session/Orphaned", p.Events.Names(s.Name))
		}
	})
	t.Run("not viewed", func(t *testing.T) {
		p, rt := start(t, entry)
		s := activate(t, p, request(t, p, "alice", time.Minute))
		rt.SetActivity(s.Name, runtime.Activity{Idle: time.Minute, LastView: 30 * time.Minute})
		p.Clock.Advance(10 * time.Minute)
		p.Settle()
		wantState(t, p, s.Name, store.Stopped)
		if !slices.Contains(p.Events.Names(s.Name), "Session/Inactive") {
			t.Errorf("events %v lack Session/Inactive", p.Events.Names(s.Name))
		}
	})
	t.Run("pending sessions are not probed", func(t *testing.T) {
		p, rt := start(t, entry)
		al := request(t, p, "alice", time.Hour)
		rt.SetActivity(al.Session.Name, runtime.Activity{Idle: time.Hour})
		p.Clock.Advance(20 * time.Minute)
		p.Settle()
		wantState(t, p, al.Session.Name, store.Waiting)
	})
}

func TestPortalMaximumEvictsOldestReserve(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 4, Reserved: 2, Initial: 2, Expires: time.Hour}, func(d *config.Definitions) {
		d.Portal.Sessions.Maximum = 3
		other := *d.Workshops["lab"]
		other.Name = "lab2"
		d.Workshops["lab2"] = &other
		d.Portal.Entries = append(d.Portal.Entries, config.Entry{Name: "lab2", Position: 2, Capacity: 4, Reserved: 0, Initial: 0, Expires: time.Hour, Deadline: time.Hour})
	})
	if n := p.Count("", store.Live...); n != 2 {
		t.Fatalf("%d live sessions, want the 2 reserved of lab", n)
	}
	robotUser := robot(t, p)
	for _, u := range []string{"alice", "bob"} {
		if _, err := p.Broker.Request(ctx, robotUser, broker.Request{Environment: "portal-w02", Username: u, IndexURL: "/", Timeout: time.Minute}); err != nil {
			t.Fatalf("request of %s in lab2: %v", u, err)
		}
		p.Settle()
	}
	if n := p.Count("", store.Live...); n > 3 {
		t.Fatalf("%d live sessions, portal maximum is 3", n)
	}
	if n := p.Count("portal-w01", store.Waiting); n != 1 {
		t.Errorf("%d reserves left in lab, want 1 after eviction for 2 on-demand sessions within maximum 3", n)
	}
	if s := p.Session("portal-w01-s001"); s.State != store.Stopped {
		t.Errorf("oldest reserve portal-w01-s001 is %s, want evicted", s.State)
	}
	// Three sessions are allocated: no more, whatever is evicted.
	request(t, p, "carol", time.Minute) // takes lab's last reserve
	_, err := p.Broker.Request(ctx, robotUser, broker.Request{Environment: "portal-w02", Username: "dave", IndexURL: "/"})
	if broker.KindOf(err) != broker.Unavailable {
		t.Fatalf("fourth allocation with maximum 3: %v, want unavailable", err)
	}
}

func TestEnvironmentReplacedWhenWorkshopChanges(t *testing.T) {
	update := func(d *config.Definitions) { d.Portal.UpdateWorkshop = true }
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour}, update)
	s := activate(t, p, request(t, p, "alice", time.Minute))
	p.Settle()

	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	update(defs)
	defs.Workshops["lab"].Fingerprint = "f2"
	defs.Workshops["lab"].Title = "Lab, second edition"
	if err := p.Broker.Apply(ctx, defs); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	envs := p.Environments()
	if len(envs) != 2 || envs[0].State != store.EnvStopping || envs[1].Name != "portal-w02" || envs[1].State != store.EnvRunning {
		t.Fatalf("environments after the change: %+v", envState(envs))
	}
	wantState(t, p, s.Name, store.Running) // alice keeps her session
	if n := p.Count("portal-w01", store.Waiting); n != 0 {
		t.Errorf("old environment keeps %d reserves", n)
	}
	robotUser := robot(t, p)
	if _, err := p.Broker.Request(ctx, robotUser, broker.Request{Environment: "portal-w01", Username: "bob", IndexURL: "/"}); broker.KindOf(err) != broker.Unavailable {
		t.Fatalf("request in the stopping environment: %v, want unavailable", err)
	}
	al, err := p.Broker.Request(ctx, robotUser, broker.Request{Environment: "lab", Username: "bob", IndexURL: "/"})
	if err != nil || al.Session.Environment != "portal-w02" {
		t.Fatalf("request by workshop name went to %q (%v), want the new environment", al.Session.Environment, err)
	}
	if _, err := p.Broker.Terminate(ctx, userOf(t, p, "alice"), s.Name); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if env := p.Environments()[0]; env.State != store.EnvStopped {
		t.Errorf("old environment is %s after its last session ended, want STOPPED", env.State)
	}
}

func TestRemovedEntryStopsEnvironment(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 3, Reserved: 2, Initial: 2, Expires: time.Hour})
	defs := portaltest.Definitions(config.Entry{})
	defs.Portal.Entries = nil
	if err := p.Broker.Apply(ctx, defs); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if env := p.Environments()[0]; env.State != store.EnvStopped {
		t.Fatalf("environment of a removed entry is %s, want STOPPED", env.State)
	}
	if len(rt.Running()) != 0 {
		t.Errorf("sessions still running: %v", rt.Running())
	}
}

func TestRefreshReplacesEnvironment(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour, Refresh: 2 * time.Hour})
	p.Clock.Advance(2*time.Hour + time.Second)
	p.Settle()
	envs := p.Environments()
	if len(envs) != 2 || envs[0].State != store.EnvStopped || envs[1].State != store.EnvRunning {
		t.Fatalf("after the refresh interval: %v", envState(envs))
	}
}

func TestFailedReserveRetriesWithBackoffAndYieldsCapacity(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 1, Reserved: 1, Initial: 0, Expires: time.Hour})
	rt.FailStart("portal-w01-s001", errors.New("image pull failed"))
	rt.FailStart("portal-w01-s002", errors.New("image pull failed"))
	al := request(t, p, "alice", time.Minute) // on demand: s001 for alice
	p.Settle()
	s := p.Session(al.Session.Name)
	if s.Attempts != 1 || s.State != store.Starting || s.Failure == "" {
		t.Fatalf("after a failed start: %+v", s)
	}
	p.Clock.Advance(2 * time.Second)
	p.Settle()
	p.Clock.Advance(3 * time.Second)
	p.Settle()
	s = p.Session(al.Session.Name)
	if s.State != store.Stopped || s.Attempts != 3 {
		t.Fatalf("owned session after three failed starts: %s after %d attempts, want STOPPED", s.State, s.Attempts)
	}
	if !slices.Contains(p.Events.Names(s.Name), "Session/Failed") {
		t.Errorf("events %v lack Session/Failed", p.Events.Names(s.Name))
	}

	// The reserve built after the first session keeps failing; it must not
	// keep bob out.
	if got := p.Session("portal-w01-s002"); got.Attempts == 0 {
		t.Fatalf("reserve s002 should have failed: %+v", got)
	}
	bob, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: "bob", IndexURL: "/", Timeout: time.Minute})
	if err != nil {
		t.Fatalf("request while a failing reserve holds the only place: %v", err)
	}
	p.Settle()
	if bob.Session.Name == "portal-w01-s002" || p.Session("portal-w01-s002").State != store.Stopped {
		t.Fatalf("bob got %s; the failing reserve is %s", bob.Session.Name, p.Session("portal-w01-s002").State)
	}
	wantState(t, p, bob.Session.Name, store.Waiting)
}

func TestRestartAdoptsSessions(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	s := activate(t, p, request(t, p, "alice", time.Minute))
	p.Settle()
	// The host of alice's session dies while the portal is down; an
	// instance nobody knows is left behind.
	rt.Exit(s.Name, "killed")
	if _, err := rt.Start(ctx, runtime.Spec{Session: "stray-s001"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Broker.Adopt(ctx); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	ended := wantState(t, p, s.Name, store.Stopped)
	if ended.Failure == "" {
		t.Error("a lost session should say why it ended")
	}
	if slices.Contains(rt.Running(), "stray-s001") {
		t.Error("the unknown instance was not stopped")
	}
	if n := p.Count("portal-w01", store.Waiting); n != 1 {
		t.Errorf("%d reserves after adoption, want 1", n)
	}
}

func envState(envs []store.Environment) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.Name+" "+string(e.State))
	}
	return out
}

func TestEndedSessionsAndIdleAnonymousUsersAreCleanedUp(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	s := activate(t, p, request(t, p, "alice", time.Minute))
	if _, err := p.Broker.Terminate(ctx, userOf(t, p, "alice"), s.Name); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	p.Clock.Advance(35 * time.Hour)
	p.Settle()
	wantState(t, p, s.Name, store.Stopped) // kept for 36 hours
	p.Clock.Advance(2 * time.Hour)
	p.Settle()
	err := p.Store.View(ctx, func(tx store.Tx) error {
		if _, err := tx.Session(s.Name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ended session after 37 h: %v, want deleted", err)
		}
		if _, err := tx.User("alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("anonymous alice without sessions after 37 h: %v, want deleted", err)
		}
		if _, err := tx.User(portaltest.RobotUser); err != nil {
			t.Errorf("the robot account went with the cleanup: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSessionHostLearnsItsOwner(t *testing.T) {
	check := func(t *testing.T, p *portaltest.Portal, rt *runtimetest.Runtime, name string) {
		t.Helper()
		p.Settle()
		a, ok := rt.Allocation(name)
		if !ok || a.User.Username != "alice" || a.User.Email != "alice@example.com" ||
			len(a.Params) != 1 || a.Params[0] != (runtime.EnvVar{Name: "GREETING", Value: "hi"}) {
			t.Fatalf("host of %s was given %+v (%v)", name, a, ok)
		}
		if !p.Session(name).Delivered {
			t.Error("delivery not recorded")
		}
	}
	req := func(t *testing.T, p *portaltest.Portal) string {
		al, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: "alice",
			Email: "alice@example.com", IndexURL: "/", Timeout: time.Minute, Params: []config.EnvVar{{Name: "GREETING", Value: "hi"}}})
		if err != nil {
			t.Fatal(err)
		}
		return al.Session.Name
	}
	t.Run("from the reserve", func(t *testing.T) {
		p, rt := start(t, config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
		name := req(t, p)
		if _, ok := rt.Allocation(name); ok {
			t.Fatal("the reserve knew its owner before allocation")
		}
		check(t, p, rt, name)
	})
	t.Run("on demand", func(t *testing.T) {
		p, rt := start(t, config.Entry{Capacity: 2, Reserved: 0, Initial: 0, Expires: time.Hour})
		name := req(t, p)
		check(t, p, rt, name)
		for _, c := range rt.Calls() {
			if c.Method == "Allocate" {
				t.Error("owner known at start was posted again")
			}
		}
	})
	t.Run("claimed while starting", func(t *testing.T) {
		p, rt := start(t, config.Entry{Capacity: 2, Reserved: 0, Initial: 0, Expires: time.Hour})
		rt.SetStartDelay("portal-w01-s001", 300*time.Millisecond)
		if err := p.Broker.Apply(ctx, portaltest.Definitions(config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Broker.Reconcile(ctx); err != nil { // creates s001 and begins its slow start
			t.Fatal(err)
		}
		if _, err := p.Broker.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		if s := p.Session("portal-w01-s001"); s.State != store.Starting {
			t.Fatalf("reserve is %s, want still starting", s.State)
		}
		name := req(t, p)
		if name != "portal-w01-s001" {
			t.Fatalf("alice got %s, want the starting reserve", name)
		}
		check(t, p, rt, name)
	})
}

// A session whose start the portal did not see through (it died first)
// is started again after the restart, whatever the runtime holds: a host
// that came up meanwhile or one left half-made.
func TestRestartFinishesInterruptedStarts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(rt *runtimetest.Runtime, session string)
	}{
		{"host came up", func(rt *runtimetest.Runtime, s string) { rt.Start(ctx, runtime.Spec{Session: s}) }},
		{"host half made", func(rt *runtimetest.Runtime, s string) {
			rt.Start(ctx, runtime.Spec{Session: s})
			rt.Exit(s, "session host exited")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, rt := start(t, config.Entry{Capacity: 2, Reserved: 0, Initial: 0, Expires: time.Hour})
			al := request(t, p, "alice", time.Minute) // on demand: STARTING, not started yet
			wantState(t, p, al.Session.Name, store.Starting)
			tc.leave(rt, al.Session.Name)
			if err := p.Broker.Adopt(ctx); err != nil {
				t.Fatal(err)
			}
			p.Settle()
			s := wantState(t, p, al.Session.Name, store.Waiting)
			if s.Address == "" || s.Failure != "" {
				t.Errorf("after restart: %+v", s)
			}
			activate(t, p, al)
		})
	}
}

func TestEndAllStopsEverySession(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 4, Reserved: 2, Initial: 2, Expires: time.Hour})
	s := activate(t, p, request(t, p, "alice", time.Minute))
	p.Settle()
	if err := p.Broker.EndAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.Count("", store.Live...); n != 0 {
		t.Errorf("%d sessions still live", n)
	}
	if len(rt.Running()) != 0 {
		t.Errorf("hosts still running: %v", rt.Running())
	}
	if !slices.Contains(p.Events.Names(s.Name), "Session/Deleted") {
		t.Errorf("events of alice's session: %v", p.Events.Names(s.Name))
	}
}

func TestSessionLimitsAndHostExit(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour}, func(d *config.Definitions) {
		d.Workshops["lab"].Resources = config.Resources{Memory: 512 << 20, CPUMilli: 500, Processes: 64, Storage: 5 << 30}
	})
	spec, ok := rt.Spec("portal-w01-s001")
	if !ok || spec.Limits != (runtime.Limits{Memory: 512 << 20, CPUMilli: 500, Processes: 64, Storage: 5 << 30}) {
		t.Fatalf("limits given to the runtime: %+v (%v)", spec.Limits, ok)
	}
	s := activate(t, p, request(t, p, "alice", time.Minute))
	rt.Exit(s.Name, "killed by the kernel")
	p.Broker.HostExited(ctx, s.Name)
	p.Settle()
	ended := wantState(t, p, s.Name, store.Stopped)
	if ended.Failure != "session host exited" {
		t.Errorf("failure %q", ended.Failure)
	}
	if n := p.Count("portal-w01", store.Waiting); n != 1 {
		t.Errorf("%d reserves after the host died, want the reserve topped up", n)
	}
}

// A request that arrives before the reconciler's first pass does not find
// a workshop refusing sessions.
func TestRequestRightAfterStart(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	defs.Portal.Entries[0].Alias = "lab-again" // a new entry: a new environment, STARTING
	if err := p.Broker.Apply(ctx, defs); err != nil {
		t.Fatal(err)
	}
	_, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w02", Username: "alice", IndexURL: "/"})
	if err != nil {
		t.Fatalf("request in an environment not yet reconciled: %v", err)
	}
	if env := p.Environments()[1]; env.State != store.EnvRunning {
		t.Errorf("environment %s is %s", env.Name, env.State)
	}
}

// A start that finds another replica at work on the session (a leader that
// stalled mid-start and lost its lease) is no failure: it is tried again
// shortly, however long that replica takes, and the session is not ended.
func TestBusyStartIsRetriedNotFailed(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 1, Reserved: 0, Initial: 0, Expires: time.Hour})
	rt.FailStart("portal-w01-s001", fmt.Errorf("start portal-w01-s001: %w", runtime.ErrBusy))
	al := request(t, p, "alice", time.Minute)
	for range 5 {
		p.Settle()
		p.Clock.Advance(time.Second)
	}
	s := p.Session(al.Session.Name)
	if s.State != store.Starting || s.Attempts != 0 || s.Failure != "" {
		t.Fatalf("after busy starts: %s, %d attempts, failure %q; want STARTING and no failure", s.State, s.Attempts, s.Failure)
	}
	rt.FailStart("portal-w01-s001", nil)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Waiting)
}
