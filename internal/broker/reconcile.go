package broker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/store"
)

// The reconciler compares the sessions and environments the database wants
// with what the runtime has, and acts: it is level-triggered (every pass
// looks at the state, not at a log of changes), idempotent, woken by writes
// and by the next deadline in the database rather than a fixed sweep, and
// it picks up where it stopped after a crash. Each pass reads only rows
// that are due (indexed queries), so its cost follows changes, not the
// number of sessions held.

const (
	// maxParallel bounds concurrent starts and stops.
	maxParallel = 32
	// startAttempts is how often a session with an owner is tried before
	// it ends with the failure; reserved sessions retry with backoff
	// until a person needs their place.
	startAttempts = 3
	maxBackoff    = 5 * time.Minute
	// busyRetry is how soon a start that found another replica at work on
	// the session looks again.
	busyRetry = time.Second
	// The reconciler lease: renewed every leaseRenew, it lapses after
	// leaseTTL (by the database's clock) when its holder dies or stalls,
	// and another replica takes over.
	leaseName  = "reconciler"
	leaseTTL   = 6 * time.Second
	leaseRenew = 2 * time.Second
	// leaseMargin is how much earlier than the database a leader that
	// could not renew its lease counts it lost and stops its work. The
	// database starts the lease's time after the leader asked for it, so
	// by this replica's monotonic clock the lease lasts at least leaseTTL
	// from the asking.
	leaseMargin = time.Second
	// retention of ended sessions and idle anonymous users (Educates: 36 h).
	retention       = 36 * time.Hour
	cleanupInterval = 10 * time.Minute
	// startTimeout bounds a whole start, setup scripts included (each may
	// take up to sessionhost.SetupTimeout); the session page's overdue
	// time is what people wait for.
	startTimeout = 10 * time.Minute
	probeTimeout = 5 * time.Second
	// passGap is the least time between the starts of two passes: a rush
	// of allocations is acted on in batches, not one pass each.
	passGap = 20 * time.Millisecond
	// stuckWait is how often a full pass runs again while what is due is
	// work in flight: its ends wake the reconciler for what follows.
	stuckWait = 250 * time.Millisecond
	// launchBatch bounds the sessions a pass reads to start, stop or
	// deliver: more than run at once (maxParallel), and the ends of those
	// wake the next pass for the rest.
	launchBatch = 2 * maxParallel
)

type reconcilerState struct {
	mu       sync.Mutex
	inflight map[string]bool // sessions this process is starting or stopping
	// work is the context of the starts, stops and deliveries of the
	// current term (see term); nil outside Run.
	work    context.Context
	sem     chan struct{}
	wg      sync.WaitGroup
	cleaned time.Time
	// What the next pass has to do, since the last one began: a full
	// pass, or only the reserves of some environments (allocations took
	// from them) and a deadline earlier than the one it sleeps until.
	full      bool
	replenish map[int64]bool
	soon      time.Time
}

// term is one tenure of the reconciler lease by this replica. The work it
// begins carries the lease's generation as fencing token
// (runtime.WithFence): every transaction that records its effect checks
// that the lease is still this tenure's (checkFence), and runtimes refuse
// it once a newer leader has the session. The work is cancelled when the
// term ends: the lease went to another replica, or could not be renewed
// before it may have lapsed.
type term struct {
	gen int64
	// work is the context of the term's work, cancelled when the term
	// ends (a shutdown ends it too, once the reconciler stops).
	work   context.Context
	cancel context.CancelFunc
	// pass is the context of reconciler passes: work's, also cancelled as
	// soon as the portal shuts down.
	pass context.Context
	// deadline is when the lease may have lapsed unless renewed, by the
	// monotonic clock: a replica's wall clock plays no part in the lease.
	deadline time.Time
	unhook   func() bool
}

func (r *reconcilerState) init() {
	r.inflight = make(map[string]bool)
	r.sem = make(chan struct{}, maxParallel)
	r.replenish = make(map[int64]bool)
}

// take returns and clears what the next pass has to do.
func (r *reconcilerState) take() (full bool, envs []int64, soon time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full, soon = r.full, r.soon
	for id := range r.replenish {
		envs = append(envs, id)
	}
	clear(r.replenish)
	r.full, r.soon = false, time.Time{}
	return full, envs, soon
}

