package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/store"
)

// Tests of the defects a security review of the pages found.

// http.Redirect cleans "/./\evil" into "/\evil", which browsers read as
// "//evil": a backslash anywhere makes next= foreign.
func TestNoOpenRedirectThroughBackslash(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Password = "code" })
	alice := signUp(t, p, "alice")
	get(t, alice, "/workshops/access/?password=code&redirect_url=%2F")
	for _, next := range []string{"/./%5Cevil.example", "/../%5Cevil.example", "/%5C%5Cevil.example", "/x%5C..%5C..%5C%5Cevil.example"} {
		status, loc, _ := get(t, alice, "/?next="+next)
		wantRedirect(t, "index next="+next, status, loc, "/workshops/catalog/")
	}
	status, loc, _ := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {"alice"},
		"password": {"correct horse"}, "next": {`/./\evil.example`}})
	wantRedirect(t, "login next", status, loc, "/")
	c := p.Client()
	status, loc, _ = get(t, c, `/workshops/access/?password=code&redirect_url=/./%5Cevil.example`)
	wantRedirect(t, "access redirect_url", status, loc, "/")
}

// The access code in the query is rate limited as the form is.
func TestAccessCodeGuessesInTheQueryLimited(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Password = "code" })
	c := p.Client()
	for i := range 30 {
		if status, _, _ := get(t, c, "/workshops/access/?password=guess&redirect_url=%2F"); status == http.StatusTooManyRequests {
			return
		} else if i == 29 {
			t.Fatalf("30 guesses of the access code in the query: last %d, never 429", status)
		}
	}
}

// Behind an ingress every browser has the same address: the limit must not
// be spent by people who log in, nor by one person's typos for everyone.
func TestLoginLimitCountsFailuresPerUsername(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	for i := range 20 {
		if status, _, body := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {portaltest.AdminUser},
			"password": {portaltest.AdminPassword}}); status != http.StatusFound {
			t.Fatalf("successful login %d: %d %s", i+1, status, body)
		}
	}
	limited := false
	for range 20 {
		status, _, _ := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {"mallory"}, "password": {"guess"}})
		if status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("20 wrong passwords for one username were all checked")
	}
	if status, _, _ := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {portaltest.AdminUser},
		"password": {portaltest.AdminPassword}}); status != http.StatusFound {
		t.Errorf("another user's login after mallory's guesses: %d", status)
	}
}

// bcrypt takes at most 72 bytes: a longer password is refused with a
// reason, not a 500.
func TestLongPasswordRefused(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	long := strings.Repeat("correct horse ", 6)
	status, _, body := post(t, p, p.Client(), "/accounts/register/", url.Values{"username": {"longpw"},
		"email": {"l@example.com"}, "password1": {long}, "password2": {long}})
	if status != http.StatusBadRequest || !strings.Contains(body, "too long") {
		t.Errorf("%d-byte password: %d", len(long), status)
	}
}

// With a public catalog, a logged-out visitor of a session page went
// from the page to /?next= and straight back, for ever.
func TestNoRedirectLoopWithPublicCatalog(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.CatalogVisibility = "public" })
	c := p.Client()
	status, loc, _ := get(t, c, "/workshops/session/portal-w01-s001/")
	wantRedirect(t, "session page", status, loc, "/?next=%2Fworkshops%2Fsession%2Fportal-w01-s001%2F")
	status, loc, _ = get(t, c, loc)
	wantRedirect(t, "index with next", status, loc, "/accounts/login/?next=%2Fworkshops%2Fsession%2Fportal-w01-s001%2F")
}

