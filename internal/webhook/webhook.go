// Package webhook delivers analytics events (spec §10) as JSON POSTs to
// the portal's analytics webhook and to a session's own analytics URL.
// Delivery is asynchronous, best effort and bounded: a slow or dead
// receiver never holds up the portal.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
)

// Portal identifies the sender in every payload.
type Portal struct {
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	URL        string `json:"url"`
}

// Sender posts events. It implements broker.Events.
type Sender struct {
	portal Portal
	global string // portal-wide webhook URL; may be empty
	queue  chan job
	client *http.Client
	log    *slog.Logger
}

type job struct {
	url  string
	body []byte
}

// New starts a sender with a few workers; they stop when ctx ends.
func New(ctx context.Context, portal Portal, global string, log *slog.Logger) *Sender {
	s := &Sender{portal: portal, global: global, queue: make(chan job, 1024),
		client: &http.Client{Timeout: 2500 * time.Millisecond}, log: log}
	for range 4 {
		go s.work(ctx)
	}
	return s
}

// Emit queues e for every URL that wants it; when the queue is full the
// event is dropped and logged.
func (s *Sender) Emit(e broker.Event) {
	s.log.Debug("event", "name", e.Name, "session", e.Session, "user", e.User)
	for _, url := range []string{s.global, e.Webhook} {
		if url == "" {
			continue
		}
		select {
		case s.queue <- job{url, s.payload(e)}:
		default:
			s.log.Warn("analytics queue full, event dropped", "event", e.Name, "webhook", origin(url))
		}
	}
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
	body, _ := json.Marshal(map[string]any{"portal": portal, "event": event})
	return body
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Sender) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.queue:
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(j.body))
			if err != nil {
				s.log.Warn("analytics webhook", "webhook", origin(j.url), "err", withoutURL(err))
				continue
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := s.client.Do(req)
			if err != nil {
				s.log.Warn("analytics webhook", "webhook", origin(j.url), "err", withoutURL(err))
				continue
			}
			resp.Body.Close()
		}
	}
}

// A webhook's URL may carry a credential, in its user part or its query:
// the log names the webhook by its origin only.
func origin(webhook string) string {
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
