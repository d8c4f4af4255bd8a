// Package store is the persistence port of the portal: the records it keeps
// and the transactions it runs on them. Implementations (sqlite, postgres)
// live in sub-packages; a conformance suite in storetest checks both.
//
// Every change to shared state happens inside Update, so correctness never
// rests on an in-process lock: the same broker code is right on one SQLite
// file and on several portal replicas sharing PostgreSQL.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/portico-dev/portico/internal/config"
)

var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a row changed since it was read (optimistic update lost),
	// or a unique key is taken.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the database cannot be reached or is overloaded.
	ErrUnavailable = errors.New("database unavailable")
	// ErrFenced: the lease a write depends on has changed hands; the write
	// comes from a holder that lost it.
	ErrFenced = errors.New("lease lost to another holder")
)

// Store runs transactions.
type Store interface {
	// Update runs fn in a read-write transaction and commits when fn returns
	// nil. Implementations retry fn on serialization failures (including
	// an insert that lost a race for a key), so fn must have no effects
	// outside the transaction. Errors of the database itself wrap
	// ErrUnavailable.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn in a read-only transaction; nothing fn writes is kept.
	View(ctx context.Context, fn func(Tx) error) error
	// Changes delivers a signal after other processes commit changes to
	// the database (and possibly after this one's own): several replicas
	// wake each other with it. Signals coalesce; the channel never blocks
	// the store. Nil where one process owns the database (SQLite).
	Changes() <-chan struct{}
	Close() error
}

