package sessionhost

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fakeClock is a settable time source for activity tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testConfig = Config{
	Session:        "portal-w01-s001",
	ID:             "s001",
	Environment:    "portal-w01",
	Workshop:       "lab-markdown",
	Portal:         "portal",
	PortalURL:      "https://portal.example.com",
	SessionURL:     "https://portal-w01-s001.example.com:8443",
	ConfigPassword: "s3cret-password",
	Env:            []EnvVar{{"GREETING", "hello"}, {"SESSION_ID", "overridden"}},
}

func newTestHost(t testing.TB, cfg Config) (*host, *fakeClock) {
	t.Helper()
	home := t.TempDir()
	keys, err := loadOrCreateKeys(filepath.Join(home, ".ssh"), cfg.Session)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return newHost(cfg, home, keys, clock.now), clock
}

// get runs one request through the host's routes.
func get(t *testing.T, h http.Handler, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// newRequest returns a request with body, if any.
func newRequest(method, target, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return httptest.NewRequest(method, target, r)
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// private runs one request as the portal forwards it: with the secret and
// the prefix of the session.
func private(t testing.TB, h http.Handler, method, target string, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := newRequest(method, target, body)
	req.Header.Set("X-Portico-Secret", testConfig.ConfigPassword)
	req.Header.Set("X-Forwarded-Prefix", "/sessions/"+testConfig.Session)
	req.Header.Set("X-Portico-User", "alice")
	req.Header.Set("X-Portico-Staff", "false")
	return serve(h, req)
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

func TestHealthz(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	rec := get(t, h.routes(), "GET", "/healthz")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if got := decode[map[string]string](t, rec); got["status"] != "ok" {
		t.Fatalf("body %v", got)
	}
}

func TestConfigEndpoints(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	routes := h.routes()
	for _, prefix := range []string{"/config/", "/workshop/config/"} {
		t.Run(prefix, func(t *testing.T) {
			rec := get(t, routes, "GET", prefix+"environment?token=s3cret-password")
			if rec.Code != http.StatusOK {
				t.Fatalf("environment: status %d %s", rec.Code, rec.Body)
			}
			env := decode[map[string]string](t, rec)
			for k, want := range map[string]string{
				"HOME":            h.home,
				"SESSION_NAME":    "portal-w01-s001",
				"CONFIG_PASSWORD": "s3cret-password",
				"GREETING":        "hello",
				"SESSION_ID":      "overridden", // workshop env wins
				"INGRESS_DOMAIN":  "example.com",
			} {
				if env[k] != want {
					t.Errorf("environment[%s] = %q, want %q", k, env[k], want)
				}
			}
			if env["USER"] == "" {
				t.Errorf("environment has no USER")
			}

			rec = get(t, routes, "GET", prefix+"variables?token=s3cret-password")
			vars := decode[map[string]string](t, rec)
			for k, want := range map[string]string{
				"session_name":        "portal-w01-s001",
				"session_id":          "s001",
				"session_namespace":   "portal-w01-s001",
				"session_url":         "https://portal-w01-s001.example.com:8443",
				"session_hostname":    "portal-w01-s001.example.com",
				"environment_name":    "portal-w01",
				"workshop_name":       "lab-markdown",
				"training_portal":     "portal",
				"config_password":     "s3cret-password",
				"ingress_protocol":    "https",
				"ingress_domain":      "example.com",
				"ingress_port_suffix": ":8443",
				"ssh_public_key":      strings.TrimSpace(string(h.keys.public)),
			} {
				if vars[k] != want {
					t.Errorf("variables[%s] = %q, want %q", k, vars[k], want)
				}
			}

			rec = get(t, routes, "GET", prefix+"id_rsa?token=s3cret-password")
			if rec.Code != http.StatusOK {
				t.Fatalf("id_rsa: status %d", rec.Code)
			}
			signer, err := ssh.ParsePrivateKey(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("id_rsa: %v", err)
			}
			rec = get(t, routes, "GET", prefix+"id_rsa.pub?token=s3cret-password")
			pub, comment, _, _, err := ssh.ParseAuthorizedKey(rec.Body.Bytes())
			if err != nil {
				t.Fatalf("id_rsa.pub: %v", err)
			}
			if string(pub.Marshal()) != string(signer.PublicKey().Marshal()) {
				t.Errorf("id_rsa.pub does not match id_rsa")
			}
			if comment != "portal-w01-s001" {
				t.Errorf("id_rsa.pub comment = %q", comment)
			}

			rec = get(t, routes, "GET", prefix+"kubeconfig?token=s3cret-password")
			if rec.Code != http.StatusNotFound {
				t.Fatalf("kubeconfig: status %d", rec.Code)
			}
			if got := decode[map[string]string](t, rec)["error"]; !strings.Contains(got, "without Kubernetes") {
				t.Errorf("kubeconfig error %q", got)
			}
		})
	}
}

func TestConfigRefusesBadTokens(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	routes := h.routes()
	for _, target := range []string{
		"/config/environment",
		"/config/environment?token=",
		"/config/environment?token=wrong",
		"/config/environment?token=s3cret-passwor",
		"/config/environment?token=s3cret-password-",
		"/config/id_rsa?token=S3CRET-PASSWORD",
		"/config/no-such-type?token=wrong", // no hint that the type does not exist
		"/workshop/config/variables?token=%zz",
	} {
		rec := get(t, routes, "GET", target)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", target, rec.Code)
			continue
		}
		body := decode[map[string]string](t, rec)
		if body["error"] == "" || strings.Contains(rec.Body.String(), "s3cret") {
			t.Errorf("%s: body %s", target, rec.Body)
		}
	}

	// A session without a password has its config endpoints closed.
	cfg := testConfig
	cfg.ConfigPassword = ""
	h, _ = newTestHost(t, cfg)
	if rec := get(t, h.routes(), "GET", "/config/environment?token="); rec.Code != http.StatusForbidden {
		t.Errorf("no password: status %d, want 403", rec.Code)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	routes := h.routes()
	for _, tc := range []struct {
		method, target string
		status         int
	}{
		{"GET", "/config/no-such-type?token=s3cret-password", http.StatusNotFound},
		{"GET", "/config/?token=s3cret-password", http.StatusNotFound},
		{"GET", "/nowhere", http.StatusNotFound},
		{"POST", "/healthz", http.StatusMethodNotAllowed},
		{"DELETE", "/config/environment?token=s3cret-password", http.StatusMethodNotAllowed},
		{"GET", "/session/poll?hidden=maybe", http.StatusBadRequest},
		{"GET", "/.portico/allocate", http.StatusMethodNotAllowed},
		{"POST", "/.portico/allocate", http.StatusBadRequest},
		{"GET", "/terminal/1", http.StatusBadRequest},
		{"GET", "/terminal/a.b", http.StatusNotFound},
		{"GET", "/static/nothing.js", http.StatusNotFound},
		{"GET", "/workshop/content/nothing.png", http.StatusNotFound},
		{"GET", "/.portico/pages/nothing", http.StatusNotFound},
	} {
		rec := private(t, routes, tc.method, tc.target, "")
		if rec.Code != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, rec.Code, tc.status)
			continue
		}
		if body := decode[map[string]string](t, rec); body["error"] == "" {
			t.Errorf("%s %s: body %s", tc.method, tc.target, rec.Body)
		}
	}
}

func TestActivity(t *testing.T) {
	h, clock := newTestHost(t, testConfig)
	routes := h.routes()
	activity := func() (idle, view float64) {
		t.Helper()
		rec := get(t, routes, "GET", "/session/activity")
		if rec.Code != http.StatusOK {
			t.Fatalf("activity: status %d", rec.Code)
		}
		got := decode[map[string]float64](t, rec)
		return got["idle-time"], got["last-view"]
	}
	poll := func(query string) {
		t.Helper()
		rec := private(t, routes, "GET", "/session/poll"+query, "")
		if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "{}" {
			t.Fatalf("poll%s: %d %s", query, rec.Code, rec.Body)
		}
	}

	if idle, view := activity(); idle != 0 || view != 0 {
		t.Fatalf("fresh session: idle %v view %v, want 0 0", idle, view)
	}
	clock.advance(90 * time.Second)
	if idle, view := activity(); idle != 90 || view != 90 {
		t.Fatalf("after 90s: idle %v view %v", idle, view)
	}
	poll("?hidden=true")
	clock.advance(1500 * time.Millisecond)
	if idle, view := activity(); idle != 1.5 || view != 91.5 {
		t.Fatalf("after hidden poll: idle %v view %v, want 1.5 91.5", idle, view)
	}
	poll("?hidden=false")
	clock.advance(time.Second)
	if idle, view := activity(); idle != 1 || view != 1 {
		t.Fatalf("after visible poll: idle %v view %v, want 1 1", idle, view)
	}
	poll("")
	if idle, view := activity(); idle != 0 || view != 0 {
		t.Fatalf("after poll without hidden: idle %v view %v, want 0 0", idle, view)
	}
}

func TestIngressOf(t *testing.T) {
	for _, tc := range []struct {
		url, session                           string
		protocol, hostname, domain, portSuffix string
	}{
		{"http://s1.127-0-0-1.nip.io", "s1", "http", "s1.127-0-0-1.nip.io", "127-0-0-1.nip.io", ""},
		{"https://s1.example.com:8443/", "s1", "https", "s1.example.com", "example.com", ":8443"},
		{"http://127.0.0.1:40000", "s1", "http", "127.0.0.1", "", ":40000"},
		{"", "s1", "", "", "", ""},
		{"::not a url", "s1", "", "", "", ""},
	} {
		p, h, d, s := ingressOf(tc.url, tc.session)
		if p != tc.protocol || h != tc.hostname || d != tc.domain || s != tc.portSuffix {
			t.Errorf("ingressOf(%q) = %q %q %q %q", tc.url, p, h, d, s)
		}
	}
}

func TestKeysPersist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".ssh")
	first, err := loadOrCreateKeys(dir, "s1")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"id_rsa": 0o600, "id_rsa.pub": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	second, err := loadOrCreateKeys(dir, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if string(first.private) != string(second.private) || string(first.public) != string(second.public) {
		t.Fatal("keys changed on reload")
	}
}

