package web_test

import (
	"context"
	"errors"
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

// Handler tests of the portal's pages: every redirect and notification
// rule of spec §3.3–§3.5, §6.10 and §7.5–§7.8, CSRF, and staff-only pages.

func startWith(t testing.TB, entry config.Entry, adjust func(*config.Portal)) *portaltest.Portal {
	t.Helper()
	if entry.Capacity == 0 {
		entry.Capacity, entry.Reserved, entry.Initial = 3, 1, 1
	}
	if entry.Expires == 0 {
		entry.Expires = time.Hour
	}
	defs := portaltest.Definitions(entry)
	// The front end of these tests, whose start links return people to
	// it.
	defs.Portal.IndexOrigins = []string{"https://hub.example"}
	if adjust != nil {
		adjust(&defs.Portal)
	}
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
	p.Settle()
	return p
}

// get fetches path and returns the status, the Location and the body.
func get(t testing.TB, c *portaltest.Client, path string, headers ...string) (int, string, string) {
	t.Helper()
	resp, raw := c.Raw("GET", path, nil, append([]string{"Accept", "text/html"}, headers...)...)
	return resp.StatusCode, resp.Header.Get("Location"), string(raw)
}

// csrf returns the browser's CSRF token, giving it one first.
func csrf(t testing.TB, p *portaltest.Portal, c *portaltest.Client) string {
	t.Helper()
	get(t, c, "/accounts/login/")
	u, _ := url.Parse(p.Server.URL)
	for _, k := range c.HTTP.Jar.Cookies(u) {
		if k.Name == "portico_csrf" {
			return k.Value
		}
	}
	t.Fatal("no CSRF cookie")
	return ""
}

// post submits a form with the browser's CSRF token.
func post(t testing.TB, p *portaltest.Portal, c *portaltest.Client, path string, form url.Values, headers ...string) (int, string, string) {
	t.Helper()
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", csrf(t, p, c))
	}
	resp, raw := c.Raw("POST", path, strings.NewReader(form.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded", "Accept", "text/html"}, headers...)...)
	return resp.StatusCode, resp.Header.Get("Location"), string(raw)
}

func login(t *testing.T, p *portaltest.Portal, username, password string) *portaltest.Client {
	t.Helper()
	c := p.Client()
	if status, loc, body := post(t, p, c, "/accounts/login/", url.Values{"username": {username}, "password": {password}}); status != 302 {
		t.Fatalf("login %s: %d %s %s", username, status, loc, body)
	}
	return c
}

// signUp registers username in a new browser, which gives the event's
// access code first when the portal has one.
func signUp(t testing.TB, p *portaltest.Portal, username string) *portaltest.Client {
	t.Helper()
	c := p.Client()
	if code := p.Broker.Portal().Password; code != "" {
		get(t, c, "/workshops/access/?redirect_url=%2F&password="+url.QueryEscape(code))
	}
	status, loc, body := post(t, p, c, "/accounts/register/", url.Values{"username": {username},
		"email": {username + "@example.com"}, "password1": {"correct horse"}, "password2": {"correct horse"}})
	if status != 302 || loc != "/workshops/catalog/" {
		t.Fatalf("sign up %s: %d %s %s", username, status, loc, body)
	}
	return c
}

func wantRedirect(t *testing.T, what string, status int, loc, want string) {
	t.Helper()
	if status != http.StatusFound && status != http.StatusSeeOther || loc != want {
		t.Errorf("%s: %d to %q, want a redirect to %q", what, status, loc, want)
	}
}

func TestIndexRouting(t *testing.T) {
	private := startWith(t, config.Entry{}, nil)
	status, loc, _ := get(t, private.Client(), "/")
	wantRedirect(t, "private, anonymous visitor", status, loc, "/accounts/login/")
	status, loc, _ = get(t, private.Client(), "/?next=/workshops/session/x/")
	wantRedirect(t, "next kept for the login", status, loc, "/accounts/login/?next=%2Fworkshops%2Fsession%2Fx%2F")
	status, loc, _ = get(t, private.Client(), "/?next=//evil.example/")
	wantRedirect(t, "foreign next dropped", status, loc, "/accounts/login/")
	alice := signUp(t, private, "alice")
	status, loc, _ = get(t, alice, "/")
	wantRedirect(t, "logged in", status, loc, "/workshops/catalog/")
	status, loc, _ = get(t, alice, "/?next=https://evil.example/")
	wantRedirect(t, "logged in, foreign next", status, loc, "/workshops/catalog/")

	public := startWith(t, config.Entry{}, func(p *config.Portal) { p.CatalogVisibility = "public" })
	status, loc, _ = get(t, public.Client(), "/")
	wantRedirect(t, "public", status, loc, "/workshops/catalog/")

	anon := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	c := anon.Client()
	status, loc, _ = get(t, c, "/")
	wantRedirect(t, "anonymous mode", status, loc, "/accounts/create/")
	status, loc, _ = get(t, c, "/accounts/create/")
	wantRedirect(t, "account created", status, loc, "/workshops/catalog/")
	if status, _, body := get(t, c, "/workshops/catalog/"); status != 200 || !strings.Contains(body, `id="logout"`) {
		t.Errorf("catalog after an anonymous account: %d", status)
	}
	status, loc, _ = get(t, c, "/accounts/create/")
	wantRedirect(t, "second create while logged in", status, loc, "/workshops/catalog/")
	status, loc, _ = get(t, private.Client(), "/accounts/create/")
	wantRedirect(t, "create outside anonymous mode", status, loc, "/accounts/login/")
}

func TestAccessCode(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Password = "open-sesame" })
	c := p.Client()
	status, loc, _ := get(t, c, "/")
	wantRedirect(t, "index without the code", status, loc, "/workshops/access/?redirect_url=%2F")
	status, loc, _ = get(t, c, "/workshops/catalog/")
	wantRedirect(t, "catalog without the code", status, loc, "/workshops/access/?redirect_url=%2Fworkshops%2Fcatalog%2F")
	resp, raw := c.Raw("GET", "/workshops/access/", nil)
	if reason := errorReason(t, resp, raw, 400); reason != "Need redirect URL for access check" {
		t.Errorf("no redirect_url: %q", reason)
	}
	if status, _, body := get(t, c, "/workshops/access/?redirect_url=%2F"); status != 200 || !strings.Contains(body, `id="access"`) {
		t.Errorf("access form: %d", status)
	}
	status, _, body := post(t, p, c, "/workshops/access/", url.Values{"password": {"wrong"}, "redirect_url": {"/"}})
	if status != 200 || !strings.Contains(body, "not the access code") {
		t.Errorf("wrong code: %d", status)
	}
	status, loc, _ = get(t, c, "/")
	wantRedirect(t, "still gated after a wrong code", status, loc, "/workshops/access/?redirect_url=%2F")
	status, loc, _ = post(t, p, c, "/workshops/access/", url.Values{"password": {"open-sesame"}, "redirect_url": {"https://evil.example/"}})
	wantRedirect(t, "right code, foreign redirect", status, loc, "/")
	status, loc, _ = get(t, c, "/")
	wantRedirect(t, "index with the code", status, loc, "/accounts/login/")

	cli := p.Client() // the educates CLI passes the code in the query
	status, loc, _ = get(t, cli, "/workshops/access/?password=open-sesame&redirect_url=%2Fworkshops%2Fcatalog%2F")
	wantRedirect(t, "code in the query", status, loc, "/workshops/catalog/")
	status, loc, _ = get(t, cli, "/workshops/catalog/")
	wantRedirect(t, "catalog with the code, not logged in", status, loc, "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F")
}

