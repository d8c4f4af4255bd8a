package broker_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// The reconciler lease between replicas of one database (issue 15): its
// times are the database's, and the work of a leader that lost it is
// fenced off.

// lapsing is a store on which a replica's lease, while lapse is set, runs
// out as soon as it is taken or renewed: what the database sees of a
// replica that stopped renewing (frozen, cut off) a lease term ago,
// without the test waiting for it.
//
// While cut is set, the replica cannot reach the lease at all: a network
// partition between it and the database, as far as the lease goes.
type lapsing struct {
	store.Store
	lapse, cut atomic.Bool
}

func (l *lapsing) Update(ctx context.Context, fn func(store.Tx) error) error {
	return l.Store.Update(ctx, func(tx store.Tx) error {
		return fn(lapsingTx{tx, l})
	})
}

type lapsingTx struct {
	store.Tx
	l *lapsing
}

func (tx lapsingTx) AcquireLease(name, holder string, ttl time.Duration) (int64, error) {
	switch {
	case tx.l.cut.Load():
		return 0, store.ErrUnavailable
	case tx.l.lapse.Load():
		ttl = 0
	}
	return tx.Tx.AcquireLease(name, holder, ttl)
}

// skewed is a replica's clock, off by a fixed amount.
type skewed struct {
	broker.Clock
	by time.Duration
}

func (c skewed) Now() time.Time { return c.Clock.Now().Add(c.by) }

// replica is another portal replica on p's database and runtime.
func replica(t *testing.T, p *portaltest.Portal, rt *runtimetest.Runtime, name string, skew time.Duration) (*broker.Broker, *lapsing) {
	t.Helper()
	st := &lapsing{Store: p.Store}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testLog{t}, nil)).With("test_replica", name)
	}
	b := broker.New(broker.Options{Store: st, Runtime: rt, Clock: skewed{p.Clock, skew}, Logger: log,
		Replica: name, Secrets: p.Secrets, URL: p.Broker.URL()}, p.Defs)
	return b, st
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

func lead(t *testing.T, b *broker.Broker, want int64) {
	t.Helper()
	got, err := b.Lead(ctx)
	if err != nil || got != want {
		t.Fatalf("lease: generation %d, %v; want %d", got, err, want)
	}
}

// A replica whose clock is minutes ahead or behind neither steals a live
// lease nor keeps one it lost. When each replica computed the expiry with
// its own clock, one ten minutes ahead found every other's lease lapsed,
// and its own lease outlived it by ten minutes.
func TestLeaseIgnoresReplicaClocks(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 1, Expires: time.Hour})
	behind, behindDB := replica(t, p, rt, "behind", -10*time.Minute)
	ahead, aheadDB := replica(t, p, rt, "ahead", 10*time.Minute)
	exact, _ := replica(t, p, rt, "exact", 0)

	lead(t, behind, 1)
	lead(t, ahead, 0) // its clock says behind's lease lapsed ten minutes ago
	lead(t, exact, 0)
	lead(t, behind, 1) // renewed: the same term

	// behind stops renewing: its lease lapses by the database's clock.
	behindDB.lapse.Store(true)
	lead(t, behind, 1)
	lead(t, ahead, 2)
	lead(t, behind, 0)
	lead(t, exact, 0)

	// ahead stops renewing: its clock would keep the lease ten minutes
	// more; the database's does not.
	aheadDB.lapse.Store(true)
	lead(t, ahead, 2)
	lead(t, exact, 3)
	lead(t, ahead, 0)
	lead(t, behind, 0)
}

// starting is a portal with one requested session, and a replica A that
// leads and is in the middle of that session's start.
type starting struct {
	p       *portaltest.Portal
	rt      *runtimetest.Runtime
	name    string // of the session
	a       *broker.Broker
	aDB     *lapsing
	release func() // lets the start go on
	stop    func() // stops A and waits until its Run has returned
}

// leaderStarting returns once A is in the middle of the start, which the
// runtime holds until release. With lapse, A's lease lapses in the
// database as soon as A takes or renews it: to the database A is frozen,
// while A itself sees nothing wrong until it finds its lease taken.
func leaderStarting(t *testing.T, user string, lapse bool) *starting {
	t.Helper()
	p, rt := start(t, config.Entry{Capacity: 1, Expires: time.Hour})
	st := &starting{p: p, rt: rt, name: request(t, p, user, 0).Session.Name}
	held, release := rt.HoldStart(st.name)
	st.release = release
	st.a, st.aDB = replica(t, p, rt, "A", 0)
	st.aDB.lapse.Store(lapse)
	actx, stopA := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.a.Run(actx)
	}()
	st.stop = func() {
		stopA()
		<-done
	}
	t.Cleanup(func() {
		release()
		st.stop()
	})
	<-held
	return st
}

