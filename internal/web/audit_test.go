package web_test

import (
	"errors"
	"html/template"
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

// Tests of the gaps an audit of the pages against issue 4 and the spec
// found, each shown failing before its fix.

// A page asked for with a method it does not take answers 405 with the
// methods it does take (spec §1.3: require_http_methods), not the 404 of
// the REST API's catch-all.
func TestPagesAnswerOddMethodsWith405(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	for path, allow := range map[string]string{
		"/":                                   "GET, HEAD",
		"/accounts/login/":                    "GET, HEAD, POST",
		"/accounts/login":                     "GET, HEAD, POST",
		"/accounts/create/":                   "GET, HEAD",
		"/workshops/catalog/":                 "GET, HEAD",
		"/workshops/environment/portal-w01/":  "GET, HEAD",
		"/workshops/session/portal-w01-s001/": "GET, HEAD",
		"/workshops/session/portal-w01-s001/delete/": "GET, HEAD, POST",
		"/admin/sessions/":                           "GET, HEAD",
		"/admin/sessions/portal-w01-s001/extend/":    "POST",
		"/admin/robot/":                              "GET, HEAD, POST",
	} {
		for _, method := range []string{"PUT", "DELETE", "PATCH", "OPTIONS"} {
			resp, raw := alice.Raw(method, path, strings.NewReader("x=1"), "Accept", "text/html")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
				t.Errorf("%s %s: %d, Allow %q, want 405 with Allow %q (%.100s)", method, path, resp.StatusCode, resp.Header.Get("Allow"), allow, raw)
			}
		}
	}
	// The REST API keeps its own answers.
	if resp, _ := alice.Raw("PUT", "/workshops/catalog/environments/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT on the REST catalog: %d", resp.StatusCode)
	}
	if resp, _ := alice.Raw("PUT", "/no/such/page/", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("PUT on no page: %d", resp.StatusCode)
	}
}

// The embedded static files are served one by one: no directory listing.
func TestNoListingOfStaticFiles(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	if resp, raw := p.Client().Raw("GET", "/static/", nil); resp.StatusCode != http.StatusNotFound || strings.Contains(string(raw), "portal.css") {
		t.Errorf("GET /static/: %d %.200s", resp.StatusCode, raw)
	}
	if resp, _ := p.Client().Raw("GET", "/static/portal.css", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the stylesheet: %d", resp.StatusCode)
	}
}

// The event access code kept only / and the catalog closed (spec §14.2
// #14): anyone could sign up, make an anonymous account or start a
// workshop by going to those pages directly, and so use the event's
// capacity without the code. Every page that gives a person an account or
// a session asks for the code first; staff, the login page, activation
// URLs and session pages do not.
func TestAccessCodeGatesAccountsAndSessions(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Password = "open-sesame" })
	gate := func(path string) string { return "/workshops/access/?redirect_url=" + url.QueryEscape(path) }

	c := p.Client()
	for _, path := range []string{"/accounts/register/", "/workshops/environment/portal-w01/?index_url=https%3A%2F%2Fhub.example%2F"} {
		status, loc, _ := get(t, c, path)
		wantRedirect(t, path+" without the code", status, loc, gate(path))
	}
	status, loc, _ := post(t, p, c, "/accounts/register/", url.Values{"username": {"mallory"},
		"email": {"m@example.com"}, "password1": {"correct horse"}, "password2": {"correct horse"}})
	wantRedirect(t, "sign-up without the code", status, loc, gate("/accounts/register/"))
	if status, _, _ := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {"mallory"}, "password": {"correct horse"}}); status != http.StatusUnauthorized {
		t.Errorf("mallory's account exists: login %d", status)
	}
	if status, _, body := get(t, c, "/accounts/login/"); status != 200 || !strings.Contains(body, `id="login"`) {
		t.Errorf("the login page: %d", status)
	}

	// Someone with an account, in a browser that was not given the code.
	alice := p.Client()
	get(t, alice, "/workshops/access/?password=open-sesame&redirect_url=%2F")
	bobs := p.Client()
	get(t, bobs, "/workshops/access/?password=open-sesame&redirect_url=%2F")
	status, loc, _ = post(t, p, bobs, "/accounts/register/", url.Values{"username": {"bob"},
		"email": {"bob@example.com"}, "password1": {"correct horse"}, "password2": {"correct horse"}})
	wantRedirect(t, "sign-up with the code", status, loc, "/workshops/catalog/")
	elsewhere := login(t, p, "bob", "correct horse")
	status, loc, _ = get(t, elsewhere, "/workshops/environment/portal-w01/")
	wantRedirect(t, "a start without the code", status, loc, gate("/workshops/environment/portal-w01/"))
	status, loc, _ = get(t, alice, "/workshops/environment/portal-w01/")
	wantRedirect(t, "a start with the code, not logged in", status, loc, "/accounts/login/?next=%2Fworkshops%2Fenvironment%2Fportal-w01%2F")

	// Staff need no code.
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	status, loc, _ = get(t, admin, "/workshops/environment/portal-w01/")
	if status != http.StatusFound || !strings.HasPrefix(loc, "/workshops/session/") {
		t.Errorf("staff start: %d to %q", status, loc)
	}

	// A robot's activation URL and the session page it leads to are not
	// gated: the front end that handed it out decided.
	name, activation := request(t, p, "carol", "https://hub.example/")
	carol := p.Client()
	status, loc, _ = get(t, carol, activation)
	wantRedirect(t, "activation without the code", status, loc, "/workshops/session/"+name+"/")
	if status, _, _ := get(t, carol, "/workshops/session/"+name+"/"); status != 200 {
		t.Errorf("session page without the code: %d", status)
	}

	// After the code, the page the visitor wanted.
	status, loc, _ = get(t, c, "/workshops/access/?password=open-sesame&redirect_url="+url.QueryEscape("/accounts/register/"))
	wantRedirect(t, "the code", status, loc, "/accounts/register/")
	if status, _, body := get(t, c, "/accounts/register/"); status != 200 || !strings.Contains(body, `id="register"`) {
		t.Errorf("sign-up with the code: %d", status)
	}
}