func TestLoginLogout(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	c := p.Client()
	status, _, body := post(t, p, c, "/accounts/login/", url.Values{"username": {portaltest.AdminUser}, "password": {"wrong"}})
	if status != 401 || !strings.Contains(body, "do not match") {
		t.Errorf("wrong password: %d", status)
	}
	status, loc, _ := post(t, p, c, "/accounts/login/", url.Values{"username": {portaltest.AdminUser},
		"password": {portaltest.AdminPassword}, "next": {"//evil.example/"}})
	wantRedirect(t, "login with a foreign next", status, loc, "/")
	c = p.Client()
	status, loc, _ = post(t, p, c, "/accounts/login/", url.Values{"username": {portaltest.AdminUser},
		"password": {portaltest.AdminPassword}, "next": {"/admin/sessions/"}})
	wantRedirect(t, "login with next", status, loc, "/admin/sessions/")
	if status, _, _ := get(t, c, "/admin/"); status != 200 {
		t.Errorf("admin after login: %d", status)
	}
	if status, _, body := get(t, c, "/accounts/logout/"); status != 200 || !strings.Contains(body, `method="post"`) {
		t.Errorf("GET logout must ask, not log out: %d", status)
	}
	status, loc, _ = post(t, p, c, "/accounts/logout/", url.Values{})
	wantRedirect(t, "logout", status, loc, "/")
	status, loc, _ = get(t, c, "/admin/")
	wantRedirect(t, "admin after logout", status, loc, "/accounts/login/?next=%2Fadmin%2F")
}