// Run reconciles until ctx ends, then cancels the starts and stops it
// began, waits for them and gives up the lead: in that order, so that none
// of its work outlives its lease. Of several replicas on one database, one
// reconciles at a time: the holder of a lease it renews while it runs.
// When the holder dies or stalls, another takes over once the lease has
// lapsed, adopts the sessions and carries on from the database, where
// every timer lives; the work of the old holder is fenced off (see term).
func (b *Broker) Run(ctx context.Context) {
	var t *term
	defer func() {
		b.endTerm(t)
		b.rec.wg.Wait()
		b.releaseLead()
	}()
	var (
		tried  time.Time // when the last renewal was asked for
		failed bool      // and it failed
		// due is when the pass after this one is due by the database's
		// next deadline; zero when none is.
		due    time.Time
		exited <-chan string
		// full: the next pass is a full one, not only what allocations
		// left to do (see replenish); began: when the last pass began.
		full   = true
		began0 time.Time
		// stuck: the last full pass left its own deadline passed (starts
		// and stops in flight, whose ends wake the reconciler); lastFull:
		// when that pass began.
		stuck    bool
		lastFull time.Time
	)
	if w, ok := b.runtime.(runtime.ExitWatcher); ok {
		exited = w.Exited()
	}
	for {
		if t == nil || time.Since(tried) >= leaseRenew {
			tried = time.Now()
			gen, err := b.lead(ctx)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					b.log.Error("reconciler lease", "err", err)
					failed = true
				}
			case gen == 0:
				if t != nil {
					b.log.Warn("another replica took over reconciliation", "replica", b.replica)
					t = b.endTerm(t)
				}
			case t != nil && gen == t.gen:
				t.deadline = tried.Add(leaseTTL - leaseMargin)
				if failed {
					b.log.Info("this replica reconciles", "replica", b.replica, "generation", gen)
				}
			default:
				// A new tenure; one of this replica's that came before
				// has ended unseen (released or lost and taken again).
				b.endTerm(t)
				t = b.beginTerm(ctx, gen, tried)
				b.log.Info("this replica reconciles", "replica", b.replica, "generation", gen)
				if err := b.Adopt(t.pass); err != nil && ctx.Err() == nil {
					b.log.Error("adopting sessions", "err", err)
				}
			}
			if err == nil {
				failed = false
			}
		}
		if t != nil && !time.Now().Before(t.deadline) {
			b.log.Warn("reconciler lease lapsed", "replica", b.replica, "generation", t.gen)
			t = b.endTerm(t)
		}
		b.observe.Leading(t != nil)
		wait := leaseRenew
		if t != nil {
			// Passes woken by changes are coalesced: at most one every
			// passGap, each acting on all the changes since the last.
			if gap := passGap - time.Since(began0); gap > 0 && !began0.IsZero() {
				pause := time.NewTimer(gap)
				select {
				case <-ctx.Done():
					pause.Stop()
					return
				case <-pause.C:
				}
			}
			began0 = time.Now()
			wanted, envs, soon := b.rec.take()
			dueNow := !due.IsZero() && !b.now().Before(due)
			full = full || wanted || dueNow && (!stuck || time.Since(lastFull) >= stuckWait)
			// Deadlines are times of the portal's clock, which may not be
			// this machine's (see Options.Clock): durations until them are
			// measured on it.
			began := b.now()
			// Lag: how long the deadline this pass is for has been due.
			var lag time.Duration
			if !due.IsZero() {
				lag = max(began.Sub(due), 0)
			}
			var (
				next time.Time
				err  error
			)
			if full {
				lastFull = time.Now()
				next, err = b.Reconcile(t.pass)
				stuck = !next.IsZero() && !next.After(began)
			} else {
				next, err = due, b.replenishPass(t.pass, envs, began)
				if !soon.IsZero() && (next.IsZero() || soon.Before(next)) {
					next = soon
				}
			}
			full = false
			b.observe.Reconciled(b.now().Sub(began), lag, err != nil && ctx.Err() == nil)
			if err != nil && ctx.Err() == nil {
				b.log.Error("reconcile", "err", err)
				next = b.now().Add(time.Second)
				full = true
			}
			due = next
			if !next.IsZero() {
				wait = min(max(next.Sub(b.now()), 10*time.Millisecond), leaseRenew)
				if stuck {
					wait = min(max(wait, stuckWait), leaseRenew)
				}
			}
			wait = min(wait, max(time.Until(t.deadline), 0))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-b.wake:
		case <-b.store.Changes():
			full = true
		case name := <-exited:
			b.HostExited(ctx, name)
			full = true
		case <-timer.C:
			full = true
		}
		timer.Stop()
	}
}

// beginTerm starts a tenure of the lease in generation gen, asked for at
// began.
func (b *Broker) beginTerm(ctx context.Context, gen int64, began time.Time) *term {
	t := &term{gen: gen, deadline: began.Add(leaseTTL - leaseMargin)}
	t.work, t.cancel = context.WithCancel(runtime.WithFence(context.WithoutCancel(ctx), gen))
	var cancelPass context.CancelFunc
	t.pass, cancelPass = context.WithCancel(t.work)
	t.unhook = context.AfterFunc(ctx, cancelPass)
	b.rec.mu.Lock()
	b.rec.work = t.work
	b.rec.mu.Unlock()
	return t
}

// endTerm cancels the work of t, if any, and returns nil.
func (b *Broker) endTerm(t *term) *term {
	if t == nil {
		return nil
	}
	t.unhook()
	t.cancel()
	b.rec.mu.Lock()
	if b.rec.work == t.work {
		b.rec.work = nil
	}
	b.rec.mu.Unlock()
	return nil
}

// checkFence refuses, with store.ErrFenced, the transaction that records
// the effect of work begun under a lease term that has ended since: the
// lease changed hands, and the new leader decides. Work without a fencing
// token (a single portal's shutdown, tests that drive the reconciler by
// hand) is not fenced.
func (b *Broker) checkFence(ctx context.Context, tx store.Tx) error {
	gen := runtime.FenceOf(ctx)
	if gen == 0 {
		return nil
	}
	return tx.CheckLease(leaseName, b.replica, gen)
}