// Tx is one transaction.
type Tx interface {
	// Environments

	// Inserts return ErrConflict when the key (name, username, token
	// hash) is taken; the transaction stays usable.

	InsertEnvironment(e *Environment) error // sets e.ID
	UpdateEnvironment(e *Environment) error // optimistic on e.Version
	Environment(name string) (Environment, error)
	EnvironmentByID(id int64) (Environment, error)
	// LockEnvironment reads an environment and holds a write lock on it
	// until the transaction ends: allocations in one environment serialise
	// on it, so capacity checks are exact.
	LockEnvironment(id int64) (Environment, error)
	Environments(states ...EnvState) ([]Environment, error)
	// LockPortal serialises transactions that check portal-wide limits
	// (the portal maximum) until this transaction ends.
	LockPortal() error

	// Sessions

	InsertSession(s *Session) error
	UpdateSession(s *Session) error // optimistic on s.Version
	Session(name string) (Session, error)
	FindSessions(q SessionQuery) ([]Session, error)
	// ClaimReserved hands a reserved session of an environment to c.Owner
	// in one statement: the oldest healthy WAITING one, else the oldest
	// healthy STARTING one, skipping rows other transactions hold. It
	// returns the session as claimed, or ErrNotFound when none is left.
	// It takes no lock on the environment: claims in one environment run
	// side by side, each on a row of its own.
	ClaimReserved(envID int64, c Claim) (Session, error)
	CountSessions(q SessionQuery) (int, error)
	// EachHeld calls fn, oldest first, with each live session of an
	// environment that has an owner, read with the few columns a listing
	// shows: listing thousands of them costs no more than that. An error
	// of fn ends the listing and is returned.
	EachHeld(envID int64, fn func(Held) error) error
	// SessionCounts counts the live sessions of every environment that
	// has any, in one pass over the sessions.
	SessionCounts() (map[int64]SessionCounts, error)
	// DeleteStoppedSessions removes STOPPED rows that ended before t.
	DeleteStoppedSessions(before time.Time) (int, error)
	// NextDeadline is the earliest time-based transition of any live
	// session or environment, zero when there is none: the reconciler
	// sleeps until then.
	NextDeadline() (time.Time, error)

	// Users

	// InsertUser adds an account under the normalised form of its name
	// (username.Key): ErrConflict when an account has that form already,
	// an error wrapping username.ErrInvalid when the name has none.
	InsertUser(u *User) error
	// UpdateUser changes an account's details, password and role; its
	// name, origin and client never change.
	UpdateUser(u *User) error
	// User finds the account of a name: the one of that exact name, else
	// the one whose name has the same normalised form ("ALICE" finds
	// alice).
	User(username string) (User, error)
	// UserLike finds an account whose name looks like name as written
	// (the same username.Skeleton): ErrNotFound when none does.
	UserLike(name string) (User, error)
	UserByID(id int64) (User, error)
	// Users lists users, newest first, at most limit of them.
	Users(limit int) ([]User, error)
	// LockUser serialises transactions that check one user's session
	// limits until this transaction ends; ErrNotFound for an unknown user.
	LockUser(id int64) error
	// DeleteIdleAnonymousUsers removes anonymous users created before t
	// that own no session rows.
	DeleteIdleAnonymousUsers(before time.Time) (int, error)

	// OAuth clients and tokens

	UpsertClient(c Client) error
	Client(id string) (Client, error)
	// ClientOf returns the client whose client_credentials tokens act for
	// a user.
	ClientOf(user int64) (Client, error)
	DeleteClient(id string) error
	InsertToken(t Token) error
	Token(hash []byte) (Token, error)
	// TakeToken deletes an unrevoked token and returns it: a one-time
	// credential is used once, however many replicas race for it.
	TakeToken(hash []byte) (Token, error)
	// RevokeGrant marks the tokens of a grant as revoked.
	RevokeGrant(grant string) error
	DeleteExpiredTokens(before time.Time) (int, error)

	// Leases

	// AcquireLease makes holder the holder of the named lease for ttl from
	// now by the database's own clock (never a replica's, which may be
	// off by minutes): it inserts the lease, takes it over when it has
	// expired, or extends it when holder holds it already. It returns the
	// lease's generation, the fencing token of this holder's tenure, or 0
	// while another holder's lease runs. The generation grows with every
	// change of holder and stays the same through renewals. Background work
	// that must run in one replica at a time holds a lease, renews it well
	// within ttl, and passes its generation to CheckLease in every
	// transaction that records its effects.
	AcquireLease(name, holder string, ttl time.Duration) (int64, error)
	// ReleaseLease gives the lease up if holder holds it; the generation
	// is kept, so the next holder's is higher still.
	ReleaseLease(name, holder string) error
	// CheckLease returns ErrFenced unless holder still holds the named
	// lease in the given generation, and keeps the lease from changing
	// hands until the transaction ends: a write after it is ordered before
	// any take-over. Only in Update.
	CheckLease(name, holder string, generation int64) error

	// Webhooks (the outbox)

	// InsertWebhook queues a delivery: ErrConflict when its ID is taken.
	InsertWebhook(w Webhook) error
	// ClaimWebhooks claims for holder, until now+ttl, at most limit
	// pending deliveries that are due at now and not claimed by a replica
	// whose claim runs still, earliest first; rows other transactions
	// hold are skipped. A claim that expires (its replica died) makes the
	// row claimable again.
	ClaimWebhooks(holder string, now time.Time, ttl time.Duration, limit int) ([]Webhook, error)
	// FinishWebhook records the outcome of an attempt (State, Attempts,
	// NextAt, LastStatus, LastError, Done of w) and ends holder's claim:
	// ErrConflict when holder's claim on a pending row is gone.
	FinishWebhook(w Webhook, holder string) error
	// Webhooks lists deliveries, newest first, at most limit of them.
	Webhooks(limit int) ([]Webhook, error)
	// NextWebhook is when the earliest pending delivery is due (or its
	// claim expires, if later), zero when none is pending.
	NextWebhook() (time.Time, error)
	// DeleteWebhooks removes delivered and abandoned rows finished before t.
	DeleteWebhooks(before time.Time) (int, error)

	// Settings

	// InsertSetting stores a value under name unless one is there; the
	// value stored, this one or the one before, is returned, so replicas
	// that make one up at once agree on the first.
	InsertSetting(name, value string) (string, error)
}

// WebhookState is where a delivery stands.
type WebhookState string

