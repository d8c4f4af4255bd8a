package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
)

// Every redirect and notification rule of the pages, one line each, with
// the part of the spec it comes from (§3.2–§3.5, §6.10, §7.5–§7.8,
// §7.10); Portico's deliberate differences say "unlike Educates". Each
// rule is a step of a story in one portal, since most need a session in
// some state.

// rule is one step: a request by a browser, and where it must lead.
type rule struct {
	name    string // spec section and the rule
	c       *portaltest.Client
	path    string
	form    url.Values // POST when not nil
	want    string     // Location; "" for a page (200)
	headers []string
}

func check(t *testing.T, p *portaltest.Portal, rules []rule) {
	t.Helper()
	for _, r := range rules {
		var status int
		var loc string
		if r.form != nil {
			status, loc, _ = post(t, p, r.c, r.path, r.form, r.headers...)
		} else {
			status, loc, _ = get(t, r.c, r.path, r.headers...)
		}
		if r.want == "" {
			if status != 200 {
				t.Errorf("%s: GET %s: %d to %q, want the page", r.name, r.path, status, loc)
			}
			continue
		}
		wantRedirect(t, r.name+": "+r.path, status, loc, r.want)
	}
}

// start starts the workshop for c and returns the session's name.
func start(t *testing.T, c *portaltest.Client, query string) string {
	t.Helper()
	status, loc, _ := get(t, c, "/workshops/environment/portal-w01/"+query)
	name, ok := strings.CutPrefix(loc, "/workshops/session/")
	if status != 302 || !ok {
		t.Fatalf("start%s: %d to %q", query, status, loc)
	}
	return strings.TrimSuffix(name, "/")
}

func TestRedirectRulesOfAccounts(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	v := p.Client()
	alice := signUp(t, p, "alice")
	closed := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Enabled = false })
	anon := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	a := anon.Client()
	check(t, p, []rule{
		{"§3.3 a visitor, private catalog", v, "/", nil, "/accounts/login/", nil},
		{"§3.3 logged in", alice, "/", nil, "/workshops/catalog/", nil},
		{"§3.2 registration open", v, "/accounts/register/", nil, "", nil},
		{"§3.2 registration done (old links)", alice, "/accounts/register/complete/", nil, "/workshops/catalog/", nil},
		{"§3.2 /accounts/create/ outside anonymous mode", v, "/accounts/create/", nil, "/accounts/login/", nil},
		{"§3.2 /accounts/create/ when logged in", alice, "/accounts/create/", nil, "/workshops/catalog/", nil},
		{"§3.2 login leads to /", p.Client(), "/accounts/login/", url.Values{"username": {"alice"}, "password": {"correct horse"}}, "/", nil},
		{"§3.2 logout leads to /", signUp(t, p, "bob"), "/accounts/logout/", url.Values{}, "/", nil},
	})
	check(t, closed, []rule{
		{"§3.2 registration closed", closed.Client(), "/accounts/register/", nil, "/accounts/register/closed/", nil},
		{"§3.2 the closed page", closed.Client(), "/accounts/register/closed/", nil, "", nil},
	})
	check(t, anon, []rule{
		{"§3.3 a visitor, anonymous mode", a, "/", nil, "/accounts/create/", nil},
		{"§3.2 /accounts/create/ makes an account", a, "/accounts/create/", nil, "/workshops/catalog/", nil},
		{"§3.3 the anonymous account, logged in", a, "/", nil, "/workshops/catalog/", nil},
		{"§3.2 registration outside one-step mode", anon.Client(), "/accounts/register/", nil, "/accounts/register/closed/", nil},
	})
}

