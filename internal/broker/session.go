package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Schedule is the timing of a session as its owner sees it.
type Schedule struct {
	State   store.SessionState
	Started time.Time
	Expires time.Time // zero: never expires
	// Remaining is the time left, never negative; meaningful only when
	// Expires is set.
	Remaining  time.Duration
	Expiring   bool // less than the extension threshold is left
	Extendable bool
	Extended   bool // set by Extend when it added time
}

// extensionThreshold is 25 % of the workshop duration, within [5 min, 1 h]
// (spec §4.4).
func extensionThreshold(env store.Environment) time.Duration {
	return max(5*time.Minute, min(env.Expires, 4*time.Hour)/4)
}

// extensionStep is how much one extension adds.
func extensionStep(env store.Environment) time.Duration {
	if env.Overtime > 0 {
		return max(5*time.Minute, env.Overtime)
	}
	return extensionThreshold(env)
}

func (b *Broker) schedule(s store.Session, env store.Environment) Schedule {
	sc := Schedule{State: s.State, Started: s.Started, Expires: s.Expires}
	if s.Expires.IsZero() {
		return sc
	}
	sc.Remaining = max(0, s.Expires.Sub(b.now()))
	sc.Expiring = sc.Remaining < extensionThreshold(env)
	sc.Extendable = s.State == store.Running &&
		s.Expires.Before(s.Started.Add(env.Deadline)) &&
		sc.Remaining < extensionStep(env)
	return sc
}

// SessionView is a session with its environment, as the caller may see it.
type SessionView struct {
	Session     store.Session
	Environment *store.Environment // shared by the views of one listing
	Schedule    Schedule
	// ConfigPassword is the session's config password in clear text, in
	// the view of one session only (Session.Password is sealed).
	ConfigPassword string
}

// access loads a live session the caller may manage: its owner, staff and
// robots (spec §7.11).
func (b *Broker) access(tx store.Tx, caller store.User, name string) (store.Session, store.Environment, error) {
	s, err := tx.Session(name)
	if errors.Is(err, store.ErrNotFound) || err == nil && s.State == store.Stopped {
		return s, store.Environment{}, errorf(NotFound, "Session %s does not exist", name)
	}
	if err != nil {
		return s, store.Environment{}, err
	}
	if s.Owner != caller.ID && caller.Role != store.RoleAdmin && caller.Role != store.RoleRobot {
		return s, store.Environment{}, errorf(Forbidden, "Access to session not permitted")
	}
	env, err := tx.EnvironmentByID(s.EnvID)
	return s, env, err
}

// Session returns a session the caller may manage.
func (b *Broker) Session(ctx context.Context, caller store.User, name string) (SessionView, error) {
	var v SessionView
	err := b.store.View(ctx, func(tx store.Tx) error {
		s, env, err := b.access(tx, caller, name)
		if err != nil {
			return err
		}
		v = SessionView{Session: s, Environment: &env, Schedule: b.schedule(s, env)}
		v.ConfigPassword, err = b.configPassword(s)
		return err
	})
	return v, err
}

// InUse returns a session that the caller may manage and that has an
// owner (authorize, extend, terminate: spec §7.11).
func (b *Broker) InUse(ctx context.Context, caller store.User, name string) (SessionView, error) {
	v, err := b.Session(ctx, caller, name)
	if err == nil && v.Session.Owner == 0 {
		err = errorf(Invalid, "Session is not currently in use")
	}
	return v, err
}

// Extend adds time to a session when its workshop allows it (spec §4.4).
func (b *Broker) Extend(ctx context.Context, caller store.User, name string) (Schedule, error) {
	var sc Schedule
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		s, env, err := b.access(tx, caller, name)
		if err != nil {
			return err
		}
		if s.Owner == 0 {
			return errorf(Invalid, "Session is not currently in use")
		}
		sc = b.schedule(s, env)
		if !sc.Extendable {
			return nil
		}
		s.Expires = minTime(s.Expires.Add(extensionStep(env)), s.Started.Add(env.Deadline))
		if err := tx.UpdateSession(&s); err != nil {
			return err
		}
		record(b.sessionEvent("Session/Extended", s, env, nil))
		sc = b.schedule(s, env)
		sc.Extended = true
		return nil
	})
	return sc, err
}

// ExtendBy adds d to an allocated session: the staff action of spec §6.7.
// Unlike Educates, it is not capped at the workshop deadline (which by
// default equals the duration, so the action did nothing): staff decide.
func (b *Broker) ExtendBy(ctx context.Context, caller store.User, name string, d time.Duration) (Schedule, error) {
	if caller.Role != store.RoleAdmin {
		return Schedule{}, errorf(Forbidden, "Only staff may extend sessions by a chosen time")
	}
	var sc Schedule
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		s, env, err := b.access(tx, caller, name)
		switch {
		case err != nil:
			return err
		case s.Owner == 0:
			return errorf(Invalid, "Session is not currently in use")
		case s.State == store.Stopping:
			return errorf(Invalid, "Session is already stopping")
		case s.Expires.IsZero():
			return errorf(Invalid, "Session does not expire")
		}
		s.Expires = s.Expires.Add(d)
		if err := tx.UpdateSession(&s); err != nil {
			return err
		}
		record(b.sessionEvent("Session/Extended", s, env, map[string]any{"by": int(d.Seconds())}))
		sc = b.schedule(s, env)
		sc.Extended = true
		return nil
	})
	return sc, err
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Terminate ends a session now. Terminating a session that is already
// stopping changes nothing.
func (b *Broker) Terminate(ctx context.Context, caller store.User, name string) (store.Session, error) {
	var out store.Session
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		s, env, err := b.access(tx, caller, name)
		if err != nil {
			return err
		}
		if s.Owner == 0 && caller.Role != store.RoleAdmin {
			return errorf(Invalid, "Session is not currently in use")
		}
		out = s
		if s.State == store.Stopping {
			return nil
		}
		s.State, s.Expires = store.Stopping, b.now()
		if err := tx.UpdateSession(&s); err != nil {
			return err
		}
		record(b.sessionEvent("Session/Stopping", s, env, nil))
		out = s
		return nil
	})
	return out, err
}