const (
	WebhookPending   WebhookState = "pending"
	WebhookDelivered WebhookState = "delivered"
	// WebhookFailed: given up, after the longest time a delivery is tried.
	WebhookFailed WebhookState = "failed"
)

// Webhook is one event to deliver to one URL: a row of the outbox.
type Webhook struct {
	// ID is the webhook-id of every attempt, so receivers can drop repeats.
	ID  string
	URL string
	// Guarded marks a URL given by a client (a session's analytics_url):
	// it may reach public addresses only.
	Guarded bool
	Event   string // the event's name, for the delivery log
	Body    string // the JSON payload, the same on every attempt
	Created time.Time
	State   WebhookState
	// Attempts made so far.
	Attempts int
	// NextAt is when the next attempt is due (pending deliveries).
	NextAt time.Time
	// LastStatus is the HTTP status of the last attempt, 0 when it got
	// none; LastError says why the last attempt failed.
	LastStatus int
	LastError  string
	Done       time.Time // when it was delivered or given up
}

// EnvState is the state of a workshop environment.
type EnvState string

const (
	EnvStarting EnvState = "STARTING"
	EnvRunning  EnvState = "RUNNING"
	EnvStopping EnvState = "STOPPING"
	EnvStopped  EnvState = "STOPPED"
)

// Environment is one instance of a workshop in the portal. A workshop whose
// definition changes gets a new environment with a new name.
type Environment struct {
	ID       int64
	Version  int64
	Name     string // <portal>-w<id:02>
	Key      string // catalog name: alias or workshop name
	Workshop config.Workshop
	State    EnvState
	Position int

	Capacity, Initial, Reserved int

	Expires, Overtime, Deadline, Orphaned, Overdue, Refresh time.Duration

	Env    []config.EnvVar
	Labels map[string]string

	Tally   int // sessions created so far: names the next one
	Created time.Time
}

// SessionState is the state of a workshop session.
type SessionState string

const (
	Starting SessionState = "STARTING"
	Waiting  SessionState = "WAITING"
	Running  SessionState = "RUNNING"
	Stopping SessionState = "STOPPING"
	Stopped  SessionState = "STOPPED"
)

// Live are the states of a session that still exists.
var Live = []SessionState{Starting, Waiting, Running, Stopping}

// Session is one workshop session.
type Session struct {
	Name        string // <environment>-<ID>
	Version     int64
	ID          string // s001
	EnvID       int64
	Environment string
	State       SessionState
	Owner       int64 // 0 while reserved
	OwnerName   string

	Created time.Time
	Started time.Time // allocation or activation time
	// Expires is the activation deadline while pending, the end of the
	// session while running and the time it ended once stopping.
	Expires time.Time

	// Activation is set for sessions handed out through the REST API:
	// they wait for their owner's browser at the activation URL.
	Activation bool
	// Activated is set once the owner's browser has the session (at once
	// for sessions allocated through the portal's own pages).
	Activated bool
	// Delivered is set once the session host has been given its owner
	// and request parameters.
	Delivered bool
	Params    []config.EnvVar
	IndexURL  string
	Analytics string
	Password  string // config password of the session host, as the broker seals it

	Address  string // host:port of the session host, once started
	Failure  string // why the last start failed
	Attempts int    // failed starts so far
	RetryAt  time.Time
	// CheckAt is when the reconciler next asks the session host about its
	// activity (orphaned rule); zero when not applicable.
	CheckAt time.Time
}

// Held is a live session that has an owner, as listings show it.
type Held struct {
	Name      string
	State     SessionState
	OwnerName string
	Started   time.Time
	Expires   time.Time
}

// SessionCounts are the live sessions of one environment.
type SessionCounts struct {
	Allocated int // owned, in a live state
	Available int // no owner, WAITING: the reserve ready to hand out
}

// Allocated reports whether the session belongs to a user and is not over.
func (s Session) Allocated() bool { return s.Owner != 0 && s.State != Stopped }

// Pending reports whether the session waits for its owner to activate it.
func (s Session) Pending() bool {
	return s.Owner != 0 && (s.State == Starting || s.State == Waiting)
}

