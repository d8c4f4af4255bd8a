package broker_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// outbox keeps each event as a row, in the transaction it is given, and
// fails while broken is set.
type outbox struct {
	mu     sync.Mutex
	n      int
	broken bool
}

var errOutbox = errors.New("outbox broken")

func (o *outbox) Add(tx store.Tx, events []broker.Event) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.broken {
		return errOutbox
	}
	for _, e := range events {
		o.n++
		if err := tx.InsertWebhook(store.Webhook{ID: fmt.Sprintf("msg_%d", o.n), URL: "https://hooks.test/",
			Event: e.Name + " " + e.Session, Body: "{}", State: store.WebhookPending}); err != nil {
			return err
		}
	}
	return nil
}

func (o *outbox) set(broken bool) {
	o.mu.Lock()
	o.broken = broken
	o.mu.Unlock()
}

func kept(t *testing.T, p *portaltest.Portal) []string {
	t.Helper()
	var list []store.Webhook
	if err := p.Store.View(ctx, func(tx store.Tx) (err error) {
		list, err = tx.Webhooks(1000)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range list {
		out = append(out, w.Event)
	}
	return out
}

// Events are kept in the transaction of the change that causes them: a
// change whose events cannot be kept does not happen, and every committed
// change has its events kept.
func TestEventsAreKeptWithTheirChange(t *testing.T) {
	o := &outbox{}
	p := portaltest.Start(t, portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour}),
		portaltest.Options{Runtime: runtimetest.New(), Outbox: o})
	if got := kept(t, p); !slices.Contains(got, "Environment/Created ") || !slices.Contains(got, "Session/Created portal-w01-s001") {
		t.Errorf("kept at start: %v", got)
	}

	o.set(true)
	_, err := p.Broker.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: "alice", IndexURL: "https://hub.test/"})
	if !errors.Is(err, errOutbox) {
		t.Fatalf("request with a broken outbox: %v", err)
	}
	if s := p.Session("portal-w01-s001"); s.Owner != 0 {
		t.Fatalf("the session was handed out though its events were lost: %+v", s)
	}

	o.set(false)
	al := request(t, p, "alice", 0)
	got := kept(t, p)
	for _, want := range []string{"Session/Allocated", "Session/Pending"} {
		if !slices.Contains(got, want+" "+al.Session.Name) {
			t.Errorf("no %s kept for the allocation: %v", want, got)
		}
	}
	// Events a session reports are kept too.
	if err := p.Broker.Event(ctx, robot(t, p), al.Session.Name, "Workshop/Start", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if got := kept(t, p); !slices.Contains(got, "Workshop/Start "+al.Session.Name) {
		t.Errorf("reported event not kept: %v", got)
	}
	// So are the reconciler's: the session expires.
	p.Clock.Advance(2 * time.Hour)
	p.Settle()
	if got := kept(t, p); !slices.Contains(got, "Session/Expired "+al.Session.Name) {
		t.Errorf("expiry not kept: %v", got)
	}
}
