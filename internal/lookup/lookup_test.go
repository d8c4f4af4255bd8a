package lookup_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/lookup"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// world is a lookup service in front of two in-process portals, "north"
// (room for one session) and "south" (room for three), on cluster "local",
// both offering the workshop "lab".
type world struct {
	t            *testing.T
	north, south *portaltest.Portal
	server       *httptest.Server
	mu           sync.Mutex
	now          time.Time
}

func newWorld(t *testing.T, extra string) *world {
	t.Helper()
	w := &world{t: t, now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	w.north = portaltest.Start(t, portaltest.Definitions(config.Entry{Capacity: 1, Expires: time.Hour}),
		portaltest.Options{Runtime: runtimetest.New()})
	w.south = portaltest.Start(t, portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour}),
		portaltest.Options{Runtime: runtimetest.New()})
	creds := fmt.Sprintf("credentials: {clientId: %s, clientSecret: %s, username: %q, password: %s}",
		portaltest.ClientID, portaltest.ClientSecret, portaltest.RobotUser, portaltest.RobotPassword)
	yaml := fmt.Sprintf(`
clients:
- name: admin
  password: admin-secret
  roles: [admin]
  tenants: ["*"]
- name: front
  password: front-secret
  roles: [tenant]
  tenants: [tenant-1]
- name: nobody
  password: nobody-secret
  roles: [tenant]
  tenants: [tenant-2]
tenants:
- name: tenant-1
  clusters:
    nameSelector: {matchNames: ["loc*"]}
- name: tenant-2
  portals:
    labelSelector: {matchLabels: {customer: none}}
- name: tenant-empty
clusters:
- name: local
  labels: [{name: environment, value: test}]
  portals:
  - name: north
    url: %s
    labels: [{name: region, value: north}]
    %s
  - name: south
    url: %s
    %s
%s`, w.north.Server.URL, creds, w.south.Server.URL, creds, extra)
	cfg, err := lookup.ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := lookup.New(cfg, lookup.Options{Now: w.clock,
		Backend: func(pc lookup.PortalConfig) (lookup.Backend, error) { return lookup.NewRemote(pc, nil) }})
	if err != nil {
		t.Fatal(err)
	}
	w.server = httptest.NewServer(lookup.Handler(svc, nil))
	t.Cleanup(w.server.Close)
	return w
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