func TestLoginRateLimited(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	c := p.Client()
	limited := false
	for range 15 {
		status, _, _ := post(t, p, c, "/accounts/login/", url.Values{"username": {"x"}, "password": {"y"}})
		if status == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("15 wrong passwords in a row were all checked")
	}
	p.Clock.Advance(time.Minute)
	if status, _, _ := post(t, p, c, "/accounts/login/", url.Values{"username": {"x"}, "password": {"y"}}); status != 401 {
		t.Errorf("after a minute: %d, want 401", status)
	}
}

func TestRegistration(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	if status, _, body := get(t, p.Client(), "/accounts/login/"); status != 200 || !strings.Contains(body, `href="/accounts/register/"`) {
		t.Errorf("login page does not link to registration")
	}
	c := p.Client()
	status, _, body := post(t, p, c, "/accounts/register/", url.Values{"username": {"bob"}, "email": {"bob@example.com"},
		"password1": {"12345678"}, "password2": {"12345678"}})
	if status != 400 || !strings.Contains(body, `class="field-error"`) || !strings.Contains(body, "entirely numeric") ||
		!strings.Contains(body, `value="bob"`) {
		t.Errorf("numeric password: %d %s", status, body)
	}
	signUp(t, p, "bob")
	status, _, body = post(t, p, p.Client(), "/accounts/register/", url.Values{"username": {"bob"}, "email": {"b@example.com"},
		"password1": {"correct horse"}, "password2": {"correct horse"}})
	if status != 400 || !strings.Contains(body, "already exists") {
		t.Errorf("duplicate: %d", status)
	}

	closed := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Enabled = false })
	status, loc, _ := get(t, closed.Client(), "/accounts/register/")
	wantRedirect(t, "registration closed", status, loc, "/accounts/register/closed/")
	status, loc, _ = post(t, closed, closed.Client(), "/accounts/register/", url.Values{"username": {"eve"}})
	wantRedirect(t, "POST while closed", status, loc, "/accounts/register/closed/")
	if status, _, _ := get(t, closed.Client(), "/accounts/register/closed/"); status != 200 {
		t.Errorf("closed page: %d", status)
	}
}

