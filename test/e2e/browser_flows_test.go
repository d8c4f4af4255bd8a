package e2e

// The browser tests of issue 4 (acceptance item 1, a to d): people in a
// headless Chromium register, start workshops, use the terminal, finish,
// and an admin extends and ends their sessions. Each test saves a
// screenshot of its key page; scripts/screenshots copies them to
// docs/screenshots.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// dashboardPoll bounds a wait for the dashboard to learn of a change made
// elsewhere: it asks the portal every 15 s.
const dashboardPoll = 25 * time.Second

// waitReserve waits until the test environment has n reserved sessions
// ready, so that the catalog lists it and a start is quick.
func waitReserve(t *testing.T, p *portal, n int) {
	t.Helper()
	robot := p.robot()
	if msg := eventually(settle, func() string {
		if env := robot.status(); env.State != "RUNNING" || env.Available < n {
			return "reserve not ready: " + env.String()
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
}

// catalogLogo is the workshop's logo in the catalog test: an SVG image
// as a data: URL, the form Educates' workshop definitions carry logos in.
var catalogLogo = "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(
	`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" rx="8" fill="#2456d3"/>`+
		`<path d="M10 13l8 7-8 7" stroke="#fff" stroke-width="3.5" fill="none" stroke-linecap="round" stroke-linejoin="round"/>`+
		`<path d="M21 28h9" stroke="#fff" stroke-width="3.5" stroke-linecap="round"/></svg>`))

// catalogDefinitions is dashboardDefinitions with what a catalog card
// shows besides the title and description: duration, difficulty, logo.
func catalogDefinitions(t *testing.T) string {
	t.Helper()
	const description = "  description: The workshop of the end-to-end tests.\n"
	defs := dashboardDefinitions()
	if !strings.Contains(defs, description) {
		t.Fatalf("definitions() has no %q to add to: update catalogDefinitions", description)
	}
	return strings.Replace(defs, description, description+
		"  duration: 30m\n  difficulty: beginner\n  logo: "+catalogLogo+"\n", 1)
}

// TestBrowserRegisterStartFinish is issue 4's acceptance 1a: someone
// registers, sees the catalog, starts the workshop, uses its terminal in
// the dashboard, finishes, and is back on the catalog with the
// session-deleted banner.
func TestBrowserRegisterStartFinish(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, catalogDefinitions(t))
	waitReserve(t, p, 1)
	alice := newChromium(t).person("alice", p)

	// The portal's index sends someone not logged in to log in (the
	// catalog is private), and the login page leads to registration.
	alice.open("/")
	alice.waitPath("/accounts/login/")
	alice.click(`a[href="/accounts/register/"]`)
	alice.waitPath("/accounts/register/")
	alice.registerHere("alice")

	alice.waitCard("available")
	// The card shows the workshop's title, description, duration,
	// difficulty and logo (loaded: the page's CSP lets it in).
	alice.waitUntil(settle, "the card's details", fmt.Sprintf(`(() => {
		const c = document.querySelector(%s);
		const text = sel => { const e = c.querySelector(sel); return e ? e.textContent.replace(/\s+/g, " ").trim() : "(no " + sel + ")"; };
		const got = [text("h2"), text(".description"), text(".facts")].join(" | ");
		if (got !== "End-to-end lab | The workshop of the end-to-end tests. | Duration 30m Difficulty beginner") return "card: " + got;
		const logo = c.querySelector("img.logo");
		if (!logo) return "no img.logo";
		if (!logo.complete || logo.naturalWidth === 0) return "the logo did not load";
		return "";
	})()`, jsString(catalogCard)))
	alice.screenshot("catalog")

	session := alice.startWorkshop()
	alice.waitDashboard(session)
	if c := alice.waitCountdown(settle, "to count", func(s string) bool { return countdownSeconds(s) > 0 }); countdownSeconds(c) > 60*60 {
		t.Errorf("countdown %s, more than the workshop's 60m", c)
	}
	alice.typeInTerminal(`echo "portico-$((6*7))"`, "portico-42")
	alice.screenshot("session")

	alice.finish(session)
	alice.waitPath("/workshops/catalog/")
	if !alice.navigatedTo("/workshops/catalog/", url.Values{"notification": {"session-deleted"}}) {
		t.Errorf("finish did not lead to the catalog with notification=session-deleted")
	}
	if msgs := alice.dialogMessages(); len(msgs) != 1 {
		t.Errorf("dialogs %q, want the one confirmation of Finish", msgs)
	}
	alice.banner("session-deleted")
	alice.screenshot("catalog-session-deleted")

	// The session is gone: a new start makes a new session.
	robot := p.robot()
	if msg := eventually(settle, func() string {
		for _, s := range *robot.environment().Sessions {
			if s.Name == session {
				return "session " + session + " still " + s.State
			}
		}
		return ""
	}); msg != "" {
		t.Error(msg)
	}
}

