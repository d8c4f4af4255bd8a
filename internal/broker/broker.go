// Package broker is the domain of the portal: workshop environments, the
// sessions in them, and the rules by which sessions are reserved, handed
// out, activated, extended, expired and ended (spec §4–§7 of the Educates
// portal, with its known bugs fixed).
//
// The broker keeps no state of its own between calls: every decision is a
// transaction on the store, so any number of portal replicas may share one
// database. Slow work (starting and stopping session hosts) happens in the
// reconciler, outside transactions.
package broker

import (
	"cmp"
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/sessionorigin"
	"github.com/portico-dev/portico/internal/store"
)

// Clock tells the time; tests pass a fake one.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock is the real clock.
var SystemClock Clock = systemClock{}

// Options configure a Broker.
type Options struct {
	Store   store.Store
	Runtime runtime.Runtime
	// Clock tells the time of every deadline and expiry: the database's
	// when replicas share one (internal/dbclock), or this machine's.
	Clock  Clock
	Events Events
	// Outbox keeps events in the transactions that cause them (none kept
	// when nil).
	Outbox Outbox
	Logger *slog.Logger
	// URL is the public base URL of the portal, without a trailing slash.
	URL string
	// Sessions are the origins the sessions are served from (default:
	// those sessionorigin.New gives the portal's URL).
	Sessions sessionorigin.Origins
	// Replica names this process among the portal's replicas; random when
	// empty.
	Replica string
	// WebhookSecret is the secret webhook deliveries are signed with,
	// shown to staff so they can set up receivers.
	WebhookSecret string
	// Secrets seals the config passwords of sessions in the database;
	// replicas of one database must share its key. Required.
	Secrets *secret.Box
	// Observer is told what the broker does, for the portal's metrics
	// (default: nobody).
	Observer Observer
}

// Observer is told what the broker did, once it is done (committed): the
// portal's metrics implement it, so that the domain knows nothing of
// them. Calls must not block.
type Observer interface {
	// Allocated: a session of environment went to a user, from source:
	// "reserve", "new", or "existing" (the user's own, handed again).
	Allocated(environment, source string)
	// Refused: a request for a session of environment (empty when it
	// named none that exists) was refused for reason, one of RefusalReasons.
	Refused(environment, reason string)
	// SessionStarted: a session host of environment started in took.
	SessionStarted(environment string, took time.Duration)
	// SessionStartFailed: a start of a session host of environment failed.
	SessionStartFailed(environment string)
	// Reconciled: a reconciler pass took took and began lag after the
	// deadline it was due for; failed when it ended with an error.
	Reconciled(took, lag time.Duration, failed bool)
	// Leading: whether this replica holds the reconciler lease, after each
	// attempt to take or renew it.
	Leading(leader bool)
}

type discardObserver struct{}

func (discardObserver) Allocated(string, string)                      {}
func (discardObserver) Refused(string, string)                        {}
func (discardObserver) SessionStarted(string, time.Duration)          {}
func (discardObserver) SessionStartFailed(string)                     {}
func (discardObserver) Reconciled(time.Duration, time.Duration, bool) {}
func (discardObserver) Leading(bool)                                  {}

// Broker runs the portal.
type Broker struct {
	store    store.Store
	runtime  runtime.Runtime
	clock    Clock
	events   Events
	outbox   Outbox
	log      *slog.Logger
	url      string
	sessions sessionorigin.Origins
	replica  string
	secrets  *secret.Box
	observe  Observer
	// hookSecret is Options.WebhookSecret.
	hookSecret string

	defs atomic.Pointer[config.Definitions]
	// wake nudges the reconciler after a change it must act on.
	wake chan struct{}
	rec  reconcilerState
}

// New returns a broker serving defs. Call Apply to bring the database in
// line with the definitions, and Run to start the reconciler.
func New(opts Options, defs *config.Definitions) *Broker {
	b := &Broker{
		store:      opts.Store,
		runtime:    opts.Runtime,
		clock:      opts.Clock,
		events:     opts.Events,
		outbox:     opts.Outbox,
		log:        opts.Logger,
		url:        opts.URL,
		sessions:   opts.Sessions,
		replica:    cmp.Or(opts.Replica, secret.Alnum(12)),
		secrets:    opts.Secrets,
		hookSecret: opts.WebhookSecret,
		observe:    opts.Observer,
		wake:       make(chan struct{}, 1),
	}
	if b.sessions == (sessionorigin.Origins{}) {
		b.sessions, _ = sessionorigin.New(opts.URL, "")
	}
	if b.secrets == nil {
		panic("broker.New: no Options.Secrets to seal config passwords with")
	}
	if b.clock == nil {
		b.clock = SystemClock
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.events == nil {
		b.events = discardEvents{}
	}
	if b.observe == nil {
		b.observe = discardObserver{}
	}
	b.rec.init()
	b.defs.Store(defs)
	return b
}

// Portal returns the portal definition in force.
func (b *Broker) Portal() *config.Portal { return &b.defs.Load().Portal }

// URL is the public base URL of the portal.
func (b *Broker) URL() string { return b.url }

// SessionURL is the origin a session is served from, through the portal.
func (b *Broker) SessionURL(name string) string { return b.sessions.URL(name) }

// Origins are the origins the sessions are served from.
func (b *Broker) Origins() sessionorigin.Origins { return b.sessions }

func (b *Broker) now() time.Time { return b.clock.Now().UTC().Truncate(time.Millisecond) }

// notify wakes the reconciler for a full pass, without blocking.
func (b *Broker) notify() {
	b.rec.mu.Lock()
	b.rec.full = true
	b.rec.mu.Unlock()
	b.nudge()
}

// replenish wakes the reconciler to top up the reserve of the environment
// envID (none when 0) and to act on a session deadline that may be earlier
// than the one it sleeps until (none when zero): what an allocation leaves
// to do, without a full pass.
func (b *Broker) replenish(envID int64, deadline time.Time) {
	r := &b.rec
	r.mu.Lock()
	if envID != 0 {
		r.replenish[envID] = true
	}
	if !deadline.IsZero() && (r.soon.IsZero() || deadline.Before(r.soon)) {
		r.soon = deadline
	}
	r.mu.Unlock()
	b.nudge()
}

func (b *Broker) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// update runs fn in a write transaction. Events fn records go to the
// outbox in that transaction and are emitted only once it has committed,
// and the reconciler is woken, since most writes leave it work.
func (b *Broker) update(ctx context.Context, fn func(tx store.Tx, record func(Event)) error) error {
	err := b.commit(ctx, fn)
	if err == nil {
		b.notify()
	}
	return err
}

// commit is update without waking the reconciler.
func (b *Broker) commit(ctx context.Context, fn func(tx store.Tx, record func(Event)) error) error {
	var events []Event
	err := b.store.Update(ctx, func(tx store.Tx) error {
		events = events[:0] // the store may run fn again
		if err := fn(tx, func(e Event) { events = append(events, e) }); err != nil {
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
	return nil
}

func envOf(vars []config.EnvVar) []runtime.EnvVar {
	out := make([]runtime.EnvVar, len(vars))
	for i, v := range vars {
		out[i] = runtime.EnvVar{Name: v.Name, Value: v.Value}
	}
	return out
}
