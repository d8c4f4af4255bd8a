package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// Handler tests: a whole portal in process (real SQLite, fake runtime and
// clock) and a client speaking HTTP to it, for every endpoint and every
// error of spec §7 as Portico fixes them.

func newPortal(t *testing.T, adjust ...func(*config.Definitions)) *portaltest.Portal {
	t.Helper()
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1,
		Expires: time.Hour, Deadline: 2 * time.Hour})
	for _, f := range adjust {
		f(defs)
	}
	return portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
}

// errorBody checks a JSON error answer and returns its reason.
func errorBody(t *testing.T, status, want int, raw []byte) string {
	t.Helper()
	var body struct {
		Error string `json:"error"`
	}
	if status != want {
		t.Fatalf("status %d, want %d (body %s)", status, want, raw)
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Error == "" {
		t.Fatalf("error body %q is not {\"error\": reason}", raw)
	}
	return body.Error
}

// keys returns the top-level keys of a JSON object in their order.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var out []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func sameKeys(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s keys %v, want %v", what, got, want)
	}
}

var datetime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

type allocation struct {
	Name, Session, User, URL, Namespace, Workshop, Environment string
}

func requestSession(t *testing.T, c *portaltest.Client, query string) (allocation, int, []byte) {
	t.Helper()
	var a allocation
	resp, raw := c.Raw("GET", "/workshops/environment/portal-w01/request/?"+query, nil)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
	}
	return a, resp.StatusCode, raw
}

func TestTokenGrants(t *testing.T) {
	p := newPortal(t)
	c := p.Client()
	form := func(kv ...string) *strings.Reader {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return strings.NewReader(v.Encode())
	}
	ct := []string{"Content-Type", "application/x-www-form-urlencoded"}
	basic := func(id, secret string) []string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(id, secret)
		return append(ct, "Authorization", r.Header.Get("Authorization"))
	}
	type token struct {
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		TokenType    string `json:"token_type"`
		Scope        string `json:"scope"`
		RefreshToken string `json:"refresh_token"`
	}

	// Password grant, client credentials by HTTP Basic.
	resp, raw := c.Raw("POST", "/oauth2/token/", form("grant_type", "password", "username", portaltest.RobotUser,
		"password", portaltest.RobotPassword), basic(portaltest.ClientID, portaltest.ClientSecret)...)
	if resp.StatusCode != 200 {
		t.Fatalf("password grant: %d %s", resp.StatusCode, raw)
	}
	sameKeys(t, "token", keys(t, raw), "access_token", "expires_in", "token_type", "scope", "refresh_token")
	var tok token
	json.Unmarshal(raw, &tok)
	if tok.ExpiresIn != 36000 || tok.TokenType != "Bearer" || tok.Scope != "user:info" || len(tok.AccessToken) < 32 {
		t.Errorf("token response %+v", tok)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("token response may be cached")
	}

	robot := p.Client()
	robot.Bearer = tok.AccessToken
	if status := robot.Do("GET", "/workshops/catalog/environments/", nil, nil); status != 200 {
		t.Fatalf("catalog with the new token: %d", status)
	}

	// Refresh, with the client in the body: rotates.
	var next token
	if status := c.Do("POST", "/oauth2/token/", form("grant_type", "refresh_token", "refresh_token", tok.RefreshToken,
		"client_id", portaltest.ClientID, "client_secret", portaltest.ClientSecret), &next, ct...); status != 200 || next.AccessToken == "" {
		t.Fatalf("refresh: %d %+v", status, next)
	}
	resp, raw = c.Raw("POST", "/oauth2/token/", form("grant_type", "refresh_token", "refresh_token", tok.RefreshToken,
		"client_id", portaltest.ClientID, "client_secret", portaltest.ClientSecret), ct...)
	if resp.StatusCode != 400 || !strings.Contains(string(raw), "invalid_grant") {
		t.Errorf("reusing a refresh token: %d %s, want 400 invalid_grant", resp.StatusCode, raw)
	}
	if status := robot.Do("GET", "/workshops/catalog/environments/", nil, nil); status != 401 {
		t.Errorf("access token of a refreshed grant still works: %d", status)
	}

	// Client credentials grant: a robot token without a password.
	var cc token
	if status := c.Do("POST", "/oauth2/token/", form("grant_type", "client_credentials"), &cc,
		basic(portaltest.ClientID, portaltest.ClientSecret)...); status != 200 || cc.RefreshToken != "" {
		t.Fatalf("client_credentials: %d %+v", status, cc)
	}
	robot.Bearer = cc.AccessToken
	if status := robot.Do("GET", "/workshops/environment/portal-w01/status/", nil, nil); status != 200 {
		t.Errorf("robot endpoint with a client_credentials token: %d", status)
	}

	// Revoke.
	if resp, raw := c.Raw("POST", "/oauth2/revoke-token/", form("token", cc.AccessToken),
		basic(portaltest.ClientID, portaltest.ClientSecret)...); resp.StatusCode != 200 || len(raw) != 0 {
		t.Fatalf("revoke: %d %q", resp.StatusCode, raw)
	}
	if status := robot.Do("GET", "/workshops/catalog/environments/", nil, nil); status != 401 {
		t.Errorf("revoked token still works: %d", status)
	}
	if resp, _ := c.Raw("POST", "/oauth2/revoke-token/", form("token", "unknown"),
		basic(portaltest.ClientID, portaltest.ClientSecret)...); resp.StatusCode != 200 {
		t.Errorf("revoking an unknown token: %d, want 200 (RFC 7009)", resp.StatusCode)
	}

	errs := []struct {
		name   string
		body   *strings.Reader
		hdr    []string
		status int
		code   string
	}{
		{"wrong secret", form("grant_type", "password", "username", portaltest.RobotUser, "password", portaltest.RobotPassword), basic(portaltest.ClientID, "nope"), 401, "invalid_client"},
		{"no secret (Educates' public client took this)", form("grant_type", "password", "username", portaltest.RobotUser, "password", portaltest.RobotPassword, "client_id", portaltest.ClientID), ct, 401, "invalid_client"},
		{"unknown client", form("grant_type", "password"), basic("nobody", "x"), 401, "invalid_client"},
		{"wrong password", form("grant_type", "password", "username", portaltest.RobotUser, "password", "nope"), basic(portaltest.ClientID, portaltest.ClientSecret), 400, "invalid_grant"},
		{"unknown user", form("grant_type", "password", "username", "ghost", "password", "x"), basic(portaltest.ClientID, portaltest.ClientSecret), 400, "invalid_grant"},
		{"no grant type", form(), basic(portaltest.ClientID, portaltest.ClientSecret), 400, "invalid_request"},
		{"unsupported grant", form("grant_type", "authorization_code"), basic(portaltest.ClientID, portaltest.ClientSecret), 400, "unsupported_grant_type"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			resp, raw := c.Raw("POST", "/oauth2/token/", tc.body, tc.hdr...)
			var body struct{ Error string }
			json.Unmarshal(raw, &body)
			if resp.StatusCode != tc.status || body.Error != tc.code {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, raw, tc.status, tc.code)
			}
		})
	}

	resp, raw = c.Raw("GET", "/oauth2/token/", nil)
	errorBody(t, resp.StatusCode, 405, raw)
	if resp.Header.Get("Allow") != "POST" {
		t.Errorf("Allow: %q", resp.Header.Get("Allow"))
	}
}

