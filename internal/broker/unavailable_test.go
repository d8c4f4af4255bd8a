package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// failingStore is the real store but for the look for a failing reserve,
// which fails as a database that went away mid-transaction does.
type failingStore struct{ store.Store }

type failingTx struct{ store.Tx }

func (s failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(failingTx{tx}) })
}

func (tx failingTx) FindSessions(q store.SessionQuery) ([]store.Session, error) {
	if q.Failing {
		return nil, fmt.Errorf("%w: FATAL: terminating connection due to administrator command (host db.internal:5432, user portico)", store.ErrUnavailable)
	}
	return tx.Tx.FindSessions(q)
}

// TestFullEnvironmentWithDatabaseDown: a request that finds the
// environment full while the database fails (found by the chaos run of
// issue 15) fails as the database's failure, which the API answers with its
// own fixed reason, not as "No session available" with the database's
// error, address and user as the reason people see.
func TestFullEnvironmentWithDatabaseDown(t *testing.T) {
	defs := portaltest.Definitions(config.Entry{Capacity: 1, Expires: time.Hour})
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
	request(t, p, "alice", time.Minute) // the one place
	b := broker.New(broker.Options{Store: failingStore{p.Store}, Runtime: runtimetest.New(), Clock: p.Clock,
		Events: p.Events, Secrets: p.Secrets}, defs)
	_, err := b.Request(ctx, robot(t, p), broker.Request{Environment: "portal-w01", Username: "bob",
		IndexURL: "https://hub.test/", Timeout: time.Minute})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("request with the database failing: %v, want store.ErrUnavailable", err)
	}
	if k := broker.KindOf(err); k != 0 || strings.Contains(err.Error(), "No session available") {
		t.Errorf("request with the database failing: kind %v, %q; want the database's failure alone", k, err)
	}
}
