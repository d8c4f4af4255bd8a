// Package noop is a runtime.Runtime whose sessions are rows only: no
// process, no files, nothing listening. Start returns at once with a
// placeholder address, Stop forgets the session, and Activity always
// reports a session in use.
//
// It is for measuring the portal alone and for load tests; sessions do
// nothing. A portal restarted on it finds no session instances, so it
// ends the sessions it had (as "session host lost").
package noop

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/portico-dev/portico/internal/runtime"
)

// Runtime keeps its sessions in memory. The zero value is not usable; call
// New.
type Runtime struct {
	mu       sync.RWMutex
	sessions map[string]runtime.Instance
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a runtime with no sessions.
func New() *Runtime {
	return &Runtime{sessions: make(map[string]runtime.Instance)}
}

// Address is the placeholder address of a session: it names the session
// and cannot be reached.
func Address(session string) string { return session + ".noop.invalid:0" }

// Start records the session as ready, at once. Starting a running session
// returns it as it is.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if err := ctx.Err(); err != nil {
		return runtime.Instance{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst, ok := r.sessions[spec.Session]; ok {
		return inst, nil
	}
	inst := runtime.Instance{Session: spec.Session, Address: Address(spec.Session), Ready: true}
	r.sessions[spec.Session] = inst
	return inst, nil
}

// Stop forgets the session; an unknown session is fine.
func (r *Runtime) Stop(ctx context.Context, session string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sessions, session)
	return nil
}

// Status reports a started session, or runtime.ErrNotFound.
func (r *Runtime) Status(ctx context.Context, session string) (runtime.Instance, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	inst, ok := r.sessions[session]
	if !ok {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	return inst, nil
}

// Allocate accepts the owner of a started session and records nothing;
// runtime.ErrNotFound for a session that is not started.
func (r *Runtime) Allocate(ctx context.Context, inst runtime.Instance, secret string, a runtime.Allocation) error {
	_, err := r.Status(ctx, inst.Session)
	return err
}

// Activity reports a session in use this instant (zero idle), so the
// portal never ends one as orphaned; runtime.ErrNotFound for a session that
// is not started.
func (r *Runtime) Activity(ctx context.Context, inst runtime.Instance) (runtime.Activity, error) {
	_, err := r.Status(ctx, inst.Session)
	return runtime.Activity{}, err
}

// List reports every started session, sorted by name.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	r.mu.RLock()
	list := make([]runtime.Instance, 0, len(r.sessions))
	for _, inst := range r.sessions {
		list = append(list, inst)
	}
	r.mu.RUnlock()
	slices.SortFunc(list, func(a, b runtime.Instance) int { return strings.Compare(a.Session, b.Session) })
	return list, nil
}