// TestBrowserAnonymous is issue 4's acceptance 1b: with anonymous
// registration, a link from another site starts a session for a visitor
// who has no account, and finishing sends them back to that site with
// notification=session-deleted.
func TestBrowserAnonymous(t *testing.T) {
	requireChromium(t)
	var (
		mu   sync.Mutex
		hits []string // the queries of the index page's requests
	)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hub/" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		hits = append(hits, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>Workshop hub</title><h1 id="hub">Workshop hub</h1>`))
	}))
	t.Cleanup(hub.Close)
	indexURL := hub.URL + "/hub/"

	// The hub's origin is allowed: a start link's index_url leads
	// nowhere else.
	defs := strings.Replace(definitions(entry{Capacity: 2, Reserved: 1}), "    title: End-to-end tests\n",
		"    title: End-to-end tests\n    registration:\n      type: anonymous\n    indexOrigins:\n      - "+hub.URL+"\n", 1)
	p := startPortal(t, defs)
	waitReserve(t, p, 1)
	visitor := newChromium(t).person("visitor", p)

	visitor.open("/workshops/environment/" + envName + "/create/?index_url=" + url.QueryEscape(indexURL))
	session := visitor.startedSession()
	visitor.waitDashboard(session)
	visitor.typeInTerminal("echo anonymous-$((40+2))", "anonymous-42")
	visitor.screenshot("anonymous-session")

	visitor.finish(session)
	u := visitor.waitLocation(indexURL)
	if got := u.Query().Get("notification"); got != "session-deleted" {
		t.Errorf("back at %s, want notification=session-deleted", u)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hits) != 1 || hits[0] != "notification=session-deleted" {
		t.Errorf("the index page was asked for with the queries %q, want once with notification=session-deleted", hits)
	}
}

// TestBrowserAdminExtendTerminate is issue 4's acceptance 1c: an admin
// extends an attendee's session from the admin sessions page, and the
// countdown in the attendee's browser moves up; the admin terminates it,
// and the attendee's dashboard says it has ended.
func TestBrowserAdminExtendTerminate(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	browser := newChromium(t)
	attendee := browser.person("attendee", p)
	admin := browser.person("admin", p)

	attendee.register("attendee")
	if code := attendee.status("/admin/"); code != 403 {
		t.Errorf("attendee at /admin/: %d, want 403", code)
	}
	attendee.open("/workshops/catalog/")
	attendee.waitCard("available")
	session := attendee.startWorkshop()
	attendee.waitDashboard(session)
	before := countdownSeconds(attendee.waitCountdown(settle, "to count", func(s string) bool { return countdownSeconds(s) > 0 }))

	// The admin pages need a login, which leads back to them.
	admin.open("/admin/sessions/")
	u := admin.waitPath("/accounts/login/")
	if next := u.Query().Get("next"); next != "/admin/sessions/" {
		t.Errorf("the admin sessions page sends to %s, want next=/admin/sessions/", u)
	}
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/sessions/")
	row := `tr[data-session="` + session + `"]`
	admin.waitUntil(settle, "the session's row", `document.querySelector(`+jsString(row)+`) ? "" : `+jsString("no "+row))
	admin.screenshot("admin-sessions")

	admin.submitAndLoad(row + ` form.extend button[name=minutes][value="10"]`)
	admin.waitPath("/admin/sessions/")
	t.Logf("admin: %s", admin.flash())
	// The dashboard learns of it at its next poll of the portal.
	attendee.waitCountdown(dashboardPoll, "to move up by 10 minutes from "+attendee.countdownOf(before), func(s string) bool {
		return countdownSeconds(s) >= before+9*60
	})

	admin.submitAndLoad(row + ` form.terminate button`)
	admin.waitPath("/admin/sessions/")
	t.Logf("admin: %s", admin.flash())
	if msg := eventually(dashboardPoll, func() string {
		if c := attendee.countdown(); c != "Session ended" {
			return "#countdown shows " + c
		}
		return ""
	}); msg != "" {
		// The session page itself may have left for another.
		navs := attendee.navigationsSince("/workshops/session/" + session + "/")
		t.Fatalf("attendee: want the dashboard's countdown to say \"Session ended\" after the admin terminated the session: %s; the tab went on to %q", msg, navs)
	}
	// The session page says so over the dashboard, with the way back.
	attendee.waitUntil(dashboardPoll, "the session page to say the session ended", `(() => {
		const panel = document.querySelector("#ended");
		if (!panel || !panel.getClientRects().length) return "no #ended shown";
		if (!/ended/i.test(panel.textContent)) return "#ended says " + panel.textContent.trim();
		const back = panel.querySelector("a.button");
		if (!back) return "no a.button in #ended";
		return document.activeElement === back ? "" : "the focus is on " + (document.activeElement && document.activeElement.outerHTML.slice(0, 80));
	})()`)
	attendee.screenshot("session-ended")
	attendee.click("#ended a.button")
	attendee.waitPath("/workshops/catalog/")
	attendee.banner("session-deleted")
}

// TestBrowserCapacity is issue 4's acceptance 1d: when the workshop's
// capacity is taken, a second attendee who starts it is back on the
// catalog with the session-unavailable banner.
func TestBrowserCapacity(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 1, Reserved: 1}))
	waitReserve(t, p, 1)
	browser := newChromium(t)
	first := browser.person("first", p)
	second := browser.person("second", p)

	first.register("first")
	first.waitCard("available")
	first.startWorkshop()

	second.register("second")
	second.waitCard("full")
	second.click(catalogCard + " a.start")
	second.waitPath("/workshops/catalog/")
	second.banner("session-unavailable")
	if !second.navigatedTo("/workshops/catalog/", url.Values{"notification": {"session-unavailable"}}) {
		t.Errorf("the start did not lead to the catalog with notification=session-unavailable")
	}
	second.screenshot("catalog-unavailable")

	// The first attendee's catalog shows the session they have.
	first.open("/workshops/catalog/")
	first.waitCard("session")
}
