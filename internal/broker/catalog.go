package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/portico-dev/portico/internal/store"
)

// PortalView is the portal as the catalog shows it.
type PortalView struct {
	Name       string
	UID        string
	URL        string
	Generation int64
	Labels     map[string]string
	Maximum    int
	Registered int
	Anonymous  int
	Allocated  int
}

// EnvironmentView is an environment with its counts and, when asked for,
// its allocated sessions.
type EnvironmentView struct {
	Environment store.Environment
	Allocated   int // owned and not ended
	Available   int // reserved and ready
	Sessions    []HeldView
}

// HeldView is an allocated session in a listing of thousands: the columns
// listings show and its schedule, no more.
type HeldView struct {
	store.Held
	Schedule Schedule
}

// CatalogQuery filters the catalog (spec §7.2).
type CatalogQuery struct {
	States   []store.EnvState // default: RUNNING
	Names    []string         // workshop names
	Labels   map[string]string
	Sessions bool // include allocated sessions
}

// Catalog lists environments.
func (b *Broker) Catalog(ctx context.Context, q CatalogQuery) (PortalView, []EnvironmentView, error) {
	var (
		pv    PortalView
		views []EnvironmentView
	)
	if len(q.States) == 0 {
		q.States = []store.EnvState{store.EnvRunning}
	}
	err := b.store.View(ctx, func(tx store.Tx) error {
		counts, err := tx.SessionCounts()
		if err != nil {
			return err
		}
		pv = b.portalView(counts)
		envs, err := tx.Environments(q.States...)
		if err != nil {
			return err
		}
		views = views[:0]
		for _, env := range envs {
			if !matches(env, q) {
				continue
			}
			v, err := b.environmentView(tx, env, counts[env.ID], q.Sessions)
			if err != nil {
				return err
			}
			views = append(views, v)
		}
		return nil
	})
	return pv, views, err
}

func matches(env store.Environment, q CatalogQuery) bool {
	if len(q.Names) > 0 && !slices.Contains(q.Names, env.Workshop.Name) {
		return false
	}
	for k, v := range q.Labels {
		if got, ok := env.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (b *Broker) portalView(counts map[int64]store.SessionCounts) PortalView {
	p := b.Portal()
	allocated := 0
	for _, c := range counts {
		allocated += c.Allocated
	}
	labels := p.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return PortalView{Name: p.Name, UID: PortalUID(p.Name), URL: b.url, Generation: p.Generation, Labels: labels,
		Maximum: p.Sessions.Maximum, Registered: p.Sessions.Registered, Anonymous: p.Sessions.Anonymous,
		Allocated: allocated}
}

func (b *Broker) environmentView(tx store.Tx, env store.Environment, counts store.SessionCounts, sessions bool) (EnvironmentView, error) {
	v := EnvironmentView{Environment: env, Allocated: counts.Allocated, Available: counts.Available}
	if !sessions {
		return v, nil
	}
	v.Sessions = make([]HeldView, 0, counts.Allocated)
	err := tx.EachHeld(env.ID, func(h store.Held) error {
		sc := b.schedule(store.Session{State: h.State, Started: h.Started, Expires: h.Expires}, env)
		v.Sessions = append(v.Sessions, HeldView{Held: h, Schedule: sc})
		return nil
	})
	return v, err
}

// EnvironmentStatus is one environment for a robot (spec §7.4).
func (b *Broker) EnvironmentStatus(ctx context.Context, caller store.User, name string, sessions bool) (PortalView, EnvironmentView, error) {
	var (
		pv PortalView
		v  EnvironmentView
	)
	if caller.Role != store.RoleRobot && caller.Role != store.RoleAdmin {
		return pv, v, errorf(Forbidden, "Status requests not permitted")
	}
	err := b.store.View(ctx, func(tx store.Tx) error {
		env, err := tx.Environment(name)
		if err != nil {
			return notFound(err, "Environment does not exist")
		}
		counts, err := tx.SessionCounts()
		if err != nil {
			return err
		}
		pv = b.portalView(counts)
		v, err = b.environmentView(tx, env, counts[env.ID], sessions)
		return err
	})
	return pv, v, err
}

// UserSessions lists the sessions a user has across the portal that have
// not begun to end (spec §7.12).
func (b *Broker) UserSessions(ctx context.Context, caller store.User, username string) ([]SessionView, error) {
	if caller.Role != store.RoleRobot && caller.Role != store.RoleAdmin {
		return nil, errorf(Forbidden, "Session requests not permitted")
	}
	var out []SessionView
	err := b.store.View(ctx, func(tx store.Tx) error {
		u, err := tx.User(username)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err = b.heldBy(tx, u)
		return err
	})
	return out, err
}

// OwnSessions lists the sessions user holds that have not begun to end:
// the catalog page marks them.
func (b *Broker) OwnSessions(ctx context.Context, user store.User) ([]SessionView, error) {
	var out []SessionView
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		out, err = b.heldBy(tx, user)
		return err
	})
	return out, err
}

func (b *Broker) heldBy(tx store.Tx, u store.User) ([]SessionView, error) {
	list, err := tx.FindSessions(store.SessionQuery{Owner: u.ID,
		States: []store.SessionState{store.Starting, store.Waiting, store.Running}})
	if err != nil {
		return nil, err
	}
	return b.sessionViews(tx, list)
}

// PortalUID gives the portal a stable UID. Educates shows the Kubernetes
// uid of the TrainingPortal; here there is no resource, so one is derived
// from the name, in the form of a version 5 UUID.
func PortalUID(name string) string {
	h := sha256.Sum256([]byte("portico portal " + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