// In anonymous mode, the account made on the spot and the start link of
// a front end also wait for the code, and the start link goes on after it.
func TestAccessCodeGatesAnonymousAccounts(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) {
		p.Password, p.Registration.Type = "open-sesame", "anonymous"
	})
	c := p.Client()
	link := "/workshops/environment/portal-w01/create/?index_url=https%3A%2F%2Fhub.example%2F"
	for _, path := range []string{"/accounts/create/", link} {
		status, loc, _ := get(t, c, path)
		wantRedirect(t, path+" without the code", status, loc, "/workshops/access/?redirect_url="+url.QueryEscape(path))
	}
	status, loc, _ := get(t, c, "/workshops/access/?password=open-sesame&redirect_url="+url.QueryEscape(link))
	wantRedirect(t, "the code", status, loc, link)
	status, loc, _ = get(t, c, link)
	if status != http.StatusFound || !strings.HasPrefix(loc, "/workshops/session/") {
		t.Errorf("anonymous start after the code: %d to %q", status, loc)
	}
}

// Someone sent to a workshop by a link who has no account yet signs up
// from the login page: the sign-up leads on to the workshop, not to the
// catalog, where they would have to find it again.
func TestSignUpKeepsWhereTheLoginLeads(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	c := p.Client()
	start := "/workshops/environment/portal-w01/?index_url=" + url.QueryEscape("https://hub.example/")
	status, loc, _ := get(t, c, start)
	wantRedirect(t, "start without an account", status, loc, "/accounts/login/?next="+url.QueryEscape(start))
	_, _, body := get(t, c, loc)
	signUpLink := `href="/accounts/register/?next=` + template.HTMLEscapeString(url.QueryEscape(start)) + `"`
	if !strings.Contains(body, signUpLink) {
		t.Fatalf("the login page does not link to the sign-up with next: want %s in\n%s", signUpLink, body)
	}
	_, _, body = get(t, c, "/accounts/register/?next="+url.QueryEscape(start))
	if field := `name="next" value="` + template.HTMLEscapeString(start) + `"`; !strings.Contains(body, field) {
		t.Fatalf("the sign-up form does not carry next: want %s in\n%s", field, body)
	}
	form := url.Values{"username": {"dora"}, "email": {"dora@example.com"}, "password1": {"correct horse"},
		"password2": {"correct horse"}, "next": {start}}
	status, loc, _ = post(t, p, c, "/accounts/register/", form)
	wantRedirect(t, "sign-up with next", status, loc, start)

	// A sign-up with errors keeps next; a foreign next leads to the catalog.
	form.Set("username", "dora")
	form.Del("csrf_token") // of another browser
	if _, _, body := post(t, p, p.Client(), "/accounts/register/", form); !strings.Contains(body, `name="next" value="`+template.HTMLEscapeString(start)+`"`) {
		t.Errorf("the sign-up form with errors lost next")
	}
	form.Set("username", "eve")
	form.Set("next", "//evil.example/")
	form.Del("csrf_token")
	status, loc, _ = post(t, p, p.Client(), "/accounts/register/", form)
	wantRedirect(t, "sign-up with a foreign next", status, loc, "/workshops/catalog/")
}

