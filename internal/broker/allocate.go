package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// DefaultActivationTimeout is how long a session handed out through the
// REST API waits for its owner's browser when the request names no timeout.
const DefaultActivationTimeout = 60 * time.Second

// Request is a REST request for a session (spec §7.9).
type Request struct {
	Environment string // environment name, or the workshop's catalog name
	Username    string // empty: a new user with a random name
	Email       string
	FirstName   string
	LastName    string
	IndexURL    string
	Analytics   string
	// Timeout is the activation timeout; 0 disables it (the session then
	// expires with the workshop's duration).
	Timeout time.Duration
	// Session, when set, only reacquires that existing session.
	Session string
	Params  []config.EnvVar
	// Client is the OAuth client of the robot making the request: the
	// accounts it makes are its own, and the only ones it may name.
	Client string
}

// Allocation is the answer to a Request.
type Allocation struct {
	Session  store.Session
	Workshop string
	User     store.User
	// Token opens the session at its activation URL.
	Token string
}

// Request hands a session of an environment to a user on behalf of a robot
// client: an existing one of that user, a reserved one, or a new one.
func (b *Broker) Request(ctx context.Context, caller store.User, r Request) (Allocation, error) {
	if caller.Role != store.RoleRobot {
		return Allocation{}, errorf(Forbidden, "Session requests not permitted")
	}
	if r.Username == "" {
		r.Username = secret.UUID()
	}
	token := secret.Alnum(32)
	var (
		out                 Allocation
		environment, source string
	)
	err := b.commit(ctx, func(tx store.Tx, record func(Event)) error {
		env, err := b.findEnvironment(tx, r.Environment)
		if err != nil {
			return err
		}
		environment = env.Name
		user, fresh, err := b.clientUser(tx, r, record)
		if err != nil {
			return err
		}
		s, from, err := b.retrieve(tx, &env, user, fresh, claim{
			rest: true, timeout: r.Timeout, params: r.Params, indexURL: r.IndexURL,
			analytics: r.Analytics, session: r.Session,
		}, record)
		if err != nil {
			return err
		}
		if !s.Activation {
			return errNotReacquired
		}
		// Every request gets a fresh token; earlier ones stay valid while
		// the session lives, so no activation URL already handed out breaks.
		err = tx.InsertToken(store.Token{Hash: secret.Hash(token), Kind: store.ActivationToken,
			Grant: s.Name, User: user.ID, Session: s.Name})
		out, source = Allocation{Session: s, Workshop: env.Workshop.Name, User: user, Token: token}, from
		return err
	})
	b.allocated(environment, source, out.Session, out.User.Username, err)
	return out, err
}

// Allocate hands a session to a user of the portal's own pages: no
// activation step, the session is theirs at once.
func (b *Broker) Allocate(ctx context.Context, user store.User, environment, indexURL string) (store.Session, error) {
	var (
		out          store.Session
		envName, src string
	)
	err := b.commit(ctx, func(tx store.Tx, record func(Event)) error {
		env, err := b.findEnvironment(tx, environment)
		if err != nil {
			return err
		}
		envName = env.Name
		out, src, err = b.retrieve(tx, &env, user, false, claim{indexURL: indexURL}, record)
		return err
	})
	b.allocated(envName, src, out, user.Username, err)
	return out, err
}

// allocated tells the observer and the log how a request for a session of
// environment ended, once its transaction is over. The environment is
// empty when the request named none that exists: what it named is the
// caller's and stays out of metrics.
func (b *Broker) allocated(environment, source string, s store.Session, user string, err error) {
	if err != nil {
		if KindOf(err) != 0 {
			b.observe.Refused(environment, refusalReason(err))
		}
		return
	}
	b.observe.Allocated(environment, source)
	if source != "existing" {
		b.log.Info("session allocated", "session", s.Name, "environment", environment, "user", user, "source", source)
	}
	// The reconciler has the new session to start, or the reserve to top
	// up, or at least the session's new deadline to keep.
	switch source {
	case "new":
		b.notify()
	case "reserve":
		b.replenish(s.EnvID, s.Expires)
	default:
		b.replenish(0, s.Expires)
	}
}

// findEnvironment finds an environment by name, or else the running
// environment of a workshop by its catalog name (the Educates docs promise
// this; its code only took environment names). It takes no lock: a claim
// from the reserve needs none (see retrieve).
func (b *Broker) findEnvironment(tx store.Tx, name string) (store.Environment, error) {
	env, err := tx.Environment(name)
	if !errors.Is(err, store.ErrNotFound) {
		return env, err
	}
	running, err := tx.Environments(store.EnvRunning)
	if err != nil {
		return env, err
	}
	for _, e := range running {
		if e.Key == name {
			return e, nil
		}
	}
	return env, errorf(NotFound, "Environment does not exist")
}