// Claim is what a reserved session gets when it is handed out.
type Claim struct {
	Owner     int64
	Params    []config.EnvVar
	IndexURL  string
	Analytics string
	// Activation: handed out through the REST API, the session waits for
	// its owner's browser. Otherwise its owner has it at once: a WAITING
	// session becomes RUNNING with CheckAt, a STARTING one stays STARTING
	// (its host is told when it is ready).
	Activation bool
	Started    time.Time
	Expires    time.Time
	CheckAt    time.Time
}

// Ownership filters sessions by owner.
type Ownership int

const (
	AnyOwner Ownership = iota
	Owned
	Unowned
)

// SessionQuery selects sessions. Zero fields do not filter.
type SessionQuery struct {
	EnvID     int64
	Owner     int64 // a specific owner
	Ownership Ownership
	States    []SessionState
	// ExpiresBy selects sessions whose Expires is set and not after it.
	ExpiresBy time.Time
	// StartBy selects sessions due for a start attempt (no address and
	// RetryAt not after it).
	StartBy time.Time
	// CheckBy selects sessions whose CheckAt is set and not after it.
	CheckBy time.Time
	// Healthy selects sessions that have not failed to start, Failing
	// those that have.
	Healthy, Failing bool
	// Undelivered selects owned, started sessions whose host does not
	// know its owner yet.
	Undelivered bool
	// Order: "created" (oldest first, the default), "-created", or
	// "waiting-first" (for reserves, States WAITING and STARTING: WAITING
	// first, then oldest first).
	Order string
	Limit int
	// Claim locks the selected rows for update and skips rows other
	// transactions hold (SKIP LOCKED where the database has it).
	Claim bool
}

// Role is what a user is to the portal.
type Role string

const (
	RoleAdmin      Role = "admin"      // staff: sees and manages everything
	RoleRobot      Role = "robot"      // front ends using the REST API
	RoleRegistered Role = "registered" // signed up through the portal
	RoleAnonymous  Role = "anonymous"  // created on the fly
)

// Origin is how an account came to be. An account made one way is never
// taken over another way: a robot client's session request reuses only
// the accounts that client made.
type Origin string

const (
	OriginSignup    Origin = "signup"    // the portal's sign-up form
	OriginAnonymous Origin = "anonymous" // made on the spot for a visitor of the portal's pages
	OriginPortal    Origin = "portal"    // the admin and robot accounts of the portal definition
	OriginClient    Origin = "client"    // a robot client's session request; User.Client names the client
)

// User is a person or machine known to the portal.
type User struct {
	ID           int64
	Username     string
	Email        string
	FirstName    string
	LastName     string
	PasswordHash string // empty: cannot log in with a password
	Role         Role
	Origin       Origin
	Client       string // the OAuth client that made the account (OriginClient)
	Created      time.Time
}

// Staff reports whether the user administers the portal.
func (u User) Staff() bool { return u.Role == RoleAdmin }

// Client is an OAuth client.
type Client struct {
	ID         string
	SecretHash string
	// User is who client_credentials tokens act for (the robot); 0: the
	// client may not use that grant.
	User int64
}

// TokenKind tells access from refresh tokens.
type TokenKind string

const (
	AccessToken  TokenKind = "access"
	RefreshToken TokenKind = "refresh"
	// ActivationToken opens one session for its owner's browser.
	ActivationToken TokenKind = "activation"
	// BrowserToken is the cookie of a logged-in browser.
	BrowserToken TokenKind = "browser"
	// TicketToken lets one browser in on one session's origin, once,
	// shortly after the portal made it.
	TicketToken TokenKind = "ticket"
	// VisitToken is the cookie of a browser on one session's origin.
	VisitToken TokenKind = "visit"
)

// Token is an issued credential, stored by the hash of its value only.
type Token struct {
	Hash    []byte
	Kind    TokenKind
	Grant   string // tokens issued together share a grant; revoked together
	User    int64
	Client  string
	Session string // for activation, ticket and visit tokens
	Expires time.Time
	Revoked bool
}
