package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Apply brings the environments in the database in line with definitions,
// as Educates processes a TrainingPortal (spec §5.2–§5.5): new entries get
// an environment, changed limits and timings update the running one, a
// changed workshop (with portal.updates.workshop) or a changed alias
// replaces it, and a removed entry stops it. Sessions already allocated
// keep running until they end. defs become the definitions in force only
// once they are applied.
func (b *Broker) Apply(ctx context.Context, defs *config.Definitions) error {
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		live, err := tx.Environments(store.EnvStarting, store.EnvRunning)
		if err != nil {
			return err
		}
		byKey := make(map[string]store.Environment, len(live))
		for _, e := range live {
			byKey[e.Key] = e
		}
		kept := make(map[int64]bool)
		for _, entry := range defs.Portal.Entries {
			ws := defs.Workshops[entry.Name]
			want := environmentOf(defs.Portal, entry, ws)
			env, ok := byKey[entry.Key()]
			if ok && env.Workshop.Name == entry.Name &&
				(!defs.Portal.UpdateWorkshop || env.Workshop.Fingerprint == ws.Fingerprint) {
				kept[env.ID] = true
				if err := updateEnvironment(tx, &env, want); err != nil {
					return err
				}
				continue
			}
			if ok {
				kept[env.ID] = true
				if err := b.stopEnvironment(tx, env, record); err != nil {
					return err
				}
			}
			if err := b.createEnvironment(tx, defs.Portal.Name, want, record); err != nil {
				return err
			}
		}
		for _, env := range live {
			if !kept[env.ID] {
				if err := b.stopEnvironment(tx, env, record); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.defs.Store(defs)
	return nil
}

// environmentOf is the environment a portal entry asks for.
func environmentOf(p config.Portal, entry config.Entry, ws *config.Workshop) store.Environment {
	labels := maps.Clone(p.DefaultLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, ws.Labels)
	maps.Copy(labels, entry.Labels)
	return store.Environment{
		Key:      entry.Key(),
		Workshop: *ws,
		Position: entry.Position,
		Capacity: entry.Capacity,
		Initial:  entry.Initial,
		Reserved: entry.Reserved,
		Expires:  entry.Expires,
		Overtime: entry.Overtime,
		Deadline: entry.Deadline,
		Orphaned: entry.Orphaned,
		Overdue:  entry.Overdue,
		Refresh:  entry.Refresh,
		Env:      entry.Env,
		Labels:   labels,
	}
}

// updateEnvironment applies changed settings to a live environment (spec
// §5.4). Sessions already running keep the expiry they have.
func updateEnvironment(tx store.Tx, env *store.Environment, want store.Environment) error {
	before := *env
	// Educates changed initial only while starting; here a lower initial
	// also lets a running environment trim its surplus (planReserve).
	env.Position, env.Capacity, env.Reserved, env.Initial = want.Position, want.Capacity, want.Reserved, want.Initial
	env.Expires, env.Overtime, env.Deadline = want.Expires, want.Overtime, want.Deadline
	env.Orphaned, env.Overdue, env.Refresh = want.Orphaned, want.Overdue, want.Refresh
	env.Env, env.Labels = want.Env, want.Labels
	if env.Workshop.Fingerprint == want.Workshop.Fingerprint {
		env.Workshop = want.Workshop // same spec; the file may have moved
	}
	if fmt.Sprint(before) == fmt.Sprint(*env) {
		return nil
	}
	return tx.UpdateEnvironment(env)
}

// createEnvironment inserts a new environment in STARTING; the reconciler
// makes it RUNNING and creates its initial sessions.
func (b *Broker) createEnvironment(tx store.Tx, portal string, env store.Environment, record func(Event)) error {
	env.ID, env.Version, env.Tally = 0, 0, 0
	env.State, env.Created = store.EnvStarting, b.now()
	// The name carries the row id, known only after the insert.
	env.Name = portal + "-w-new-" + secret.Alnum(8)
	if err := tx.InsertEnvironment(&env); err != nil {
		return err
	}
	env.Name = fmt.Sprintf("%s-w%02d", portal, env.ID)
	if err := tx.UpdateEnvironment(&env); err != nil {
		return err
	}
	record(Event{Name: "Environment/Created", Time: env.Created, Environment: env.Name, Workshop: env.Key, Data: map[string]any{}})
	return nil
}

// stopEnvironment takes an environment out of service: no new sessions,
// its reserved sessions end now, allocated ones run until they end.
func (b *Broker) stopEnvironment(tx store.Tx, env store.Environment, record func(Event)) error {
	env.State, env.Capacity, env.Reserved = store.EnvStopping, 0, 0
	if err := tx.UpdateEnvironment(&env); err != nil {
		return err
	}
	record(Event{Name: "Environment/Terminate", Time: b.now(), Environment: env.Name, Workshop: env.Key, Data: map[string]any{}})
	_, err := b.stopReserves(tx, store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
		States: []store.SessionState{store.Starting, store.Waiting}}, b.now(), record)
	return err
}

// replaceEnvironment stops an environment and starts a fresh one of the
// same workshop under a new name: refresh, and the staff action.
func (b *Broker) replaceEnvironment(tx store.Tx, env store.Environment, record func(Event)) error {
	defs := b.defs.Load()
	next := env
	if ws, ok := defs.Workshops[env.Workshop.Name]; ok {
		next.Workshop = *ws
	}
	if err := b.stopEnvironment(tx, env, record); err != nil {
		return err
	}
	return b.createEnvironment(tx, defs.Portal.Name, next, record)
}

// Replace replaces a live environment by a fresh one (staff action).
func (b *Broker) Replace(ctx context.Context, caller store.User, name string) error {
	if caller.Role != store.RoleAdmin {
		return errorf(Forbidden, "Only staff may replace environments")
	}
	return b.update(ctx, func(tx store.Tx, record func(Event)) error {
		env, err := tx.Environment(name)
		if err != nil {
			return notFound(err, "Environment does not exist")
		}
		if env.State != store.EnvStarting && env.State != store.EnvRunning {
			return errorf(Invalid, "Environment %s is %s", name, env.State)
		}
		return b.replaceEnvironment(tx, env, record)
	})
}

// notFound turns store.ErrNotFound into a domain NotFound with reason.
func notFound(err error, reason string) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(NotFound, "%s", reason)
	}
	return err
}