// Only a request from the portal's own pages, or one without Fetch
// metadata (an API client), ends a session through the delete link.
func TestDeleteLinkFromASiblingSiteAsks(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	_, loc, _ := get(t, alice, "/workshops/environment/portal-w01/")
	name := strings.TrimSuffix(strings.TrimPrefix(loc, "/workshops/session/"), "/")
	for _, site := range []string{"same-site", "cross-site"} {
		if status, _, body := get(t, alice, "/workshops/session/"+name+"/delete/", "Sec-Fetch-Site", site); status != 200 || !strings.Contains(body, "End your session?") {
			t.Errorf("%s delete link: %d", site, status)
		}
	}
	if s := p.Session(name); s.State != store.Running && s.State != store.Waiting {
		t.Fatalf("a link from another site ended the session: %s", s.State)
	}
	status, loc, _ := get(t, alice, "/workshops/session/"+name+"/delete/", "Sec-Fetch-Site", "same-origin")
	wantRedirect(t, "delete from the dashboard", status, loc, "/workshops/catalog/?notification=session-deleted")
}

// The proxy forwards what a person's browser does with a session: reads,
// websockets, and the writes of the dashboard's own scripts (from the
// session's origin, with the header only a same-origin page sends). The
// host's internal allocation endpoint is the portal's alone.
func TestProxyForwardsReadsAndTheDashboardsWrites(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	host := newFakeHost(t)
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
	alice := p.Client()
	alice.Raw("GET", activation, nil)
	origin := alice.Enter(name)
	count := func() int {
		host.mu.Lock()
		defer host.mu.Unlock()
		return len(host.seen)
	}
	seen := count()
	other := strings.Replace(origin, name, "other-s001", 1)
	for _, tc := range []struct {
		method, path string
		headers      []string
		status       int
	}{
		{"POST", origin + "/.portico/allocate", []string{"X-Portico-Browser", "1", "Origin", origin}, http.StatusNotFound},
		{"POST", origin + "/.portico/allocate", nil, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", nil, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"Origin", origin}, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1"}, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1", "Origin", "https://evil.test"}, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1", "Origin", other}, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1", "Origin", p.Server.URL}, http.StatusForbidden},
		{"PUT", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1", "Origin", origin, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"PATCH", origin + "/workshop/content/x", []string{"X-Portico-Browser", "1", "Origin", origin}, http.StatusMethodNotAllowed},
		{"POST", origin + "/config/environment?token=abc", []string{"X-Portico-Browser", "1", "Origin", origin}, http.StatusMethodNotAllowed},
		{"GET", origin + "/.portico/allocate", nil, http.StatusNotFound},
	} {
		resp, raw := alice.Raw(tc.method, tc.path, strings.NewReader(`{"user":{"username":"mallory"}}`), tc.headers...)
		errorReason(t, resp, raw, tc.status)
	}
	// Nobody else writes, even with every header right.
	if resp, raw := p.Client().Raw("PUT", origin+"/workshop/content/x", strings.NewReader("x"), "X-Portico-Browser", "1", "Origin", origin); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a write without the visit cookie: %d %s", resp.StatusCode, raw)
	}
	if n := count(); n != seen {
		t.Errorf("the host got %d of those requests", n-seen)
	}
	// The dashboard's own write goes through, marked as such for the host.
	resp, raw := alice.Raw("PUT", origin+"/editor/files/a.txt", strings.NewReader("saved"),
		"X-Portico-Browser", "1", "Origin", origin, "Sec-Fetch-Site", "same-origin")
	if got := host.last(); resp.StatusCode != 200 || got.Method != "PUT" || got.Header.Get("X-Portico-Browser") != "1" || got.Header.Get("X-Portico-Secret") == "" {
		t.Errorf("the dashboard's write: %d %s, host got %+v", resp.StatusCode, raw, got)
	}
	if resp, _ := alice.Raw("GET", origin+"/workshop/content/x", nil); resp.StatusCode != 200 {
		t.Errorf("a read through the proxy: %d", resp.StatusCode)
	}
}

// Behind an ingress a whole room signs up from one address: the limit on
// sign-ups must let an event's worth through at once.
func TestSignUpsOfARoomFromOneAddress(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	for i := range 40 {
		c := p.Client()
		name := "attendee" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
		status, _, body := post(t, p, c, "/accounts/register/", url.Values{"username": {name},
			"email": {name + "@example.com"}, "password1": {"correct horse"}, "password2": {"correct horse"}})
		if status != http.StatusFound {
			t.Fatalf("sign-up %d from the same address: %d %.300s", i+1, status, body)
		}
	}
}