// HostExited ends a session whose host exited by itself (a crash, an
// out-of-memory kill of the host): nobody can use it any more, and its
// place goes back to the pool. The stop that follows clears what is left.
func (b *Broker) HostExited(ctx context.Context, name string) {
	// The host reported may be one of a start this replica lost to a
	// newer leader, who started another in its place: the session goes
	// on while its host does.
	if inst, err := b.runtime.Status(ctx, name); err == nil && inst.Failed == "" {
		b.log.Info("session host exited, but the session's host runs", "session", name)
		return
	}
	err := b.updateQuiet(ctx, func(tx store.Tx, record func(Event)) (bool, error) {
		s, err := tx.Session(name)
		if errors.Is(err, store.ErrNotFound) || err == nil && (s.State == store.Stopping || s.State == store.Stopped) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		b.log.Warn("session host exited", "session", name)
		s.Failure = "session host exited"
		return true, b.endSession(tx, s, b.now(), "Session/Vanished", record)
	})
	if err != nil {
		b.log.Error("ending a session whose host exited", "session", name, "err", err)
	}
}

// lead takes or renews the reconciler lease: its generation, 0 while
// another replica holds it.
func (b *Broker) lead(ctx context.Context) (int64, error) {
	var gen int64
	err := b.store.Update(ctx, func(tx store.Tx) (err error) {
		gen, err = tx.AcquireLease(leaseName, b.replica, leaseTTL)
		return err
	})
	return gen, err
}

func (b *Broker) releaseLead() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.store.Update(ctx, func(tx store.Tx) error { return tx.ReleaseLease(leaseName, b.replica) })
}

// Wait blocks until the starts and stops in flight are done: tests use it
// to reach a settled state.
func (b *Broker) Wait() { b.rec.wg.Wait() }

// replenishPass does what allocations from the reserve leave to do: top
// up the reserves of the environments envs, start the sessions that are
// due (the new reserves) and give the claimed sessions their owners.
func (b *Broker) replenishPass(ctx context.Context, envs []int64, now time.Time) error {
	var errs []error
	for _, id := range envs {
		errs = append(errs, b.reconcileEnvironment(ctx, id, now))
	}
	errs = append(errs, b.launch(ctx, now), b.deliver(ctx))
	return errors.Join(errs...)
}

// Reconcile makes one pass and returns when the next one is due (zero:
// nothing is scheduled). Starts and stops it begins run on after it
// returns.
func (b *Broker) Reconcile(ctx context.Context) (time.Time, error) {
	now := b.now()
	envs, err := b.storeEnvironments(ctx)
	if err != nil {
		return time.Time{}, err
	}
	// Environments are prepared in the runtime before their sessions
	// start (a runtime that needs them also prepares one on demand).
	errs := []error{b.syncEnvironments(ctx, envs)}
	for _, env := range envs {
		errs = append(errs, b.reconcileEnvironment(ctx, env.ID, now))
	}
	errs = append(errs, b.expire(ctx, now), b.checkActivity(ctx, now), b.launch(ctx, now), b.deliver(ctx))
	if now.Sub(b.rec.cleaned) >= cleanupInterval {
		if err := b.cleanup(ctx, now); err != nil {
			errs = append(errs, err)
		} else {
			b.rec.cleaned = now
		}
	}
	var next time.Time
	errs = append(errs, b.store.View(ctx, func(tx store.Tx) error {
		next, err = tx.NextDeadline()
		return err
	}))
	return next, errors.Join(errs...)
}

func (b *Broker) storeEnvironments(ctx context.Context) (envs []store.Environment, err error) {
	err = b.store.View(ctx, func(tx store.Tx) error {
		envs, err = tx.Environments(store.EnvStarting, store.EnvRunning, store.EnvStopping)
		return err
	})
	return envs, err
}

// reconcileEnvironment moves one environment along: STARTING becomes
// RUNNING with its initial sessions, RUNNING keeps its reserve and is
// replaced when its refresh interval has passed, STOPPING becomes STOPPED
// once its last session has ended. Whether there is anything to do is
// found out in a read transaction first, so a pass that finds the
// environment in order takes no write lock.
func (b *Broker) reconcileEnvironment(ctx context.Context, id int64, now time.Time) error {
	var due bool
	err := b.store.View(ctx, func(tx store.Tx) error {
		env, err := tx.EnvironmentByID(id)
		if err != nil {
			return err
		}
		due, err = b.environmentDue(tx, env, now)
		return err
	})
	if err != nil || !due {
		return err
	}
	return b.updateQuiet(ctx, func(tx store.Tx, record func(Event)) (bool, error) {
		env, err := tx.LockEnvironment(id)
		if err != nil {
			return false, err
		}
		// The sessions made or ended here are started or stopped by the
		// same pass (launch comes after): only a replaced environment
		// needs another.
		switch env.State {
		case store.EnvStarting:
			return false, b.startEnvironment(tx, &env, now)
		case store.EnvRunning:
			if refreshDue(env, now) {
				return true, b.replaceEnvironment(tx, env, record)
			}
			if b.Portal().Sessions.Maximum > 0 {
				if err := tx.LockPortal(); err != nil {
					return false, err
				}
			}
			plan, err := b.planReserve(tx, env)
			if err != nil {
				return false, err
			}
			return false, b.applyReserve(tx, &env, plan, now, record)
		case store.EnvStopping:
			if done, err := stoppingDone(tx, env); err != nil || !done {
				return false, err
			}
			env.State = store.EnvStopped
			record(Event{Name: "Environment/Deleted", Time: now, Environment: env.Name, Workshop: env.Key, Data: map[string]any{}})
			return true, tx.UpdateEnvironment(&env)
		}
		return false, nil
	})
}