// clientUser finds the account a robot's request names, making it when no
// account has a name that normalises like it. An account is reused only
// when the same client made it: a person who signed up as
// frank@corp.example, or another front end, must not be handed the
// session a front end asks for its own Frank. The details of an existing
// account are not changed. It reports whether the account is new, made by
// this transaction.
func (b *Broker) clientUser(tx store.Tx, r Request, record func(Event)) (store.User, bool, error) {
	u, err := tx.User(r.Username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{Username: r.Username, Email: r.Email, FirstName: r.FirstName, LastName: r.LastName,
			Role: store.RoleAnonymous, Origin: store.OriginClient, Client: r.Client, Created: b.now()}
		return u, true, b.insertUser(tx, &u, record)
	case err != nil:
		return u, false, err
	case u.Role == store.RoleAdmin || u.Role == store.RoleRobot:
		return u, false, errorf(Invalid, "Session requests not permitted for user")
	case u.Origin != store.OriginClient || u.Client != r.Client:
		return u, false, errorf(Conflict, "user %s was not created by this client (%s)", r.Username, madeBy(u))
	}
	return u, false, nil
}

// madeBy says where an account came from, in words for the front end that
// cannot have it; other clients are not named.
func madeBy(u store.User) string {
	switch u.Origin {
	case store.OriginSignup:
		return "it signed up on the portal"
	case store.OriginAnonymous:
		return "it is an anonymous visitor of the portal"
	case store.OriginClient:
		return "another client made it"
	}
	return "it belongs to the portal"
}

// insertUser adds an account that a request or a visitor makes.
func (b *Broker) insertUser(tx store.Tx, u *store.User, record func(Event)) error {
	if err := tx.InsertUser(u); err != nil {
		return err
	}
	record(Event{Name: "User/Create", Time: u.Created, User: u.Username, Data: map[string]any{"group": "anonymous"}})
	return nil
}

// claim is how a session is being asked for.
type claim struct {
	rest      bool // through the REST API: wait for activation
	timeout   time.Duration
	params    []config.EnvVar
	indexURL  string
	analytics string
	session   string // reacquire only this session
}

// retrieve is the allocation rule of spec §6.4: the user's existing
// session, else a reserved one, else a new one within the workshop
// capacity and portal maximum. It says which of the three it was:
// "existing", "reserve" or "new". fresh says that this transaction made
// the user, who then has no session yet.
//
// Requests of one user serialise on the user's row, so that of two at
// once the second finds the session of the first. A claim from the
// reserve is one statement that skips rows other transactions hold: it
// changes no count of live sessions, so it needs no lock on the
// environment, and claims run side by side. Only a new session takes the
// environment's lock, which makes its capacity checks exact.
func (b *Broker) retrieve(tx store.Tx, env *store.Environment, user store.User, fresh bool, c claim, record func(Event)) (store.Session, string, error) {
	now := b.now()
	if !fresh {
		// A user made by this transaction is this transaction's row
		// until it commits.
		if err := tx.LockUser(user.ID); err != nil {
			return store.Session{}, "", err
		}
		existing, err := tx.FindSessions(store.SessionQuery{EnvID: env.ID, Owner: user.ID,
			States: []store.SessionState{store.Starting, store.Waiting, store.Running}, Limit: 1})
		if err != nil {
			return store.Session{}, "", err
		}
		if len(existing) > 0 {
			s := existing[0]
			if c.session != "" && c.session != s.Name {
				return s, "", errNoSession
			}
			if c.rest && s.Pending() && !s.Activated {
				s.Started, s.Expires = now, pendingDeadline(env, now, c.timeout)
				err = tx.UpdateSession(&s)
			}
			return s, "existing", err
		}
	}
	// A user made by this transaction holds no session: within any limit.
	limited, claimed := !fresh, false
	if c.session == "" && env.State == store.EnvRunning {
		if limited {
			if err := b.checkUserLimit(tx, user); err != nil {
				return store.Session{}, "", err
			}
			limited = false
		}
		claimed = true
		s, err := b.claimReserved(tx, env, user, c, now, record)
		if !errors.Is(err, store.ErrNotFound) {
			return s, "reserve", err
		}
	}

	locked, err := tx.LockEnvironment(env.ID)
	if err != nil {
		return store.Session{}, "", err
	}
	*env = locked
	if env.State == store.EnvStarting {
		if err := b.startEnvironment(tx, env, now); err != nil {
			return store.Session{}, "", err
		}
	}
	if c.session != "" || env.State != store.EnvRunning {
		return store.Session{}, "", errNoSession
	}
	if limited {
		if err := b.checkUserLimit(tx, user); err != nil {
			return store.Session{}, "", err
		}
	}
	if !claimed {
		// The environment was starting: its initial reserve is there now.
		s, err := b.claimReserved(tx, env, user, c, now, record)
		if !errors.Is(err, store.ErrNotFound) {
			return s, "reserve", err
		}
	}
	params, err := resolveParams(env.Workshop.Parameters, c.params)
	if err != nil {
		return store.Session{}, "", err
	}
	s, err := b.createOnDemand(tx, env, now, record)
	if err != nil {
		return s, "", err
	}
	cl := b.claimOf(env, user, c, params, now)
	s.Owner, s.OwnerName = user.ID, user.Username
	s.Params, s.IndexURL, s.Analytics = cl.Params, cl.IndexURL, cl.Analytics
	s.Activation, s.Activated = cl.Activation, !cl.Activation
	s.Started, s.Expires = cl.Started, cl.Expires // still starting: the clock restarts when it is ready
	if err := tx.InsertSession(&s); err != nil {
		return s, "", err
	}
	b.recordAllocated(s, env, c, record)
	return s, "new", nil
}