// A leader frozen in the middle of a session start loses its lease; the
// replica that takes over starts the session; the frozen leader's start is
// cancelled and its outcome refused, so the session ends up with the new
// leader's host, and only that one.
func TestLeaderFrozenWhileStarting(t *testing.T) {
	st := leaderStarting(t, "frozen@example.com", true)
	p, rt, name := st.p, st.rt, st.name
	b, _ := replica(t, p, rt, "B", 0)
	bctx, stopB := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(bctx)
	}()
	defer func() {
		stopB()
		<-done
	}()
	// A's start ends only when A finds its lease gone and cancels it.
	st.a.Wait()
	var s store.Session
	for s = p.Session(name); s.Address == ""; s = p.Session(name) {
		time.Sleep(10 * time.Millisecond) // B's start, under way
	}
	if s.State != store.Waiting || s.Attempts != 0 || s.Failure != "" {
		t.Errorf("session after the take-over: %s, attempts %d, failure %q; want WAITING, started once",
			s.State, s.Attempts, s.Failure)
	}
	if got := rt.Running(); !slices.Equal(got, []string{name}) {
		t.Errorf("runtime runs %v, want [%s]", got, name)
	}
	for _, c := range rt.Calls() {
		if c.Method == "Stop" {
			t.Errorf("%s of %s: the new leader's host must stay", c.Method, c.Session)
		}
	}
	if gen, err := st.a.Lead(ctx); gen != 0 || err != nil {
		t.Errorf("the old leader takes the lease back: generation %d, %v", gen, err)
	}
}

// A leader that lost its lease after it started a host, and before it
// recorded it, finds its record refused; it stops the host it made, since
// no newer leader has taken the session yet, and the session waits for
// the new leader to start it.
func TestWokenLeaderUndoesItsStart(t *testing.T) {
	st := leaderStarting(t, "woken@example.com", true)
	p, rt, name := st.p, st.rt, st.name
	b, _ := replica(t, p, rt, "B", 0)
	// B takes the lease, and does nothing with it yet; A wakes before it
	// has noticed, and its start completes.
	if gen, err := b.Lead(ctx); gen == 0 || err != nil {
		t.Fatalf("take-over: generation %d, %v", gen, err)
	}
	st.release()
	for !slices.ContainsFunc(rt.Calls(), func(c runtimetest.Call) bool { return c.Method == "Stop" && c.Session == name }) {
		time.Sleep(10 * time.Millisecond) // A records, is refused, undoes
	}
	st.stop()
	if s := p.Session(name); s.State != store.Starting || s.Address != "" {
		t.Errorf("session after the refused record: %s at %q, want STARTING without a host", s.State, s.Address)
	}
	if got := rt.Running(); len(got) != 0 {
		t.Errorf("runtime runs %v after the undo, want nothing", got)
	}
}

// A replica that lost a start to a newer leader may still hear of the
// exit of the host it made, in the same session home as the new leader's:
// the session goes on as long as the runtime has its host. It ended, and
// the new leader's host with it, when the woken leader reported its own
// host's exit.
func TestExitOfASupersededHostLeavesTheSession(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 1, Reserved: 1, Initial: 1, Expires: time.Hour})
	s := p.Sessions()[0]
	p.Broker.HostExited(ctx, s.Name) // the runtime still runs its host
	p.Settle()
	if got := p.Session(s.Name); got.State != store.Waiting {
		t.Errorf("session after the exit of a host not its own: %s, want WAITING", got.State)
	}
	rt.Exit(s.Name, "killed")
	p.Broker.HostExited(ctx, s.Name)
	if got := p.Session(s.Name); got.State != store.Stopping {
		t.Errorf("session after its own host exited: %s, want STOPPING", got.State)
	}
}

// A leader that cannot renew its lease stops its work before the lease
// may lapse in the database, whether or not another replica takes it.
func TestLeaderCutOffStopsItsWork(t *testing.T) {
	st := leaderStarting(t, "cut-off@example.com", false)
	st.aDB.cut.Store(true)
	// The start ends only when A cancels it, its lease's time run out.
	st.a.Wait()
	if s := st.p.Session(st.name); s.State != store.Starting || s.Attempts != 0 {
		t.Errorf("session after its start was cancelled: %s, attempts %d; want STARTING, no attempt counted",
			s.State, s.Attempts)
	}
}