// Event forwards an analytics event reported for a session (spec §7.11).
func (b *Broker) Event(ctx context.Context, caller store.User, name, event string, data map[string]any) error {
	if event == "" {
		return errorf(Invalid, "No event data provided")
	}
	v, err := b.Session(ctx, caller, name)
	if err != nil {
		return err
	}
	if v.Session.Owner == 0 {
		return errorf(Invalid, "Session was never allocated")
	}
	return b.emit(ctx, b.sessionEvent(event, v.Session, *v.Environment, data))
}

// ErrEnded is returned by Activate for a session that has ended; the
// session is returned with it so the caller can send the person to its
// index URL.
var ErrEnded = &Error{NotFound, "Session has ended"}

// Activate opens a session handed out through the REST API for its owner:
// the token is the one from the activation URL. It returns the session and
// its owner, whom the caller logs in.
func (b *Broker) Activate(ctx context.Context, name, token string) (store.Session, store.User, error) {
	if token == "" {
		return store.Session{}, store.User{}, errorf(Invalid, "No access token supplied")
	}
	var (
		out   store.Session
		owner store.User
	)
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		s, err := tx.Session(name)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(Invalid, "Invalid session name supplied")
		}
		if err != nil {
			return err
		}
		k, err := tx.Token(secret.Hash(token))
		if errors.Is(err, store.ErrNotFound) || err == nil &&
			(k.Kind != store.ActivationToken || subtle.ConstantTimeCompare([]byte(k.Session), []byte(s.Name)) != 1 ||
				k.User != s.Owner || k.Revoked) {
			return errorf(Invalid, "Invalid access token for session")
		}
		if err != nil {
			return err
		}
		if owner, err = tx.UserByID(s.Owner); err != nil {
			return err
		}
		out = s
		// Educates revived stopping sessions here; an ended session stays
		// ended.
		if s.State == store.Stopping || s.State == store.Stopped {
			return ErrEnded
		}
		if s.Activated {
			return nil
		}
		env, err := tx.EnvironmentByID(s.EnvID)
		if err != nil {
			return err
		}
		now := b.now()
		// A session still starting gets its clock reset once it is ready.
		s.Activated, s.Started, s.Expires = true, now, expiry(&env, now)
		if s.State == store.Waiting {
			markRunning(&s, &env, now)
		}
		if err := tx.UpdateSession(&s); err != nil {
			return err
		}
		record(b.sessionEvent("Session/Started", s, env, nil))
		out = s
		return nil
	})
	if errors.Is(err, ErrEnded) {
		return out, owner, ErrEnded
	}
	return out, owner, err
}

// Target is where the host of a live session answers and what the portal
// tells it when it forwards a request.
type Target struct {
	Name    string
	Address string
	Secret  string // the config password: the host trusts who knows it
	Owner   int64
	// Delivered tells whether the host knows its owner yet.
	Delivered bool
}

// Target returns where to forward requests for a live session.
func (b *Broker) Target(ctx context.Context, name string) (Target, error) {
	var t Target
	err := b.store.View(ctx, func(tx store.Tx) error {
		s, err := tx.Session(name)
		if err != nil {
			return notFound(err, "Session "+name+" does not exist")
		}
		if s.State == store.Stopped || s.State == store.Stopping {
			return errorf(NotFound, "Session %s has ended", name)
		}
		if s.Address == "" {
			return errorf(Unavailable, "Session %s is still starting", name)
		}
		password, err := b.configPassword(s)
		t = Target{Name: s.Name, Address: s.Address, Secret: password, Owner: s.Owner, Delivered: s.Delivered}
		return err
	})
	return t, err
}

// Ended returns the user's own session of that name if it has ended, for
// sending them back where they came from (spec §6.10).
func (b *Broker) Ended(ctx context.Context, caller store.User, name string) (store.Session, bool) {
	var s store.Session
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		s, err = tx.Session(name)
		return err
	})
	ok := err == nil && s.Owner == caller.ID && (s.State == store.Stopped || s.State == store.Stopping)
	return s, ok
}

// Deliver makes sure the host of an allocated session knows its owner
// before a request reaches it: the reconciler delivers soon after the
// allocation, but a front end may ask the session for its environment
// sooner.
func (b *Broker) Deliver(ctx context.Context, t Target) {
	if t.Owner != 0 && !t.Delivered {
		b.deliverSession(ctx, t.Name)
	}
}