// call sends a request and returns the status, the decoded JSON answer and
// the response's headers.
func (w *world) call(method, path, token string, body any) (int, map[string]any, http.Header) {
	w.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, w.server.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		w.t.Fatalf("%s %s: Content-Type %q, body %q", method, path, ct, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		w.t.Fatalf("%s %s: %q is no JSON object: %v", method, path, raw, err)
	}
	if resp.StatusCode != 200 {
		if _, ok := out["error"].(string); !ok || len(out) != 1 {
			w.t.Fatalf("%s %s: %d with %q, want {\"error\": ...}", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out, resp.Header
}

func (w *world) login(name, password string) string {
	w.t.Helper()
	status, out, _ := w.call("POST", "/login", "", map[string]string{"username": name, "password": password})
	if status != 200 {
		w.t.Fatalf("login %s: %d %v", name, status, out)
	}
	return out["access_token"].(string)
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The login answer of Educates' lookup service: a bearer token good for 72
// hours, with the client's roles and tenants, at /login and /auth/login.
func TestLogin(t *testing.T) {
	w := newWorld(t, "")
	for _, path := range []string{"/login", "/auth/login"} {
		status, out, _ := w.call("POST", path, "", map[string]string{"username": "front", "password": "front-secret"})
		if status != 200 {
			t.Fatalf("%s: %d %v", path, status, out)
		}
		if out["token_type"] != "Bearer" || jsonOf(out["roles"]) != `["tenant"]` || jsonOf(out["tenants"]) != `["tenant-1"]` ||
			out["expires_at"] != float64(w.clock().Add(72*time.Hour).Unix()) || len(out) != 5 {
			t.Errorf("%s: %v", path, out)
		}
		if parts := strings.Split(out["access_token"].(string), "."); len(parts) != 3 {
			t.Errorf("%s: the token is no JWT: %v", path, out["access_token"])
		}
	}
	for _, c := range []struct {
		body   any
		status int
		reason string
	}{
		{map[string]string{"username": "front", "password": "wrong-secret"}, 401, "Invalid username/password"},
		{map[string]string{"username": "ghost", "password": "front-secret"}, 401, "Invalid username/password"},
		{map[string]string{"password": "front-secret"}, 400, "No username provided"},
		{map[string]string{"username": "front"}, 400, "No password provided"},
		{map[string]any{"username": 7, "password": "x"}, 400, "The field username has the wrong type"},
		{"not json", 400, "The body must be a JSON object"},
		{"[1,2]", 400, "The body must be a JSON object"},
	} {
		status, out, _ := w.call("POST", "/login", "", c.body)
		if status != c.status || out["error"] != c.reason {
			t.Errorf("login %v: %d %v, want %d %q", c.body, status, out, c.status, c.reason)
		}
	}
	if status, _, h := w.call("GET", "/login", "", nil); status != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET /login: %d, Allow %q", status, h.Get("Allow"))
	}
}

// Repeated wrong passwords are slowed down, and a right one then still
// waits: guessing is bounded.
func TestLoginLimited(t *testing.T) {
	w := newWorld(t, "")
	var status int
	var h http.Header
	for range 10 {
		if status, _, h = w.call("POST", "/login", "", map[string]string{"username": "front", "password": "guess-guess"}); status == 429 {
			break
		}
	}
	if status != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("after ten wrong passwords: %d, Retry-After %q", status, h.Get("Retry-After"))
	}
}

// Tokens: missing, forged, tampered, expired or revoked ones are refused
// with 401 and a Bearer challenge.
func TestTokens(t *testing.T) {
	w := newWorld(t, "")
	token := w.login("front", "front-secret")
	if status, out, _ := w.call("GET", "/auth/verify", token, nil); status != 200 || len(out) != 0 {
		t.Fatalf("verify: %d %v", status, out)
	}
	parts := strings.Split(token, ".")
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	for name, tok := range map[string]string{"none": "", "garbage": "abc", "alg none": none, "tampered": tampered} {
		status, _, h := w.call("GET", "/api/v1/workshops?tenant=tenant-1", tok, nil)
		if status != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s token: %d, WWW-Authenticate %q", name, status, h.Get("WWW-Authenticate"))
		}
	}
	w.advance(72*time.Hour + time.Second)
	if status, out, _ := w.call("GET", "/auth/verify", token, nil); status != 401 || out["error"] != "The access token has expired" {
		t.Errorf("expired token: %d %v", status, out)
	}
	token = w.login("front", "front-secret")
	other := w.login("front", "front-secret")
	if status, out, _ := w.call("POST", "/auth/logout", token, nil); status != 200 || len(out) != 0 {
		t.Fatalf("logout: %d %v", status, out)
	}
	// Logging out revokes every token of the client, as in Educates.
	for _, tok := range []string{token, other} {
		if status, _, _ := w.call("GET", "/auth/verify", tok, nil); status != 401 {
			t.Errorf("token after logout: %d", status)
		}
	}
	if status, _, _ := w.call("GET", "/auth/verify", w.login("front", "front-secret"), nil); status != 200 {
		t.Errorf("a new login after logout: %d", status)
	}
}

// What each role may see: admin everything, tenant its tenants' workshops
// and its own client record.
func TestRoles(t *testing.T) {
	w := newWorld(t, "")
	front, admin := w.login("front", "front-secret"), w.login("admin", "admin-secret")
	for _, c := range []struct {
		path, token string
		status      int
		reason      string
	}{
		{"/api/v1/clusters", front, 403, "Client access not permitted"},
		{"/api/v1/tenants", front, 403, "Client access not permitted"},
		{"/api/v1/clients", front, 403, "Client access not permitted"},
		{"/api/v1/portals", front, 403, "Client access not permitted"},
		{"/api/v1/clients/admin", front, 403, "Client access not permitted"},
		{"/api/v1/clients/front", front, 200, ""},
		{"/api/v1/workshops", front, 400, "Missing tenant name"},
		{"/api/v1/workshops?tenant=tenant-2", front, 403, "Client access not permitted"},
		{"/api/v1/tenants/tenant-2/workshops", front, 403, "Client access not permitted"},
		{"/api/v1/workshops?tenant=tenant-1", front, 200, ""},
		{"/api/v1/workshops", admin, 200, ""},
		{"/api/v1/workshops?tenant=missing", admin, 403, "Tenant not available"},
		{"/api/v1/clusters/missing", admin, 403, "Cluster not available"},
		{"/api/v1/clusters/local/portals/missing", admin, 403, "Portal not available"},
		{"/api/v1/clusters/local/portals/north/environments/missing", admin, 403, "Environment not available"},
		{"/api/v1/nothing", admin, 404, "Not found"},
	} {
		status, out, _ := w.call("GET", c.path, c.token, nil)
		if status != c.status || (c.reason != "" && out["error"] != c.reason) {
			t.Errorf("GET %s: %d %v, want %d %q", c.path, status, out, c.status, c.reason)
		}
	}
}

// The admin's view of clients, tenants, clusters, portals, environments
// and sessions, in Educates' shapes.
func TestAdminViews(t *testing.T) {
	w := newWorld(t, "")
	admin := w.login("admin", "admin-secret")
	get := func(path string) string {
		t.Helper()
		status, out, _ := w.call("GET", path, admin, nil)
		if status != 200 {
			t.Fatalf("GET %s: %d %v", path, status, out)
		}
		return jsonOf(out)
	}
	for path, want := range map[string]string{
		"/api/v1/clients": `{"clients":[{"name":"admin","roles":["admin"],"tenants":["*"]},` +
			`{"name":"front","roles":["tenant"],"tenants":["tenant-1"]},{"name":"nobody","roles":["tenant"],"tenants":["tenant-2"]}]}`,
		"/api/v1/tenants": `{"tenants":[{"clients":["admin","front"],"name":"tenant-1"},{"clients":["admin","nobody"],"name":"tenant-2"},` +
			`{"clients":["admin"],"name":"tenant-empty"}]}`,
		"/api/v1/tenants/tenant-1":           `{"clients":["admin","front"],"name":"tenant-1"}`,
		"/api/v1/clusters":                   `{"clusters":[{"labels":{"environment":"test"},"name":"local"}]}`,
		"/api/v1/clusters/local":             `{"labels":{"environment":"test"},"name":"local"}`,
		"/api/v1/tenants/tenant-1/workshops": `{"workshops":[{"description":"A lab","labels":{"kind":"lab"},"name":"lab","title":"Lab"}]}`,
		"/api/v1/clusters/local/portals/north/environments/portal-w01/users": `{"users":[]}`,
	} {
		if got := get(path); got != want {
			t.Errorf("GET %s:\n got %s\nwant %s", path, got, want)
		}
	}
	var portals struct{ Portals []lookup.PortalView }
	json.Unmarshal([]byte(get("/api/v1/clusters/local/portals")), &portals)
	if len(portals.Portals) != 2 {
		t.Fatalf("portals: %+v", portals)
	}
	north := portals.Portals[0]
	if north.Name != "north" || north.Cluster != "local" || north.Phase != "Running" || north.URL != w.north.Server.URL ||
		north.Labels["region"] != "north" || north.UID == "" {
		t.Errorf("north: %+v", north)
	}
	if get("/api/v1/portals") != get("/api/v1/clusters/local/portals") {
		t.Error("/api/v1/portals differs from the cluster's portals")
	}
	var envs struct{ Environments []lookup.EnvironmentView }
	json.Unmarshal([]byte(get("/api/v1/clusters/local/portals/south/environments")), &envs)
	if len(envs.Environments) != 1 {
		t.Fatalf("environments: %+v", envs)
	}
	e := envs.Environments[0]
	if e.Name != "portal-w01" || e.Workshop != "lab" || e.Title != "Lab" || e.Portal != "south" || e.Cluster != "local" ||
		e.Capacity != 3 || e.Reserved != 1 || e.Available != 1 || e.Allocated != 0 || e.Phase != "Running" {
		t.Errorf("south's environment: %+v", e)
	}
}

// A front end's request: the answer names where the session is and the
// URL that activates it; the same user asking again gets the same session.
func TestRequestWorkshop(t *testing.T) {
	w := newWorld(t, "")
	front := w.login("front", "front-secret")
	req := map[string]any{"tenantName": "tenant-1", "workshopName": "lab", "clientUserId": "user-1",
		"clientIndexUrl": "https://front.example.com/", "clientActionId": "a1",
		"workshopParams": []map[string]string{{"name": "GREETING", "value": "hi"}}}
	status, out, _ := w.call("POST", "/api/v1/workshops", front, req)
	if status != 200 {
		t.Fatalf("request: %d %v", status, out)
	}
	keys := []string{"tenantName", "clusterName", "portalName", "environmentName", "sessionName", "clientUserId", "sessionActivationUrl"}
	if len(out) != len(keys) {
		t.Errorf("answer %v, want the keys %v", out, keys)
	}
	if out["tenantName"] != "tenant-1" || out["clusterName"] != "local" || out["environmentName"] != "portal-w01" ||
		out["clientUserId"] != "user-1" {
		t.Errorf("answer: %v", out)
	}
	// South has a reserved session and more room: Educates' ranking picks it.
	if out["portalName"] != "south" {
		t.Errorf("portal %v, want south (more room, a reserve)", out["portalName"])
	}
	p := w.south
	url := out["sessionActivationUrl"].(string)
	if !strings.HasPrefix(url, p.Server.URL+"/") {
		t.Fatalf("activation URL %q is not on the portal %s", url, p.Server.URL)
	}
	name := out["sessionName"].(string)
	if s := p.Session(name); s.OwnerName != "user-1" {
		t.Errorf("session %s belongs to %q", name, s.OwnerName)
	}
	// The browser follows the URL and lands in the session.
	browser := p.Client()
	resp, raw := browser.Raw("GET", url, nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("activation: %d %q", resp.StatusCode, raw)
	}
	status, again, _ := w.call("POST", "/api/v1/workshops", front, req)
	if status != 200 || again["sessionName"] != name || again["portalName"] != "south" {
		t.Errorf("the same user again: %d %v, want session %s", status, again, name)
	}
}

// A full portal is passed over for one with room, and when none has room
// the answer is Educates' 503.
func TestRequestCapacity(t *testing.T) {
	w := newWorld(t, "")
	front := w.login("front", "front-secret")
	portals := map[string]int{}
	for i := range 4 {
		status, out, _ := w.call("POST", "/api/v1/workshops", front, map[string]any{"tenantName": "tenant-1",
			"workshopName": "lab", "clientUserId": fmt.Sprintf("user-%d", i), "clientIndexUrl": "https://front.example.com/"})
		if status != 200 {
			t.Fatalf("request %d: %d %v", i, status, out)
		}
		portals[out["portalName"].(string)]++
		w.north.Settle()
		w.south.Settle()
	}
	if portals["south"] != 3 || portals["north"] != 1 {
		t.Errorf("sessions per portal %v, want south 3, north 1", portals)
	}
	live := []store.SessionState{store.Starting, store.Waiting, store.Running}
	if n, s := w.north.Count("portal-w01", live...), w.south.Count("portal-w01", live...); n > 1 || s > 3 {
		t.Errorf("%d sessions on north, %d on south: over capacity", n, s)
	}
	status, out, _ := w.call("POST", "/api/v1/workshops", front, map[string]any{"tenantName": "tenant-1",
		"workshopName": "lab", "clientUserId": "user-9", "clientIndexUrl": "https://front.example.com/"})
	if status != 503 || out["error"] != "Workshop not available" {
		t.Errorf("with every portal full: %d %v", status, out)
	}
}

// Bad requests are 4xx with a reason, never 500; a workshop no portal
// of the tenant has is Educates' 503.
func TestRequestErrors(t *testing.T) {
	w := newWorld(t, "")
	front, nobody := w.login("front", "front-secret"), w.login("nobody", "nobody-secret")
	for _, c := range []struct {
		token  string
		body   any
		status int
		reason string
	}{
		{front, map[string]any{"workshopName": "lab"}, 400, "Missing tenantName"},
		{front, map[string]any{"tenantName": "tenant-1"}, 400, "Missing workshopName"},
		{front, map[string]any{"tenantName": "tenant-1", "workshopName": "lab", "workshopParams": "x"}, 400,
			"The field workshopParams has the wrong type"},
		{front, map[string]any{"tenantName": "tenant-1", "workshopName": "lab", "workshopParams": []any{map[string]any{"name": 1}}}, 400,
			"The field workshopParams.0.name has the wrong type"},
		{front, map[string]any{"tenantName": "tenant-1", "workshopName": "lab", "workshopParams": []any{map[string]any{"value": "v"}}}, 400,
			"Each of workshopParams needs a name"},
		{front, map[string]any{"tenantName": 5, "workshopName": "lab"}, 400, "The field tenantName has the wrong type"},
		{front, "{", 400, "The body must be a JSON object"},
		{front, map[string]any{"tenantName": "tenant-2", "workshopName": "lab"}, 403, "Client not allowed access to tenant"},
		{front, map[string]any{"tenantName": "tenant-1", "workshopName": "other"}, 503, "Workshop not available"},
		// tenant-2 selects no portal; tenant-empty selects nothing at all.
		{nobody, map[string]any{"tenantName": "tenant-2", "workshopName": "lab"}, 503, "Workshop not available"},
		// The portal refuses a user name that is no username.
		{front, map[string]any{"tenantName": "tenant-1", "workshopName": "lab", "clientUserId": "bad\x00name",
			"clientIndexUrl": "https://front.example.com/"}, 400, ""},
	} {
		status, out, _ := w.call("POST", "/api/v1/workshops", c.token, c.body)
		if status != c.status || (c.reason != "" && out["error"] != c.reason) {
			t.Errorf("request %v: %d %v, want %d %q", c.body, status, out, c.status, c.reason)
		}
	}
	if status, out, _ := w.call("POST", "/api/v1/workshops", w.login("admin", "admin-secret"),
		map[string]any{"tenantName": "tenant-empty", "workshopName": "lab"}); status != 503 {
		t.Errorf("a tenant selecting nothing: %d %v", status, out)
	}
}

// A portal that does not answer is left out of the listing and shown as
// unavailable, and the other portal still serves.
func TestPortalDown(t *testing.T) {
	w := newWorld(t, "")
	w.north.Server.Close()
	front, admin := w.login("front", "front-secret"), w.login("admin", "admin-secret")
	status, out, _ := w.call("GET", "/api/v1/workshops?tenant=tenant-1", front, nil)
	if status != 200 || jsonOf(out) != `{"workshops":[{"description":"A lab","labels":{"kind":"lab"},"name":"lab","title":"Lab"}]}` {
		t.Errorf("workshops with north down: %d %v", status, out)
	}
	_, out, _ = w.call("GET", "/api/v1/clusters/local/portals/north", admin, nil)
	if out["phase"] != "Unavailable" {
		t.Errorf("north down: %v", out)
	}
	status, out, _ = w.call("POST", "/api/v1/workshops", front, map[string]any{"tenantName": "tenant-1",
		"workshopName": "lab", "clientIndexUrl": "https://front.example.com/"})
	if status != 200 || out["portalName"] != "south" {
		t.Errorf("request with north down: %d %v", status, out)
	}
}

// Many front-end users at once: the portals' capacity (four places in
// all) is never exceeded, each success is a distinct session, and the rest
// are 503s, never 500s.
func TestRequestConcurrent(t *testing.T) {
	w := newWorld(t, "")
	front := w.login("front", "front-secret")
	const n = 12
	type result struct {
		status  int
		session string
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body, _ := json.Marshal(map[string]any{"tenantName": "tenant-1", "workshopName": "lab",
				"clientUserId": fmt.Sprintf("crowd-%d", i), "clientIndexUrl": "https://front.example.com/"})
			req, _ := http.NewRequest("POST", w.server.URL+"/api/v1/workshops", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+front)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			portal, _ := out["portalName"].(string)
			s, _ := out["sessionName"].(string)
			if resp.StatusCode != 200 {
				s = fmt.Sprint(out["error"])
			}
			results <- result{resp.StatusCode, portal + "/" + s}
		})
	}
	wg.Wait()
	close(results)
	seen := map[string]bool{}
	for r := range results {
		switch r.status {
		case 200:
			if seen[r.session] {
				t.Errorf("session %s given twice", r.session)
			}
			seen[r.session] = true
		case 503:
		default:
			t.Errorf("status %d: %s", r.status, r.session)
		}
	}
	if len(seen) != 4 {
		t.Errorf("%d sessions handed out, want the 4 places: %v", len(seen), seen)
	}
}
