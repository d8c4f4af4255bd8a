// Package metrics exposes the portal to Prometheus: what the broker does
// (allocations, refusals, session starts, reconciler passes, the lease),
// what the HTTP server answers, how the store fares, and webhook
// deliveries. Counts of sessions are read from the store at scrape time
// (sessions.go), so no counter here can drift from the database, the one
// source of truth.
//
// Labels never carry user names or raw paths: only environment and
// workshop names from the definitions, route patterns and fixed words, so
// nothing an attendee sends can grow the number of series.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "portico"

// Metrics holds the portal's metrics. Its methods may be called on a nil
// *Metrics, which records nothing: code that is handed none need not check.
type Metrics struct {
	reg *prometheus.Registry

	allocations   *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	startSeconds  *prometheus.HistogramVec
	startFailures *prometheus.CounterVec
	passSeconds   prometheus.Histogram
	passLag       prometheus.Histogram
	passErrors    prometheus.Counter
	leader        prometheus.Gauge
	storeErrors   *prometheus.CounterVec
	storeRetries  *prometheus.CounterVec
	requests      *prometheus.HistogramVec
	webhooks      *prometheus.CounterVec
	webhookTime   prometheus.Histogram
}

// New returns the portal's metrics, with the Go runtime's and the
// process's own beside them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Session starts run setup scripts: seconds to minutes.
	startBuckets := []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// Reconciler passes are short; their lag is up to a lease renewal.
	passBuckets := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	m.allocations = m.counterVec("allocations_total",
		"Sessions handed to users, by environment and where the session came from: reserve, new or existing (the user's own, handed again).",
		"environment", "source")
	m.refusals = m.counterVec("allocation_refusals_total",
		"Requests for a session that were refused, by environment (empty when the request named none that exists) and reason.",
		"environment", "reason")
	m.startSeconds = m.histogramVec("session_start_duration_seconds",
		"Time the runtime took to start a session host, setup scripts included, by environment.", startBuckets, "environment")
	m.startFailures = m.counterVec("session_start_failures_total",
		"Session starts that failed, by environment; reserved sessions retry, owned ones end after a few attempts.", "environment")
	m.passSeconds = m.histogram("reconcile_duration_seconds", "Time a reconciler pass took.", passBuckets)
	m.passLag = m.histogram("reconcile_lag_seconds",
		"How late a reconciler pass began after the deadline it was due for (an expiry, a retry).", passBuckets)
	m.passErrors = m.counter("reconcile_errors_total", "Reconciler passes that ended with an error.")
	m.leader = m.gauge("reconciler_leader",
		"1 while this replica holds the reconciler lease, else 0; the sum over replicas should be 1.")
	m.storeErrors = m.counterVec("store_errors_total",
		"Store transactions that failed, by operation (update, view) and kind: unavailable (the database) or conflict (a lost race the retries did not settle).",
		"operation", "kind")
	m.storeRetries = m.counterVec("store_retries_total",
		"Times the store ran a transaction again after a serialization failure or deadlock, by operation.", "operation")
	m.requests = m.histogramVec("http_request_duration_seconds",
		"Time to answer HTTP requests, by route pattern, method and status code. Proxied requests to sessions are the route \"session\"; a websocket counts until its upgrade.",
		prometheus.DefBuckets, "route", "method", "code")
	m.webhooks = m.counterVec("webhook_deliveries_total",
		"Attempts to deliver a webhook, by outcome: delivered, retry (tried again later) or failed (given up).", "outcome")
	m.webhookTime = m.histogram("webhook_delivery_duration_seconds",
		"Time a webhook delivery attempt took, whatever its outcome.", prometheus.DefBuckets)
	return m
}

func (m *Metrics) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	m.reg.MustRegister(c)
	return c
}

func (m *Metrics) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	m.reg.MustRegister(g)
	return g
}

func (m *Metrics) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	m.reg.MustRegister(h)
	return h
}

func (m *Metrics) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	m.reg.MustRegister(h)
	return h
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Allocated counts a session handed to a user.
func (m *Metrics) Allocated(environment, source string) {
	if m != nil {
		m.allocations.WithLabelValues(environment, source).Inc()
	}
}

// Refused counts a request for a session that was refused.
func (m *Metrics) Refused(environment, reason string) {
	if m != nil {
		m.refusals.WithLabelValues(environment, reason).Inc()
	}
}

// SessionStarted records how long a session host took to start.
func (m *Metrics) SessionStarted(environment string, took time.Duration) {
	if m != nil {
		m.startSeconds.WithLabelValues(environment).Observe(took.Seconds())
	}
}

// SessionStartFailed counts a failed start of a session host.
func (m *Metrics) SessionStartFailed(environment string) {
	if m != nil {
		m.startFailures.WithLabelValues(environment).Inc()
	}
}

// Reconciled records a reconciler pass: how long it took, how late it
// began after the deadline it was due for, and whether it failed.
func (m *Metrics) Reconciled(took, lag time.Duration, failed bool) {
	if m == nil {
		return
	}
	m.passSeconds.Observe(took.Seconds())
	m.passLag.Observe(lag.Seconds())
	if failed {
		m.passErrors.Inc()
	}
}

// Leading records whether this replica holds the reconciler lease.
func (m *Metrics) Leading(leader bool) {
	if m == nil {
		return
	}
	if leader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// Request records an HTTP request answered: route is the pattern that
// matched it, never its path.
func (m *Metrics) Request(route, method string, code int, took time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(route, knownMethod(method), strconv.Itoa(code)).Observe(took.Seconds())
	}
}

// Outcomes of a webhook delivery attempt, for WebhookDelivery.
const (
	WebhookDelivered = "delivered" // the receiver answered 2xx
	WebhookRetry     = "retry"     // another attempt follows
	WebhookFailed    = "failed"    // given up: no attempt follows
)

// WebhookDelivery records one attempt to deliver a webhook: its outcome
// (WebhookDelivered, WebhookRetry or WebhookFailed, the outcomes of
// webhook.Attempt) and how long the
// attempt took.
func (m *Metrics) WebhookDelivery(outcome string, took time.Duration) {
	if m == nil {
		return
	}
	switch outcome {
	case WebhookDelivered, WebhookRetry, WebhookFailed:
	default:
		// A typo must not make a series of its own.
		outcome = WebhookFailed
	}
	m.webhooks.WithLabelValues(outcome).Inc()
	m.webhookTime.Observe(took.Seconds())
}

// knownMethod keeps the method label to the methods of HTTP: a client
// may send any token as its method.
func knownMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}
