package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// fakeHost stands in for a session host and records what reaches it.
type fakeHost struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Clone(r.Context()))
		h.mu.Unlock()
		w.Write([]byte("host:" + r.URL.Path))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *fakeHost) last() *http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return nil
	}
	return h.seen[len(h.seen)-1]
}

// pointAt makes the fake host the host of the session.
func pointAt(t *testing.T, p *portaltest.Portal, name string, host *fakeHost) {
	t.Helper()
	if err := p.Store.Update(t.Context(), func(tx store.Tx) error {
		s, err := tx.Session(name)
		if err != nil {
			return err
		}
		s.Address = strings.TrimPrefix(host.URL, "http://")
		return tx.UpdateSession(&s)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestProxyToSessionHost(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	bobs, bobsActivation := request(t, p, "bob", "/")
	host := newFakeHost(t)
	pointAt(t, p, name, host)
	pointAt(t, p, bobs, host)
	password := p.ConfigPassword(name)

	alice := p.Client()
	alice.Raw("GET", activation, nil)
	bob := p.Client()
	bob.Raw("GET", bobsActivation, nil)

	if p.Session(name).Delivered {
		t.Fatal("delivered before any reconciler pass: the test would prove nothing")
	}
	origin := alice.Enter(name)
	if want := "http://" + name + ".localhost:" + p.Server.URL[strings.LastIndex(p.Server.URL, ":")+1:]; origin != want {
		t.Fatalf("session origin %q, want %q", origin, want)
	}
	resp, raw := alice.Raw("GET", origin+"/workshop/content/01?x=1", nil,
		"X-Portico-Staff", "true", "X-Portico-User", "admin", "X-Portico-Secret", "guess", "Cookie", "app=1")
	if resp.StatusCode != 200 || string(raw) != "host:/workshop/content/01" {
		t.Fatalf("owner through the proxy: %d %q", resp.StatusCode, raw)
	}
	got := host.last()
	for h, want := range map[string]string{
		"X-Portico-Secret":   password,
		"X-Portico-User":     "", // who is looking is not the session's business
		"X-Portico-Staff":    "",
		"X-Forwarded-Prefix": "",
		"Cookie":             "app=1", // the workshop's own; never the visit cookie
	} {
		if got.Header.Get(h) != want {
			t.Errorf("host got %s %q, want %q", h, got.Header.Get(h), want)
		}
	}
	if got.URL.RawQuery != "x=1" {
		t.Errorf("query %q lost", got.URL.RawQuery)
	}
	// The host knew its owner before the request reached it.
	if a, ok := p.Runtime.(*runtimetest.Runtime).Allocation(name); !ok || a.User.Username != "alice" || !p.Session(name).Delivered {
		t.Errorf("owner not delivered before forwarding: %+v %v", a, ok)
	}

	n := len(host.seen)
	bobsOrigin := bob.Enter(bobs)
	for _, c := range []struct {
		name   string
		status int
		do     func() (*http.Response, []byte)
	}{
		{"bob's visit of his own session on alice's origin", 401, func() (*http.Response, []byte) {
			// His cookie is his session's origin's: the jar does not
			// send it here, and a copy of it lets nobody in.
			c := bobsCookie(t, bob, bobsOrigin)
			return p.Client().Raw("GET", origin+"/", nil, "Cookie", c)
		}},
		{"bob asking the portal to let him in", 403, func() (*http.Response, []byte) {
			return bob.Raw("GET", "/workshops/session/"+name+"/open/", nil)
		}},
		{"nobody", 401, func() (*http.Response, []byte) { return p.Client().Raw("GET", origin+"/", nil) }},
		{"a websocket from another site", 403, func() (*http.Response, []byte) {
			return alice.Raw("GET", origin+"/terminal/1", nil,
				"Connection", "Upgrade", "Upgrade", "websocket", "Origin", "https://evil.test")
		}},
		{"a websocket from the portal's origin", 403, func() (*http.Response, []byte) {
			return alice.Raw("GET", origin+"/terminal/1", nil,
				"Connection", "Upgrade", "Upgrade", "websocket", "Origin", p.Server.URL)
		}},
		{"a websocket from the session's host on https", 403, func() (*http.Response, []byte) {
			return alice.Raw("GET", origin+"/terminal/1", nil,
				"Connection", "Upgrade", "Upgrade", "websocket", "Origin", strings.Replace(origin, "http:", "https:", 1))
		}},
		{"a websocket from another session's origin", 403, func() (*http.Response, []byte) {
			return alice.Raw("GET", origin+"/terminal/1", nil,
				"Connection", "Upgrade", "Upgrade", "websocket", "Origin", bobsOrigin)
		}},
	} {
		resp, raw := c.do()
		if resp.StatusCode != c.status || !strings.Contains(string(raw), `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, raw, c.status)
		}
	}
	if len(host.seen) != n {
		t.Fatal("a refused request reached the host")
	}

	// A page load without the cookie goes through the portal, which
	// knows the person, and back.
	resp, _ = p.Client().Raw("GET", origin+"/workshop/content/01/", nil, "Sec-Fetch-Mode", "navigate")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 ||
		loc != p.Server.URL+"/workshops/session/"+name+"/open/?next=%2Fworkshop%2Fcontent%2F01%2F" {
		t.Errorf("a page load without the cookie: %d to %q", resp.StatusCode, loc)
	}

	// The config endpoints need no login: the host checks their token, and
	// the portal does not hand over the secret.
	resp, _ = p.Client().Raw("GET", origin+"/config/environment?token=abc", nil)
	if resp.StatusCode != 200 || host.last().Header.Get("X-Portico-Secret") != "" || host.last().URL.Path != "/config/environment" {
		t.Errorf("config through the proxy: %d, secret %q", resp.StatusCode, host.last().Header.Get("X-Portico-Secret"))
	}

	// The portal's own origin serves nothing of a session: the paths
	// where sessions were once served redirect.
	n = len(host.seen)
	resp, _ = alice.Raw("GET", "/sessions/"+name+"/config/environment?token=abc", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || loc != origin+"/config/environment?token=abc" || len(host.seen) != n {
		t.Errorf("the old path of a session: %d to %q", resp.StatusCode, loc)
	}

	resp, raw = alice.Raw("GET", strings.Replace(origin, name, "nope-s001", 1)+"/", nil)
	if resp.StatusCode != 401 {
		t.Errorf("unknown session: %d %s", resp.StatusCode, raw)
	}
}

// bobsCookie returns the Cookie header the client sends to origin.
func bobsCookie(t *testing.T, c *portaltest.Client, origin string) string {
	t.Helper()
	u, _ := url.Parse(origin + "/")
	var parts []string
	for _, k := range c.HTTP.Jar.Cookies(u) {
		parts = append(parts, k.Name+"="+k.Value)
	}
	if len(parts) == 0 {
		t.Fatal("no cookie for " + origin)
	}
	return strings.Join(parts, "; ")
}

func TestTicketIsUsedOnce(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	pointAt(t, p, name, newFakeHost(t))
	alice := p.Client()
	alice.Raw("GET", activation, nil)
	resp, _ := alice.Raw("GET", "/workshops/session/"+name+"/open/?next=/workshop/content/02/", nil)
	enter := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasPrefix(enter, p.Broker.SessionURL(name)+"/.portico/enter?") {
		t.Fatalf("open: %d to %q", resp.StatusCode, enter)
	}
	resp, _ = alice.Raw("GET", enter, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "/workshop/content/02/" {
		t.Fatalf("enter: %d to %q", resp.StatusCode, loc)
	}
	// Another browser with the same URL (a shared link, a log) gets
	// nothing: it is sent to the portal to log in.
	mallory := p.Client()
	resp, _ = mallory.Raw("GET", enter, nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || !strings.HasPrefix(loc, p.Server.URL+"/workshops/session/"+name+"/open/") {
		t.Fatalf("a ticket used twice: %d to %q", resp.StatusCode, loc)
	}
	if resp, raw := mallory.Raw("GET", p.Broker.SessionURL(name)+"/", nil); resp.StatusCode != 401 {
		t.Errorf("after a used ticket: %d %s", resp.StatusCode, raw)
	}
}

// A session answers what it likes: none of its cookies may shadow the
// visit cookie or reach the portal's origin.
func TestSessionSetsNoPortalCookie(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range []string{"portico_visit=forged; Path=/", "portico_session=forged", "__Host-portico_csrf=x; Secure; Path=/",
			"portico_csrf=x; Domain=localhost", "tracker=1; Domain=localhost", "app=1; Path=/"} {
			w.Header().Add("Set-Cookie", c)
		}
	}))
	t.Cleanup(host.Close)
	pointAt(t, p, name, &fakeHost{Server: host})
	alice := p.Client()
	alice.Raw("GET", activation, nil)
	origin := alice.Enter(name)
	resp, _ := alice.Raw("GET", origin+"/", nil)
	if got := resp.Header.Values("Set-Cookie"); resp.StatusCode != 200 || len(got) != 1 || got[0] != "app=1; Path=/" {
		t.Errorf("cookies through the proxy: %d %q, want only app=1", resp.StatusCode, got)
	}
}

// Staff open any session from the admin pages; there they read, and act
// on it from the admin pages only.
func TestStaffOpenSessions(t *testing.T) {
	p := newPortal(t)
	name, _ := request(t, p, "alice", "/")
	pointAt(t, p, name, newFakeHost(t))
	admin := p.Client()
	form := url.Values{"username": {portaltest.AdminUser}, "password": {portaltest.AdminPassword}}
	admin.Raw("GET", "/accounts/login/", nil)
	u, _ := url.Parse(p.Server.URL)
	for _, c := range admin.HTTP.Jar.Cookies(u) {
		if c.Name == "portico_csrf" {
			form.Set("csrf_token", c.Value)
		}
	}
	if resp, raw := admin.Raw("POST", "/accounts/login/", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", p.Server.URL); resp.StatusCode != 302 {
		t.Fatalf("admin login: %d %s", resp.StatusCode, raw)
	}
	if _, raw := admin.Raw("GET", "/admin/sessions/", nil, "Accept", "text/html"); !strings.Contains(string(raw), `href="/workshops/session/`+name+`/open/"`) {
		t.Errorf("the admin sessions page does not link to the session's dashboard: %s", raw)
	}
	origin := admin.Enter(name)
	if resp, raw := admin.Raw("GET", origin+"/", nil); resp.StatusCode != 200 {
		t.Errorf("staff on the session's origin: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := admin.Raw("GET", origin+"/workshops/session/"+name+"/schedule/", nil, "X-Portico-Browser", "1"); resp.StatusCode != 200 {
		t.Errorf("staff reads the schedule on the session's origin: %d %s", resp.StatusCode, raw)
	}
	before := p.Session(name).Expires
	if resp, raw := admin.Raw("GET", origin+"/workshops/session/"+name+"/extend/", nil, "X-Portico-Browser", "1"); resp.StatusCode != 403 {
		t.Errorf("staff extends on the session's origin: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := admin.Raw("GET", origin+"/workshops/session/"+name+"/delete/", nil, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != 403 {
		t.Errorf("staff finishes on the session's origin: %d %s", resp.StatusCode, raw)
	}
	if s := p.Session(name); !s.Expires.Equal(before) || s.State == store.Stopping {
		t.Errorf("the session changed: %s until %v (was %v)", s.State, s.Expires, before)
	}
}

// The dashboard's finish button ends the session from the session's
// origin and sends the browser back to the portal; a link from elsewhere
// does not end it.
func TestFinishOnSessionOrigin(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "https://hub.example/")
	pointAt(t, p, name, newFakeHost(t))
	alice := p.Client()
	alice.Raw("GET", activation, nil)
	origin := alice.Enter(name)
	finish := origin + "/workshops/session/" + name + "/delete/"
	for _, site := range []string{"cross-site", "same-site"} {
		if resp, raw := alice.Raw("GET", finish, nil, "Sec-Fetch-Site", site); resp.StatusCode != 403 {
			t.Errorf("finish from a %s link: %d %s", site, resp.StatusCode, raw)
		}
	}
	if s := p.Session(name); s.State == store.Stopping {
		t.Fatal("a link from elsewhere ended the session")
	}
	resp, raw := alice.Raw("GET", finish, nil, "Sec-Fetch-Site", "same-origin")
	if loc := resp.Header.Get("Location"); resp.StatusCode != 302 || loc != "https://hub.example/?notification=session-deleted" {
		t.Errorf("finish: %d to %q %s", resp.StatusCode, loc, raw)
	}
	if s := p.Session(name); s.State != store.Stopping {
		t.Errorf("session %s after finish", s.State)
	}
}

// The session host sees the ID of the request the portal proxies to it,
// as the portal's log has it: the caller's when well formed, else the one
// the portal made (and answered with).
func TestProxyPassesTheRequestID(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	host := newFakeHost(t)
	pointAt(t, p, name, host)
	alice := p.Client()
	alice.Raw("GET", activation, nil)
	origin := alice.Enter(name)
	for _, c := range []struct{ sent, want string }{
		{"proxy-id-0001", "proxy-id-0001"},
		{"not an id", ""},
		{strings.Repeat("x", 129), ""},
	} {
		resp, raw := alice.Raw("GET", origin+"/workshop/content/01", nil, "X-Request-Id", c.sent)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("proxied request: %d %s", resp.StatusCode, raw)
		}
		answered := resp.Header.Get("X-Request-Id")
		seen := host.last().Header.Values("X-Request-Id")
		switch {
		case len(seen) != 1 || seen[0] != answered:
			t.Errorf("sent %q: the host saw %q, the portal answered %q", c.sent, seen, answered)
		case c.want != "" && answered != c.want:
			t.Errorf("sent %q: request ID %q, want it kept", c.sent, answered)
		case c.want == "" && (answered == c.sent || len(answered) != 20):
			t.Errorf("sent %q: request ID %q, want a new one of 20 characters", c.sent, answered)
		}
	}
}