func TestTokenEndpointIsRateLimited(t *testing.T) {
	p := newPortal(t)
	c := p.Client()
	limited := 0
	for range 40 {
		resp, _ := c.Raw("POST", "/oauth2/token/", strings.NewReader("grant_type=password&username=x&password=y"),
			"Content-Type", "application/x-www-form-urlencoded")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	// The clock stands still: after the burst every attempt is refused.
	if limited != 20 {
		t.Fatalf("%d of 40 attempts limited, want the 20 beyond the burst", limited)
	}
}

func TestAuthentication(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	al, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	admin := p.Login(portaltest.AdminUser, portaltest.AdminPassword)

	bearerOnly := []string{
		"/workshops/catalog/environments/",
		"/workshops/catalog/workshops/",
		"/workshops/environment/portal-w01/status/",
		"/workshops/environment/portal-w01/request/?index_url=/",
		"/workshops/user/alice/sessions/",
		"/workshops/session/" + al.Name + "/schedule/",
		"/workshops/session/" + al.Name + "/config/",
		"/session/" + al.Name + "/extend/",
	}
	anon := p.Client()
	bad := p.Client()
	bad.Bearer = "not-a-token"
	for _, path := range bearerOnly {
		for _, c := range []*portaltest.Client{anon, bad} {
			resp, raw := c.Raw("GET", path, nil)
			errorBody(t, resp.StatusCode, 401, raw)
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: 401 without WWW-Authenticate: Bearer", path)
			}
		}
	}
	robotOnly := map[string]string{
		"/workshops/environment/portal-w01/status/":              "Status requests not permitted",
		"/workshops/environment/portal-w01/request/?index_url=/": "Session requests not permitted",
		"/workshops/user/alice/sessions/":                        "Session requests not permitted",
	}
	for path, reason := range robotOnly {
		resp, raw := admin.Raw("GET", path, nil)
		if got := errorBody(t, resp.StatusCode, 403, raw); got != reason {
			t.Errorf("%s as admin: %q, want %q", path, got, reason)
		}
	}
}