func TestCSRF(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	c := p.Client()
	token := csrf(t, p, c)
	// Another token: one character changed (a fixed "x" would be no
	// change for one token in 64).
	wrong := "x" + token[1:]
	if token[0] == 'x' {
		wrong = "y" + token[1:]
	}
	form := func(token string) url.Values {
		return url.Values{"username": {portaltest.AdminUser}, "password": {portaltest.AdminPassword}, "csrf_token": {token}}
	}
	for name, tc := range map[string]struct {
		client  *portaltest.Client
		form    url.Values
		headers []string
	}{
		"no token":         {c, url.Values{"username": {portaltest.AdminUser}, "password": {portaltest.AdminPassword}}, nil},
		"wrong token":      {c, form(wrong), nil},
		"no cookie":        {p.Client(), form(token), nil},
		"cross-site fetch": {c, form(token), []string{"Sec-Fetch-Site", "cross-site"}},
		"foreign origin":   {c, form(token), []string{"Origin", "https://evil.example"}},
	} {
		resp, raw := tc.client.Raw("POST", "/accounts/login/", strings.NewReader(tc.form.Encode()),
			append([]string{"Content-Type", "application/x-www-form-urlencoded"}, tc.headers...)...)
		if reason := errorReason(t, resp, raw, 403); reason == "" {
			t.Errorf("%s: no reason", name)
		}
		if cookies := resp.Cookies(); len(cookies) > 0 && cookies[0].Name == "portico_session" {
			t.Errorf("%s: logged in", name)
		}
	}
	// Every form of the portal is checked, not only the login.
	alice := signUp(t, p, "alice")
	for _, path := range []string{"/accounts/logout/", "/accounts/register/", "/workshops/access/",
		"/workshops/session/portal-w01-s001/delete/", "/admin/sessions/portal-w01-s001/terminate/",
		"/admin/environments/portal-w01/refresh/", "/admin/robot/"} {
		resp, raw := alice.Raw("POST", path, strings.NewReader("a=b"), "Content-Type", "application/x-www-form-urlencoded")
		errorReason(t, resp, raw, 403)
	}
	// And the cookies are what the issue asks for.
	resp, _ := p.Client().Raw("GET", "/accounts/login/", nil)
	for _, k := range resp.Cookies() {
		if !k.HttpOnly || k.SameSite != http.SameSiteLaxMode {
			t.Errorf("cookie %s: HttpOnly %v SameSite %v", k.Name, k.HttpOnly, k.SameSite)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") ||
		strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestFramedPortalCookies(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.FrameAncestors = []string{"https://hub.example"} })
	resp, _ := p.Client().Raw("GET", "/accounts/login/", nil)
	for _, k := range resp.Cookies() {
		if k.SameSite != http.SameSiteNoneMode || !k.Secure || !k.HttpOnly {
			t.Errorf("cookie %s of a framed portal: SameSite %v Secure %v", k.Name, k.SameSite, k.Secure)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self' https://hub.example") {
		t.Errorf("CSP %q", csp)
	}
}

func TestCatalogPage(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 1, Reserved: 1, Initial: 1}, nil)
	status, loc, _ := get(t, p.Client(), "/workshops/catalog/")
	wantRedirect(t, "private catalog", status, loc, "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F")

	alice := signUp(t, p, "alice")
	_, _, body := get(t, alice, "/workshops/catalog/")
	if !strings.Contains(body, `<article class="workshop" data-environment="portal-w01">`) ||
		!strings.Contains(body, `data-state="available"`) || !strings.Contains(body, `href="/workshops/environment/portal-w01/"`) {
		t.Errorf("catalog: %s", body)
	}
	for n := range map[string]bool{"session-deleted": true, "session-unavailable": true, "session-invalid": true,
		"workshop-invalid": true, "startup-timeout": true} {
		if _, _, body := get(t, alice, "/workshops/catalog/?notification="+n); !strings.Contains(body, `data-notification="`+n+`"`) {
			t.Errorf("no banner for %s", n)
		}
	}
	if _, _, body := get(t, alice, "/workshops/catalog/?notification=%3Cscript%3E"); strings.Contains(body, "data-notification") {
		t.Error("a banner for an unknown notification")
	}

	status, loc, _ = get(t, alice, "/workshops/environment/portal-w01/")
	if status != 302 || !strings.HasPrefix(loc, "/workshops/session/portal-w01-s") {
		t.Fatalf("start: %d to %q", status, loc)
	}
	session := strings.TrimSuffix(strings.TrimPrefix(loc, "/workshops/session/"), "/")
	_, _, body = get(t, alice, "/workshops/catalog/")
	if !strings.Contains(body, `data-state="session"`) || !strings.Contains(body, `href="/workshops/session/`+session+`/"`) {
		t.Errorf("catalog with a session: %s", body)
	}
	status, loc, _ = get(t, alice, "/workshops/environment/portal-w01/")
	wantRedirect(t, "start again: the same session", status, loc, "/workshops/session/"+session+"/")

	bob := signUp(t, p, "bob")
	if _, _, body := get(t, bob, "/workshops/catalog/"); !strings.Contains(body, `data-state="full"`) {
		t.Errorf("catalog at capacity: %s", body)
	}
	status, loc, _ = get(t, bob, "/workshops/environment/portal-w01/")
	wantRedirect(t, "at capacity", status, loc, "/workshops/catalog/?notification=session-unavailable")
	status, loc, _ = get(t, bob, "/workshops/environment/portal-w01/?index_url=https://hub.example/x?a=1")
	wantRedirect(t, "at capacity with an index URL", status, loc, "https://hub.example/x?a=1&notification=session-unavailable")
	status, loc, _ = get(t, bob, "/workshops/environment/nope/")
	wantRedirect(t, "unknown workshop", status, loc, "/workshops/catalog/?notification=workshop-invalid")
	status, loc, _ = get(t, p.Client(), "/workshops/environment/portal-w01/")
	wantRedirect(t, "start without login", status, loc, "/accounts/login/?next=%2Fworkshops%2Fenvironment%2Fportal-w01%2F")

	// portal.index sends non-staff elsewhere; staff still see the catalog.
	p.Broker.Portal().Index = "https://event.example/"
	status, loc, _ = get(t, bob, "/workshops/catalog/")
	wantRedirect(t, "portal index", status, loc, "https://event.example/")
	status, loc, _ = get(t, bob, "/workshops/environment/nope/")
	wantRedirect(t, "fallback is the portal index", status, loc, "https://event.example/?notification=workshop-invalid")
	if status, _, _ := get(t, login(t, p, portaltest.AdminUser, portaltest.AdminPassword), "/workshops/catalog/"); status != 200 {
		t.Errorf("staff with a portal index: %d", status)
	}
}