func TestRedirectRulesOfTheAccessCode(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Password = "code" })
	v := p.Client()
	check(t, p, []rule{
		{"§3.3 index without the code", v, "/", nil, "/workshops/access/?redirect_url=%2F", nil},
		{"§3.5 catalog without the code", v, "/workshops/catalog/", nil, "/workshops/access/?redirect_url=%2Fworkshops%2Fcatalog%2F", nil},
		{"§3.4 the form", v, "/workshops/access/?redirect_url=%2F", nil, "", nil},
		{"§3.4 a wrong code shows the form again", v, "/workshops/access/", url.Values{"password": {"nope"}, "redirect_url": {"/"}}, "", nil},
		{"§3.4 the code in the query (educates CLI)", p.Client(), "/workshops/access/?password=code&redirect_url=%2Fworkshops%2Fcatalog%2F", nil, "/workshops/catalog/", nil},
		{"§3.4 the code in the form", v, "/workshops/access/", url.Values{"password": {"code"}, "redirect_url": {"/workshops/catalog/"}}, "/workshops/catalog/", nil},
		{"§3.4 unlike Educates, redirect_url stays on the portal", v, "/workshops/access/", url.Values{"password": {"code"}, "redirect_url": {"https://evil.example/"}}, "/", nil},
		{"§3.3 index with the code", v, "/", nil, "/accounts/login/", nil},
		{"§3.5 catalog with the code", v, "/workshops/catalog/", nil, "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F", nil},
	})
}

func TestRedirectRulesOfTheCatalog(t *testing.T) {
	public := startWith(t, config.Entry{}, func(p *config.Portal) { p.CatalogVisibility = "public" })
	check(t, public, []rule{
		{"§3.3 a visitor, public catalog", public.Client(), "/", nil, "/workshops/catalog/", nil},
		{"§3.5 public catalog for a visitor", public.Client(), "/workshops/catalog/", nil, "", nil},
		{"§7.5 a start needs a login", public.Client(), "/workshops/environment/portal-w01/?index_url=x", nil,
			"/accounts/login/?next=" + url.QueryEscape("/workshops/environment/portal-w01/?index_url=x"), nil},
	})
	public.Broker.Portal().Index = "https://event.example/"
	staff := login(t, public, portaltest.AdminUser, portaltest.AdminPassword)
	check(t, public, []rule{
		{"§3.5 portal index: a visitor of a public catalog", public.Client(), "/workshops/catalog/", nil, "https://event.example/", nil},
		{"§3.5 portal index: an attendee, query not forwarded", signUp(t, public, "alice"), "/workshops/catalog/?notification=session-deleted", nil, "https://event.example/", nil},
		{"§3.5 portal index: staff see the catalog", staff, "/workshops/catalog/", nil, "", nil},
	})
}

