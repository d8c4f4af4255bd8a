package broker

import (
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

// Events receives analytics events. Emit must not block: delivery is the
// receiver's business and must never hold up a request.
type Events interface {
	Emit(Event)
}

type discardEvents struct{}

func (discardEvents) Emit(Event) {}

func (b *Broker) sessionEvent(name string, s store.Session, env store.Environment, data map[string]any) Event {
	if data == nil {
		data = map[string]any{}
	}
	return Event{Name: name, Time: b.now(), User: s.OwnerName, Session: s.Name,
		Environment: env.Name, Workshop: env.Workshop.Name, Data: data, Webhook: s.Analytics}
}
