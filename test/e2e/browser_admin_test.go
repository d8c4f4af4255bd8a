package e2e

// The browser tests of issue 4's "Live numbers update without a full
// reload" and "responsive down to a phone, keyboard accessible": the
// admin pages take in a new session while they are open, the pages fit
// a phone's width, and the login and catalog pages work from the
// keyboard alone with a visible focus.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// liveWait bounds the wait for an admin page's live region to show a
// change: portal.js refreshes it every 3 s.
const liveWait = 10 * time.Second

// phoneWidth and phoneHeight are the viewport of a small phone.
const phoneWidth, phoneHeight = 375, 740

// markPage sets window.__marker, which a new document has not: a page
// that still has it has not been navigated away from or reloaded.
func (b *person) markPage() {
	b.t.Helper()
	if _, err := evalJS[int](b, `window.__marker = 1`); err != nil {
		b.t.Fatalf("%s: mark the page: %v", b.name, err)
	}
}

// checkMarked fails the test unless the page is the one markPage marked.
func (b *person) checkMarked(what string) {
	b.t.Helper()
	marker, err := evalJS[int](b, `window.__marker || 0`)
	if err != nil || marker != 1 {
		b.t.Errorf("%s: %s: window.__marker is %d (%v), want 1: the page was reloaded or left (navigations: %q)",
			b.name, what, marker, err, b.navigationsSince(""))
	}
}

// TestBrowserAdminLiveNumbers: an admin keeps the overview open while a
// session is allocated through the REST API, and the number of sessions
// in use moves from 0 to 1 without a reload; the sessions list takes in
// the next session's row the same way.
func TestBrowserAdminLiveNumbers(t *testing.T) {
	requireChromium(t)
	// No reserve: every allocation makes a session, so that its row on
	// the sessions list is new, not a reserved one changing hands.
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 0}))
	waitReserve(t, p, 0)
	robot := p.robot()
	admin := newChromium(t).person("admin", p)

	admin.open("/admin/")
	admin.waitPath("/accounts/login/")
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/")

	envRow := `tr[data-environment="` + envName + `"]`
	numbers := fmt.Sprintf(`(want) => {
		const stat = document.querySelector('dd[data-stat="allocated"]');
		const avail = document.querySelector('dd[data-stat="available"]');
		if (!stat || !avail) return "no dd[data-stat=allocated] or dd[data-stat=available]";
		const row = document.querySelector(%s);
		if (!row) return "no " + %s;
		const cells = [...row.querySelectorAll("td")].map(td => td.textContent.trim());
		const got = "sessions in use " + stat.textContent.trim() + ", environment row " + JSON.stringify(cells);
		return stat.textContent.trim() === want && cells[4] === want ? "" : got;
	}`, jsString(envRow), jsString(envRow))
	admin.waitUntil(settle, "the overview with no session in use", "("+numbers+`)("0")`)
	if avail, _ := evalJS[string](admin, `document.querySelector('dd[data-stat="available"]').textContent.trim()`); avail != "0" {
		t.Errorf("sessions ready to hand out: %q, want 0 (no reserve)", avail)
	}

	admin.markPage()
	first := robot.request("live-1", "")
	admin.waitUntil(liveWait, "the overview to show the session allocated through the API", "("+numbers+`)("1")`)
	admin.checkMarked("the overview")
	if navs := admin.navigationsSince("/admin/"); len(navs) > 0 {
		t.Errorf("the overview navigated to %q while it updated", navs)
	}
	admin.screenshot("admin-overview-live")

	// The sessions list: the first session is there, the next one comes.
	admin.open("/admin/sessions/")
	admin.waitPath("/admin/sessions/")
	rowOf := func(name string) string { return `tr[data-session="` + name + `"]` }
	admin.waitUntil(settle, "the first session's row", `document.querySelector(`+jsString(rowOf(first.Name))+`) ? "" : `+jsString("no "+rowOf(first.Name)))
	admin.markPage()
	second := robot.request("live-2", "")
	if second.Name == first.Name {
		t.Fatalf("two allocations got the same session %s", second.Name)
	}
	admin.waitUntil(liveWait, "the row of the session allocated through the API", fmt.Sprintf(`(() => {
		const row = document.querySelector(%s);
		if (!row) return "rows: " + [...document.querySelectorAll("tr[data-session]")].map(r => r.dataset.session).join(", ");
		const owner = row.querySelectorAll("td")[2];
		return owner && owner.textContent.trim() === "live-2" ? "" : "owner " + (owner && owner.textContent.trim());
	})()`, jsString(rowOf(second.Name))))
	admin.checkMarked("the sessions list")
	if navs := admin.navigationsSince("/admin/sessions/"); len(navs) > 0 {
		t.Errorf("the sessions list navigated to %q while it updated", navs)
	}
	admin.screenshot("admin-sessions-live")
}