func TestCatalogEnvironments(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	al, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	p.Settle()

	for _, path := range []string{"/workshops/catalog/environments/?sessions=true", "/workshops/catalog/environments?sessions=TRUE"} {
		resp, raw := robot.Raw("GET", path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, raw)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Error("no CORS header")
		}
		sameKeys(t, "catalog", keys(t, raw), "portal", "environments")
		var body struct {
			Portal       json.RawMessage
			Environments []json.RawMessage
		}
		json.Unmarshal(raw, &body)
		sameKeys(t, "portal", keys(t, body.Portal), "name", "labels", "uid", "generation", "url", "sessions")
		if len(body.Environments) != 1 {
			t.Fatalf("%d environments", len(body.Environments))
		}
		env := body.Environments[0]
		sameKeys(t, "environment", keys(t, env), "name", "state", "workshop", "duration", "capacity", "reserved", "allocated", "available", "sessions")
		var e struct {
			Name                                               string
			Workshop                                           json.RawMessage
			Duration, Capacity, Reserved, Allocated, Available int
			Sessions                                           []json.RawMessage
		}
		json.Unmarshal(env, &e)
		sameKeys(t, "workshop", keys(t, e.Workshop), "name", "id", "resource", "title", "description", "vendor",
			"authors", "difficulty", "duration", "tags", "labels", "logo", "url")
		if e.Name != "portal-w01" || e.Duration != 3600 || e.Capacity != 3 || e.Reserved != 1 || e.Allocated != 1 || e.Available != 1 {
			t.Errorf("environment %s", env)
		}
		if len(e.Sessions) != 1 {
			t.Fatalf("sessions %s", env)
		}
		sameKeys(t, "session", keys(t, e.Sessions[0]), "name", "state", "namespace", "user", "started", "expires", "countdown", "extendable")
		var s struct{ Name, User, Namespace, Started, Expires string }
		json.Unmarshal(e.Sessions[0], &s)
		if s.Name != al.Name || s.User != "alice" || s.Namespace != al.Name || !datetime.MatchString(s.Started) || !datetime.MatchString(s.Expires) {
			t.Errorf("session %s", e.Sessions[0])
		}
	}

	// Non-robots never see sessions nor other states.
	admin := p.Login(portaltest.AdminUser, portaltest.AdminPassword)
	var body struct{ Environments []map[string]any }
	admin.Do("GET", "/workshops/catalog/environments/?sessions=true&state=stopping", nil, &body)
	if len(body.Environments) != 1 || body.Environments[0]["sessions"] != nil {
		t.Errorf("admin sees %v", body)
	}

	filters := map[string]int{
		"state=running":                1,
		"state=STOPPING":               0,
		"state=running&state=stopping": 1,
		// Educates ignored states it did not know, and listed running
		// environments when it knew none.
		"state=bogus":                   1,
		"state=":                        1,
		"state=bogus&state=stopping":    0,
		"name=lab":                      1,
		"name=other":                    0,
		"labels[kind]=lab":              1,
		"labels[kind]=other":            0,
		"labels%5Bkind%5D=lab&name=lab": 1,
	}
	for q, want := range filters {
		var body struct{ Environments []any }
		if status := robot.Do("GET", "/workshops/catalog/environments/?"+q, nil, &body); status != 200 || len(body.Environments) != want {
			t.Errorf("?%s: %d with %d environments, want %d", q, status, len(body.Environments), want)
		}
	}
	for _, q := range []string{"name=%zz", "sessions=%"} {
		resp, raw := robot.Raw("GET", "/workshops/catalog/environments/?"+q, nil)
		errorBody(t, resp.StatusCode, 400, raw)
	}
}

func TestCatalogVisibility(t *testing.T) {
	private := newPortal(t)
	resp, raw := private.Client().Raw("GET", "/workshops/catalog/workshops/", nil)
	errorBody(t, resp.StatusCode, 401, raw)

	public := newPortal(t, func(d *config.Definitions) { d.Portal.CatalogVisibility = "public" })
	for _, path := range []string{"/workshops/catalog/workshops/", "/workshops/catalog/environments/?sessions=true"} {
		var body map[string]any
		if status := public.Client().Do("GET", path, nil, &body); status != 200 {
			t.Fatalf("public %s without a token: %d", path, status)
		}
		if strings.Contains(fmt.Sprint(body), "sessions:[") {
			t.Errorf("anonymous caller sees sessions: %v", body)
		}
	}
	// A token that is not (or no longer) valid makes a caller anonymous,
	// as in Educates and its docs ("no workshop sessions will be returned
	// if ... you are not authenticated"): the catalog is still theirs,
	// with a hint that the token was refused.
	stale := public.Client()
	stale.Bearer = "expired-token"
	for _, path := range []string{"/workshops/catalog/workshops/", "/workshops/catalog/environments/?sessions=true"} {
		resp, raw := stale.Raw("GET", path, nil)
		if resp.StatusCode != 200 || strings.Contains(string(raw), `"sessions":[`) ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("public %s with an invalid token: %d %v %s", path, resp.StatusCode, resp.Header, raw)
		}
	}
}

