package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
)

// scrape fetches the metrics at target with c and parses them with the
// Prometheus text parser.
func scrape(t *testing.T, c *client, target string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, raw := c.do("GET", target, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, resp.StatusCode, raw)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, raw)
	}
	return families
}

// sample is the value of the series of family whose labels include want:
// a counter's or gauge's value, a histogram's count; -1 when none is.
func sample(families map[string]*dto.MetricFamily, family string, want map[string]string) float64 {
	f := families[family]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// logLines parses the JSON lines of the portal's output (the test's own
// "=== e2e" lines and anything else are not JSON and are left out).
func logLines(t *testing.T, output string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		lines = append(lines, m)
	}
	return lines
}

// A session's whole life (allocated from the reserve, activated, used
// through its origin, terminated) shows in the metrics, scraped and parsed
// as Prometheus does, and in the JSON log, one request line per request
// with the ID it was given.
func TestMetricsAndLogsOfASessionLifecycle(t *testing.T) {
	metricsAddr := freeAddr(t)
	// The portal's analytics receiver, so webhook deliveries are counted.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(receiver.Close)
	p := newPortal(t, definitions(entry{Capacity: 4, Reserved: 1}),
		"--metrics-listen", metricsAddr, "--log-format", "json", "--log-level", "debug",
		"--analytics-webhook", receiver.URL)
	p.start()
	p.waitReady()
	robot := p.robot()
	open := p.client()
	metricsURL := "http://" + metricsAddr + "/metrics"
	sessions := func(fs map[string]*dto.MetricFamily, state string) float64 {
		return sample(fs, "portico_sessions", map[string]string{"environment": envName, "state": state})
	}
	if msg := eventually(settle, func() string {
		fs := scrape(t, open, metricsURL)
		if n := sample(fs, "portico_reserve_sessions", map[string]string{"environment": envName}); n != 1 {
			return fmt.Sprintf("reserve depth %v, want 1", n)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	const requestID = "e2e-lifecycle-0001"
	resp, raw := robot.do("GET", requestPath("alice", ""), nil, "X-Request-Id", requestID)
	var a allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil {
		t.Fatalf("request: %d %s", resp.StatusCode, raw)
	}
	if got := resp.Header.Get("X-Request-Id"); got != requestID {
		t.Errorf("answer's X-Request-Id %q, want the request's %q", got, requestID)
	}
	browser := p.browser()
	if resp, _ := browser.do("GET", a.URL, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("activation: %d", resp.StatusCode)
	}
	origin := browser.enter(a.Name)
	if resp, _ := browser.do("GET", origin+"/", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("session dashboard: %d", resp.StatusCode)
	}
	fs := scrape(t, open, metricsURL)
	if n := sessions(fs, "RUNNING"); n != 1 {
		t.Errorf("RUNNING sessions while alice works: %v, want 1", n)
	}
	robot.mustGet("/workshops/session/"+a.Name+"/terminate/", nil)

	if msg := eventually(settle, func() string {
		fs = scrape(t, open, metricsURL)
		if n := sessions(fs, "RUNNING"); n != 0 {
			return fmt.Sprintf("RUNNING sessions after terminate: %v", n)
		}
		if n := sessions(fs, "STOPPING"); n != 0 {
			return fmt.Sprintf("STOPPING sessions after terminate: %v", n)
		}
		if n := sample(fs, "portico_reserve_sessions", map[string]string{"environment": envName}); n != 1 {
			return fmt.Sprintf("reserve depth after terminate: %v, want 1 (topped up)", n)
		}
		if n := sample(fs, "portico_webhook_deliveries_total", map[string]string{"outcome": "delivered"}); n < 1 {
			return fmt.Sprintf("webhook deliveries: %v, want some", n)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	for _, c := range []struct {
		family string
		labels map[string]string
		want   func(float64) bool
		what   string
	}{
		{"portico_allocations_total", map[string]string{"environment": envName, "source": "reserve"}, eq(1), "1"},
		{"portico_allocations_total", map[string]string{"source": "new"}, eq(-1), "no series"},
		{"portico_capacity_sessions", map[string]string{"environment": envName}, eq(4), "4"},
		{"portico_reserve_target_sessions", map[string]string{"environment": envName}, eq(1), "1"},
		{"portico_database_up", nil, eq(1), "1"},
		{"portico_reconciler_leader", nil, eq(1), "1"},
		// alice's reserve, and the one that replaced it
		{"portico_session_start_duration_seconds", map[string]string{"environment": envName}, atLeast(2), ">= 2"},
		{"portico_session_start_failures_total", nil, eq(-1), "no series"},
		{"portico_reconcile_duration_seconds", nil, atLeast(1), ">= 1"},
		{"portico_http_request_duration_seconds",
			map[string]string{"route": "/workshops/environment/{name}/request/{$}", "method": "GET", "code": "200"}, eq(1), "1"},
		{"portico_http_request_duration_seconds",
			map[string]string{"route": "/workshops/session/{name}/terminate/{$}", "method": "GET", "code": "200"}, eq(1), "1"},
		{"portico_http_request_duration_seconds", map[string]string{"route": "session", "code": "200"}, atLeast(1), ">= 1"},
	} {
		if got := sample(fs, c.family, c.labels); !c.want(got) {
			t.Errorf("%s%v = %v, want %s", c.family, c.labels, got, c.what)
		}
	}
	for _, f := range fs {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "alice") || strings.Contains(l.GetValue(), a.Name) {
					t.Errorf("%s has label %s=%q: no user or session names in labels", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The portal's own /metrics is for staff and robots only.
	if resp, raw := open.do("GET", "/metrics", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d %s, want 401", resp.StatusCode, raw)
	}
	if n := sample(scrape(t, robot, "/metrics"), "portico_allocations_total", map[string]string{"source": "reserve"}); n != 1 {
		t.Errorf("/metrics of the portal's listener with the robot's token: allocations %v, want 1", n)
	}

	lines := logLines(t, p.output())
	var requestLogged, allocated, adopted bool
	for _, l := range lines {
		switch l["msg"] {
		case "request":
			if l["request_id"] == requestID {
				requestLogged = l["route"] == "/workshops/environment/{name}/request/{$}" && l["method"] == "GET" &&
					l["status"] == float64(200) && l["level"] == "INFO" && l["duration"] != nil
			}
			if id, _ := l["request_id"].(string); len(id) < 16 {
				t.Errorf("request logged with the ID %q: a generated ID is 20 characters", id)
			}
		case "session allocated":
			allocated = l["session"] == a.Name && l["environment"] == envName && l["user"] == "alice" && l["level"] == "INFO"
		case "sessions adopted":
			adopted = true
		}
	}
	if !requestLogged || !allocated || !adopted {
		t.Errorf("JSON log: request line with its ID %v, allocation %v, adoption %v; log:\n%s", requestLogged, allocated, adopted, p.output())
	}
	token, _ := url.ParseQuery(strings.SplitN(a.URL, "?", 2)[1])
	for _, s := range []string{token.Get("token"), robot.bearer, robotPass, clientSecret} {
		if s != "" && strings.Contains(p.output(), s) {
			t.Errorf("the log holds a secret: %q", s)
		}
	}
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// /readyz follows the database: 503 while PostgreSQL is down, 200 again
// once it is back, while /healthz answers throughout.
func TestReadinessFollowsTheDatabase(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	p := newPortal(t, definitions(entry{Capacity: 2, Reserved: 0}), "--database", pg.NewDatabase(t))
	p.env = []string{"PORTICO_SECRET_KEY=" + secret.NewKey()}
	p.start()
	p.waitReady()
	c := p.client()
	type health struct {
		Status, Error string
		Checks        map[string]string
	}
	probe := func(path string, want int) string {
		var h health
		if got := c.get(path, &h); got != want {
			return fmt.Sprintf("%s: %d %+v, want %d", path, got, h, want)
		}
		if want == http.StatusServiceUnavailable && (h.Checks["database"] != "failed" || h.Error == "") {
			return fmt.Sprintf("%s while the database is down: %+v", path, h)
		}
		if want == http.StatusOK && path == "/readyz" && h.Checks["database"] != "ok" {
			return fmt.Sprintf("%s: %+v", path, h)
		}
		return ""
	}
	for _, step := range []struct {
		what  string
		act   func()
		ready int
	}{
		{"with the database up", func() {}, http.StatusOK},
		{"with PostgreSQL stopped", pg.Stop, http.StatusServiceUnavailable},
		{"with PostgreSQL started again", pg.Start, http.StatusOK},
	} {
		step.act()
		if msg := eventually(settle, func() string { return probe("/readyz", step.ready) }); msg != "" {
			t.Fatalf("%s: %s", step.what, msg)
		}
		if msg := probe("/healthz", http.StatusOK); msg != "" {
			t.Errorf("%s: %s", step.what, msg)
		}
	}
}