func TestCreateLink(t *testing.T) {
	private := startWith(t, config.Entry{}, nil)
	status, loc, _ := get(t, private.Client(), "/workshops/environment/portal-w01/create/?index_url=https://hub.example/")
	wantRedirect(t, "create outside anonymous mode", status, loc,
		"/accounts/login/?next="+url.QueryEscape("/workshops/environment/portal-w01/?index_url=https%3A%2F%2Fhub.example%2F"))
	alice := signUp(t, private, "alice")
	status, loc, _ = get(t, alice, "/workshops/environment/portal-w01/create/")
	wantRedirect(t, "create when logged in", status, loc, "/workshops/environment/portal-w01/?index_url=")

	anon := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	c := anon.Client()
	status, loc, _ = get(t, c, "/workshops/environment/portal-w01/create/?index_url=https://hub.example/")
	if status != 302 || !strings.HasPrefix(loc, "/workshops/session/") {
		t.Fatalf("anonymous start: %d to %q", status, loc)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(loc, "/workshops/session/"), "/")
	if s := anon.Session(name); !strings.HasPrefix(s.OwnerName, "anon@educates:") || s.IndexURL != "https://hub.example/" {
		t.Errorf("anonymous session %+v", s)
	}
	status, loc, _ = get(t, c, "/workshops/session/"+name+"/delete/")
	wantRedirect(t, "finish", status, loc, "https://hub.example/?notification=session-deleted")
	status, loc, _ = get(t, c, "/workshops/session/"+name+"/")
	wantRedirect(t, "ended session with an index URL", status, loc, "https://hub.example/?notification=session-deleted")
}

