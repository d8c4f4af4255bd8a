// Package runtimetest provides an in-memory runtime.Runtime for tests of the
// packages that drive sessions: no processes, failures and delays on demand,
// and a record of every call.
package runtimetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

// Call is one recorded call of a runtime method.
type Call struct {
	Method  string // Start, Stop, Status, Activity or List
	Session string // empty for List
}

// Runtime is a fake runtime.Runtime. The zero value is not usable; call New.
type Runtime struct {
	mu         sync.Mutex
	instances  map[string]runtime.Instance
	activity   map[string]runtime.Activity
	allocs     map[string]runtime.Allocation
	failNext   []error
	startErr   map[string]error
	startDelay map[string]time.Duration
	stops      map[string]int // Stops so far, to abort the Starts they overtake
	specs      map[string]runtime.Spec
	fences     map[string]int64 // the newest fencing token seen per session
	holds      map[string]chan struct{}
	held       map[string]chan struct{}
	calls      []Call
	exited     chan string
}

var (
	_ runtime.Fencer      = (*Runtime)(nil)
	_ runtime.ExitWatcher = (*Runtime)(nil)
)

// exitedBuffer is how many exits Exited holds for a reader that does not
// keep up; Exit drops what does not fit rather than block.
const exitedBuffer = 1024

// New returns a fake runtime with no sessions.
func New() *Runtime {
	return &Runtime{
		instances:  make(map[string]runtime.Instance),
		activity:   make(map[string]runtime.Activity),
		allocs:     make(map[string]runtime.Allocation),
		startErr:   make(map[string]error),
		startDelay: make(map[string]time.Duration),
		stops:      make(map[string]int),
		specs:      make(map[string]runtime.Spec),
		fences:     make(map[string]int64),
		holds:      make(map[string]chan struct{}),
		held:       make(map[string]chan struct{}),
		exited:     make(chan string, exitedBuffer),
	}
}

// FailNext makes the next Start, of any session, fail with err. Calls queue:
// FailNext(a); FailNext(b) fails the next two Starts.
func (f *Runtime) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = append(f.failNext, err)
}

// FailStart makes every Start of session fail with err; nil clears it.
func (f *Runtime) FailStart(session string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.startErr, session)
	} else {
		f.startErr[session] = err
	}
}

// SetStartDelay makes every Start of session take d, or until its context
// ends, before it succeeds or fails.
func (f *Runtime) SetStartDelay(session string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startDelay[session] = d
}

// HoldStart makes the next Start of session stop before it does anything,
// as a portal frozen in the middle of a start would, until release is
// called or its context ends. held is closed once that Start is held.
func (f *Runtime) HoldStart(session string) (held <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, r := make(chan struct{}), make(chan struct{})
	f.held[session], f.holds[session] = h, r
	var once sync.Once
	return h, func() { once.Do(func() { close(r) }) }
}

// HonoursFences: Start and Stop refuse a fencing token older than the
// newest seen on the session, as the local runtime does.
func (f *Runtime) HonoursFences() {}

// fence takes the token of ctx for session, or fails with
// runtime.ErrFenced when a newer one was seen. f.mu is held.
func (f *Runtime) fence(ctx context.Context, session string) error {
	token := runtime.FenceOf(ctx)
	if token == 0 {
		return nil
	}
	if token < f.fences[session] {
		return runtime.ErrFenced
	}
	f.fences[session] = token
	return nil
}

// SetActivity sets what Activity reports for session; zero until set.
func (f *Runtime) SetActivity(session string, a runtime.Activity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activity[session] = a
}

// Exit marks a running session as failed with reason, as when its host dies,
// and sends its name on Exited (without blocking: a full channel drops it).
// It reports whether the session was running.
func (f *Runtime) Exit(session, reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst, ok := f.instances[session]
	if !ok {
		return false
	}
	f.instances[session] = runtime.Instance{Session: session, Address: inst.Address, Failed: reason}
	select {
	case f.exited <- session:
	default:
	}
	return true
}