func TestCatalogWorkshops(t *testing.T) {
	p := newPortal(t)
	resp, raw := p.Robot().Raw("GET", "/workshops/catalog/workshops", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	var body struct{ Workshops []json.RawMessage }
	json.Unmarshal(raw, &body)
	if len(body.Workshops) != 1 {
		t.Fatalf("%s", raw)
	}
	sameKeys(t, "workshop", keys(t, body.Workshops[0]), "name", "id", "resource", "title", "description", "vendor",
		"authors", "difficulty", "duration", "tags", "labels", "logo", "url", "environment")
	var w struct {
		Environment json.RawMessage
	}
	json.Unmarshal(body.Workshops[0], &w)
	sameKeys(t, "environment", keys(t, w.Environment), "name", "state", "duration", "capacity", "reserved", "allocated", "available")
}

func TestEnvironmentStatus(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	requestSession(t, robot, "index_url=/&user=alice")
	resp, raw := robot.Raw("GET", "/workshops/environment/portal-w01/status/?sessions=1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	sameKeys(t, "status", keys(t, raw), "name", "state", "workshop", "sessions", "duration", "capacity", "reserved", "allocated", "available")
	var body struct{ Workshop json.RawMessage }
	json.Unmarshal(raw, &body)
	sameKeys(t, "workshop", keys(t, body.Workshop), "name", "title", "description", "vendor", "authors",
		"difficulty", "duration", "tags", "labels", "logo", "url")

	resp, raw = robot.Raw("GET", "/workshops/environment/portal-w01/status", nil)
	if resp.StatusCode != 200 || strings.Contains(string(raw), `"sessions"`) {
		t.Errorf("without sessions=: %d %s", resp.StatusCode, raw)
	}
	resp, raw = robot.Raw("GET", "/workshops/environment/nope/status/", nil)
	errorBody(t, resp.StatusCode, 404, raw)
}

func TestRequestSession(t *testing.T) {
	p := newPortal(t, func(d *config.Definitions) { d.Portal.Entries[0].Capacity = 4 })
	robot := p.Robot()

	resp, raw := robot.Raw("GET", "/workshops/environment/portal-w01/request/?index_url=https://hub.test/&user=alice&email=alice@example.com&first_name=Alice", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	sameKeys(t, "request", keys(t, raw), "name", "session", "user", "url", "namespace", "workshop", "environment")
	var a allocation
	json.Unmarshal(raw, &a)
	urlRE := regexp.MustCompile(`^/workshops/session/portal-w01-s001/activate/\?token=[A-Za-z0-9]{32}&index_url=https%3A%2F%2Fhub\.test%2F$`)
	if a.Name != "portal-w01-s001" || a.Session != a.Name || a.User != "alice" || !urlRE.MatchString(a.URL) ||
		a.Namespace != a.Name || a.Workshop != "lab" || a.Environment != "portal-w01" {
		t.Fatalf("allocation %+v", a)
	}

	// The same user gets the same session back, with a fresh token; both
	// tokens activate it.
	again, status, _ := requestSession(t, robot, "index_url=https://hub.test/&user=alice")
	if status != 200 || again.Name != a.Name || again.URL == a.URL {
		t.Fatalf("second request of alice: %d %+v", status, again)
	}
	// Reacquire by name; another name is refused.
	if r, status, _ := requestSession(t, robot, "index_url=/&user=alice&session="+a.Name); status != 200 || r.Name != a.Name {
		t.Errorf("reacquire: %d %+v", status, r)
	}
	_, status, raw = requestSession(t, robot, "index_url=/&user=alice&session=portal-w01-s999")
	if got := errorBody(t, status, 503, raw); got != "No session available" {
		t.Errorf("reacquire of another name: %q", got)
	}
	_, status, raw = requestSession(t, robot, "index_url=/&user=bob&session="+a.Name)
	errorBody(t, status, 503, raw)

	// A generated user name is a UUID.
	gen, status, _ := requestSession(t, robot, "index_url=/")
	if status != 200 || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(gen.User) {
		t.Errorf("generated user: %d %+v", status, gen)
	}

	// Request parameters from a JSON body, on POST and on GET.
	for _, method := range []string{"POST", "GET"} {
		user := "param-" + method
		resp, raw := robot.Raw(method, "/workshops/environment/portal-w01/request/?index_url=/&user="+user,
			strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "grumpy"}, {"name": "UNDECLARED", "value": "x"}]}`),
			"Content-Type", "application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("%s with parameters: %d %s", method, resp.StatusCode, raw)
		}
		var a allocation
		json.Unmarshal(raw, &a)
		params := p.Session(a.Name).Params
		if len(params) != 1 || params[0] != (config.EnvVar{Name: "GREETING", Value: "grumpy"}) {
			t.Errorf("%s: parameters %v, want only the declared GREETING=grumpy", method, params)
		}
	}
	// Defaults apply when nothing is supplied.
	if params := p.Session(gen.Name).Params; len(params) != 1 || params[0].Value != "hello" {
		t.Errorf("default parameters %v", params)
	}

	// Capacity (4) is used up by alice, the generated user and param-*.
	_, status, raw = requestSession(t, robot, "index_url=/&user=carol")
	if got := errorBody(t, status, 503, raw); got != "No session available" {
		t.Errorf("over capacity: %q", got)
	}
}

func TestRequestByWorkshopNameAndPortalIndex(t *testing.T) {
	p := newPortal(t, func(d *config.Definitions) { d.Portal.Index = "https://index.test/" })
	var a allocation
	if status := p.Robot().Do("GET", "/workshops/environment/lab/request/?user=alice", nil, &a); status != 200 {
		t.Fatalf("request by workshop name without index_url: %d", status)
	}
	if a.Environment != "portal-w01" || !strings.HasSuffix(a.URL, "&index_url=https%3A%2F%2Findex.test%2F") {
		t.Errorf("allocation %+v", a)
	}
}

func TestRequestRejectsBadInput(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	const path = "/workshops/environment/portal-w01/request/"
	cases := []struct {
		name, query, body string
		status            int
		reason            string
	}{
		{"no index_url", "user=x", "", 400, "Need redirect URL for workshop index"},
		{"bad email", "index_url=/&email=not-an-email", "", 400, "Invalid email address provided"},
		{"timeout not a number", "index_url=/&timeout=ten", "", 400, ""},
		{"negative timeout", "index_url=/&timeout=-5", "", 400, ""},
		{"huge timeout", "index_url=/&timeout=99999999999999999999", "", 400, ""},
		{"malformed query", "index_url=%zz", "", 400, ""},
		{"invalid UTF-8 in query", "index_url=/&user=%ff", "", 400, ""},
		{"user with slash", "index_url=/&user=a/b", "", 400, ""},
		{"control character", "index_url=/&first_name=a%00b", "", 400, ""},
		{"analytics not a URL", "index_url=/&analytics_url=ftp:x", "", 400, ""},
		{"body not JSON", "index_url=/", "{nope", 400, "Invalid JSON request payload"},
		{"body invalid UTF-8", "index_url=/", "{\"parameters\": [{\"name\": \"A\", \"value\": \"\xff\"}]}", 400, "Invalid JSON request payload"},
		{"body not an object", "index_url=/", "[1, 2]", 400, ""},
		{"parameters not a list", "index_url=/", `{"parameters": {"name": "A"}}`, 400, ""},
		{"parameter not an object", "index_url=/", `{"parameters": ["A"]}`, 400, ""},
		{"parameter null", "index_url=/", `{"parameters": [null]}`, 400, ""},
		{"parameter without name", "index_url=/", `{"parameters": [{"value": "x"}]}`, 400, ""},
		{"parameter name not a string", "index_url=/", `{"parameters": [{"name": 3, "value": "x"}]}`, 400, ""},
		{"parameter value not a string", "index_url=/", `{"parameters": [{"name": "A", "value": 3}]}`, 400, ""},
		// Educates answered these 400 too: null is not an object, a list
		// or a string.
		// A parameter becomes an environment variable of the session's
		// shell: one with a NUL, or longer than Linux lets one variable be
		// (MAX_ARG_STRLEN, 128 KiB), would leave the session without a
		// terminal after a 200.
		{"parameter value with NUL", "index_url=/", `{"parameters": [{"name": "GREETING", "value": "a\u0000b"}]}`, 400, ""},
		{"parameter value too long", "index_url=/", `{"parameters": [{"name": "GREETING", "value": "` + strings.Repeat("x", 128<<10) + `"}]}`, 400, ""},
		{"body null", "index_url=/", "null", 400, ""},
		{"parameters null", "index_url=/", `{"parameters": null}`, 400, ""},
		{"parameter value null", "index_url=/", `{"parameters": [{"name": "A", "value": null}]}`, 400, ""},
		{"unknown environment", "index_url=/", "", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := path
			if tc.status == 404 {
				target = "/workshops/environment/nope/request/"
			}
			resp, raw := robot.Raw("POST", target+"?"+tc.query, strings.NewReader(tc.body), "Content-Type", "application/json")
			got := errorBody(t, resp.StatusCode, tc.status, raw)
			if tc.reason != "" && got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
		})
	}
	// Nothing was written: no user, no session.
	for _, s := range p.Sessions() {
		if s.Owner != 0 {
			t.Fatalf("bad requests allocated %s", s.Name)
		}
	}

	// Staff and robot accounts are refused as targets (Educates #649).
	for _, user := range []string{portaltest.AdminUser, portaltest.RobotUser} {
		_, status, raw := requestSession(t, robot, "index_url=/&user="+url.QueryEscape(user))
		if got := errorBody(t, status, 400, raw); got != "Session requests not permitted for user" {
			t.Errorf("%s as target: %q", user, got)
		}
	}
	resp, raw := robot.Raw("PUT", path+"?index_url=/", nil)
	errorBody(t, resp.StatusCode, 405, raw)

	// A long value within the limit is fine.
	long := `{"parameters": [{"name": "GREETING", "value": "` + strings.Repeat("x", 100<<10) + `"}]}`
	if resp, raw := robot.Raw("POST", path+"?index_url=/", strings.NewReader(long), "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Errorf("100 KiB parameter: %d %.200s", resp.StatusCode, raw)
	}
}

func TestSessionEndpoints(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	a, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	p.Settle()
	// A registered user who does not own the session.
	other := store.User{Username: "mallory@example.com", Role: store.RoleRegistered}
	hash, _ := p.Auth.HashPassword("mallory-password")
	other.PasswordHash = hash
	p.Store.Update(t.Context(), func(tx store.Tx) error { return tx.InsertUser(&other) })
	mallory := p.Login(other.Username, "mallory-password")
	admin := p.Login(portaltest.AdminUser, portaltest.AdminPassword)

	for _, prefix := range []string{"/workshops/session/", "/session/"} {
		for _, suffix := range []string{"/", ""} {
			base := prefix + a.Name + "/"
			resp, raw := robot.Raw("GET", base+"schedule"+suffix, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%sschedule%s: %d %s", base, suffix, resp.StatusCode, raw)
			}
			sameKeys(t, "schedule", keys(t, raw), "status", "started", "expires", "expiring", "countdown", "extendable")
		}
	}

	resp, raw := robot.Raw("GET", "/workshops/session/"+a.Name+"/extend/", nil)
	sameKeys(t, "extend", keys(t, raw), "status", "started", "expires", "extended", "expiring", "countdown", "extendable")
	var ext struct{ Extended bool }
	json.Unmarshal(raw, &ext)
	if resp.StatusCode != 200 || ext.Extended {
		t.Errorf("extend right away: %d %s", resp.StatusCode, raw)
	}

	var cfg struct{ URL, Password string }
	if status := admin.Do("GET", "/workshops/session/"+a.Name+"/config/", nil, &cfg); status != 200 ||
		cfg.URL != p.Broker.SessionURL(a.Name) || !strings.HasPrefix(cfg.URL, "http://"+a.Name+".localhost:") || len(cfg.Password) != 32 {
		t.Errorf("config: %d %+v", status, cfg)
	}

	var authz map[string]any
	if status := admin.Do("GET", "/workshops/session/"+a.Name+"/authorize/", nil, &authz); status != 200 ||
		authz["owner"] != "alice" || authz["user"] != portaltest.AdminUser || authz["staff"] != true {
		t.Errorf("authorize: %d %v", status, authz)
	}

	// Someone else's session: 403; unknown: 404.
	for _, ep := range []string{"schedule", "config", "extend", "terminate", "authorize"} {
		resp, raw := mallory.Raw("GET", "/workshops/session/"+a.Name+"/"+ep+"/", nil)
		if got := errorBody(t, resp.StatusCode, 403, raw); got != "Access to session not permitted" {
			t.Errorf("%s by another user: %q", ep, got)
		}
		resp, raw = robot.Raw("GET", "/workshops/session/nope-s001/"+ep+"/", nil)
		errorBody(t, resp.StatusCode, 404, raw)
	}

	// The reserved session has no owner.
	reserve := "portal-w01-s002"
	for _, ep := range []string{"extend", "terminate", "authorize"} {
		resp, raw := robot.Raw("GET", "/workshops/session/"+reserve+"/"+ep+"/", nil)
		if got := errorBody(t, resp.StatusCode, 400, raw); got != "Session is not currently in use" {
			t.Errorf("%s of a reserve: %q", ep, got)
		}
	}
	if status := robot.Do("GET", "/workshops/session/"+reserve+"/config/", nil, nil); status != 200 {
		t.Errorf("config of a reserve for a robot: %d", status)
	}

	// Events.
	evPath := "/workshops/session/" + a.Name + "/event/"
	resp, raw = robot.Raw("POST", evPath, strings.NewReader(`{"event": {"name": "Workshop/View", "data": {"page": 2}}}`), "Content-Type", "application/json")
	if resp.StatusCode != 200 || strings.TrimSpace(string(raw)) != "{}" {
		t.Errorf("event: %d %s", resp.StatusCode, raw)
	}
	if names := p.Events.Names(a.Name); names[len(names)-1] != "Workshop/View" {
		t.Errorf("event not forwarded: %v", names)
	}
	for body, ct := range map[string]string{`{"event": {"name": "x"}}`: "text/plain", `{"event": {}}`: "application/json", `{"event": `: "application/json"} {
		resp, raw := robot.Raw("POST", evPath, strings.NewReader(body), "Content-Type", ct)
		errorBody(t, resp.StatusCode, 400, raw)
	}
	resp, raw = robot.Raw("GET", evPath, nil)
	errorBody(t, resp.StatusCode, 405, raw)

	// Terminate: twice is fine; then the session is gone.
	for range 2 {
		resp, raw := robot.Raw("GET", "/session/"+a.Name+"/terminate", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("terminate: %d %s", resp.StatusCode, raw)
		}
		sameKeys(t, "terminate", keys(t, raw), "started", "expires")
	}
	p.Settle()
	resp, raw = robot.Raw("GET", "/workshops/session/"+a.Name+"/schedule/", nil)
	errorBody(t, resp.StatusCode, 404, raw)
}

func TestUserSessions(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	const user = "anon@educates:1f2e.3d"
	a, status, raw := requestSession(t, robot, "index_url=/&user="+url.QueryEscape(user))
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	resp, raw := robot.Raw("GET", "/workshops/user/"+url.PathEscape(user)+"/sessions/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, raw)
	}
	var body struct {
		User     string
		Sessions []json.RawMessage
	}
	json.Unmarshal(raw, &body)
	if body.User != user || len(body.Sessions) != 1 {
		t.Fatalf("%s", raw)
	}
	sameKeys(t, "user session", keys(t, body.Sessions[0]), "name", "namespace", "workshop", "environment", "started", "expires", "countdown", "extendable")
	if !strings.Contains(string(body.Sessions[0]), a.Name) {
		t.Errorf("%s", body.Sessions[0])
	}
	var empty struct {
		User     string
		Sessions []any
	}
	if status := robot.Do("GET", "/workshops/user/nobody/sessions", nil, &empty); status != 200 || empty.User != "nobody" || empty.Sessions == nil || len(empty.Sessions) != 0 {
		t.Errorf("unknown user: %d %+v", status, empty)
	}
}

func TestUnknownPathIsJSON404(t *testing.T) {
	p := newPortal(t)
	resp, raw := p.Client().Raw("GET", "/no/such/thing", nil)
	errorBody(t, resp.StatusCode, 404, raw)
}

// The dashboard calls schedule and extend on its session's origin, with
// that origin's cookie and the X-Portico-Browser header; without the header
// the cookie is not enough, so a link on another site cannot act for the
// person. The portal's own login cookie authenticates no API call.
func TestBrowserCookieOnSessionEndpoints(t *testing.T) {
	p := newPortal(t)
	p.Settle()
	a, _, _ := requestSession(t, p.Robot(), "index_url=/&user=alice")
	b, _, _ := requestSession(t, p.Robot(), "index_url=/&user=bob")
	p.Settle()
	alice, bob := p.Client(), p.Client()
	alice.Raw("GET", a.URL, nil)
	bob.Raw("GET", b.URL, nil)

	path := "/workshops/session/" + a.Name + "/schedule/"
	resp, raw := alice.Raw("GET", path, nil, "X-Portico-Browser", "1")
	errorBody(t, resp.StatusCode, 401, raw)

	origin := alice.Enter(a.Name)
	if status := alice.Do("GET", origin+path, nil, nil, "X-Portico-Browser", "1"); status != 200 {
		t.Errorf("owner's dashboard: %d", status)
	}
	if status := alice.Do("GET", origin+"/workshops/session/"+a.Name+"/extend/", nil, nil, "X-Portico-Browser", "1"); status != 200 {
		t.Errorf("owner's dashboard extends: %d", status)
	}
	resp, raw = alice.Raw("GET", origin+path, nil)
	errorBody(t, resp.StatusCode, 403, raw)
	// Only schedule and extend of its own session are the dashboard's.
	for _, other := range []string{"/workshops/session/" + a.Name + "/terminate/", "/workshops/session/" + b.Name + "/schedule/"} {
		resp, raw = alice.Raw("GET", origin+other, nil, "X-Portico-Browser", "1")
		if resp.StatusCode == 200 && strings.Contains(string(raw), "status") {
			t.Errorf("%s on alice's session origin: %d %s", other, resp.StatusCode, raw)
		}
	}
	bobsOrigin := bob.Enter(b.Name)
	resp, raw = bob.Raw("GET", bobsOrigin+path, nil, "X-Portico-Browser", "1")
	if resp.StatusCode == 200 {
		t.Errorf("bob's origin acts on alice's session: %s", raw)
	}
	if s := p.Session(a.Name); s.State != store.Running {
		t.Errorf("alice's session is %s", s.State)
	}
}

// HEAD is a GET without the body, and must be as safe: on the endpoints
// that act on a GET (request, extend, terminate) it is refused, as Educates
// refused it (405), rather than allocating or ending a session.
func TestHeadDoesNotAct(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	a, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	p.Settle()

	acting := map[string]string{
		"/workshops/environment/portal-w01/request/?index_url=/&user=bob": "GET, POST",
		"/workshops/session/" + a.Name + "/extend/":                       "GET",
		"/workshops/session/" + a.Name + "/terminate/":                    "GET",
		"/session/" + a.Name + "/terminate":                               "GET",
	}
	for path, allow := range acting {
		resp, _ := robot.Raw("HEAD", path, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
			t.Errorf("HEAD %s: %d, Allow %q; want 405, Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
	p.Settle()
	if s := p.Session(a.Name); s.State != store.Running && s.State != store.Waiting {
		t.Errorf("HEAD of terminate ended the session: %s", s.State)
	}
	for _, s := range p.Sessions() {
		if s.OwnerName == "bob" {
			t.Errorf("HEAD of request allocated %s to bob", s.Name)
		}
	}

	// Reads answer HEAD as they answer GET.
	for _, path := range []string{
		"/workshops/catalog/environments/",
		"/workshops/environment/portal-w01/status/",
		"/workshops/user/alice/sessions/",
		"/workshops/session/" + a.Name + "/schedule/",
	} {
		if resp, _ := robot.Raw("HEAD", path, nil); resp.StatusCode != 200 {
			t.Errorf("HEAD %s: %d, want 200", path, resp.StatusCode)
		}
	}
}

// A parameter given twice takes its last value, as Django's QueryDict.get
// gave it to Educates; an empty parameter falls back to its legacy
// spelling (index_url to redirect_url, first_name to firstname, ...), as
// Educates' `if not x: x = legacy` did.
func TestRepeatedAndLegacyQueryParameters(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()

	a, status, raw := requestSession(t, robot, "index_url=https://a.test/&index_url=https://b.test/&user=dup1&user=dup2")
	if status != 200 || a.User != "dup2" || !strings.HasSuffix(a.URL, "&index_url=https%3A%2F%2Fb.test%2F") {
		t.Errorf("repeated parameters: %d %s", status, raw)
	}

	a, status, raw = requestSession(t, robot, "index_url=&redirect_url=https://legacy.test/&user=legacy"+
		"&first_name=&firstname=Ada&last_name=%20&lastname=Lovelace")
	if status != 200 || !strings.HasSuffix(a.URL, "&index_url=https%3A%2F%2Flegacy.test%2F") {
		t.Fatalf("empty index_url with redirect_url: %d %s", status, raw)
	}
	var u store.User
	p.Store.View(t.Context(), func(tx store.Tx) (err error) { u, err = tx.User("legacy"); return err })
	if u.FirstName != "Ada" || u.LastName != "Lovelace" {
		t.Errorf("legacy names: %q %q", u.FirstName, u.LastName)
	}

	for q, want := range map[string]bool{"sessions=true&sessions=false": false, "sessions=false&sessions=1": true} {
		resp, raw := robot.Raw("GET", "/workshops/catalog/environments/?"+q, nil)
		if got := strings.Contains(string(raw), `"sessions":[`); resp.StatusCode != 200 || got != want {
			t.Errorf("catalog ?%s: %d, sessions listed %v, want %v", q, resp.StatusCode, got, want)
		}
		resp, raw = robot.Raw("GET", "/workshops/environment/portal-w01/status/?"+q, nil)
		if got := strings.Contains(string(raw), `"sessions":[`); resp.StatusCode != 200 || got != want {
			t.Errorf("status ?%s: %d, sessions listed %v, want %v", q, resp.StatusCode, got, want)
		}
	}
}

// Django limits usernames and names to 150 characters, not bytes: a name
// in another script within that limit works.
func TestNamesAreLimitedInCharacters(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	user := strings.Repeat("é", 150) // 300 bytes
	first := strings.Repeat("名", 150)
	a, status, raw := requestSession(t, robot, "index_url=/&user="+url.QueryEscape(user)+"&first_name="+url.QueryEscape(first))
	if status != 200 || a.User != user {
		t.Fatalf("150-character username: %d %s", status, raw)
	}
	for _, q := range []string{"user=" + url.QueryEscape(user+"é"), "first_name=" + url.QueryEscape(first+"名")} {
		_, status, raw = requestSession(t, robot, "index_url=/&"+q)
		errorBody(t, status, 400, raw)
	}
}

// Text that is not UTF-8 is refused, in a path as in an event, rather than
// turned into U+FFFD and taken for another name; a malformed event is
// described in the API's terms, not Go's.
func TestInvalidUTF8AndMalformedEvents(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	a, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	for _, path := range []string{"/workshops/user/%ff/sessions/", "/workshops/session/%ff/schedule/",
		"/workshops/environment/%ff/status/", "/workshops/environment/%ff/request/?index_url=/"} {
		resp, raw := robot.Raw("GET", path, nil)
		errorBody(t, resp.StatusCode, 400, raw)
	}

	evPath := "/workshops/session/" + a.Name + "/event/"
	for _, body := range []string{"{\"event\": {\"name\": \"\xff\"}}", `{"event": "x"}`, `[]`, `{"event": {"name": "x", "data": [1]}}`, `null`} {
		resp, raw := robot.Raw("POST", evPath, strings.NewReader(body), "Content-Type", "application/json")
		if reason := errorBody(t, resp.StatusCode, 400, raw); strings.Contains(reason, "Go ") || strings.Contains(reason, "struct") {
			t.Errorf("event %q: reason %q speaks Go", body, reason)
		}
	}
	if names := p.Events.Names(a.Name); slices.Contains(names, "\ufffd") {
		t.Errorf("an event named U+FFFD was forwarded: %v", names)
	}
}

// A front end on another origin may send the headers Educates'
// django-cors-headers allowed; X-Portico-Browser, which marks the
// dashboard's own calls with the login cookie, stays same-origin only.
func TestCORSPreflight(t *testing.T) {
	p := newPortal(t)
	resp, _ := p.Client().Raw("OPTIONS", "/workshops/catalog/environments/", nil,
		"Origin", "https://front.test", "Access-Control-Request-Method", "GET",
		"Access-Control-Request-Headers", "authorization,x-requested-with")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"accept", "authorization", "content-type", "user-agent", "x-csrftoken", "x-requested-with"} {
		if !slices.Contains(strings.Split(strings.ReplaceAll(allowed, " ", ""), ","), h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
	}
	if strings.Contains(allowed, "x-portico-browser") {
		t.Errorf("preflight allows X-Portico-Browser from another site: %q", allowed)
	}
}

// RFC 6749 §3.2: token request parameters must not be repeated. Educates'
// oauthlib refused a repeated one (invalid_request); taking either value
// would let a parameter smuggled into a form decide the grant.
func TestTokenRefusesRepeatedParameters(t *testing.T) {
	p := newPortal(t)
	c := p.Client()
	base := url.Values{"grant_type": {"password"}, "username": {portaltest.RobotUser}, "password": {portaltest.RobotPassword},
		"client_id": {portaltest.ClientID}, "client_secret": {portaltest.ClientSecret}, "scope": {"user:info"}}
	if resp, raw := c.Raw("POST", "/oauth2/token/", strings.NewReader(base.Encode()),
		"Content-Type", "application/x-www-form-urlencoded"); resp.StatusCode != 200 {
		t.Fatalf("each parameter once: %d %s", resp.StatusCode, raw)
	}
	for _, key := range []string{"grant_type", "username", "password", "client_id", "client_secret", "scope"} {
		form := url.Values{}
		for k, v := range base {
			form[k] = v
		}
		form[key] = append(form[key], form.Get(key))
		resp, raw := c.Raw("POST", "/oauth2/token/", strings.NewReader(form.Encode()),
			"Content-Type", "application/x-www-form-urlencoded")
		var body struct{ Error string }
		json.Unmarshal(raw, &body)
		if resp.StatusCode != 400 || body.Error != "invalid_request" {
			t.Errorf("%s twice: %d %s, want 400 invalid_request", key, resp.StatusCode, raw)
		}
	}
}

// RFC 6749 §2.3.1 has clients form-encode their id and secret before
// HTTP Basic (Go's golang.org/x/oauth2 does); Educates' oauth toolkit
// decoded them. Credentials sent raw still work when they decode to
// themselves.
func TestBasicClientCredentialsAreFormDecoded(t *testing.T) {
	const id, secret = "front end", "s3cr+t/%é"
	p := newPortal(t, func(d *config.Definitions) { d.Portal.RobotClient = config.Client{ID: id, Secret: secret} })
	c := p.Client()
	body := "grant_type=password&username=" + url.QueryEscape(portaltest.RobotUser) + "&password=" + url.QueryEscape(portaltest.RobotPassword)
	r, _ := http.NewRequest("POST", "/", nil)
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, raw := c.Raw("POST", "/oauth2/token/", strings.NewReader(body),
		"Content-Type", "application/x-www-form-urlencoded", "Authorization", r.Header.Get("Authorization"))
	if resp.StatusCode != 200 {
		t.Errorf("form-encoded Basic credentials: %d %s", resp.StatusCode, raw)
	}
}