// startEnvironment makes a new environment RUNNING with its initial
// sessions. The runtimes need nothing per environment yet, so this is
// database work only: the reconciler does it, and so does the first
// request that finds the environment still starting, rather than refuse.
func (b *Broker) startEnvironment(tx store.Tx, env *store.Environment, now time.Time) error {
	env.State = store.EnvRunning
	if err := tx.UpdateEnvironment(env); err != nil {
		return err
	}
	_, err := b.addReserves(tx, env, env.Initial, now)
	return err
}

// environmentDue reports whether reconcileEnvironment has work to do.
func (b *Broker) environmentDue(tx store.Tx, env store.Environment, now time.Time) (bool, error) {
	switch env.State {
	case store.EnvStarting:
		return true, nil
	case store.EnvRunning:
		if refreshDue(env, now) {
			return true, nil
		}
		plan, err := b.planReserve(tx, env)
		return plan != (reservePlan{}), err
	case store.EnvStopping:
		return stoppingDone(tx, env)
	}
	return false, nil
}

func refreshDue(env store.Environment, now time.Time) bool {
	return env.Refresh > 0 && !env.Created.Add(env.Refresh).After(now)
}

// stoppingDone reports whether a stopping environment has no session left.
func stoppingDone(tx store.Tx, env store.Environment) (bool, error) {
	live, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, States: store.Live})
	return live == 0, err
}

// updateQuiet is update for reconciler steps that often find nothing to
// do: it wakes the reconciler again only when fn changed something.
func (b *Broker) updateQuiet(ctx context.Context, fn func(tx store.Tx, record func(Event)) (bool, error)) error {
	var (
		events  []Event
		changed bool
	)
	err := b.store.Update(ctx, func(tx store.Tx) error {
		events = events[:0]
		var err error
		changed, err = fn(tx, func(e Event) { events = append(events, e) })
		if err != nil {
			return err
		}
		return b.keep(tx, events)
	})
	if err != nil {
		return err
	}
	for _, e := range events {
		b.events.Emit(e)
	}
	if changed {
		b.notify()
	}
	return nil
}

// reservePlan is what keeps the reserve of a running environment right:
// at most one of its fields is set.
type reservePlan struct {
	trim  int // surplus reserves of this environment to stop
	evict int // reserves anywhere to stop for the portal maximum
	add   int // reserves to create
}

// planReserve works out how to top the reserve of a running environment up
// to `reserved` within its capacity and the portal maximum, or trim it when
// the settings went down (spec §6.6). A reserve of an environment with
// initial 0 is only built after its first session (lazy start). It only
// reads.
func (b *Broker) planReserve(tx store.Tx, env store.Environment) (reservePlan, error) {
	available, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
		States: []store.SessionState{store.Starting, store.Waiting}})
	if err != nil {
		return reservePlan{}, err
	}
	// The initial batch beyond the reserve stays until it is handed out;
	// past that, the reserve is trimmed to `reserved` (Educates never
	// trimmed at all while initial > reserved). Only then are the sessions
	// handed out counted: every pass plans, and a pass of a portal holding
	// many sessions costs no more than one of a portal holding few.
	keep := env.Reserved
	if env.Initial > env.Reserved {
		handedOut, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Owned})
		if err != nil {
			return reservePlan{}, err
		}
		keep = max(keep, env.Initial-handedOut)
	}
	if available > keep {
		return reservePlan{trim: available - keep}, nil
	}
	portalActive := 0
	max := b.Portal().Sessions.Maximum
	if max > 0 {
		if portalActive, err = tx.CountSessions(store.SessionQuery{States: store.Live}); err != nil {
			return reservePlan{}, err
		}
		if portalActive > max {
			return reservePlan{evict: portalActive - max}, nil
		}
	}
	if env.Reserved <= available || env.Initial == 0 && env.Tally == 0 {
		return reservePlan{}, nil
	}
	active, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, States: store.Live})
	if err != nil {
		return reservePlan{}, err
	}
	add := min(env.Reserved-available, env.Capacity-active)
	if max > 0 {
		add = min(add, max-portalActive)
	}
	return reservePlan{add: add}, nil
}

// applyReserve carries a plan out.
func (b *Broker) applyReserve(tx store.Tx, env *store.Environment, plan reservePlan, now time.Time, record func(Event)) error {
	unowned := []store.SessionState{store.Starting, store.Waiting}
	var err error
	switch {
	case plan.trim > 0:
		_, err = b.stopReserves(tx, store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
			States: unowned, Order: "-created", Limit: plan.trim, Claim: true}, now, record)
	case plan.evict > 0:
		_, err = b.stopReserves(tx, store.SessionQuery{Ownership: store.Unowned,
			States: unowned, Limit: plan.evict, Claim: true}, now, record)
	case plan.add > 0:
		err = b.createReserves(tx, env, plan.add, now)
	}
	return err
}

// addReserves creates up to want reserved sessions within the capacity of
// the environment and the portal maximum: the initial batch.
func (b *Broker) addReserves(tx store.Tx, env *store.Environment, want int, now time.Time) (int, error) {
	active, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, States: store.Live})
	if err != nil {
		return 0, err
	}
	n := min(want, env.Capacity-active)
	if max := b.Portal().Sessions.Maximum; max > 0 && n > 0 {
		if err := tx.LockPortal(); err != nil {
			return 0, err
		}
		all, err := tx.CountSessions(store.SessionQuery{States: store.Live})
		if err != nil {
			return 0, err
		}
		n = min(n, max-all)
	}
	return max(n, 0), b.createReserves(tx, env, n, now)
}

