package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRequestActivateScheduleTerminate follows the README's curl sequence
// against the real binary, with a real session host behind the session.
func TestRequestActivateScheduleTerminate(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 4, Reserved: 1}))

	// 1. A token for the robot (password grant, client by HTTP Basic).
	robot := p.robot()

	// 2. The environments, with the sessions in them.
	var env environment
	if msg := eventually(settle, func() string {
		e, ok := robot.catalogEnvironment()
		if !ok {
			return "environment " + envName + " not in the catalog"
		}
		env = e
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	if env.State != "RUNNING" || env.Capacity != 4 || env.Reserved != 1 || env.Duration != 3600 || len(*env.Sessions) != 0 {
		t.Fatalf("environment before any request: %+v", env)
	}

	// 3. A session for alice, with a request parameter.
	resp, raw := robot.do("POST", requestPath("alice", ""),
		strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "Hi"}]}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request: %d %s", resp.StatusCode, raw)
	}
	var a allocation
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	activateURL := regexp.MustCompile(`^/workshops/session/` + regexp.QuoteMeta(a.Name) +
		`/activate/\?token=[A-Za-z0-9]{32}&index_url=` + regexp.QuoteMeta(url.QueryEscape(indexURL)) + `$`)
	if !regexp.MustCompile(`^`+envName+`-s\d{3}$`).MatchString(a.Name) || a.Session != a.Name || a.User != "alice" ||
		a.Namespace != a.Name || a.Workshop != "lab-e2e" || a.Environment != envName || !activateURL.MatchString(a.URL) {
		t.Fatalf("allocation %s", raw)
	}
	session := "/workshops/session/" + a.Name

	// 4. Activation, as the browser would: a redirect to the session and a
	// login cookie.
	p.activate(a)

	// The session is alice's and runs (a reserve handed out while still
	// starting becomes RUNNING once its host is up).
	var sc schedule
	if msg := eventually(settle, func() string {
		sc = schedule{}
		robot.mustGet(session+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("schedule after activation: %+v", sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	started, err1 := time.Parse(time.RFC3339Nano, sc.Started)
	expires, err2 := time.Parse(time.RFC3339Nano, sc.Expires)
	if err1 != nil || err2 != nil || expires.Sub(started) != time.Hour || sc.Countdown == nil || *sc.Countdown <= 0 ||
		sc.Extendable == nil || sc.Expiring {
		t.Errorf("schedule %+v", sc)
	}
	env = robot.environment()
	if len(*env.Sessions) != 1 || (*env.Sessions)[0] != (catalogSession{a.Name, "RUNNING", "alice", a.Name}) || env.Allocated != 1 {
		t.Errorf("catalog after activation: %+v %+v", env, *env.Sessions)
	}

	// 5. Extend: not extendable yet (60 minutes, extensions in the last 15).
	var ext schedule
	robot.mustGet(session+"/extend/", &ext)
	if ext.Extended == nil || *ext.Extended || ext.Expires != sc.Expires || ext.Status != "RUNNING" {
		t.Errorf("extend right after activation: %+v (schedule %+v)", ext, sc)
	}

	// 6. The session's config endpoints, through the portal, authorised by
	// its config password.
	var cfg struct{ URL, Password string }
	robot.mustGet(session+"/config/", &cfg)
	if cfg.URL != sessionURL(p.url, a.Name) || len(cfg.Password) < 16 {
		t.Fatalf("config %+v", cfg)
	}
	vars := sessionEnvironment(t, p, cfg.URL, cfg.Password)
	// (The request parameter GREETING is checked by
	// TestRequestParametersReachTheSession.)
	for k, want := range map[string]string{"SESSION_NAME": a.Name, "ENVIRONMENT_NAME": envName, "TRAINING_PORTAL": portalName,
		"EDITOR": "nano", "CONFIG_PASSWORD": cfg.Password} {
		if vars[k] != want {
			t.Errorf("config/environment: %s=%q, want %q", k, vars[k], want)
		}
	}
	browser := p.client()
	resp, raw = browser.do("GET", cfg.URL+"/config/environment?token=wrong", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("config/environment with a wrong token: %d %s", resp.StatusCode, raw)
	}

	// 7. End it.
	var ended struct{ Started, Expires string }
	robot.mustGet(session+"/terminate/", &ended)
	if ended.Started != sc.Started || ended.Expires == "" {
		t.Errorf("terminate: %+v", ended)
	}

	// Its host goes, the reserve stays topped up, and the session is gone
	// from the API.
	if msg := eventually(settle, func() string {
		procs := processesBySession(p.dataDir)
		if len(procs[a.Name]) > 0 {
			return fmt.Sprintf("session %s still has processes %v", a.Name, procs[a.Name])
		}
		env := robot.status()
		if env.Allocated != 0 || env.Available != 1 || len(procs) != 1 {
			return fmt.Sprintf("after termination: status %+v, processes of %v, want one reserve", env, sortedKeys(procs))
		}
		if status := robot.get(session+"/schedule/", nil); status != http.StatusNotFound {
			return fmt.Sprintf("schedule of the ended session: %d, want 404", status)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	if env := robot.environment(); len(*env.Sessions) != 0 {
		t.Errorf("catalog after termination: %+v", *env.Sessions)
	}
	// Its activation URL now sends the browser back to the index.
	resp, _ = browser.do("GET", a.URL, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != indexURL+"?notification=session-deleted" {
		t.Errorf("activation of an ended session: %d to %q", resp.StatusCode, loc)
	}

	p.stop()
}

// sessionEnvironment reads <url>/config/environment?token=<password> of a
// session, waiting for its host to serve.
func sessionEnvironment(t *testing.T, p *portal, sessionURL, password string) map[string]string {
	t.Helper()
	browser := p.client()
	var vars map[string]string
	if msg := eventually(settle, func() string {
		resp, raw := browser.do("GET", sessionURL+"/config/environment?token="+url.QueryEscape(password), nil)
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("config/environment: %d %s", resp.StatusCode, raw)
		}
		if err := json.Unmarshal(raw, &vars); err != nil {
			return fmt.Sprintf("config/environment: %v: %s", err, raw)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	return vars
}

// TestRequestParametersReachTheSession checks that the request parameters
// of spec.request.parameters, supplied in the request body or defaulted,
// are in the environment of the session the user gets, whether it comes
// from the reserve or is started for the request.
func TestRequestParametersReachTheSession(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reserved int
	}{
		{"session from the reserve", 2},
		{"session started on demand", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPortal(t, definitions(entry{Capacity: 4, Reserved: tc.reserved}))
			robot := p.robot()
			if tc.reserved > 0 {
				// The reserve is up before the requests.
				if msg := eventually(settle, func() string {
					if env := robot.status(); env.Available != tc.reserved {
						return fmt.Sprintf("reserve not ready: %+v", env)
					}
					return ""
				}); msg != "" {
					t.Fatal(msg)
				}
			}
			for user, want := range map[string]string{"alice": "Hi", "bob": "Hello"} {
				body := ""
				if user == "alice" {
					body = `{"parameters": [{"name": "GREETING", "value": "Hi"}]}`
				}
				resp, raw := robot.do("POST", requestPath(user, ""), strings.NewReader(body), "Content-Type", "application/json")
				var a allocation
				if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil {
					t.Fatalf("request for %s: %d %s", user, resp.StatusCode, raw)
				}
				p.activate(a)
				var cfg struct{ URL, Password string }
				robot.mustGet("/workshops/session/"+a.Name+"/config/", &cfg)
				vars := sessionEnvironment(t, p, cfg.URL, cfg.Password)
				if got, ok := vars["GREETING"]; got != want {
					t.Errorf("%s's session %s: GREETING=%q (set: %v), want %q", user, a.Name, got, ok, want)
				}
			}
		})
	}
}

// TestEducatesClientFlows sends the requests of the two clients in the
// Educates repository, byte for byte in what matters, to the real binary:
// the lookup service (lookup-service/service/caches/portals.py) and the
// educates CLI (client-programs, `educates cluster workshop request`).
func TestEducatesClientFlows(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 3, Reserved: 1}))

	// Lookup service: password grant with the client by HTTP Basic.
	robot := p.robot()
	if msg := eventually(settle, func() string {
		if _, ok := robot.catalogEnvironment(); !ok {
			return "environment " + envName + " not in the catalog"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	// It lists sessions of running and stopping environments...
	var cat struct{ Environments []environment }
	robot.mustGet("/workshops/catalog/environments/?sessions=true&state=RUNNING&state=STOPPING", &cat)
	if len(cat.Environments) != 1 || cat.Environments[0].Name != envName {
		t.Fatalf("catalog for the lookup service: %+v", cat)
	}
	// ...requests a session with a GET that has a JSON body, sending the
	// user details it has, empty or not...
	q := url.Values{"user": {"lookup-user"}, "email": {""}, "first_name": {""}, "last_name": {""},
		"index_url": {indexURL}, "analytics_url": {""}}
	resp, raw := robot.do("GET", "/workshops/environment/"+envName+"/request/?"+q.Encode(),
		strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "Hi"}]}`), "Content-Type", "application/json")
	var a allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil || a.User != "lookup-user" {
		t.Fatalf("lookup service request: %d %s", resp.StatusCode, raw)
	}
	// ...and reacquires it by user and session name.
	q = url.Values{"index_url": {indexURL}, "user": {"lookup-user"}, "session": {a.Name}}
	var again allocation
	robot.mustGet("/workshops/environment/"+envName+"/request/?"+q.Encode(), &again)
	if again.Name != a.Name || again.URL == "" {
		t.Errorf("reacquire: %+v, want %s", again, a.Name)
	}
	// Datetimes are written as Educates writes them.
	var withTimes struct {
		Environments []struct {
			Sessions []struct{ Started, Expires string }
		}
	}
	robot.mustGet("/workshops/catalog/environments/?sessions=true", &withTimes)
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	for _, e := range withTimes.Environments {
		for _, s := range e.Sessions {
			if !stamp.MatchString(s.Started) || !stamp.MatchString(s.Expires) {
				t.Errorf("session times %q, %q", s.Started, s.Expires)
			}
		}
	}
	// A HEAD (a link checker, a proxy probing) does not end it.
	resp, _ = robot.do("HEAD", "/workshops/session/"+a.Name+"/terminate/", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD of terminate: %d, want 405", resp.StatusCode)
	}
	var sc schedule
	robot.mustGet("/workshops/session/"+a.Name+"/schedule/", &sc)
	if sc.Status == "STOPPING" {
		t.Errorf("HEAD of terminate ended the session: %+v", sc)
	}
	// Logout: revoke with the client in the body.
	revoke := url.Values{"client_id": {clientID}, "client_secret": {clientSecret}, "token": {robot.bearer}}
	resp, raw = p.client().do("POST", "/oauth2/revoke-token/", strings.NewReader(revoke.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lookup service logout: %d %s", resp.StatusCode, raw)
	}
	if status := robot.get("/workshops/catalog/environments/", nil); status != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", status)
	}

	// The CLI: the catalog without its trailing slash, with a "{}" body on
	// the GET...
	cli := p.robot()
	resp, raw = cli.do("GET", "/workshops/catalog/environments", strings.NewReader("{}"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), `"name":"`+envName+`"`) {
		t.Fatalf("CLI catalog: %d %s", resp.StatusCode, raw)
	}
	// ...a POST with every parameter in its body and the portal as index...
	resp, raw = cli.do("POST", "/workshops/environment/"+envName+"/request/?index_url="+url.QueryEscape(p.url),
		strings.NewReader(`{"parameters":[]}`), "Content-Type", "application/json")
	var c allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &c) != nil ||
		!strings.HasSuffix(c.URL, "&index_url="+url.QueryEscape(p.url)) {
		t.Fatalf("CLI request: %d %s", resp.StatusCode, raw)
	}
	// ...and a revoke that carries the token as a bearer too.
	revoke = url.Values{"token": {cli.bearer}, "client_id": {clientID}, "client_secret": {clientSecret}}
	resp, raw = cli.do("POST", "/oauth2/revoke-token/", strings.NewReader(revoke.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CLI revoke: %d %s", resp.StatusCode, raw)
	}
	if status := cli.get("/workshops/catalog/environments/", nil); status != http.StatusUnauthorized {
		t.Errorf("token the CLI revoked: %d, want 401", status)
	}
	p.stop()
}