// The catalog's availability said "Available" when the portal maximum was
// reached (Educates ignored it, spec §7.1) and when the person could have
// no further session: the start then only led back with
// session-unavailable. The card says so before the click.
func TestCatalogAvailabilityCountsEveryLimit(t *testing.T) {
	state := func(t *testing.T, c *portaltest.Client, env string) string {
		t.Helper()
		_, _, body := get(t, c, "/workshops/catalog/")
		_, card, ok := strings.Cut(body, `data-environment="`+env+`"`)
		_, rest, ok2 := strings.Cut(card, `data-state="`)
		value, _, ok3 := strings.Cut(rest, `"`)
		if !ok || !ok2 || !ok3 {
			t.Fatalf("no card of %s with a data-state in\n%s", env, body)
		}
		return value
	}

	t.Run("portal maximum", func(t *testing.T) {
		p := startWith(t, config.Entry{Capacity: 3, Reserved: 0, Initial: 0}, func(p *config.Portal) { p.Sessions.Maximum = 1 })
		alice, bob := signUp(t, p, "alice"), signUp(t, p, "bob")
		if got := state(t, bob, "portal-w01"); got != "available" {
			t.Fatalf("before any session: %s", got)
		}
		get(t, alice, "/workshops/environment/portal-w01/")
		if got := state(t, bob, "portal-w01"); got != "full" {
			t.Errorf("with the portal maximum of sessions in use: %s, want full", got)
		}
		status, loc, _ := get(t, bob, "/workshops/environment/portal-w01/")
		wantRedirect(t, "a start at the portal maximum", status, loc, "/workshops/catalog/?notification=session-unavailable")
		if got := state(t, alice, "portal-w01"); got != "session" {
			t.Errorf("alice's card: %s", got)
		}
	})

	t.Run("sessions per person", func(t *testing.T) {
		p := startWith(t, config.Entry{Capacity: 3, Reserved: 0, Initial: 0}, func(p *config.Portal) {
			second := p.Entries[0]
			second.Alias, second.Position = "lab-again", 2
			p.Entries = append(p.Entries, second)
			p.Sessions.Registered = 1
		})
		alice := signUp(t, p, "alice")
		get(t, alice, "/workshops/environment/portal-w01/")
		if got := state(t, alice, "portal-w02"); got != "limit" {
			t.Errorf("alice, at her limit of one session, sees the other workshop %s, want limit", got)
		}
		status, loc, _ := get(t, alice, "/workshops/environment/portal-w02/")
		wantRedirect(t, "a start past the limit", status, loc, "/workshops/catalog/?notification=session-unavailable")
		if _, _, body := get(t, alice, "/workshops/catalog/"); !strings.Contains(body, "one session at a time") {
			t.Errorf("the card does not say why: %s", body)
		}
		// Staff have no limit.
		admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
		get(t, admin, "/workshops/environment/portal-w01/")
		if got := state(t, admin, "portal-w02"); got != "available" {
			t.Errorf("staff with a session see %s", got)
		}
	})
}

// In anonymous mode nobody has a password: a start link of the catalog
// (/workshops/environment/<name>/) opened by a visitor without an account
// (a link passed on, a login that lapsed) led to a login form they could
// not use. It goes through the anonymous start link instead, index_url
// and all.
func TestAnonymousModeStartsWithoutALogin(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	c := p.Client()
	status, loc, _ := get(t, c, "/workshops/environment/portal-w01/?index_url="+url.QueryEscape("https://hub.example/"))
	wantRedirect(t, "a start without an account", status, loc, "/workshops/environment/portal-w01/create/?index_url=https%3A%2F%2Fhub.example%2F")
	status, loc, _ = get(t, c, loc)
	name, ok := strings.CutPrefix(loc, "/workshops/session/")
	if status != http.StatusFound || !ok {
		t.Fatalf("the anonymous start link: %d to %q, want the session", status, loc)
	}
	name = strings.TrimSuffix(name, "/")
	if s := p.Session(name); !strings.HasPrefix(s.OwnerName, "anon@educates:") || s.IndexURL != "https://hub.example/" {
		t.Errorf("session %+v", s)
	}
	status, loc, _ = get(t, p.Client(), "/workshops/environment/portal-w01/")
	wantRedirect(t, "without index_url", status, loc, "/workshops/environment/portal-w01/create/?index_url=")

	// Not in anonymous mode: the login, as before.
	private := startWith(t, config.Entry{}, nil)
	status, loc, _ = get(t, private.Client(), "/workshops/environment/portal-w01/")
	wantRedirect(t, "a start without a login", status, loc, "/accounts/login/?next=%2Fworkshops%2Fenvironment%2Fportal-w01%2F")
}