// overflowJS is a function of the phone's width that gives "" when the
// document is no wider, or names the elements that stick out on the
// right; a table may scroll inside its .table-wrap, so what is inside one
// does not count.
const overflowJS = `((w) => {
	if (document.readyState !== "complete") return "loading";
	const sw = document.documentElement.scrollWidth;
	if (sw <= w && window.innerWidth <= w) return "";
	const name = e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
		(typeof e.className === "string" && e.className.trim() ? "." + e.className.trim().split(/\s+/).join(".") : "");
	const wide = [...document.body.querySelectorAll("*")]
		.filter(e => !e.parentElement.closest(".table-wrap"))
		.filter(e => e.getBoundingClientRect().right > w + 0.5)
		.slice(0, 8)
		.map(e => name(e) + " to " + Math.round(e.getBoundingClientRect().right) + "px");
	return "the document is " + sw + "px wide, the window " + window.innerWidth + "px (zoomed out to fit when wider than " + w +
		"px); past the right edge: " + (wide.join(", ") || "nothing found");
})`

// fitsWidth checks that the page has no horizontal overflow at the
// phone's width.
func (b *person) fitsWidth(page string) {
	b.t.Helper()
	// The page is loaded; a few seconds for its fonts and style sheets.
	ctx, cancel := context.WithTimeout(b.t.Context(), 5*time.Second)
	defer cancel()
	var msg string
	for {
		var err error
		if msg, err = evalJS[string](b, fmt.Sprintf("%s(%d)", overflowJS, phoneWidth)); err != nil {
			msg = err.Error()
		}
		if msg == "" {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Errorf("%s: %s at %dpx: %s", b.name, page, phoneWidth, msg)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// phone opens a tab in a phone-sized viewport.
func (c *chromium) phone(name string, p *portal) *person {
	c.t.Helper()
	b := c.person(name, p)
	b.do("emulate a phone", chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	return b
}

// TestBrowserPhoneWidth: at a phone's width, the login page, the catalog
// and the admin sessions list fit the window (a table may scroll inside
// its frame), and the catalog's start button is on screen and works.
func TestBrowserPhoneWidth(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	browser := newChromium(t)
	attendee := browser.phone("attendee", p)

	attendee.open("/accounts/login/")
	attendee.waitUntil(settle, "login form", `document.querySelector("form#login") ? "" : "no form#login"`)
	attendee.fitsWidth("the login page")
	attendee.screenshot("phone-login")

	attendee.register("phone")
	attendee.waitCard("available")
	attendee.fitsWidth("the catalog")
	start := catalogCard + " a.start"
	attendee.waitUntil(browserStep, "the start button on screen and not covered", fmt.Sprintf(`(() => {
		const a = document.querySelector(%s);
		if (!a) return "no start button";
		a.scrollIntoView({block: "center", inline: "nearest"});
		const r = a.getBoundingClientRect();
		if (r.width < 1 || r.height < 1) return "the start button has no size";
		if (r.left < 0 || r.right > window.innerWidth) return "the start button spans x " + r.left + " to " + r.right + " of a " + window.innerWidth + "px window";
		if (r.top < 0 || r.bottom > window.innerHeight) return "the start button is off screen vertically";
		const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
		return hit && a.contains(hit) ? "" : "the start button's middle is covered by " + (hit ? hit.outerHTML.slice(0, 100) : "nothing");
	})()`, jsString(start)))
	attendee.screenshot("phone-catalog")
	session := attendee.startWorkshop() // a click with the mouse, in its middle

	admin := browser.phone("admin", p)
	admin.open("/admin/sessions/")
	admin.waitPath("/accounts/login/")
	admin.fitsWidth("the login page")
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/sessions/")
	row := `tr[data-session="` + session + `"]`
	admin.waitUntil(settle, "the session's row", `document.querySelector(`+jsString(row)+`) ? "" : `+jsString("no "+row))
	admin.fitsWidth("the admin sessions list")
	// The table is wider than a phone: it scrolls in its frame.
	if wide, err := evalJS[string](admin, `(() => {
		const w = document.querySelector(".table-wrap");
		return w ? w.scrollWidth + "px of table in a " + w.clientWidth + "px frame" : "no .table-wrap";
	})()`); err == nil {
		t.Logf("admin sessions list at %dpx: %s", phoneWidth, wide)
	}
	admin.screenshot("phone-admin-sessions")
}

// focusInfo describes the focused element.
type focusInfo struct {
	Desc    string // tag, id, classes, text or name
	Outline string // computed outline-style
	Width   string // computed outline-width
	Visible bool   // it matches :focus-visible
}

const focusJS = `(() => {
	const e = document.activeElement;
	if (!e || e === document.body || e === document.documentElement) return {Desc: "(nothing)"};
	const cs = getComputedStyle(e);
	let d = e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
		(typeof e.className === "string" && e.className.trim() ? "." + e.className.trim().split(/\s+/).join(".") : "");
	if (e.closest("header.topbar")) d = (e.closest("nav") ? "topbar nav " : "topbar ") + d;
	const label = (e.getAttribute("aria-label") || e.textContent || e.name || "").trim().replace(/\s+/g, " ").slice(0, 40);
	if (label) d += " " + JSON.stringify(label);
	return {Desc: d, Outline: cs.outlineStyle, Width: cs.outlineWidth, Visible: e.matches(":focus-visible")};
})()`

// focused describes the focused element of the page.
func (b *person) focused() focusInfo {
	b.t.Helper()
	f, err := evalJS[focusInfo](b, focusJS)
	if err != nil {
		b.t.Fatalf("%s: the focused element: %v", b.name, err)
	}
	return f
}

// press presses keys (chromedp.KeyEvent: Tab is "\t", Enter "\r") and
// returns the element focused after.
func (b *person) press(keys string, opts ...chromedp.KeyOption) focusInfo {
	b.t.Helper()
	b.do(fmt.Sprintf("press %q", keys), chromedp.KeyEvent(keys, opts...))
	return b.focused()
}

// TestBrowserKeyboard: the login page is in a sensible tab order (skip
// link, navigation, the form) and logs in from the keyboard alone; on the
// catalog every element Tab reaches shows where the focus is.
func TestBrowserKeyboard(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	b := newChromium(t).person("keyboard", p)

	// The catalog asks for a login first, which leads back to it.
	b.open("/workshops/catalog/")
	b.waitPath("/accounts/login/")
	b.waitUntil(settle, "login form", `document.querySelector("form#login") ? "" : "no form#login"`)
	// The username field has autofocus. To Tab from the top of the page,
	// click on its background, left of the content: the body, which puts
	// the start of Tab's search at the body's start.
	if hit, err := evalJS[string](b, `(() => { const e = document.elementFromPoint(5, 300); return e ? e.tagName : "nothing"; })()`); err != nil || (hit != "BODY" && hit != "HTML") {
		t.Fatalf("the page at (5, 300) is %s (%v), want its background", hit, err)
	}
	b.do("click the page's background", chromedp.MouseClickXY(5, 300))
	if f := b.focused(); f.Desc != "(nothing)" {
		t.Fatalf("after a click on the background, %s has the focus", f.Desc)
	}

	// Tab through the page, typing the credentials at their fields.
	var order []string
	for len(order) < 12 {
		f := b.press("\t")
		order = append(order, f.Desc)
		if strings.Contains(f.Desc, "input#username") {
			b.do("type the username", chromedp.KeyEvent(adminUser))
		}
		if strings.Contains(f.Desc, "input#password") {
			b.do("type the password", chromedp.KeyEvent(adminPass))
		}
		if strings.HasPrefix(f.Desc, "button") || f.Desc == "(nothing)" {
			break
		}
	}
	t.Logf("tab order of the login page: %q", order)
	// The skip link, then the top bar (the brand and the account
	// navigation, at least one link of the navigation), then the form.
	i, ok := 0, len(order) > 0 && strings.HasPrefix(order[0], "a.skip ") && strings.Contains(order[0], "Skip to content")
	nav := false
	for i = 1; ok && i < len(order) && strings.HasPrefix(order[i], "topbar "); i++ {
		nav = nav || strings.HasPrefix(order[i], "topbar nav ")
	}
	ok = ok && nav && len(order) == i+3 &&
		strings.Contains(order[i], "input#username") &&
		strings.Contains(order[i+1], "input#password") &&
		strings.HasPrefix(order[i+2], "button") && strings.Contains(order[i+2], `"Log in"`)
	if !ok {
		t.Fatalf("tab order of the login page %q, want the skip link, the top bar with its navigation, the username, the password, the Log in button", order)
	}

	// Back to the password field, and Enter sends the form.
	if f := b.press("\t", chromedp.KeyModifiers(chromedp.ModifierShift)); !strings.Contains(f.Desc, "input#password") {
		t.Fatalf("Shift+Tab from the submit button: got %s, want the password field", f.Desc)
	}
	b.do("press Enter", chromedp.KeyEvent("\r"))
	b.waitPath("/workshops/catalog/")
	b.waitCard("available")

	// Every stop of Tab on the catalog shows its focus, up to the start
	// link.
	start := catalogCard + " a.start"
	reached := false
	var stops []string
	for range 20 {
		f := b.press("\t")
		if f.Desc == "(nothing)" {
			break
		}
		stops = append(stops, f.Desc)
		if f.Outline == "none" || f.Width == "0px" || !f.Visible {
			t.Errorf("catalog: %s has no visible focus: outline-style %s, outline-width %s, :focus-visible %v", f.Desc, f.Outline, f.Width, f.Visible)
		}
		if isStart, _ := evalJS[bool](b, `document.activeElement === document.querySelector(`+jsString(start)+`)`); isStart {
			reached = true
			b.screenshot("catalog-focus")
			break
		}
	}
	if !reached {
		t.Errorf("Tab never reached the start link; stops: %q", stops)
	}
	t.Logf("tab stops of the catalog: %q", stops)
}

// TestBrowserRobotCredentialsCopy: the robot credentials page, which an
// organiser opens to set up a front end, has a Copy button for each value
// that puts it on the clipboard, from the mouse and from the keyboard.
func TestBrowserRobotCredentialsCopy(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 1, Reserved: 0}))
	admin := newChromium(t).person("admin", p)
	// The test reads the clipboard back, which a page may do only when
	// allowed.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		ctx, cancel := context.WithTimeout(admin.ctx, browserStep)
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted,
			Origin: p.url, BrowserContextID: chromedp.FromContext(admin.ctx).BrowserContextID})
		cancel()
		if err != nil {
			t.Fatalf("allow %s: %v", perm, err)
		}
	}
	admin.open("/admin/robot/")
	admin.waitPath("/accounts/login/")
	admin.loginHere(adminUser, adminPass)
	admin.waitPath("/admin/robot/")

	clipboard := func() string {
		ctx, cancel := context.WithTimeout(admin.ctx, 5*time.Second)
		defer cancel()
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return text
	}
	wantClipboard := func(what, want string) {
		t.Helper()
		if msg := eventually(browserStep, func() string {
			if got := clipboard(); got != want {
				return "the clipboard has " + got
			}
			return ""
		}); msg != "" {
			t.Errorf("%s: %s", what, msg)
		}
	}
	for id, want := range map[string]string{"url": p.url, "username": robotUser, "client-id": clientID,
		"password": robotPass, "client-secret": clientSecret} {
		value, button := "code#robot-"+id, `button.copy-button[data-copy="robot-`+id+`"]`
		if got, err := evalJS[string](admin, `document.querySelector(`+jsString(value)+`).textContent.trim()`); err != nil || got != want {
			t.Fatalf("%s shows %q (%v), want %q", value, got, err, want)
		}
		admin.click(button)
		admin.waitUntil(browserStep, "the button to say it copied", `(() => {
			const b = document.querySelector(`+jsString(button)+`);
			return b.textContent.trim() === "Copied" ? "" : "the button says " + b.textContent.trim();
		})()`)
		wantClipboard("Copy of the "+id, want)
	}
	admin.screenshot("admin-robot")

	// From the keyboard: focus the username's button, press Enter.
	ctx, cancel := context.WithTimeout(admin.ctx, 5*time.Second)
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`navigator.clipboard.writeText("").then(() => true)`, chromedp.EvalAwaitPromise))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	wantClipboard("the clipboard emptied", "")
	if _, err := evalJS[bool](admin, `document.querySelector('button.copy-button[data-copy="robot-username"]').focus() || true`); err != nil {
		t.Fatal(err)
	}
	admin.press("\r")
	wantClipboard("Enter on the username's Copy", robotUser)
}