func TestSessionPageRules(t *testing.T) {
	p := startWith(t, config.Entry{Overdue: 5 * time.Minute}, nil)
	alice := signUp(t, p, "alice")
	_, loc, _ := get(t, alice, "/workshops/environment/portal-w01/")
	name := strings.TrimSuffix(strings.TrimPrefix(loc, "/workshops/session/"), "/")
	// Still starting: the page covers it.
	if err := p.Store.Update(t.Context(), func(tx store.Tx) error {
		s, err := tx.Session(name)
		if err != nil {
			return err
		}
		s.Address = ""
		return tx.UpdateSession(&s)
	}); err != nil {
		t.Fatal(err)
	}
	status, _, body := get(t, alice, "/workshops/session/"+name+"/")
	if status != 200 || !strings.Contains(body, `data-overdue="300"`) ||
		!strings.Contains(body, `data-restart="/workshops/session/`+name+`/delete/?notification=startup-timeout"`) {
		t.Errorf("session page: %d %s", status, body)
	}
	status, loc, _ = get(t, p.Client(), "/workshops/session/"+name+"/")
	wantRedirect(t, "not logged in", status, loc, "/?next="+url.QueryEscape("/workshops/session/"+name+"/"))
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	status, loc, _ = get(t, admin, "/workshops/session/"+name+"/")
	wantRedirect(t, "staff do not own it", status, loc, "/workshops/catalog/?notification=session-invalid")

	// A link from another site asks first.
	status, _, body = get(t, alice, "/workshops/session/"+name+"/delete/", "Sec-Fetch-Site", "cross-site")
	if status != 200 || !strings.Contains(body, "End your session?") {
		t.Errorf("cross-site delete: %d", status)
	}
	if s := p.Session(name); s.State == store.Stopping || s.State == store.Stopped {
		t.Fatal("a cross-site link ended the session")
	}
	status, loc, _ = post(t, p, alice, "/workshops/session/"+name+"/delete/", url.Values{"notification": {"startup-timeout"}})
	wantRedirect(t, "confirmed delete", status, loc, "/workshops/catalog/?notification=startup-timeout")
	if s := p.Session(name); s.State != store.Stopping && s.State != store.Stopped {
		t.Errorf("session %s after delete", s.State)
	}
	status, loc, _ = get(t, alice, "/workshops/session/"+name+"/")
	wantRedirect(t, "ended session", status, loc, "/workshops/catalog/?notification=session-deleted")
	status, loc, _ = get(t, alice, "/workshops/session/"+name+"/delete/")
	wantRedirect(t, "delete again", status, loc, "/workshops/catalog/?notification=session-deleted")
}

func TestAdminPages(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	_, loc, _ := get(t, alice, "/workshops/environment/portal-w01/")
	name := strings.TrimSuffix(strings.TrimPrefix(loc, "/workshops/session/"), "/")
	pages := []string{"/admin/", "/admin/environments/", "/admin/sessions/", "/admin/users/", "/admin/robot/", "/admin/webhooks/"}
	for _, path := range pages {
		status, loc, _ := get(t, p.Client(), path)
		wantRedirect(t, path+" not logged in", status, loc, "/accounts/login/?next="+url.QueryEscape(path))
		if status, _, _ := get(t, alice, path); status != 403 {
			t.Errorf("%s for an attendee: %d", path, status)
		}
	}
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	for _, path := range pages {
		if status, _, _ := get(t, admin, path); status != 200 {
			t.Errorf("%s for staff: %d", path, status)
		}
	}
	if _, _, body := get(t, admin, "/admin/sessions/?q=alice"); !strings.Contains(body, `data-session="`+name+`"`) {
		t.Errorf("filtered sessions lack alice's")
	}
	if _, _, body := get(t, admin, "/admin/sessions/?q=nobody"); strings.Contains(body, `data-session="`) {
		t.Errorf("filter nobody shows sessions")
	}
	if _, _, body := get(t, admin, "/admin/users/"); !strings.Contains(body, `data-user="alice"`) {
		t.Errorf("users lack alice")
	}

	before := p.Session(name).Expires
	status, loc, _ := post(t, p, admin, "/admin/sessions/"+name+"/extend/", url.Values{"minutes": {"30"}, "q": {"alice"}})
	wantRedirect(t, "extend", status, loc, "/admin/sessions/?q=alice")
	if got := p.Session(name).Expires.Sub(before); got != 30*time.Minute {
		t.Errorf("extended by %v", got)
	}
	if _, _, body := get(t, admin, "/admin/sessions/"); !strings.Contains(body, "extended by 30 minutes") {
		t.Error("no flash after extending")
	}
	if status, _, _ := post(t, p, admin, "/admin/sessions/"+name+"/extend/", url.Values{"minutes": {"7"}}); status != 400 {
		t.Errorf("extend by 7: %d", status)
	}
	if status, _, _ := post(t, p, admin, "/admin/sessions/"+name+"/explode/", url.Values{}); status != 404 {
		t.Errorf("unknown action: %d", status)
	}
	if status, _, _ := post(t, p, admin, "/admin/sessions/portal-w01-s999/terminate/", url.Values{}); status != 404 {
		t.Errorf("terminate unknown: %d", status)
	}
	status, loc, _ = post(t, p, admin, "/admin/sessions/"+name+"/terminate/", url.Values{})
	wantRedirect(t, "terminate", status, loc, "/admin/sessions/")
	if s := p.Session(name); s.State != store.Stopping && s.State != store.Stopped {
		t.Errorf("terminated session is %s", s.State)
	}
	status, loc, _ = post(t, p, admin, "/admin/environments/portal-w01/refresh/", url.Values{})
	wantRedirect(t, "refresh", status, loc, "/admin/environments/")
	if status, _, _ := post(t, p, alice, "/admin/environments/portal-w01/refresh/", url.Values{}); status != 403 {
		t.Errorf("refresh by an attendee: %d", status)
	}

	// The definitions set the robot's secrets: shown, not rotated.
	if _, _, body := get(t, admin, "/admin/robot/"); !strings.Contains(body, portaltest.ClientSecret) {
		t.Error("configured client secret not shown")
	}
	if status, _, _ := post(t, p, admin, "/admin/robot/", url.Values{}); status != 409 {
		t.Errorf("rotate configured credentials: %d", status)
	}
}