// A session whose host never starts is given up after a few tries (unlike
// Educates, where it stayed STARTING). Its page then sent the person to
// the catalog with session-deleted, "Your workshop session has ended",
// about a session they never had: it says the session did not start.
func TestSessionThatNeverStartedIsNotSaidToHaveEnded(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 2, Reserved: 0, Initial: 0}, nil)
	p.Runtime.(*runtimetest.Runtime).FailStart("portal-w01-s001", errors.New("image pull failed"))
	alice := signUp(t, p, "alice")
	name := start(t, alice, "?index_url="+url.QueryEscape("https://hub.example/"))
	for range 10 {
		if p.Session(name).State == store.Stopped {
			break
		}
		p.Clock.Advance(10 * time.Second)
		p.Settle()
	}
	if s := p.Session(name); s.State != store.Stopped {
		t.Fatalf("the session that cannot start is %s", s.State)
	}
	for _, path := range []string{"/workshops/session/" + name + "/", "/workshops/session/" + name + "/delete/"} {
		status, loc, _ := get(t, alice, path)
		wantRedirect(t, path, status, loc, "https://hub.example/?notification=startup-timeout")
	}

	// A session that ran and ended is still session-deleted.
	bob := signUp(t, p, "bob")
	ran := start(t, bob, "")
	p.Settle()
	get(t, bob, "/workshops/session/"+ran+"/delete/")
	p.Settle()
	status, loc, _ := get(t, bob, "/workshops/session/"+ran+"/")
	wantRedirect(t, "a session that ran", status, loc, "/workshops/catalog/?notification=session-deleted")
}

// Every form of the administration refuses a request without the CSRF
// token of the staff member's browser, and nothing changes.
func TestCSRFOnEveryFormOfStaff(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Robot.Password, p.RobotClient.Secret = "", "" })
	alice := signUp(t, p, "alice")
	name := start(t, alice, "")
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	before := p.Session(name)
	for _, path := range []string{"/admin/sessions/" + name + "/extend/", "/admin/sessions/" + name + "/expire/",
		"/admin/sessions/" + name + "/terminate/", "/admin/environments/portal-w01/refresh/", "/admin/robot/",
		"/accounts/logout/"} {
		for what, form := range map[string]string{"no token": "minutes=10", "a wrong token": "minutes=10&csrf_token=" + strings.Repeat("x", 43)} {
			resp, raw := admin.Raw("POST", path, strings.NewReader(form), "Content-Type", "application/x-www-form-urlencoded")
			if reason := errorReason(t, resp, raw, http.StatusForbidden); !strings.Contains(reason, "CSRF") {
				t.Errorf("POST %s with %s: %q", path, what, reason)
			}
		}
	}
	if after := p.Session(name); after.State != before.State || !after.Expires.Equal(before.Expires) {
		t.Errorf("the session changed: %s until %v, was %s until %v", after.State, after.Expires, before.State, before.Expires)
	}
	if envs := p.Environments(); len(envs) != 1 || envs[0].State != store.EnvRunning {
		t.Errorf("environments after refused refreshes: %+v", envs)
	}
	if status, _, _ := get(t, admin, "/admin/"); status != http.StatusOK {
		t.Errorf("the admin was logged out: %d", status)
	}
}

// Anonymous accounts have names like anon@educates:<uuid>: the top bar
// says Guest, which reads at a glance.
func TestAnonymousAccountsAreGuests(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	c := p.Client()
	get(t, c, "/accounts/create/")
	_, _, body := get(t, c, "/workshops/catalog/")
	if !strings.Contains(body, `<span class="who" title="Logged in as a guest">Guest</span>`) {
		t.Errorf("the top bar of an anonymous account: %s", body)
	}
	// A user a front end named keeps the name.
	_, activation := request(t, p, "frank", "https://hub.example/")
	frank := p.Client()
	get(t, frank, activation)
	if _, _, body := get(t, frank, "/workshops/catalog/"); !strings.Contains(body, `<span class="who" title="Logged in as frank">frank</span>`) {
		t.Errorf("the top bar of frank: %s", body)
	}
}

// An organiser's refresh replaces an environment while people use it:
// their sessions go on in the old one, which leaves the catalog. Their
// card then said Available and Start workshop, which made them a second
// session and hid the one they had; it says they have a session and
// leads back to it.
func TestCatalogKeepsASessionAcrossARefresh(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	name := start(t, alice, "")
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	status, loc, _ := post(t, p, admin, "/admin/environments/portal-w01/refresh/", url.Values{})
	wantRedirect(t, "refresh", status, loc, "/admin/environments/")
	p.Settle()
	if s := p.Session(name); s.State != store.Running {
		t.Fatalf("alice's session after the refresh: %s", s.State)
	}
	_, _, body := get(t, alice, "/workshops/catalog/")
	if strings.Count(body, `<article class="workshop"`) != 1 || !strings.Contains(body, `data-state="session"`) ||
		!strings.Contains(body, `href="/workshops/session/`+name+`/"`) {
		t.Errorf("alice's catalog after the refresh:\n%s", body)
	}
}
