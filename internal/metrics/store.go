package metrics

import (
	"context"
	"errors"

	"github.com/portico-dev/portico/internal/store"
)

// observedStore counts the errors and retries of a store's transactions.
type observedStore struct {
	store.Store
	m *Metrics
}

// Store returns s counting its transactions' errors and retries in m.
func (m *Metrics) Store(s store.Store) store.Store {
	if m == nil {
		return s
	}
	return observedStore{Store: s, m: m}
}

func (s observedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.observe("update", ctx, s.Store.Update, fn)
}

func (s observedStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.observe("view", ctx, s.Store.View, fn)
}

// observe runs a transaction, counting the runs of fn past the first
// (the store retries fn, per store.Store) and the errors of the database
// itself; errors of the caller's own making (a session not found, a
// refusal) are not the store's.
func (s observedStore) observe(op string, ctx context.Context, run func(context.Context, func(store.Tx) error) error, fn func(store.Tx) error) error {
	runs := 0
	err := run(ctx, func(tx store.Tx) error {
		runs++
		return fn(tx)
	})
	if runs > 1 {
		s.m.storeRetries.WithLabelValues(op).Add(float64(runs - 1))
	}
	switch {
	case errors.Is(err, store.ErrUnavailable):
		s.m.storeErrors.WithLabelValues(op, "unavailable").Inc()
	case errors.Is(err, store.ErrConflict):
		s.m.storeErrors.WithLabelValues(op, "conflict").Inc()
	}
	return err
}