// claimReserved hands the user a reserved session of the environment:
// store.ErrNotFound when none is left. Reserves still starting are handed
// out too (Educates left them unusable while they held capacity).
func (b *Broker) claimReserved(tx store.Tx, env *store.Environment, user store.User, c claim, now time.Time, record func(Event)) (store.Session, error) {
	params, err := resolveParams(env.Workshop.Parameters, c.params)
	if err != nil {
		return store.Session{}, err
	}
	s, err := tx.ClaimReserved(env.ID, b.claimOf(env, user, c, params, now))
	if err != nil {
		return s, err
	}
	b.recordAllocated(s, env, c, record)
	return s, nil
}

// claimOf is what a session handed to user gets.
func (b *Broker) claimOf(env *store.Environment, user store.User, c claim, params []config.EnvVar, now time.Time) store.Claim {
	cl := store.Claim{Owner: user.ID, Params: params, IndexURL: c.indexURL, Analytics: c.analytics,
		Activation: c.rest, Started: now, Expires: expiry(env, now)}
	if c.rest {
		cl.Expires = pendingDeadline(env, now, c.timeout)
	}
	if env.Orphaned > 0 {
		cl.CheckAt = now.Add(env.Orphaned)
	}
	return cl
}

// recordAllocated records the events of a session handed out. Educates
// says Pending or Started; Portico's own event says that the session has
// an owner now, however it was handed out.
func (b *Broker) recordAllocated(s store.Session, env *store.Environment, c claim, record func(Event)) {
	record(b.sessionEvent("Session/Allocated", s, *env, nil))
	if c.rest {
		record(b.sessionEvent("Session/Pending", s, *env, nil))
	} else {
		record(b.sessionEvent("Session/Started", s, *env, nil))
	}
}

// pendingDeadline is when a session handed out through the REST API ends
// if nobody activates it (spec §6.5).
func pendingDeadline(env *store.Environment, now time.Time, timeout time.Duration) time.Time {
	if timeout > 0 {
		return now.Add(timeout)
	}
	return expiry(env, now)
}

// expiry is the end of a session that starts now; zero when the workshop
// has no duration.
func expiry(env *store.Environment, now time.Time) time.Time {
	if env.Expires <= 0 {
		return time.Time{}
	}
	return now.Add(env.Expires)
}

// SessionLimit is how many sessions user may hold at once: 0 for no limit
// (staff have none).
func (b *Broker) SessionLimit(user store.User) int {
	limits := b.Portal().Sessions
	switch user.Role {
	case store.RoleAdmin:
		return 0
	case store.RoleAnonymous:
		return limits.Anonymous
	}
	return limits.Registered
}

// checkUserLimit applies portal.sessions.registered and .anonymous, in a
// transaction that holds the user's row. Sessions already stopping do not
// count (Educates counted them, briefly refusing a user who had just ended
// a session).
func (b *Broker) checkUserLimit(tx store.Tx, user store.User) error {
	limit := b.SessionLimit(user)
	if limit <= 0 {
		return nil
	}
	n, err := tx.CountSessions(store.SessionQuery{Owner: user.ID,
		States: []store.SessionState{store.Starting, store.Waiting, store.Running}})
	if err != nil {
		return err
	}
	if n >= limit {
		return errUserLimit
	}
	return nil
}