// createReserves inserts n new reserved sessions, numbered with one
// update of the environment's tally rather than one each: a large initial
// reserve on PostgreSQL took two round trips a session, and its
// transaction ran out of time.
func (b *Broker) createReserves(tx store.Tx, env *store.Environment, n int, now time.Time) error {
	if n <= 0 {
		return nil
	}
	first := env.Tally + 1
	env.Tally += n
	if err := tx.UpdateEnvironment(env); err != nil {
		return err
	}
	for k := first; k <= env.Tally; k++ {
		s := b.numberedSession(env, k, now)
		if err := tx.InsertSession(&s); err != nil {
			return err
		}
	}
	return nil
}

// expire ends the sessions whose time is up: running ones at their
// expiry, pending ones at their activation deadline.
func (b *Broker) expire(ctx context.Context, now time.Time) error {
	var due int
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		due, err = tx.CountSessions(store.SessionQuery{ExpiresBy: now,
			States: []store.SessionState{store.Starting, store.Waiting, store.Running}})
		return err
	})
	if err != nil || due == 0 {
		return err
	}
	return b.updateQuiet(ctx, func(tx store.Tx, record func(Event)) (bool, error) {
		due, err := tx.FindSessions(store.SessionQuery{ExpiresBy: now,
			States: []store.SessionState{store.Starting, store.Waiting, store.Running}, Limit: 1000})
		if err != nil {
			return false, err
		}
		for _, s := range due {
			if err := b.endSession(tx, s, now, "Session/Expired", record); err != nil {
				return false, err
			}
		}
		return len(due) > 0, nil
	})
}

// endSession marks a live session as stopping; the reconciler then stops
// its host.
func (b *Broker) endSession(tx store.Tx, s store.Session, now time.Time, event string, record func(Event)) error {
	s.State, s.Expires, s.CheckAt = store.Stopping, now, time.Time{}
	if err := tx.UpdateSession(&s); err != nil {
		return err
	}
	env, err := tx.EnvironmentByID(s.EnvID)
	if err != nil {
		return err
	}
	record(b.sessionEvent(event, s, env, nil))
	return nil
}

// checkActivity asks the hosts of running sessions that are due how long
// they have been idle, and ends the orphaned ones (spec §6.8): idle for
// `orphaned`, or not viewed for three times that. Each session is asked
// about once per `orphaned` interval, with a timeout, outside any
// transaction.
func (b *Broker) checkActivity(ctx context.Context, now time.Time) error {
	var due []store.Session
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		due, err = tx.FindSessions(store.SessionQuery{CheckBy: now, States: []store.SessionState{store.Running}, Limit: 1000})
		return err
	})
	if err != nil || len(due) == 0 {
		return err
	}
	type result struct {
		s   store.Session
		act runtime.Activity
		err error
	}
	results := make([]result, len(due))
	var wg sync.WaitGroup
	for i, s := range due {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			act, err := b.runtime.Activity(pctx, runtime.Instance{Session: s.Name, Address: s.Address})
			results[i] = result{s, act, err}
		})
	}
	wg.Wait()
	return b.updateQuiet(ctx, func(tx store.Tx, record func(Event)) (bool, error) {
		changed := false
		for _, r := range results {
			s, err := tx.Session(r.s.Name)
			if err != nil || s.State != store.Running || s.CheckAt.IsZero() {
				continue // ended or changed meanwhile
			}
			env, err := tx.EnvironmentByID(s.EnvID)
			if err != nil {
				return false, err
			}
			limit := env.Orphaned
			switch {
			case limit <= 0:
				s.CheckAt = time.Time{}
			case r.err != nil:
				b.log.Warn("session activity unknown", "session", s.Name, "err", r.err)
				s.CheckAt = now.Add(min(limit, time.Minute))
			case r.act.Idle >= limit:
				changed = true
				if err := b.endSession(tx, s, now, "Session/Orphaned", record); err != nil {
					return false, err
				}
				continue
			case r.act.LastView >= 3*limit:
				changed = true
				if err := b.endSession(tx, s, now, "Session/Inactive", record); err != nil {
					return false, err
				}
				continue
			default:
				s.CheckAt = now.Add(max(time.Second, min(limit-r.act.Idle, 3*limit-r.act.LastView)))
			}
			if err := tx.UpdateSession(&s); err != nil {
				return false, err
			}
		}
		return changed, nil
	})
}

// launch begins the starts and stops that are due, each in its own
// goroutine, at most maxParallel at a time.
func (b *Broker) launch(ctx context.Context, now time.Time) error {
	var starts, stops []store.Session
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		starts, err = tx.FindSessions(store.SessionQuery{States: []store.SessionState{store.Starting}, StartBy: now, Limit: launchBatch})
		if err != nil {
			return err
		}
		stops, err = tx.FindSessions(store.SessionQuery{States: []store.SessionState{store.Stopping}, Limit: launchBatch})
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range starts {
		b.spawn(ctx, s.Name, func(ctx context.Context) { b.startSession(ctx, s.Name) })
	}
	for _, s := range stops {
		// Under a key of its own: a stop does not wait for a start in
		// flight (a slow setup), whose Start the runtime's Stop aborts.
		b.spawn(ctx, "stop/"+s.Name, func(ctx context.Context) { b.stopSession(ctx, s.Name) })
	}
	return nil
}