func TestRobotRotation(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) {
		p.Robot.Password, p.RobotClient.Secret = "", ""
	})
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	_, _, body := get(t, admin, "/admin/robot/")
	if strings.Contains(body, "Client secret") || !strings.Contains(body, "generated-credentials.env") {
		t.Errorf("robot page with generated credentials: %s", body)
	}
	status, _, body := post(t, p, admin, "/admin/robot/", url.Values{})
	if status != 200 || !strings.Contains(body, "Client secret") || !strings.Contains(body, "not shown again") {
		t.Errorf("rotate: %d %s", status, body)
	}
}

// No page answers 5xx, whatever the path, query, form or method, in a
// private portal and in an anonymous one behind an access code.
func TestMalformedInputNever5xx(t *testing.T) {
	t.Run("private", func(t *testing.T) { malformedInputNever5xx(t, nil) })
	t.Run("anonymous behind a code", func(t *testing.T) {
		malformedInputNever5xx(t, func(p *config.Portal) {
			p.Registration.Type, p.Password, p.Index, p.CatalogVisibility = "anonymous", "code", "https://event.example/", "public"
		})
	})
}

func malformedInputNever5xx(t *testing.T, adjust func(*config.Portal)) {
	p := startWith(t, config.Entry{}, adjust)
	alice := p.Client()
	if p.Broker.Portal().Registration.Type == "anonymous" {
		get(t, alice, "/workshops/access/?redirect_url=%2F&password=code")
		get(t, alice, "/accounts/create/")
	} else {
		alice = signUp(t, p, "alice")
	}
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	token := csrf(t, p, admin)
	paths := []string{"/", "/accounts/login/", "/accounts/register/", "/accounts/create/", "/workshops/access/",
		"/workshops/catalog/", "/workshops/environment/portal-w01/", "/workshops/environment/portal-w01/create/",
		"/workshops/environment/%ff%fe/", "/workshops/session/portal-w01-s001/", "/workshops/session/%00/",
		"/workshops/session/portal-w01-s001/delete/", "/workshops/session/x/activate/",
		"/admin/", "/admin/sessions/", "/admin/users/", "/admin/environments/", "/admin/robot/", "/admin/webhooks/",
		"/admin/sessions/portal-w01-s001/extend/", "/admin/environments/%2e%2e/refresh/"}
	queries := []string{"", "?%zz", "?next=%00%ff", "?next=" + strings.Repeat("a", 8000), "?q=%E2%28%A1",
		"?notification=%ff&index_url=%zz", "?redirect_url=javascript:alert(1)&password=%ff", "?index_url=http://[::1"}
	bodies := []string{"", "%zz=1", "csrf_token=" + token + "&minutes=%ff&q=%00", "csrf_token=" + token + "&username=" + strings.Repeat("x", 20000),
		"csrf_token=" + token + "&password1=\xff\xfe&password2=\xff&email=%00@x"}
	for _, c := range []*portaltest.Client{p.Client(), alice, admin} {
		for _, path := range paths {
			for _, q := range queries {
				resp, raw := c.Raw("GET", path+q, nil, "Accept", "text/html")
				if resp.StatusCode >= 500 {
					t.Errorf("GET %s%s: %d %.200s", path, q, resp.StatusCode, raw)
				}
			}
			for _, b := range bodies {
				for _, method := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
					resp, raw := c.Raw(method, path, strings.NewReader(b), "Content-Type", "application/x-www-form-urlencoded")
					if resp.StatusCode >= 500 {
						t.Errorf("%s %s %q: %d %.200s", method, path, b, resp.StatusCode, raw)
					}
				}
			}
		}
	}
}