func TestReadConfig(t *testing.T) {
	home := t.TempDir()
	if _, err := ReadConfig(home); err == nil {
		t.Fatal("missing file: no error")
	}
	if err := os.Mkdir(filepath.Join(home, StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "{", `{"session": ""}`, `[]`, `{"session": 7}`} {
		if err := os.WriteFile(filepath.Join(home, ConfigFile), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadConfig(home); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if err := WriteConfig(home, testConfig); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if got.Session != testConfig.Session || got.ConfigPassword != testConfig.ConfigPassword || len(got.Env) != 2 {
		t.Fatalf("round trip: %+v", got)
	}
	fi, err := os.Stat(filepath.Join(home, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", fi.Mode().Perm())
	}
}

func BenchmarkGenerateKeys(b *testing.B) {
	for b.Loop() {
		if _, err := generateKeys("s1"); err != nil {
			b.Fatal(err)
		}
	}
}

// A write reaches its handler only with the secret and the mark the
// portal sets on the dashboard's own writes.
func TestBrowserWrite(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	wrote := 0
	handler := h.private(h.browserWrite(func(w http.ResponseWriter, r *http.Request) {
		wrote++
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	for _, tc := range []struct {
		headers []string
		status  int
	}{
		{[]string{"X-Portico-Secret", testConfig.ConfigPassword}, http.StatusForbidden},
		{[]string{BrowserWriteHeader, "1"}, http.StatusForbidden},
		{[]string{"X-Portico-Secret", "guess", BrowserWriteHeader, "1"}, http.StatusForbidden},
		{[]string{"X-Portico-Secret", testConfig.ConfigPassword, BrowserWriteHeader, "1"}, http.StatusOK},
	} {
		req := newRequest("POST", "/x", "{}")
		for i := 0; i < len(tc.headers); i += 2 {
			req.Header.Set(tc.headers[i], tc.headers[i+1])
		}
		if rec := serve(handler, req); rec.Code != tc.status {
			t.Errorf("%v: %d %s, want %d", tc.headers, rec.Code, rec.Body, tc.status)
		}
	}
	if wrote != 1 {
		t.Errorf("the handler ran %d times, want once", wrote)
	}
}
