package sessionhost

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

const prefix = "/sessions/portal-w01-s001"

// writeFiles writes files (slash paths relative to dir) into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDashboardNeedsTheSecret(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	writeFiles(t, h.home, map[string]string{"workshop/content/intro.md": "# Hi\n", "workshop/content/img.png": "png"})
	routes := h.routes()
	for _, target := range []string{
		"/", "/workshop/content/intro/", "/workshop/content/img.png", "/.portico/pages/intro",
		"/static/dashboard.js", "/static/vendor/xterm-6.0.0/xterm.js", "/terminal/1",
		"/session/poll", "/nowhere", "/.portico/allocate",
	} {
		for _, secret := range []string{"", "wrong", "s3cret-passwor", "S3CRET-PASSWORD", "s3cret-password "} {
			req := newRequest("GET", target, "")
			if secret != "" {
				req.Header.Set("X-Portico-Secret", secret)
			}
			rec := serve(routes, req)
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s with secret %q: status %d, want 403", target, secret, rec.Code)
				continue
			}
			if body := decode[map[string]string](t, rec); body["error"] == "" {
				t.Errorf("%s: body %s", target, rec.Body)
			}
		}
		// The token of the config endpoints is no way in either.
		if rec := get(t, routes, "GET", target+"?token=s3cret-password"); rec.Code != http.StatusForbidden {
			t.Errorf("%s?token=: status %d, want 403", target, rec.Code)
		}
		if rec := private(t, routes, "GET", target, ""); rec.Code == http.StatusForbidden {
			t.Errorf("%s with the secret: 403 %s", target, rec.Body)
		}
	}
	// Public: the probes of the runtime.
	for _, target := range []string{"/healthz", "/session/activity"} {
		if rec := get(t, routes, "GET", target); rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", target, rec.Code)
		}
	}
	// A session without a password has its dashboard closed.
	cfg := testConfig
	cfg.ConfigPassword = ""
	h, _ = newTestHost(t, cfg)
	req := newRequest("GET", "/", "")
	req.Header.Set("X-Portico-Secret", "")
	if rec := serve(h.routes(), req); rec.Code != http.StatusForbidden {
		t.Errorf("no password: status %d", rec.Code)
	}
}

var linkAttr = regexp.MustCompile(`(?:href|src)="([^"]*)"`)

