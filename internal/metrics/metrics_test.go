package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/metrics"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

func scrape(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fs, err := parser.TextToMetricFamilies(bytes.NewReader(w.Body.Bytes()))
	if err != nil {
		t.Fatalf("%v\n%s", err, w.Body.String())
	}
	return fs
}

// value of the series of family with exactly labels; -1 when there is none.
func value(fs map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	for _, m := range fs[family].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	return -1
}

// Allocations and refusals are counted by reason, with the environment
// only when the request named one that exists: what a caller names
// never becomes a label.
func TestAllocationsAndRefusals(t *testing.T) {
	m := metrics.New()
	defs := portaltest.Definitions(config.Entry{Capacity: 2, Reserved: 1, Initial: 1, Expires: time.Hour})
	defs.Portal.Sessions.Anonymous = 1
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New(), Observer: m})
	m.CollectSessions(m.Store(p.Store), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	alice, err := p.Broker.NewAnonymous(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Broker.Allocate(ctx, alice, "portal-w01", "/"); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if _, err := p.Broker.Allocate(ctx, alice, "portal-w01", "/"); err != nil { // her own, again
		t.Fatal(err)
	}
	bob, _ := p.Broker.NewAnonymous(ctx, "bob")
	if _, err := p.Broker.Allocate(ctx, bob, "portal-w01", "/"); err != nil { // the reserve made after alice's
		t.Fatal(err)
	}
	p.Settle()
	carol, _ := p.Broker.NewAnonymous(ctx, "carol")
	for _, env := range []string{"portal-w01", "no-such-environment"} {
		if _, err := p.Broker.Allocate(ctx, carol, env, "/"); err == nil {
			t.Fatalf("carol got a session of %s beyond capacity", env)
		}
	}
	fs := scrape(t, m)
	env := func(labels ...string) map[string]string {
		out := map[string]string{}
		for i := 0; i < len(labels); i += 2 {
			out[labels[i]] = labels[i+1]
		}
		return out
	}
	for _, c := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"portico_allocations_total", env("environment", "portal-w01", "source", "reserve"), 2},
		{"portico_allocations_total", env("environment", "portal-w01", "source", "existing"), 1},
		{"portico_allocations_total", env("environment", "portal-w01", "source", "new"), -1},
		{"portico_allocation_refusals_total", env("environment", "portal-w01", "reason", "capacity"), 1},
		{"portico_allocation_refusals_total", env("environment", "", "reason", "not_found"), 1},
		{"portico_sessions", env("environment", "portal-w01", "workshop", "lab", "state", "RUNNING"), 2},
		{"portico_sessions", env("environment", "portal-w01", "workshop", "lab", "state", "WAITING"), 0},
		{"portico_reserve_sessions", env("environment", "portal-w01", "workshop", "lab"), 0},
		{"portico_capacity_sessions", env("environment", "portal-w01", "workshop", "lab"), 2},
		{"portico_reserve_target_sessions", env("environment", "portal-w01", "workshop", "lab"), 1},
		{"portico_database_up", env(), 1},
	} {
		if got := value(fs, c.family, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}

}

// failingStore runs fn as often as a store retrying a serialization
// failure would, then fails with err.
type failingStore struct {
	store.Store
	runs int
	err  error
}

func (s failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	for range s.runs {
		fn(nil)
	}
	return s.err
}

func TestStoreErrorsAndRetries(t *testing.T) {
	m := metrics.New()
	noop := func(store.Tx) error { return nil }
	m.Store(failingStore{runs: 3, err: nil}).Update(context.Background(), noop)
	m.Store(failingStore{runs: 1, err: errors.Join(errors.New("dial"), store.ErrUnavailable)}).Update(context.Background(), noop)
	m.Store(failingStore{runs: 1, err: &broker.Error{Kind: broker.NotFound, Reason: "no such session"}}).Update(context.Background(), noop)
	fs := scrape(t, m)
	if got := value(fs, "portico_store_retries_total", map[string]string{"operation": "update"}); got != 2 {
		t.Errorf("retries %v, want 2", got)
	}
	if got := value(fs, "portico_store_errors_total", map[string]string{"operation": "update", "kind": "unavailable"}); got != 1 {
		t.Errorf("unavailable errors %v, want 1 (a domain error is not the store's)", got)
	}
	if fs["portico_store_errors_total"] == nil || len(fs["portico_store_errors_total"].GetMetric()) != 1 {
		t.Errorf("store errors: %v", fs["portico_store_errors_total"])
	}
}

// The webhook engineer's API: outcomes outside the three known ones do
// not become series of their own; a nil *Metrics records nothing.
func TestWebhookDeliveries(t *testing.T) {
	m := metrics.New()
	m.WebhookDelivery(metrics.WebhookDelivered, time.Second)
	m.WebhookDelivery(metrics.WebhookRetry, time.Second)
	m.WebhookDelivery("typo", time.Second)
	var none *metrics.Metrics
	none.WebhookDelivery(metrics.WebhookDelivered, time.Second)
	fs := scrape(t, m)
	d := value(fs, "portico_webhook_deliveries_total", map[string]string{"outcome": "delivered"})
	r := value(fs, "portico_webhook_deliveries_total", map[string]string{"outcome": "retry"})
	f := value(fs, "portico_webhook_deliveries_total", map[string]string{"outcome": "failed"})
	if d != 1 || r != 1 || f != 1 {
		t.Errorf("delivered %v, retry %v, failed %v; want 1 each", d, r, f)
	}
}
