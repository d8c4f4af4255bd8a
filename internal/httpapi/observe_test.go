package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/httpapi"
)

type observed struct {
	route, method string
	code          int
}

type recorder struct {
	mu   sync.Mutex
	seen []observed
}

func (r *recorder) Request(route, method string, code int, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, observed{route, method, code})
}

// Each request is logged as one JSON line, under the route pattern that
// took it and never its path, and observed the same way.
func TestObserveLogsRoutesNotPaths(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	mux.HandleFunc("/workshops/session/{name}/schedule/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	obs := &recorder{}
	srv := httptest.NewServer(httpapi.Observe(mux, log, obs))
	defer srv.Close()
	for i, path := range []string{"/workshops/session/alice-secret/schedule/", "/nowhere/bob", "/healthz"} {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Request-Id", fmt.Sprintf("req-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []observed{
		{"/workshops/session/{name}/schedule/", "GET", http.StatusTeapot},
		{"unmatched", "GET", http.StatusNotFound},
		{"/healthz", "GET", http.StatusOK},
	}
	if len(obs.seen) != len(want) {
		t.Fatalf("observed %v, want %v", obs.seen, want)
	}
	for i := range want {
		if obs.seen[i] != want[i] {
			t.Errorf("request %d observed as %+v, want %+v", i, obs.seen[i], want[i])
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), logs.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.Contains(line, "alice-secret") || strings.Contains(line, "bob") {
			t.Errorf("log line holds the path: %s", line)
		}
		if m["msg"] != "request" || m["route"] != want[i].route || m["status"] != float64(want[i].code) ||
			m["method"] != "GET" || m["request_id"] != fmt.Sprintf("req-%d", i) || m["duration"] == nil {
			t.Errorf("log line %d: %s", i, line)
		}
	}
	if !strings.Contains(lines[2], `"level":"DEBUG"`) || !strings.Contains(lines[0], `"level":"INFO"`) {
		t.Errorf("probes log at debug, others at info:\n%s", logs.String())
	}
}

// A handler's panic is still logged and observed, as a 500, and goes on
// to net/http.
func TestObservePanic(t *testing.T) {
	var logs bytes.Buffer
	obs := &recorder{}
	h := httpapi.Observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") }),
		slog.New(slog.NewJSONHandler(&logs, nil)), obs)
	defer func() {
		if recover() == nil {
			t.Error("the panic did not go on")
		}
		if len(obs.seen) != 1 || obs.seen[0].code != http.StatusInternalServerError || !strings.Contains(logs.String(), `"status":500`) {
			t.Errorf("observed %v, log %s", obs.seen, logs.String())
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

func TestReadiness(t *testing.T) {
	var down error
	mux := http.NewServeMux()
	var logs bytes.Buffer
	httpapi.RegisterHealth(mux, slog.New(slog.NewTextHandler(&logs, nil)),
		httpapi.Check{Name: "database", Run: func(context.Context) error { return down }},
		httpapi.Check{Name: "runtime", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	get := func(path string) (int, map[string]any) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v %q", path, err, w.Body.String())
		}
		return w.Code, body
	}
	// A check that hangs fails by its timeout rather than hanging /readyz.
	code, body := get("/readyz")
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || checks["database"] != "ok" || checks["runtime"] != "failed" ||
		body["error"] != "Not ready: runtime check failed" {
		t.Errorf("/readyz with a hanging runtime: %d %v", code, body)
	}
	down = errors.New("dial tcp 10.1.2.3:5432: connection refused")
	code, body = get("/readyz")
	if code != http.StatusServiceUnavailable || body["error"] != "Not ready: database check failed" ||
		strings.Contains(body["error"].(string), "10.1.2.3") {
		t.Errorf("/readyz with the database down: %d %v", code, body)
	}
	if !strings.Contains(logs.String(), "10.1.2.3") {
		t.Errorf("the reason is not logged: %s", logs.String())
	}
	if code, body := get("/healthz"); code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("/healthz: %d %v", code, body)
	}
}
