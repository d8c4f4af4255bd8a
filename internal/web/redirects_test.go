package web_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
)

// Anyone can make a start link, so its index_url leads only where the
// portal's definition allows: the portal itself, the origin of its index
// and those of spec.portal.indexOrigins (https://hub.example in these
// tests), compared by scheme, host and port. Anything else is dropped
// and people go back to the catalog. Before, an anonymous visitor's start
// link with index_url=https://evil.example/ ended there.
func TestStartLinksReturnOnlyToAllowedOrigins(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	catalog := "/workshops/catalog/?notification=workshop-invalid"
	for index, want := range map[string]string{
		"https://hub.example/page?x=1":               "https://hub.example/page?notification=workshop-invalid&x=1",
		"https://HUB.example:443/page":               "https://HUB.example:443/page?notification=workshop-invalid",
		p.Server.URL + "/workshops/catalog/":         p.Server.URL + "/workshops/catalog/?notification=workshop-invalid",
		"/workshops/catalog/":                        catalog,
		"https://evil.example/":                      catalog,
		"http://hub.example/":                        catalog, // another scheme
		"https://hub.example:8443/":                  catalog, // another port
		"https://hub.example.evil.example/":          catalog,
		"https://evil.example/?https://hub.example/": catalog,
		"//evil.example/":                            catalog,
		"javascript:alert(document.cookie)":          catalog,
	} {
		status, loc, _ := get(t, alice, "/workshops/environment/nope/?index_url="+url.QueryEscape(index))
		wantRedirect(t, "index_url "+index, status, loc, want)
	}

	// The origin of the portal's index is allowed too.
	withIndex := startWith(t, config.Entry{}, func(p *config.Portal) { p.Index = "https://event.example/" })
	status, loc, _ := get(t, signUp(t, withIndex, "bob"), "/workshops/environment/nope/?index_url="+url.QueryEscape("https://event.example/day2"))
	wantRedirect(t, "the index's origin", status, loc, "https://event.example/day2?notification=workshop-invalid")

	// A session started with an index_url from elsewhere keeps none, and
	// its end leads to the catalog.
	name := start(t, alice, "?index_url="+url.QueryEscape("https://evil.example/"))
	if s := p.Session(name); s.IndexURL != "" {
		t.Errorf("the session keeps index_url %q", s.IndexURL)
	}
	status, loc, _ = get(t, alice, "/workshops/session/"+name+"/delete/")
	wantRedirect(t, "the end of that session", status, loc, "/workshops/catalog/?notification=session-deleted")

	// A robot's index_url is the front end's own: it is kept.
	robotsName, _ := request(t, p, "carol", "https://elsewhere.example/")
	if s := p.Session(robotsName); s.IndexURL != "https://elsewhere.example/" {
		t.Errorf("a robot's index_url became %q", s.IndexURL)
	}
}

func TestAnonymousStartLinkReturnsOnlyToAllowedOrigins(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 4, Reserved: 2, Initial: 2}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	for index, want := range map[string]string{
		"https://evil.example/": "",
		"https://hub.example/":  "https://hub.example/",
	} {
		c := p.Client()
		status, loc, _ := get(t, c, "/workshops/environment/portal-w01/create/?index_url="+url.QueryEscape(index),
			"Sec-Fetch-Site", "cross-site")
		name, ok := strings.CutPrefix(loc, "/workshops/session/")
		if status != http.StatusFound || !ok {
			t.Fatalf("anonymous start link with %s: %d to %q, want the session", index, status, loc)
		}
		if s := p.Session(strings.TrimSuffix(name, "/")); s.IndexURL != want {
			t.Errorf("anonymous start link with %s: the session keeps %q, want %q", index, s.IndexURL, want)
		}
	}
	status, loc, _ := get(t, p.Client(), "/workshops/environment/nope/create/?index_url="+url.QueryEscape("https://evil.example/"))
	wantRedirect(t, "an unknown workshop", status, loc, "/workshops/catalog/?notification=workshop-invalid")
}

// A start link that another site's page makes a logged-in person's
// browser follow (a link, a redirect, a top-level navigation from a
// session, which is a sibling site) asks before it starts anything.
// Before, it started a session with the link maker's index_url.
func TestCrossSiteStartLinkAsksFirst(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	link := "/workshops/environment/portal-w01/?index_url=" + url.QueryEscape("https://hub.example/back")
	owned := func() int {
		n := 0
		for _, s := range p.Sessions() {
			if s.OwnerName == "alice" {
				n++
			}
		}
		return n
	}
	for _, site := range []string{"cross-site", "same-site"} {
		status, _, body := get(t, alice, link, "Sec-Fetch-Site", site)
		if status != http.StatusOK || !strings.Contains(body, "Start this workshop?") ||
			!strings.Contains(body, `href="`+html.EscapeString(link)+`"`) {
			t.Fatalf("%s start link: %d, want the question with a link to start:\n%s", site, status, body)
		}
		if n := owned(); n != 0 {
			t.Fatalf("a %s start link started %d sessions", site, n)
		}
	}
	// The question drops an index_url from elsewhere from its own link.
	_, _, body := get(t, alice, "/workshops/environment/portal-w01/?index_url="+url.QueryEscape("https://evil.example/"),
		"Sec-Fetch-Site", "cross-site")
	if strings.Contains(body, "evil.example") || !strings.Contains(body, `href="/workshops/environment/portal-w01/?index_url="`) {
		t.Errorf("the question for an index_url from elsewhere:\n%s", body)
	}

	// The button is a link on the portal's own page.
	status, loc, _ := get(t, alice, link, "Sec-Fetch-Site", "same-origin")
	if status != http.StatusFound || !strings.HasPrefix(loc, "/workshops/session/") || owned() != 1 {
		t.Fatalf("the start from the portal's page: %d to %q, %d sessions", status, loc, owned())
	}

	// A link typed or bookmarked starts as well, and so does a client
	// that sends no Fetch metadata.
	bob := signUp(t, p, "bob")
	if status, loc, _ := get(t, bob, link, "Sec-Fetch-Site", "none"); status != http.StatusFound || !strings.HasPrefix(loc, "/workshops/session/") {
		t.Errorf("a typed start link: %d to %q", status, loc)
	}
}

// In anonymous mode, someone who has an account already and follows a
// front end's start link is asked too; someone who has none gets an
// account and the session at once, as there is nobody to act for.
func TestCrossSiteAnonymousStartLink(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 4, Reserved: 2, Initial: 2}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	c := p.Client()
	link := "/workshops/environment/portal-w01/create/?index_url=" + url.QueryEscape("https://hub.example/")
	status, loc, _ := get(t, c, link, "Sec-Fetch-Site", "cross-site")
	if status != http.StatusFound || !strings.HasPrefix(loc, "/workshops/session/") {
		t.Fatalf("a new visitor's start link: %d to %q", status, loc)
	}
	status, loc, _ = get(t, c, link, "Sec-Fetch-Site", "cross-site")
	wantRedirect(t, "the start link again", status, loc, "/workshops/environment/portal-w01/?index_url=https%3A%2F%2Fhub.example%2F")
	status, _, body := get(t, c, loc, "Sec-Fetch-Site", "cross-site")
	if status != http.StatusOK || !strings.Contains(body, "Start this workshop?") {
		t.Errorf("someone with an account, from another site: %d\n%s", status, body)
	}
}