// spawn runs fn for a session unless work on that session is already in
// flight in this process. fn runs in the context of the current term's
// work, whatever the context of the pass that began it: cancelled when the
// term ends, not when the pass does.
func (b *Broker) spawn(ctx context.Context, name string, fn func(context.Context)) {
	r := &b.rec
	r.mu.Lock()
	if r.inflight[name] {
		r.mu.Unlock()
		return
	}
	r.inflight[name] = true
	work := r.work
	r.mu.Unlock()
	if work == nil {
		work = context.WithoutCancel(ctx)
	}
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.inflight, name)
			r.mu.Unlock()
		}()
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-r.sem }()
		fn(work)
	})
}

// startSession starts one session's host and records the outcome.
func (b *Broker) startSession(ctx context.Context, name string) {
	var (
		s     store.Session
		env   store.Environment
		owner *runtime.Allocation
	)
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		if s, err = tx.Session(name); err != nil {
			return err
		}
		if env, err = tx.EnvironmentByID(s.EnvID); err != nil {
			return err
		}
		owner, err = allocationOf(tx, s)
		return err
	})
	if err != nil || s.State != store.Starting || s.Address != "" {
		return
	}
	var inst runtime.Instance
	spec, startErr := b.spec(s, env)
	if startErr == nil {
		spec.Owner = owner
		sctx, cancel := context.WithTimeout(ctx, startTimeout)
		began := time.Now()
		inst, startErr = b.runtime.Start(sctx, spec)
		took := time.Since(began)
		cancel()
		switch {
		case startErr == nil:
			b.observe.SessionStarted(env.Name, took)
		case !errors.Is(startErr, runtime.ErrBusy):
			b.observe.SessionStartFailed(env.Name)
		}
	}
	if errors.Is(startErr, runtime.ErrFenced) {
		b.log.Warn("session start given up: a newer leader has the session", "session", name)
		return
	}
	if startErr != nil && ctx.Err() != nil {
		// The term ended (the lease is gone or may be): the start was
		// cut short, which is no failure of the session, and the runtime
		// left nothing of it.
		b.log.Warn("session start cancelled: the reconciler lease is lost", "session", name)
		return
	}
	startedFor := s.Owner
	orphan := false
	var started store.Session
	// Recorded whether or not the term has ended meanwhile: the fence
	// decides, not the cancellation, so a host that started is either
	// recorded or undone.
	err = b.updateQuiet(context.WithoutCancel(ctx), func(tx store.Tx, record func(Event)) (bool, error) {
		if err := b.checkFence(ctx, tx); err != nil {
			return false, err
		}
		s, err := tx.Session(name)
		if errors.Is(err, store.ErrNotFound) {
			orphan = startErr == nil
			return false, nil
		}
		if err != nil {
			return false, err
		}
		now := b.now()
		if s.State != store.Starting {
			// Ended while starting: the instance must go too, unless the
			// session is stopping (the reconciler stops it) or another
			// replica took over and recorded this very host as its own.
			orphan = startErr == nil && s.State == store.Stopped
			return false, nil
		}
		if errors.Is(startErr, runtime.ErrBusy) {
			// Another replica still works on it (a leader that stalled
			// and lost its lease): not a failure, look again shortly.
			s.RetryAt = now.Add(busyRetry)
			return true, tx.UpdateSession(&s)
		}
		if startErr != nil {
			b.startFailed(&s, startErr, now)
			if s.State == store.Stopped {
				record(b.sessionEvent("Session/Failed", s, env, map[string]any{"reason": s.Failure}))
			}
			return true, tx.UpdateSession(&s)
		}
		s.Address, s.Failure, s.Attempts, s.RetryAt = inst.Address, "", 0, time.Time{}
		// An owner who claimed the session while it started is not in
		// the spec: deliver handles them.
		s.Delivered = s.Owner != 0 && s.Owner == startedFor
		switch {
		case s.Owner == 0, !s.Activated:
			s.State = store.Waiting
		default:
			markRunning(&s, &env, now)
		}
		record(b.sessionEvent("Session/Created", s, env, nil))
		started = s
		// What a started session leaves to do is delivering it to an
		// owner who claimed it meanwhile and keeping its new deadlines:
		// no full pass.
		return false, tx.UpdateSession(&started)
	})
	if err == nil && started.Name != "" {
		b.replenish(0, earliest(started.Expires, started.CheckAt))
	}
	switch {
	case errors.Is(err, store.ErrFenced):
		b.log.Warn("session start not recorded: the reconciler lease went to another replica", "session", name)
		// Undone where the runtime refuses the stop once the new leader
		// has the session; elsewhere the new leader adopts the host.
		if _, ok := b.runtime.(runtime.Fencer); ok && startErr == nil {
			b.undoStart(ctx, name)
		}
		return
	case err != nil:
		b.log.Error("recording session start", "session", name, "err", err)
	}
	if orphan {
		if err := b.runtime.Stop(ctx, name); err != nil {
			b.log.Error("stopping session that ended while it started", "session", name, "err", err)
		}
	}
}

// earliest is the earlier of two times, zero meaning unset.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// undoStart stops the host a start whose term ended made, unless a newer
// leader has taken the session over (runtime.ErrFenced): then the host,
// if it still runs, is the new leader's to adopt or stop.
func (b *Broker) undoStart(ctx context.Context, name string) {
	// The term's work is cancelled by now; the undo still has to run.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	switch err := b.runtime.Stop(sctx, name); {
	case errors.Is(err, runtime.ErrFenced), errors.Is(err, runtime.ErrBusy):
		b.log.Info("session left to the new leader", "session", name)
	case err != nil:
		b.log.Error("undoing a session start", "session", name, "err", err)
	}
}