// createOnDemand makes room for and returns a new, not yet inserted,
// session when the workshop capacity and the portal maximum allow it.
func (b *Broker) createOnDemand(tx store.Tx, env *store.Environment, now time.Time, record func(Event)) (store.Session, error) {
	active, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, States: store.Live})
	if err != nil {
		return store.Session{}, err
	}
	if active >= env.Capacity {
		// A reserved session that keeps failing to start must not hold
		// capacity a person could use.
		dropped, err := b.dropFailingReserve(tx, env.ID, now, record)
		if err != nil {
			// The database's failure, not a refusal whose reason people
			// see: it may name the database's address and user.
			return store.Session{}, err
		}
		if !dropped {
			return store.Session{}, errCapacity
		}
	}
	if max := b.Portal().Sessions.Maximum; max > 0 {
		if err := b.makePortalRoom(tx, max, now, record); err != nil {
			return store.Session{}, err
		}
	}
	return b.newSession(tx, env, now)
}

// dropFailingReserve ends one reserved session of the environment that has
// failed to start. Such a session has no process, so it ends at once.
func (b *Broker) dropFailingReserve(tx store.Tx, envID int64, now time.Time, record func(Event)) (bool, error) {
	found, err := tx.FindSessions(store.SessionQuery{EnvID: envID, Ownership: store.Unowned,
		States: []store.SessionState{store.Starting}, Failing: true, Limit: 1, Claim: true})
	if err != nil || len(found) == 0 {
		return false, err
	}
	s := found[0]
	s.State, s.Expires = store.Stopped, now
	return true, tx.UpdateSession(&s)
}

// makePortalRoom checks the portal maximum before a new session is made:
// allocated sessions may never exceed it, and a reserved session anywhere
// in the portal is evicted to make room when all places are taken. Educates
// created the session even when nothing could be evicted.
func (b *Broker) makePortalRoom(tx store.Tx, max int, now time.Time, record func(Event)) error {
	if err := tx.LockPortal(); err != nil {
		return err
	}
	allocated, err := tx.CountSessions(store.SessionQuery{Ownership: store.Owned, States: store.Live})
	if err != nil {
		return err
	}
	if allocated >= max {
		return errPortalMaximum
	}
	active, err := tx.CountSessions(store.SessionQuery{States: store.Live})
	if err != nil || active < max {
		return err
	}
	evicted, err := b.stopReserves(tx, store.SessionQuery{Ownership: store.Unowned,
		States: []store.SessionState{store.Starting, store.Waiting}, Limit: active - max + 1, Claim: true}, now, record)
	if err != nil {
		return err
	}
	if active-evicted >= max {
		return errPortalMaximum
	}
	return nil
}

// stopReserves marks the unowned sessions q selects as stopping.
func (b *Broker) stopReserves(tx store.Tx, q store.SessionQuery, now time.Time, record func(Event)) (int, error) {
	found, err := tx.FindSessions(q)
	if err != nil {
		return 0, err
	}
	for _, s := range found {
		s.State, s.Expires = store.Stopping, now
		if err := tx.UpdateSession(&s); err != nil {
			return 0, err
		}
		env, err := tx.EnvironmentByID(s.EnvID)
		if err != nil {
			return 0, err
		}
		record(b.sessionEvent("Session/Terminate", s, env, nil))
	}
	return len(found), nil
}

// newSession names the next session of an environment; the caller inserts
// it.
func (b *Broker) newSession(tx store.Tx, env *store.Environment, now time.Time) (store.Session, error) {
	env.Tally++
	if err := tx.UpdateEnvironment(env); err != nil {
		return store.Session{}, err
	}
	return b.numberedSession(env, env.Tally, now), nil
}

// numberedSession is the k-th session of an environment, starting now.
func (b *Broker) numberedSession(env *store.Environment, k int, now time.Time) store.Session {
	id := fmt.Sprintf("s%03d", k)
	name := env.Name + "-" + id
	return store.Session{
		Name:        name,
		ID:          id,
		EnvID:       env.ID,
		Environment: env.Name,
		State:       store.Starting,
		Created:     now,
		Password:    b.newPassword(name),
		RetryAt:     now,
	}
}

// resolveParams applies the supplied request parameters over the
// workshop's declared defaults (spec §6.3). Names the workshop does not
// declare are ignored.
func resolveParams(declared []config.Parameter, supplied []config.EnvVar) ([]config.EnvVar, error) {
	given := make(map[string]string, len(supplied))
	for _, p := range supplied {
		given[p.Name] = p.Value
	}
	out := make([]config.EnvVar, 0, len(declared))
	for _, p := range declared {
		v, ok := given[p.Name]
		if !ok {
			var err error
			if v, err = p.Resolve(rand.Reader); err != nil {
				return nil, fmt.Errorf("request parameter %s: %w", p.Name, err)
			}
		}
		out = append(out, config.EnvVar{Name: p.Name, Value: v})
	}
	return out, nil
}
