package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

func newPortal(t *testing.T) *portaltest.Portal {
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	return portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
}

// request hands a session to user through the REST API and returns its
// name and activation URL.
func request(t *testing.T, p *portaltest.Portal, user, indexURL string) (string, string) {
	t.Helper()
	var a struct{ Name, URL string }
	if status := p.Robot().Do("GET", "/workshops/environment/portal-w01/request/?user="+user+"&index_url="+url.QueryEscape(indexURL), nil, &a); status != 200 {
		t.Fatalf("request: %d", status)
	}
	return a.Name, a.URL
}

func errorReason(t *testing.T, resp *http.Response, raw []byte, status int) string {
	t.Helper()
	var body struct{ Error string }
	if resp.StatusCode != status || json.Unmarshal(raw, &body) != nil || body.Error == "" {
		t.Fatalf("%d %s, want %d with a JSON reason", resp.StatusCode, raw, status)
	}
	return body.Error
}

func TestActivate(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "https://hub.test/?x=1")
	browser := p.Client()

	for q, want := range map[string]string{
		"":            "No access token supplied",
		"token=wrong": "Invalid access token for session",
		"token=%zz":   "Malformed query string",
	} {
		resp, raw := browser.Raw("GET", "/workshops/session/"+name+"/activate/?"+q, nil)
		if got := errorReason(t, resp, raw, 400); got != want {
			t.Errorf("?%s: %q, want %q", q, got, want)
		}
	}
	token := strings.TrimPrefix(strings.Split(activation, "&")[0], "/workshops/session/"+name+"/activate/?")
	resp, raw := browser.Raw("GET", "/workshops/session/portal-w01-s999/activate/?"+token, nil)
	if got := errorReason(t, resp, raw, 400); got != "Invalid session name supplied" {
		t.Errorf("unknown session: %q", got)
	}

	resp, _ = browser.Raw("GET", activation, nil)
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/workshops/session/"+name+"/" {
		t.Fatalf("activation: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "portico_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("login cookie %+v", cookie)
	}
	if s := p.Session(name); s.State != store.Running {
		t.Errorf("session %s after activation", s.State)
	}
	// The session is ready: its page opens the dashboard, on the
	// session's own origin.
	resp, raw = browser.Raw("GET", "/workshops/session/"+name+"/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "/workshops/session/"+name+"/open/" {
		t.Fatalf("session page: %d to %q %s", resp.StatusCode, loc, raw)
	}
	resp, raw = browser.Raw("GET", "/workshops/session/"+name+"/open/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, "http://"+name+".localhost:") {
		t.Fatalf("open: %d to %q %s", resp.StatusCode, loc, raw)
	}

	// Finishing ends the session and returns to the index URL.
	resp, _ = browser.Raw("GET", "/workshops/session/"+name+"/delete/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://hub.test/?notification=session-deleted&x=1" {
		t.Fatalf("delete: %d to %q", resp.StatusCode, loc)
	}
	if s := p.Session(name); s.State != store.Stopping {
		t.Errorf("session %s after delete", s.State)
	}
	p.Settle()
	// The session page and the activation URL of an ended session send
	// the owner back to the index URL.
	for _, path := range []string{"/workshops/session/" + name + "/", activation} {
		resp, _ = browser.Raw("GET", path, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://hub.test/?notification=session-deleted&x=1" {
			t.Errorf("%s after the end: %d to %q", path, resp.StatusCode, loc)
		}
	}
}

func TestSessionPageIsForItsOwner(t *testing.T) {
	p := newPortal(t)
	name, _ := request(t, p, "alice", "/")
	_, bobs := request(t, p, "bob", "/")
	bob := p.Client()
	bob.Raw("GET", bobs, nil)

	resp, _ := p.Client().Raw("GET", "/workshops/session/"+name+"/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, "/?next=") {
		t.Errorf("not logged in: %d to %q", resp.StatusCode, loc)
	}
	for _, path := range []string{"/workshops/session/" + name + "/", "/workshops/session/" + name + "/delete/", "/workshops/session/nope-s001/"} {
		resp, _ := bob.Raw("GET", path, nil)
		if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "/workshops/catalog/?notification=session-invalid" {
			t.Errorf("bob at %s: %d to %q", path, resp.StatusCode, loc)
		}
	}
	if s := p.Session(name); s.State == store.Stopping || s.State == store.Stopped {
		t.Fatal("bob ended alice's session")
	}
}

func TestSessionPageCoversAStartingSession(t *testing.T) {
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 0, Initial: 0, Expires: time.Hour})
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
	name, activation := request(t, p, "alice", "/")
	browser := p.Client()
	browser.Raw("GET", activation, nil)
	_, raw := browser.Raw("GET", "/workshops/session/"+name+"/", nil)
	if page := string(raw); strings.Contains(page, `<iframe`) || !strings.Contains(page, `<main id="cover" class="cover">`) {
		t.Fatalf("page of a starting session: %s", page)
	}
	ready := func() bool {
		var r struct{ Ready *bool }
		if status := browser.Do("GET", "/workshops/session/"+name+"/ready/", nil, &r); status != 200 || r.Ready == nil {
			t.Fatalf("ready: %d %+v", status, r)
		}
		return *r.Ready
	}
	if ready() {
		t.Error("ready before the host answers")
	}
	if status := p.Client().Do("GET", "/workshops/session/"+name+"/ready/", nil, nil); status != 401 {
		t.Errorf("ready for nobody: %d", status)
	}
	resp, _ := browser.Raw("GET", "/workshops/session/"+name+"/open/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "/workshops/session/"+name+"/" {
		t.Errorf("open while starting: %d to %q", resp.StatusCode, loc)
	}
	p.Settle()
	if !ready() {
		t.Error("not ready once the host answers")
	}
	resp, _ = browser.Raw("GET", "/workshops/session/"+name+"/", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "/workshops/session/"+name+"/open/" {
		t.Fatalf("page of a ready session: %d to %q", resp.StatusCode, loc)
	}
}