// allocationOf is what the session host is told about the owner of s; nil
// for a reserved session.
func allocationOf(tx store.Tx, s store.Session) (*runtime.Allocation, error) {
	if s.Owner == 0 {
		return nil, nil
	}
	u, err := tx.UserByID(s.Owner)
	if err != nil {
		return nil, err
	}
	return &runtime.Allocation{
		User:   runtime.User{Username: u.Username, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName},
		Params: envOf(s.Params),
	}, nil
}

// deliver gives the hosts of sessions handed out from the reserve their
// owner and request parameters. It is not on the request path: the
// allocation commits at once and wakes the reconciler, which posts to the
// host; the host holds the person's first shell until it has them.
func (b *Broker) deliver(ctx context.Context) error {
	var due []store.Session
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		due, err = tx.FindSessions(store.SessionQuery{Undelivered: true,
			States: []store.SessionState{store.Waiting, store.Running}, Limit: launchBatch})
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range due {
		b.spawn(ctx, s.Name, func(ctx context.Context) { b.deliverSession(ctx, s.Name) })
	}
	return nil
}

func (b *Broker) deliverSession(ctx context.Context, name string) {
	var (
		s     store.Session
		alloc *runtime.Allocation
	)
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		if s, err = tx.Session(name); err != nil {
			return err
		}
		alloc, err = allocationOf(tx, s)
		return err
	})
	if err != nil || alloc == nil || s.Delivered || s.Address == "" {
		return
	}
	password, err := b.configPassword(s)
	if err != nil {
		b.log.Error("giving the session its owner", "session", name, "err", err)
		return
	}
	inst := runtime.Instance{Session: s.Name, Address: s.Address}
	if err := b.runtime.Allocate(ctx, inst, password, *alloc); err != nil {
		b.log.Warn("giving the session its owner", "session", name, "err", err)
		return // the next pass tries again
	}
	// A delivery is idempotent: one refused here is made again by the new
	// leader.
	err = b.updateQuiet(context.WithoutCancel(ctx), func(tx store.Tx, record func(Event)) (bool, error) {
		if err := b.checkFence(ctx, tx); err != nil {
			return false, err
		}
		cur, err := tx.Session(name)
		if err != nil || cur.Owner != s.Owner || cur.Delivered {
			return false, err
		}
		cur.Delivered = true
		return false, tx.UpdateSession(&cur)
	})
	if err != nil && !errors.Is(err, store.ErrFenced) {
		b.log.Error("recording delivery", "session", name, "err", err)
	}
	if err == nil {
		// The sessions a pass left for later (launchBatch).
		b.replenish(0, time.Time{})
	}
}

// startFailed records a failed start: a reserved session tries again
// later, backing off; a session somebody owns is tried a few times and then
// ends with the reason, so it never holds capacity forever. A failed start
// leaves no process behind (the runtime cleans up), so it ends at once.
func (b *Broker) startFailed(s *store.Session, err error, now time.Time) {
	s.Attempts++
	s.Failure = err.Error()
	b.log.Warn("session start failed", "session", s.Name, "attempt", s.Attempts, "err", err)
	if s.Owner != 0 && s.Attempts >= startAttempts {
		s.State, s.Expires = store.Stopped, now
		return
	}
	backoff := min(time.Second<<min(s.Attempts-1, 16), maxBackoff)
	s.RetryAt = now.Add(backoff)
}

// markRunning starts the clock of a session its owner now has.
func markRunning(s *store.Session, env *store.Environment, now time.Time) {
	s.State, s.Started, s.Expires = store.Running, now, expiry(env, now)
	s.CheckAt = time.Time{}
	if env.Orphaned > 0 {
		s.CheckAt = now.Add(env.Orphaned)
	}
}

// stopSession stops one session's host and marks the session STOPPED.
func (b *Broker) stopSession(ctx context.Context, name string) {
	if err := b.runtime.Stop(ctx, name); err != nil {
		if !errors.Is(err, runtime.ErrBusy) && !errors.Is(err, runtime.ErrFenced) {
			b.log.Error("stopping session", "session", name, "err", err)
		}
		return // still STOPPING: the next pass tries again
	}
	// A stop refused here is made again, harmlessly, by the new leader.
	err := b.updateQuiet(context.WithoutCancel(ctx), func(tx store.Tx, record func(Event)) (bool, error) {
		if err := b.checkFence(ctx, tx); err != nil {
			return false, err
		}
		s, err := tx.Session(name)
		if err != nil || s.State != store.Stopping {
			return false, err
		}
		s.State, s.Address, s.CheckAt = store.Stopped, "", time.Time{}
		if s.Owner != 0 {
			env, err := tx.EnvironmentByID(s.EnvID)
			if err != nil {
				return false, err
			}
			record(b.sessionEvent("Session/Deleted", s, env, nil))
		}
		return true, tx.UpdateSession(&s)
	})
	if err != nil && !errors.Is(err, store.ErrFenced) {
		b.log.Error("recording session stop", "session", name, "err", err)
	}
}

