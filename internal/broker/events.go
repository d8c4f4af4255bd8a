package broker

import (
	"context"
	"time"

	"github.com/portico-dev/portico/internal/store"
)

// Event is an analytics event (spec §10): what happened to a user, an
// environment or a session.
type Event struct {
	Name        string // e.g. Session/Started
	Time        time.Time
	User        string
	Session     string
	Environment string
	Workshop    string
	Data        map[string]any
	// Webhook is the session's own analytics URL, if it has one.
	Webhook string
}

// Events receives analytics events once the change that caused them has
// committed (and the Outbox has them). Emit must not block: delivery is
// the receiver's business and must never hold up a request.
type Events interface {
	Emit(Event)
}

type discardEvents struct{}

func (discardEvents) Emit(Event) {}

// Outbox keeps events for delivery in the very transaction of the change
// that causes them: once that change has committed, its events are kept
// too, whatever happens to the process after.
type Outbox interface {
	Add(tx store.Tx, events []Event) error
}

// keep adds events to the outbox, if the portal has one.
func (b *Broker) keep(tx store.Tx, events []Event) error {
	if b.outbox == nil || len(events) == 0 {
		return nil
	}
	return b.outbox.Add(tx, events)
}

// emit keeps one event that no other change causes (one a session reports)
// and then announces it.
func (b *Broker) emit(ctx context.Context, e Event) error {
	if b.outbox == nil {
		b.events.Emit(e)
		return nil
	}
	if err := b.store.Update(ctx, func(tx store.Tx) error { return b.keep(tx, []Event{e}) }); err != nil {
		return err
	}
	b.events.Emit(e)
	return nil
}

// DeliveryLog is what staff see of webhook deliveries.
type DeliveryLog struct {
	// Secret is what receivers verify signatures with.
	Secret string
	// Deliveries are the latest, newest first.
	Deliveries []store.Webhook
}

// Deliveries returns the delivery log, with at most limit deliveries.
func (b *Broker) Deliveries(ctx context.Context, caller store.User, limit int) (DeliveryLog, error) {
	if err := staffOnly(caller); err != nil {
		return DeliveryLog{}, err
	}
	out := DeliveryLog{Secret: b.hookSecret}
	err := b.store.View(ctx, func(tx store.Tx) (err error) {
		out.Deliveries, err = tx.Webhooks(min(limit, maxListed))
		return err
	})
	return out, err
}

func (b *Broker) sessionEvent(name string, s store.Session, env store.Environment, data map[string]any) Event {
	if data == nil {
		data = map[string]any{}
	}
	return Event{Name: name, Time: b.now(), User: s.OwnerName, Session: s.Name,
		Environment: env.Name, Workshop: env.Workshop.Name, Data: data, Webhook: s.Analytics}
}