func TestTitleAndTheme(t *testing.T) {
	plain := startWith(t, config.Entry{}, nil)
	if _, _, body := get(t, plain.Client(), "/accounts/login/"); strings.Contains(body, "training-portal.css") {
		t.Error("a theme link without a theme")
	}
	p := startWith(t, config.Entry{}, func(p *config.Portal) {
		p.Title, p.ThemeCSS = "KubeCon Labs", ":root { --accent: rebeccapurple; }"
	})
	_, _, body := get(t, p.Client(), "/accounts/login/")
	if !strings.Contains(body, "<title>Log in · KubeCon Labs</title>") || !strings.Contains(body, `<a class="brand" href="/">KubeCon Labs</a>`) ||
		!strings.Contains(body, `href="/static/workshops/theme/training-portal.css"`) {
		t.Errorf("page of a themed portal: %s", body)
	}
	resp, raw := p.Client().Raw("GET", "/static/workshops/theme/training-portal.css", nil)
	if resp.StatusCode != 200 || string(raw) != ":root { --accent: rebeccapurple; }" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("theme: %d %q %s", resp.StatusCode, raw, resp.Header.Get("Content-Type"))
	}
}

// A CSRF token someone set before the login (on a shared computer, or a
// page that planted the cookie) is worth nothing after it.
func TestLoginRotatesCSRFToken(t *testing.T) {
	p := newPortal(t)
	signUp(t, p, "alice")
	c := p.Client()
	before := csrf(t, p, c)
	if status, _, body := post(t, p, c, "/accounts/login/", url.Values{"username": {"alice"}, "password": {"correct horse"}}); status != 302 {
		t.Fatalf("login: %d %s", status, body)
	}
	after := csrf(t, p, c)
	if after == before || len(after) < 32 {
		t.Errorf("CSRF token %q before the login, %q after", before, after)
	}
	// The old token no longer passes.
	form := url.Values{"csrf_token": {before}}
	resp, raw := c.Raw("POST", "/accounts/logout/", strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", p.Server.URL)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a form with the token of before the login: %d %s", resp.StatusCode, raw)
	}
}

// The delivery log shows staff how each delivery stands, naming receivers
// by their origin only: a URL may carry a credential.
func TestAdminWebhookLog(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	at := p.Clock.Now().UTC().Truncate(time.Millisecond)
	if err := p.Store.Update(context.Background(), func(tx store.Tx) error {
		return errors.Join(
			tx.InsertWebhook(store.Webhook{ID: "msg_pending", URL: "https://hub:hunter2@hooks.example/in?token=s3cr3t",
				Guarded: true, Event: "Session/Started", Body: "{}", Created: at, State: store.WebhookPending,
				Attempts: 2, NextAt: at.Add(90 * time.Minute), LastStatus: 503, LastError: "answered 503 Service Unavailable"}),
			tx.InsertWebhook(store.Webhook{ID: "msg_done", URL: "http://receiver.example:8080/", Event: "User/Create",
				Body: "{}", Created: at, State: store.WebhookDelivered, Attempts: 1, LastStatus: 204, Done: at}))
	}); err != nil {
		t.Fatal(err)
	}
	admin := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	status, _, body := get(t, admin, "/admin/webhooks/")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	for _, want := range []string{`data-delivery="msg_pending"`, `data-delivery="msg_done"`, "https://hooks.example",
		"http://receiver.example:8080", "answered 503 Service Unavailable", "pending (503)", "delivered (204)",
		at.Add(90 * time.Minute).Format("2006-01-02 15:04 UTC")} {
		if !strings.Contains(body, want) {
			t.Errorf("the delivery log lacks %q", want)
		}
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "s3cr3t") {
		t.Error("the delivery log shows a receiver's credential")
	}
}