func TestDashboardLinksUseThePrefix(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	writeFiles(t, h.home, map[string]string{
		"workshop/content/01-intro.md": "---\ntitle: Intro\n---\n" +
			"![logo](logo.png) [next](../02-more/) [file](02-more.md#part) [abs](/elsewhere) " +
			"[ext](https://example.com/x) [anchor](#top) [mail](mailto:a@example.com)\n",
		"workshop/content/02-more.md": "# More\n",
	})
	routes := h.routes()
	for _, target := range []string{"/", "/workshop/content/01-intro/", "/workshop/content/02-more/"} {
		rec := private(t, routes, "GET", target, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", target, ct)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "script-src 'self' 'unsafe") {
			t.Errorf("%s: CSP %q", target, csp)
		}
		html := rec.Body.String()
		if strings.Contains(html, "<script>") || strings.Contains(html, " style=") || strings.Contains(html, "<style") {
			t.Errorf("%s: inline script or style", target)
		}
		for _, m := range linkAttr.FindAllStringSubmatch(html, -1) {
			link := m[1]
			switch {
			case strings.HasPrefix(link, prefix+"/"):
			case link == "/workshops/session/portal-w01-s001/delete/": // the portal's own
			case link == "data:,": // no favicon
			case link == "/elsewhere", link == "#top", strings.HasPrefix(link, "https://"), strings.HasPrefix(link, "mailto:"):
			default:
				t.Errorf("%s: link %q is not under the prefix", target, link)
			}
		}
		for _, want := range []string{
			`href="` + prefix + `/static/dashboard.css?v=`,
			`src="` + prefix + `/static/vendor/xterm-6.0.0/xterm.js?v=`,
			`data-prefix="` + prefix + `"`,
			`data-session="portal-w01-s001"`,
		} {
			if !strings.Contains(html, want) {
				t.Errorf("%s: no %s", target, want)
			}
		}
	}
	html := private(t, routes, "GET", "/", "").Body.String()
	for _, want := range []string{
		`src="` + prefix + `/workshop/content/01-intro/logo.png"`,
		`href="` + prefix + `/workshop/content/02-more/"`,
		`href="` + prefix + `/workshop/content/02-more/#part"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("first page: no %s", want)
		}
	}

	// A prefix that is not a plain path is not used.
	req := newRequest("GET", "/", "")
	req.Header.Set("X-Portico-Secret", testConfig.ConfigPassword)
	req.Header.Set("X-Forwarded-Prefix", `/x"><script>`)
	rec := serve(routes, req)
	if strings.Contains(rec.Body.String(), "<script>") || !strings.Contains(rec.Body.String(), `href="/static/dashboard.css?v=`) {
		t.Errorf("bad prefix used: %s", rec.Body)
	}

	// A page without its trailing slash redirects to it.
	rec = private(t, routes, "GET", "/workshop/content/02-more", "")
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != prefix+"/workshop/content/02-more/" {
		t.Errorf("redirect: %d %q", rec.Code, rec.Header().Get("Location"))
	}
}

func TestStaticAssets(t *testing.T) {
	h, _ := newTestHost(t, testConfig)
	routes := h.routes()
	for name, ctype := range map[string]string{
		"dashboard.js":                         "text/javascript; charset=utf-8",
		"dashboard.css":                        "text/css; charset=utf-8",
		"vendor/xterm-6.0.0/xterm.js":          "text/javascript; charset=utf-8",
		"vendor/xterm-6.0.0/xterm.css":         "text/css; charset=utf-8",
		"vendor/addon-fit-0.11.0/addon-fit.js": "text/javascript; charset=utf-8",
	} {
		rec := private(t, routes, "GET", "/static/"+name, "")
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			t.Errorf("%s: %d", name, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != ctype {
			t.Errorf("%s: Content-Type %q", name, got)
		}
		versioned := private(t, routes, "GET", staticAssets.url("", name), "")
		if !strings.Contains(versioned.Header().Get("Cache-Control"), "immutable") {
			t.Errorf("%s: versioned URL not cached: %q", name, versioned.Header().Get("Cache-Control"))
		}
	}
	for _, name := range []string{"/static/", "/static/vendor", "/static/vendor/", "/static/../templates/dashboard.html"} {
		if rec := private(t, routes, "GET", name, ""); rec.Code == http.StatusOK {
			t.Errorf("%s: %d", name, rec.Code)
		}
	}
}

func TestAllocate(t *testing.T) {
	h, clock := newTestHost(t, testConfig)
	writeFiles(t, h.home, map[string]string{"workshop/content/p.md": "Hello {{ first_name }}, {{< param GREETING >}}!\n"})
	routes := h.routes()
	vars := func() map[string]string {
		return decode[map[string]string](t, get(t, routes, "GET", "/config/variables?token=s3cret-password"))
	}
	env := func() map[string]string {
		return decode[map[string]string](t, get(t, routes, "GET", "/config/environment?token=s3cret-password"))
	}
	if v := vars(); v["username"] != "" || v["GREETING"] != "" {
		t.Fatalf("before allocation: %v", v)
	}
	if e := env(); e["GREETING"] != "hello" {
		t.Fatalf("workshop env before allocation: %q", e["GREETING"])
	}
	select {
	case <-h.allocated:
		t.Fatal("allocated before allocation")
	default:
	}
	clock.advance(time.Hour)

	alloc := `{"user": {"username": "alice@example.com", "email": "alice@example.com", "first_name": "Alice", "last_name": "<Liddell>"},
		"params": [{"name": "GREETING", "value": "hi"}, {"name": "not-an-env-name", "value": "x"}]}`
	for i := range 2 { // idempotent
		rec := private(t, routes, "POST", "/.portico/allocate", alloc)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("allocate %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	select {
	case <-h.allocated:
	default:
		t.Fatal("not allocated")
	}
	v := vars()
	for k, want := range map[string]string{
		"username": "alice@example.com", "email": "alice@example.com", "first_name": "Alice",
		"last_name": "<Liddell>", "GREETING": "hi", "not-an-env-name": "x", "session_name": "portal-w01-s001",
	} {
		if v[k] != want {
			t.Errorf("variables[%s] = %q, want %q", k, v[k], want)
		}
	}
	e := env()
	for k, want := range map[string]string{
		"GREETING": "hi", "OWNER_USERNAME": "alice@example.com", "OWNER_EMAIL": "alice@example.com",
		"OWNER_FIRST_NAME": "Alice", "OWNER_LAST_NAME": "<Liddell>", "CONFIG_PASSWORD": "s3cret-password",
	} {
		if e[k] != want {
			t.Errorf("environment[%s] = %q, want %q", k, e[k], want)
		}
	}
	if _, ok := e["not-an-env-name"]; ok {
		t.Error("a parameter that is no variable name is in the environment")
	}
	// Claiming a reserved session resets its clocks (Educates PR #1131).
	act := decode[map[string]float64](t, get(t, routes, "GET", "/session/activity"))
	if act["idle-time"] != 0 || act["last-view"] != 0 {
		t.Errorf("activity after allocation: %v", act)
	}
	// The page shows the values, escaped.
	html := private(t, routes, "GET", "/", "").Body.String()
	if !strings.Contains(html, "Hello Alice, hi!") {
		t.Errorf("page after allocation: %s", html)
	}

	// Another owner is refused; changed parameters of the same owner are taken.
	if rec := private(t, routes, "POST", "/.portico/allocate", `{"user": {"username": "bob"}}`); rec.Code != http.StatusConflict {
		t.Errorf("another owner: %d %s", rec.Code, rec.Body)
	}
	if rec := private(t, routes, "POST", "/.portico/allocate", `{"user": {"username": "alice@example.com"}, "params": [{"name": "GREETING", "value": "hey"}]}`); rec.Code != http.StatusNoContent {
		t.Errorf("same owner again: %d %s", rec.Code, rec.Body)
	}
	if got := env()["GREETING"]; got != "hey" {
		t.Errorf("GREETING after update %q", got)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"user": {}}`, `{"user": {"username": "a"}, "params": [{"value": "x"}]}`,
		`{"user": {"username": "a"}} {}`, `{"user": {"username": 7}}`} {
		if rec := private(t, routes, "POST", "/.portico/allocate", bad); rec.Code != http.StatusBadRequest {
			t.Errorf("%q: %d, want 400", bad, rec.Code)
		}
	}

	// The allocation survives a restart of the host.
	owner, err := loadOwner(h.home)
	if err != nil || owner == nil || owner.User.Username != "alice@example.com" || owner.Params[0].Value != "hey" {
		t.Fatalf("kept allocation: %+v, %v", owner, err)
	}
}

func TestOwnerAtStart(t *testing.T) {
	cfg := testConfig
	cfg.Owner = &runtime.Allocation{User: runtime.User{Username: "carol"}, Params: []runtime.EnvVar{{Name: "GREETING", Value: "yo"}}}
	h, _ := newTestHost(t, cfg)
	select {
	case <-h.allocated:
	default:
		t.Fatal("a session started with its owner waits for one")
	}
	env, vars := h.values()
	if env["GREETING"] != "yo" || vars["username"] != "carol" || env["OWNER_USERNAME"] != "carol" {
		t.Fatalf("env %v vars %v", env, vars)
	}
	// The same allocation again is fine.
	rec := private(t, h.routes(), "POST", "/.portico/allocate", `{"user": {"username": "carol"}, "params": [{"name": "GREETING", "value": "yo"}]}`)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestConfigRoundTripsNewFields(t *testing.T) {
	home := t.TempDir()
	os.Mkdir(filepath.Join(home, StateDir), 0o700)
	cfg := testConfig
	cfg.Owner = &runtime.Allocation{User: runtime.User{Username: "u", FirstName: "F"}, Params: []runtime.EnvVar{{Name: "P", Value: "v"}}}
	cfg.WorkshopFiles = []map[string]any{{"directory": map[string]any{"path": "."}, "includePaths": []any{"/workshop/**"}}}
	if err := WriteConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(home, ConfigFile))
	var keys map[string]json.RawMessage
	json.Unmarshal(raw, &keys)
	for _, k := range []string{"owner", "workshop_files"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no %q in session.json: %s", k, raw)
		}
	}
	got, err := ReadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner == nil || got.Owner.User.FirstName != "F" || len(got.WorkshopFiles) != 1 {
		t.Fatalf("round trip: %+v", got)
	}
	if !slices.Equal(got.Owner.Params, cfg.Owner.Params) {
		t.Errorf("params %v", got.Owner.Params)
	}
}
