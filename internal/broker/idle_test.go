package broker_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
)

// recording is a store that notes every session query its transactions
// make.
type recording struct {
	store.Store
	mu      sync.Mutex
	queries []store.SessionQuery
}

func (r *recording) View(ctx context.Context, fn func(store.Tx) error) error {
	return r.Store.View(ctx, func(tx store.Tx) error { return fn(recordingTx{tx, r}) })
}

func (r *recording) Update(ctx context.Context, fn func(store.Tx) error) error {
	return r.Store.Update(ctx, func(tx store.Tx) error { return fn(recordingTx{tx, r}) })
}

type recordingTx struct {
	store.Tx
	r *recording
}

func (tx recordingTx) note(q store.SessionQuery) {
	tx.r.mu.Lock()
	tx.r.queries = append(tx.r.queries, q)
	tx.r.mu.Unlock()
}

func (tx recordingTx) FindSessions(q store.SessionQuery) ([]store.Session, error) {
	tx.note(q)
	return tx.Tx.FindSessions(q)
}

func (tx recordingTx) CountSessions(q store.SessionQuery) (int, error) {
	tx.note(q)
	return tx.Tx.CountSessions(q)
}

// bounded reports whether a session query can only reach rows that may
// need the reconciler: due by a deadline, in a transient state, in a
// reserve, or at most a fixed number of them. Sessions that are simply
// held (WAITING for their owner, RUNNING) are none of these.
func bounded(q store.SessionQuery) bool {
	transient := len(q.States) > 0 && !slices.ContainsFunc(q.States, func(s store.SessionState) bool {
		return s != store.Starting && s != store.Stopping
	})
	return q.Limit > 0 || transient || q.Ownership == store.Unowned || q.Owner != 0 ||
		!q.ExpiresBy.IsZero() || !q.StartBy.IsZero() || !q.CheckBy.IsZero() || q.Undelivered
}

// An idle reconciler pass costs O(changes), not O(sessions held) (issue
// 14): with sessions held and nothing due, it asks the store only about
// rows that may be due.
func TestIdlePassReadsNoHeldSessions(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 20, Reserved: 2, Initial: 2, Expires: time.Hour})
	for _, u := range []string{"alice", "bob", "carol"} {
		activate(t, p, request(t, p, u, time.Minute))
	}
	request(t, p, "dave", 10*time.Minute) // pending, with an activation deadline
	p.Settle()
	rec := &recording{Store: p.Store}
	b := broker.New(broker.Options{Store: rec, Runtime: rt, Clock: p.Clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Replica: "idle", Secrets: p.Secrets, URL: p.Broker.URL()}, p.Defs)
	if _, err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	if len(rec.queries) == 0 {
		t.Fatal("the pass asked the store nothing")
	}
	for _, q := range rec.queries {
		if !bounded(q) {
			t.Errorf("an idle pass reads every session of %+v", q)
		}
	}
}