// Exited delivers the sessions passed to Exit.
func (f *Runtime) Exited() <-chan string { return f.exited }

// Spec returns the spec of the last Start of session that succeeded.
func (f *Runtime) Spec(session string) (runtime.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[session]
	return s, ok
}

// Running returns the names of the sessions started and neither stopped
// nor exited, sorted.
func (f *Runtime) Running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for name, inst := range f.instances {
		if inst.Failed == "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Calls returns the calls made so far, in order.
func (f *Runtime) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Start succeeds at once unless a failure or a delay is configured. A
// session that is running is returned as it is. As in the real runtimes, a
// Stop during the delay makes the Start fail.
func (f *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: "Start", Session: spec.Session})
	delay, stops := f.startDelay[spec.Session], f.stops[spec.Session]
	held, hold := f.held[spec.Session], f.holds[spec.Session]
	delete(f.held, spec.Session)
	delete(f.holds, spec.Session)
	f.mu.Unlock()

	if hold != nil {
		close(held)
		select {
		case <-hold:
		case <-ctx.Done():
			return runtime.Instance{}, context.Cause(ctx)
		}
	}

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return runtime.Instance{}, context.Cause(ctx)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stops[spec.Session] != stops {
		return runtime.Instance{}, errors.New("session stopped while starting")
	}
	if err := f.fence(ctx, spec.Session); err != nil {
		return runtime.Instance{}, err
	}
	if len(f.failNext) > 0 {
		err := f.failNext[0]
		f.failNext = f.failNext[1:]
		return runtime.Instance{}, err
	}
	if err := f.startErr[spec.Session]; err != nil {
		return runtime.Instance{}, err
	}
	if inst, ok := f.instances[spec.Session]; ok && inst.Failed == "" {
		return inst, nil
	}
	inst := runtime.Instance{Session: spec.Session, Address: spec.Session + ".invalid:80", Ready: true}
	f.instances[spec.Session] = inst
	f.specs[spec.Session] = spec
	if spec.Owner != nil {
		f.allocs[spec.Session] = *spec.Owner
	}
	return inst, nil
}

// Stop forgets the session; unknown sessions are fine.
func (f *Runtime) Stop(ctx context.Context, session string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "Stop", Session: session})
	if err := f.fence(ctx, session); err != nil {
		return err
	}
	f.stops[session]++
	delete(f.instances, session)
	return nil
}

// Status reports the session, or runtime.ErrNotFound.
func (f *Runtime) Status(ctx context.Context, session string) (runtime.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "Status", Session: session})
	inst, ok := f.instances[session]
	if !ok {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	return inst, nil
}

// Allocate records the allocation of a running session; the owner given
// at Start counts too. runtime.ErrNotFound for a session not running.
func (f *Runtime) Allocate(ctx context.Context, inst runtime.Instance, secret string, a runtime.Allocation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "Allocate", Session: inst.Session})
	if _, ok := f.instances[inst.Session]; !ok {
		return runtime.ErrNotFound
	}
	f.allocs[inst.Session] = a
	return nil
}

// Allocation returns what the session was given by Allocate or at Start.
func (f *Runtime) Allocation(session string) (runtime.Allocation, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.allocs[session]
	return a, ok
}

// Activity reports what SetActivity set; runtime.ErrNotFound for a session
// that is not running.
func (f *Runtime) Activity(ctx context.Context, inst runtime.Instance) (runtime.Activity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "Activity", Session: inst.Session})
	if cur, ok := f.instances[inst.Session]; !ok || cur.Failed != "" {
		return runtime.Activity{}, runtime.ErrNotFound
	}
	return f.activity[inst.Session], nil
}

// List reports every session, sorted by name.
func (f *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, Call{Method: "List"})
	list := make([]runtime.Instance, 0, len(f.instances))
	for _, inst := range f.instances {
		list = append(list, inst)
	}
	slices.SortFunc(list, func(a, b runtime.Instance) int { return strings.Compare(a.Session, b.Session) })
	return list, nil
}