func TestNotificationRules(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 2, Reserved: 0, Initial: 0}, nil)
	alice, bob := signUp(t, p, "alice"), signUp(t, p, "bob")
	staff := login(t, p, portaltest.AdminUser, portaltest.AdminPassword)
	hub := "https://hub.example/page?x=1"
	hubWith := func(n string) string { return "https://hub.example/page?notification=" + n + "&x=1" }

	own := start(t, alice, "")
	withIndex := start(t, bob, "?index_url="+url.QueryEscape(hub))
	check(t, p, []rule{
		{"§7.5 the same workshop again: the same session", alice, "/workshops/environment/portal-w01/", nil, "/workshops/session/" + own + "/", nil},
		{"§7.5 workshop-invalid to the fallback", alice, "/workshops/environment/nope/", nil, "/workshops/catalog/?notification=workshop-invalid", nil},
		{"§7.5 workshop-invalid to index_url", alice, "/workshops/environment/nope/?index_url=" + url.QueryEscape(hub), nil, hubWith("workshop-invalid"), nil},
		{"§7.5 session-unavailable to the fallback", staff, "/workshops/environment/portal-w01/", nil, "/workshops/catalog/?notification=session-unavailable", nil},
		{"§7.5 session-unavailable to index_url", staff, "/workshops/environment/portal-w01/?index_url=" + url.QueryEscape(hub), nil, hubWith("session-unavailable"), nil},
		{"§7.7 not logged in", p.Client(), "/workshops/session/" + own + "/", nil, "/?next=" + url.QueryEscape("/workshops/session/"+own+"/"), nil},
		{"§7.8 not logged in", p.Client(), "/workshops/session/" + own + "/delete/", nil, "/?next=" + url.QueryEscape("/workshops/session/"+own+"/delete/"), nil},
		{"§7.7 the owner's page", alice, "/workshops/session/" + own + "/", nil, "", nil},
		{"§7.7 session-invalid: not the owner", bob, "/workshops/session/" + own + "/", nil, "/workshops/catalog/?notification=session-invalid", nil},
		{"§7.7 session-invalid: staff get no bypass", staff, "/workshops/session/" + own + "/", nil, "/workshops/catalog/?notification=session-invalid", nil},
		{"§7.7 session-invalid: no such session", alice, "/workshops/session/portal-w01-s999/", nil, "/workshops/catalog/?notification=session-invalid", nil},
		{"§7.8 session-invalid: not the owner, never the session's index_url", alice, "/workshops/session/" + withIndex + "/delete/", nil, "/workshops/catalog/?notification=session-invalid", nil},
		{"§7.8 session-deleted to the stored index_url", bob, "/workshops/session/" + withIndex + "/delete/", nil, hubWith("session-deleted"), nil},
		{"§7.7 an ended session with index_url", bob, "/workshops/session/" + withIndex + "/", nil, hubWith("session-deleted"), nil},
		{"§7.8 an ended session with index_url", bob, "/workshops/session/" + withIndex + "/delete/?notification=startup-timeout", nil, hubWith("session-deleted"), nil},
		{"§7.8 startup-timeout passes through to the fallback", alice, "/workshops/session/" + own + "/delete/?notification=startup-timeout", nil, "/workshops/catalog/?notification=startup-timeout", nil},
		{"§7.7 unlike Educates, an ended session without index_url: session-deleted", alice, "/workshops/session/" + own + "/", nil, "/workshops/catalog/?notification=session-deleted", nil},
	})
	p.Settle()

	// Another session each, and the portal index for non-staff.
	p.Broker.Portal().Index = "https://event.example/"
	again := start(t, alice, "")
	timedOut := start(t, bob, "?index_url="+url.QueryEscape(hub))
	check(t, p, []rule{
		{"§6.10 fallback is the portal index: workshop-invalid", alice, "/workshops/environment/nope/", nil, "https://event.example/?notification=workshop-invalid", nil},
		{"§6.10 fallback is the portal index: session-invalid", bob, "/workshops/session/" + again + "/", nil, "https://event.example/?notification=session-invalid", nil},
		{"§6.10 staff's fallback stays the catalog", staff, "/workshops/environment/nope/", nil, "/workshops/catalog/?notification=workshop-invalid", nil},
		{"§7.8 startup-timeout to the stored index_url", bob, "/workshops/session/" + timedOut + "/delete/?notification=startup-timeout", nil, hubWith("startup-timeout"), nil},
		{"§7.8 session-deleted to the portal index", alice, "/workshops/session/" + again + "/delete/", nil, "https://event.example/?notification=session-deleted", nil},
	})
}

func TestActivationRules(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	name, activation := request(t, p, "carol", "https://hub.example/")
	// A request may leave index_url out when the portal has an index.
	p.Broker.Portal().Index = "https://event.example/"
	noIndex, noIndexActivation := request(t, p, "dave", "")
	carol, dave := p.Client(), p.Client()
	check(t, p, []rule{
		{"§7.10 activation logs in and opens the session", carol, activation, nil, "/workshops/session/" + name + "/", nil},
		{"§7.10 again: the token stays valid while the session lives", carol, activation, nil, "/workshops/session/" + name + "/", nil},
		{"§7.10 without index_url", dave, noIndexActivation, nil, "/workshops/session/" + noIndex + "/", nil},
		{"§7.8 finish", carol, "/workshops/session/" + name + "/delete/", nil, "https://hub.example/?notification=session-deleted", nil},
		{"§7.10 an ended session with index_url", carol, activation, nil, "https://hub.example/?notification=session-deleted", nil},
		{"§7.8 finish without index_url: the portal index", dave, "/workshops/session/" + noIndex + "/delete/", nil, "https://event.example/?notification=session-deleted", nil},
		{"§7.10 unlike Educates, an ended session without index_url: session-deleted", dave, noIndexActivation, nil, "https://event.example/?notification=session-deleted", nil},
	})
}
