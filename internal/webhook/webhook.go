// Package webhook delivers analytics and session lifecycle events (spec
// §10) as JSON POSTs to the portal's webhook and to a session's own
// analytics URL, reliably: events go to an outbox table in the
// transaction of the change that causes them, and a delivery loop posts
// them at least once, signed per Standard Webhooks, retrying with
// exponential backoff and jitter until a receiver answers 2xx or the
// delivery is too old. Every replica runs the loop; a row is claimed by
// one replica at a time. A slow or dead receiver never holds up the
// portal.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Portal identifies the sender in every payload.
type Portal struct {
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	URL        string `json:"url"`
}

// Add puts a delivery of each event into the outbox, in tx, for every URL
// that wants it: the portal's webhook, and the session's analytics URL
// (guarded: a client gave it). It implements broker.Outbox.
func (s *Sender) Add(tx store.Tx, events []broker.Event) error {
	now := s.clock.Now().UTC()
	for _, e := range events {
		body := s.payload(e)
		for _, dest := range []struct {
			url     string
			guarded bool
		}{{s.global, false}, {e.Webhook, true}} {
			if dest.url == "" {
				continue
			}
			err := tx.InsertWebhook(store.Webhook{ID: "msg_" + secret.Alnum(24), URL: dest.url, Guarded: dest.guarded,
				Event: e.Name, Body: string(body), Created: now, State: store.WebhookPending, NextAt: now})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// Emit wakes the delivery loop once the events of a change have
// committed. It implements broker.Events.
func (s *Sender) Emit(e broker.Event) {
	s.log.Debug("event", "name", e.Name, "session", e.Session, "user", e.User)
	s.nudge()
}

func (s *Sender) payload(e broker.Event) []byte {
	event := map[string]any{"name": e.Name, "timestamp": e.Time.UTC().Format("2006-01-02T15:04:05.000000-07:00"), "data": e.Data}
	portal := s.portal
	switch {
	case e.Session != "":
		event["user"], event["session"], event["environment"], event["workshop"] = nullable(e.User), e.Session, e.Environment, e.Workshop
	case e.Environment != "":
		event["environment"], event["workshop"] = e.Environment, e.Workshop
	default:
		event["user"] = e.User
		portal.UID, portal.Generation = "", 0
	}
	body, err := json.Marshal(map[string]any{"portal": portal, "event": event})
	if err != nil {
		// Data comes from the broker and from JSON a session reported:
		// both always encode.
		panic(fmt.Sprintf("webhook: encode %s: %v", e.Name, err))
	}
	return body
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Origin names a webhook by its origin only: its URL may carry a
// credential, in its user part or its query, which logs and the delivery
// log must not show.
func Origin(webhook string) string {
	if o, ok := config.Origin(webhook); ok {
		return o
	}
	return "(not an http or https URL)"
}

// withoutURL drops the URL that errors of net/url and net/http quote.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