// spec is what the runtime needs to start a session.
func (b *Broker) spec(s store.Session, env store.Environment) (runtime.Spec, error) {
	password, err := b.configPassword(s)
	if err != nil {
		return runtime.Spec{}, err
	}
	portal := b.Portal()
	vars := slices.Concat(envOf(env.Workshop.SessionEnv), envOf(env.Env), envOf(s.Params))
	return runtime.Spec{
		Session:             s.Name,
		ID:                  s.ID,
		Environment:         env.Name,
		Workshop:            env.Workshop.Name,
		WorkshopTitle:       env.Workshop.Title,
		WorkshopDescription: env.Workshop.Description,
		WorkshopFiles:       env.Workshop.Files,
		Applications:        env.Workshop.Applications,
		Dashboards:          env.Workshop.Dashboards,
		Ingresses:           env.Workshop.Ingresses,
		Limits: runtime.Limits{Memory: env.Workshop.Resources.Memory,
			CPUMilli: env.Workshop.Resources.CPUMilli, Processes: env.Workshop.Resources.Processes,
			Storage: env.Workshop.Resources.Storage},
		Offline:        env.Workshop.Offline,
		Portal:         portal.Name,
		PortalURL:      b.url,
		SessionURL:     b.SessionURL(s.Name),
		ConfigPassword: password,
		Env:            vars,
		WorkshopDir:    env.Workshop.Dir,
		Cluster: runtime.Cluster{
			Image:          env.Workshop.Image,
			Budget:         env.Workshop.Budget,
			SessionObjects: env.Workshop.SessionObjects,
			RequestObjects: env.Workshop.RequestObjects,
		},
	}, nil
}

// syncEnvironments tells a runtime that keeps something per environment
// which environments live: those starting, running, or stopping with
// sessions left. Outside any transaction, as it may call a cluster.
func (b *Broker) syncEnvironments(ctx context.Context, envs []store.Environment) error {
	er, ok := b.runtime.(runtime.EnvironmentRuntime)
	if !ok {
		return nil
	}
	want := make([]runtime.EnvironmentSpec, 0, len(envs))
	for _, env := range envs {
		want = append(want, runtime.EnvironmentSpec{Name: env.Name, Workshop: env.Workshop.Name,
			Portal: b.Portal().Name, Objects: env.Workshop.EnvironmentObjects})
	}
	return er.SyncEnvironments(ctx, want)
}

// cleanup deletes what is kept no longer: ended sessions and anonymous
// users without sessions after 36 hours, expired tokens.
func (b *Broker) cleanup(ctx context.Context, now time.Time) error {
	return b.store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.DeleteStoppedSessions(now.Add(-retention)); err != nil {
			return err
		}
		if _, err := tx.DeleteIdleAnonymousUsers(now.Add(-retention)); err != nil {
			return err
		}
		_, err := tx.DeleteExpiredTokens(now)
		return err
	})
}

// Adopt reconciles the runtime's instances with the database after a start
// of the portal: instances of ended or unknown sessions are stopped, and
// sessions whose host is gone end (reserved ones are replaced).
func (b *Broker) Adopt(ctx context.Context) error {
	insts, err := b.runtime.List(ctx)
	if err != nil {
		return err
	}
	have := make(map[string]runtime.Instance, len(insts))
	for _, inst := range insts {
		have[inst.Session] = inst
	}
	var (
		stop    []string
		adopted int
	)
	err = b.update(ctx, func(tx store.Tx, record func(Event)) error {
		stop, adopted = stop[:0], 0
		if err := b.checkFence(ctx, tx); err != nil {
			return err
		}
		live, err := tx.FindSessions(store.SessionQuery{States: store.Live})
		if err != nil {
			return err
		}
		now := b.now()
		known := make(map[string]bool, len(live))
		for _, s := range live {
			known[s.Name] = true
			inst, ok := have[s.Name]
			switch {
			case s.State == store.Stopping:
				// the reconciler stops it
			case s.State == store.Starting:
				// The reconciler starts it: runtime.Start adopts a host
				// that came up while the portal was down, and clears what
				// a start cut short left behind.
			case !ok || inst.Failed != "":
				b.log.Warn("session host lost", "session", s.Name)
				s.State, s.Expires, s.Failure, s.Address = store.Stopped, now, "session host lost", ""
				if ok {
					stop = append(stop, s.Name)
				}
				if err := tx.UpdateSession(&s); err != nil {
					return err
				}
				env, err := tx.EnvironmentByID(s.EnvID)
				if err != nil {
					return err
				}
				record(b.sessionEvent("Session/Vanished", s, env, nil))
			case s.Address != inst.Address:
				adopted++
				s.Address = inst.Address
				if err := tx.UpdateSession(&s); err != nil {
					return err
				}
			default:
				adopted++
			}
		}
		for name := range have {
			if !known[name] {
				stop = append(stop, name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// What an operator looks for after a restart: the sessions that lived
	// through it, and those that did not (logged above).
	b.log.Info("sessions adopted", "running", adopted, "leftover_stopped", len(stop))
	for _, name := range stop {
		if err := b.runtime.Stop(ctx, name); err != nil {
			b.log.Error("stopping session left from before", "session", name, "err", err)
		}
	}
	return nil
}

// EndAll ends every live session and waits until their hosts are stopped:
// what a single portal does when it shuts down, since nobody could reach
// its sessions any more. Replicas sharing a database leave them to the
// others instead.
func (b *Broker) EndAll(ctx context.Context) error {
	var live []store.Session
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		var err error
		if live, err = tx.FindSessions(store.SessionQuery{States: store.Live}); err != nil {
			return err
		}
		now := b.now()
		for _, s := range live {
			if s.State == store.Stopping {
				continue
			}
			if err := b.endSession(tx, s, now, "Session/Terminate", record); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallel)
	for _, s := range live {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b.stopSession(ctx, s.Name)
		})
	}
	wg.Wait()
	return nil
}
