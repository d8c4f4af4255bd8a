package e2e

// The harness of the browser tests: a headless Chromium driven with
// chromedp against the real portal binary. Each test starts one Chromium;
// each person in a test is a tab in a browser context of its own, with
// its own cookies, as two people on two machines are. The tests are in
// browser_flows_test.go.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

const (
	// The window of every tab, fixed so that screenshots are reproducible.
	windowWidth, windowHeight = 1280, 800

	// browserBudget bounds a whole browser test: the browser is killed
	// after it, so that a hung page never hangs `go test`.
	browserBudget = 3 * time.Minute

	// browserStep bounds one action of the browser (a click, a navigation): they
	// are quick, and a longer wait is a poll with its own timeout.
	browserStep = 20 * time.Second
)

// chromiumPath returns the Chromium binary the tests drive, or "" when
// none is installed. Debian's /usr/bin/chromium is a shell wrapper that
// adds flags of its own: the real binary is preferred.
func chromiumPath() string {
	if fi, err := os.Stat("/usr/lib/chromium/chromium"); err == nil && !fi.IsDir() {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// chromium is one headless browser of a test.
type chromium struct {
	t      *testing.T
	ctx    context.Context // of the browser's first tab, unused otherwise
	output *syncBuffer     // what the browser printed
}

// requireChromium skips the test when no Chromium is installed; a test
// calls it before it starts a portal for nothing.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("the browser tests need Chromium (/usr/lib/chromium/chromium or chromium on PATH): apt-get install -y chromium")
	}
	return path
}

// newChromium starts a headless Chromium for t; cleanup kills it and its
// child processes. It skips the test when no Chromium is installed.
func newChromium(t *testing.T) *chromium {
	t.Helper()
	requireBinary(t)
	path := requireChromium(t)
	out := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.NoFirstRun,
		chromedp.WindowSize(windowWidth, windowHeight),
		chromedp.CombinedOutput(out),
	)
	budget, cancelBudget := context.WithTimeout(context.Background(), browserBudget)
	alloc, cancelAlloc := chromedp.NewExecAllocator(budget, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	c := &chromium{t: t, ctx: ctx, output: out}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser to exit and kills what it left
		cancelBudget()
		if t.Failed() {
			t.Logf("output of Chromium (without its complaints about D-Bus):\n%s", withoutDBus(out.String()))
		}
	})
	// The first action starts the browser; its life is bound to the
	// context of this call, which has only the budget's deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v\n%s", path, err, out.String())
	}
	return c
}

// withoutDBus drops the lines of Chromium's output about D-Bus, which a
// machine without a desktop does not run, and which say nothing of a test.
func withoutDBus(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if !strings.Contains(line, "dbus") && !strings.Contains(line, "D-Bus") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer safe for the browser's output goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// person is a tab of its own browser context (an incognito window): its
// cookies are its own.
type person struct {
	t    *testing.T
	name string // for messages
	ctx  context.Context
	base string // the portal's URL
	// domain is the one the portal serves sessions under, <session>.<domain>.
	domain string

	mu          sync.Mutex
	dialogs     []string // messages of the dialogs accepted
	navigations []string // URLs the main frame navigated to, in order
	exceptions  []string // uncaught JavaScript exceptions
}

// person opens a tab in a new browser context for someone called name,
// on the portal p.
func (c *chromium) person(name string, p *portal) *person {
	c.t.Helper()
	ctx, cancel := chromedp.NewContext(c.ctx, chromedp.WithNewBrowserContext())
	c.t.Cleanup(cancel)
	b := &person{t: c.t, name: name, ctx: ctx, base: p.url, domain: cmp.Or(p.sessionDomain, "localhost")}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(windowWidth, windowHeight)); err != nil {
		c.t.Fatalf("%s: open a tab: %v", name, err)
	}
	// Accept every dialog (the confirmation of Finish); a dialog blocks
	// the page, and every action on it, until it is answered.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	// Record where the main frame goes, query included: a page may tidy
	// its address bar with history.replaceState after loading.
	navigated := chromedp.Events(ctx, page.FrameNavigated)
	go func() {
		for ev, err := range navigated {
			if err != nil {
				return
			}
			if ev.Frame != nil && ev.Frame.ParentID == "" {
				b.mu.Lock()
				b.navigations = append(b.navigations, ev.Frame.URL)
				b.mu.Unlock()
			}
		}
	}()
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			msg := (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
			b.mu.Lock()
			b.exceptions = append(b.exceptions, msg)
			b.mu.Unlock()
		}
	}()
	c.t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.exceptions) > 0 {
			c.t.Logf("%s: uncaught JavaScript exceptions:\n%s", name, strings.Join(b.exceptions, "\n"))
		}
		if c.t.Failed() {
			c.t.Logf("%s: navigations: %q", name, b.navigations)
		}
	})
	return b
}

// do runs actions in the tab, with a timeout of browserStep; it fails the test
// with what as the description.
func (b *person) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %s: %v (at %s)", b.name, what, err, b.location())
	}
}

// open navigates to path (relative to the portal, or absolute) and waits
// for the page to load.
func (b *person) open(path string) {
	b.t.Helper()
	target := path
	if !strings.Contains(path, "://") {
		target = b.base + path
	}
	b.do("open "+path, chromedp.Navigate(target))
}

// status navigates to path and returns the HTTP status of the page.
func (b *person) status(path string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(b.base+path))
	if err != nil || resp == nil {
		b.t.Fatalf("%s: open %s: %v", b.name, path, err)
	}
	return resp.Status
}

// location is the URL of the tab's page, or the error reading it.
func (b *person) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(location: " + err.Error() + ")"
	}
	return loc
}

// evalJS evaluates a JavaScript expression in the page and decodes its
// value into a T.
func evalJS[T any](b *person, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// waitUntil evaluates check, a JavaScript expression that gives a string,
// until it gives "" (the page is as wanted), and fails the test with its
// last complaint after timeout. Errors of evaluation (the page is between
// two documents) count as complaints.
func (b *person) waitUntil(timeout time.Duration, what, check string) {
	b.t.Helper()
	if msg := eventually(timeout, func() string {
		msg, err := evalJS[string](b, check)
		if err != nil {
			return err.Error()
		}
		return msg
	}); msg != "" {
		b.t.Fatalf("%s: %s: not after %s: %s (at %s)", b.name, what, timeout, msg, b.location())
	}
}

// waitPath waits until the page is the portal's path (query ignored) and
// returns its URL.
func (b *person) waitPath(path string) *url.URL {
	b.t.Helper()
	var u *url.URL
	if msg := eventually(settle, func() string {
		loc, err := evalJS[string](b, `document.readyState === "complete" ? location.href : ""`)
		if err != nil {
			return err.Error()
		}
		if u, err = url.Parse(loc); err != nil || loc == "" {
			return "loading"
		}
		if u.Path != path {
			return "at " + loc
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: want to be at %s: %s", b.name, path, msg)
	}
	return u
}

// waitLocation waits until the page is at target (an absolute URL; query
// ignored) and returns its URL.
func (b *person) waitLocation(target string) *url.URL {
	b.t.Helper()
	want, err := url.Parse(target)
	if err != nil {
		b.t.Fatal(err)
	}
	var u *url.URL
	if msg := eventually(settle, func() string {
		loc, err := evalJS[string](b, `document.readyState === "complete" ? location.href : ""`)
		if err != nil {
			return err.Error()
		}
		if u, err = url.Parse(loc); err != nil || loc == "" {
			return "loading"
		}
		if u.Scheme != want.Scheme || u.Host != want.Host || u.Path != want.Path {
			return "at " + loc
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: want to be at %s: %s", b.name, target, msg)
	}
	return u
}

// navigatedTo reports whether the main frame went to a URL with the given
// path whose query has every key and value of want.
func (b *person) navigatedTo(path string, want url.Values) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, nav := range b.navigations {
		u, err := url.Parse(nav)
		if err != nil || u.Path != path {
			continue
		}
		q, ok := u.Query(), true
		for k := range want {
			ok = ok && q.Get(k) == want.Get(k)
		}
		if ok {
			return true
		}
	}
	return false
}

// navigationsSince returns the URLs the main frame went to after the
// last one with path.
func (b *person) navigationsSince(path string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.navigations) - 1; i >= 0; i-- {
		if u, err := url.Parse(b.navigations[i]); err == nil && u.Path == path {
			return append([]string(nil), b.navigations[i+1:]...)
		}
	}
	return append([]string(nil), b.navigations...)
}

// dialogMessages returns the messages of the dialogs accepted so far.
func (b *person) dialogMessages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// screenshot saves a full-page PNG of the tab into the test's artifact
// directory (kept with go test -artifacts -outputdir DIR).
func (b *person) screenshot(name string) {
	b.t.Helper()
	// The page, its style sheets (in frames too) and its fonts are in.
	b.waitUntil(browserStep, "the page complete for a screenshot", `(() => {
		const docs = [document, ...[...document.querySelectorAll("iframe")].map(f => f.contentDocument).filter(d => d)];
		for (const d of docs) {
			if (d.readyState !== "complete") return "loading " + d.URL;
			const pending = [...d.querySelectorAll("link[rel=stylesheet]")].filter(l => !l.sheet);
			if (pending.length) return "style sheet " + pending[0].href + " not loaded";
			if (d.fonts && d.fonts.status !== "loaded") return "fonts loading";
		}
		return "";
	})()`)
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("%s: screenshot %s: %v", b.name, name, err)
	}
	path := filepath.Join(b.t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// submitButton is the selector of the button that submits form.
func submitButton(form string) string {
	return form + ` :is(button:not([type]), button[type=submit], input[type=submit])`
}

// fill types values into the named inputs of form, in order, and submits
// it with its button, as a person does.
func (b *person) fill(form string, fields ...string) {
	b.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		sel := chromedp.CSS(fmt.Sprintf(`%s input[name=%q]`, form, fields[i]))
		actions = append(actions, chromedp.Clear(sel), chromedp.SendKeys(sel, fields[i+1]))
	}
	actions = append(actions, chromedp.Click(chromedp.CSS(submitButton(form))))
	b.do("fill in "+form, actions...)
}

// click clicks the element sel selects, with the mouse.
func (b *person) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// submitAndLoad clicks a submit button sel selects and waits for the
// page the form leads to. The admin pages refresh a live region in place
// every few seconds, which can replace the button between its lookup and
// the click: a click that fails before the mouse is pressed is tried
// again.
func (b *person) submitAndLoad(sel string) {
	b.t.Helper()
	// A mark on the window, which the next document has not.
	if _, err := evalJS[bool](b, `window.porticoTestMark = true`); err != nil {
		b.t.Fatalf("%s: mark the page: %v", b.name, err)
	}
	var err error
	for range 3 {
		ctx, cancel := context.WithTimeout(b.ctx, browserStep)
		var nodes []*chromedp.Node
		nodes, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(sel), chromedp.NodeVisible))
		if err == nil {
			err = chromedp.Do(ctx, chromedp.MouseClickNode(nodes[0]))
		}
		cancel()
		if err == nil || ctx.Err() != nil || b.t.Context().Err() != nil {
			break
		}
		// Still on the page: the button went before the press, so try
		// again. Else the click went through after all.
		if still, _ := evalJS[bool](b, `window.porticoTestMark === true`); !still {
			err = nil
			break
		}
	}
	if err != nil {
		b.t.Fatalf("%s: click %s: %v", b.name, sel, err)
	}
	b.waitUntil(settle, "the page after "+sel, `window.porticoTestMark ? "still on the page" : document.readyState === "complete" ? "" : "loading"`)
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

// attendeePassword is the password of everyone who registers: long enough, not
// common, not all digits, like no username of the tests.
const attendeePassword = "quiet-Harbor-4812"

// register signs user up with the registration form and waits for the
// catalog it leads to.
func (b *person) register(user string) {
	b.t.Helper()
	b.open("/accounts/register/")
	b.registerHere(user)
}

// registerHere fills in the registration form of the current page.
func (b *person) registerHere(user string) {
	b.t.Helper()
	b.waitUntil(settle, "registration form", `document.querySelector("form#register") ? "" : "no form#register"`)
	b.fill("form#register", "username", user, "email", user+"@example.com", "password1", attendeePassword, "password2", attendeePassword)
	// The form answers with its errors, or leads to the catalog.
	if msg := eventually(settle, func() string {
		state, err := evalJS[string](b, `document.readyState !== "complete" ? "loading" :
			location.pathname === "/workshops/catalog/" ? "" :
			[...document.querySelectorAll(".field-error")].map(e => e.textContent.trim()).join("; ") || "at " + location.href`)
		if err != nil {
			return err.Error()
		}
		return state
	}); msg != "" {
		b.t.Fatalf("%s: registration did not lead to the catalog: %s", b.name, msg)
	}
}

// login logs in with the login form of the current page.
func (b *person) loginHere(user, pass string) {
	b.t.Helper()
	b.waitUntil(settle, "login form", `document.querySelector("form#login") ? "" : "no form#login"`)
	b.fill("form#login", "username", user, "password", pass)
}

// catalogCard is the selector of the catalog card of the test environment.
const catalogCard = `#catalog article.workshop[data-environment="` + envName + `"]`

// waitCard waits for the catalog to show the test environment whose
// availability is state, reloading it while the environment is not
// running yet (the catalog lists running environments only).
func (b *person) waitCard(state string) {
	b.t.Helper()
	check := fmt.Sprintf(`(() => {
		const c = document.querySelector(%s);
		if (!c) return "no card of %s";
		const a = c.querySelector(".availability[data-state]");
		if (!a) return "card without .availability[data-state]";
		if (a.dataset.state !== %s) return "availability " + a.dataset.state;
		if (!c.querySelector("h2") || !c.querySelector("a.start")) return "card without h2 or a.start";
		return "";
	})()`, jsString(catalogCard), envName, jsString(state))
	if msg := eventually(settle, func() string {
		msg, err := evalJS[string](b, check)
		if err != nil {
			return err.Error()
		}
		if strings.HasPrefix(msg, "no card") {
			b.do("reload the catalog", chromedp.Reload())
		}
		return msg
	}); msg != "" {
		b.t.Fatalf("%s: catalog: %s (at %s)", b.name, msg, b.location())
	}
}

// banner waits for the catalog's banner of a notification.
func (b *person) banner(notification string) {
	b.t.Helper()
	b.waitUntil(settle, "banner "+notification, fmt.Sprintf(`(() => {
		const el = document.querySelector('.banner[data-notification=%s]');
		if (!el) return "no banner; banners: " + [...document.querySelectorAll(".banner")].map(e => e.dataset.notification).join(", ");
		return el.getClientRects().length ? "" : "banner hidden";
	})()`, jsString(notification)))
}

// flash waits for the flash message of an admin page and returns it.
func (b *person) flash() string {
	b.t.Helper()
	b.waitUntil(settle, "a flash message", `(() => {
		const el = document.querySelector(".flash");
		return el && el.textContent.trim() ? "" : "no .flash";
	})()`)
	text, _ := evalJS[string](b, `document.querySelector(".flash").textContent.trim()`)
	return text
}

// startWorkshop clicks the start link of the test environment in the
// catalog and returns the session it leads to.
func (b *person) startWorkshop() string {
	b.t.Helper()
	b.click(catalogCard + " a.start")
	return b.startedSession()
}

// startedSession waits until the tab is on a session's page on the
// portal, or on the session's own origin, and returns the session's name.
func (b *person) startedSession() string {
	b.t.Helper()
	var name string
	if msg := eventually(settle, func() string {
		href, err := evalJS[string](b, `location.href`)
		if err != nil {
			return err.Error()
		}
		u, err := url.Parse(href)
		if err != nil {
			return "at " + href
		}
		if label, ok := strings.CutSuffix(u.Hostname(), "."+b.domain); ok && !strings.Contains(label, ".") {
			name = label
			return ""
		}
		rest, ok := strings.CutPrefix(u.Path, "/workshops/session/")
		if !ok || !strings.HasSuffix(rest, "/") || strings.Count(rest, "/") != 1 {
			return "at " + href
		}
		name = strings.TrimSuffix(rest, "/")
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: not led to a session page: %s", b.name, msg)
	}
	return name
}

// sessionOrigin is the origin the portal serves session from.
func (b *person) sessionOrigin(session string) string {
	u, err := url.Parse(b.base)
	if err != nil {
		b.t.Fatal(err)
	}
	return "http://" + session + "." + b.domain + ":" + u.Port()
}

// waitDashboard waits until the tab shows the dashboard of session, on
// the session's own origin, with a connected terminal.
func (b *person) waitDashboard(session string) {
	b.t.Helper()
	b.waitUntil(settle, "the dashboard", fmt.Sprintf(`(() => {
		if (location.origin !== %s) return "at " + location.href;
		const d = document;
		if (d.readyState !== "complete") return "dashboard loading";
		if (!d.querySelector("#countdown")) return "dashboard without #countdown";
		const pane = d.querySelector(".terminal-pane:not([hidden])");
		if (!pane || !pane.querySelector(".xterm-rows")) return "no terminal";
		const tab = d.querySelector(".tab[aria-selected=true]");
		if (tab && tab.classList.contains("disconnected")) return "terminal disconnected";
		if (!pane.querySelector(".xterm-rows").textContent.trim()) return "no prompt yet";
		return "";
	})()`, jsString(b.sessionOrigin(session))))
}

// terminalText is the text the dashboard's visible terminal shows.
func (b *person) terminalText() string {
	text, err := evalJS[string](b, `(() => {
		return [...document.querySelectorAll(".terminal-pane:not([hidden]) .xterm-rows > div")].map(r => r.textContent).join("\n");
	})()`)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return text
}

// typeInTerminal clicks the visible terminal of the dashboard, types line
// and Enter, and waits until the terminal shows want.
func (b *person) typeInTerminal(line, want string) {
	b.t.Helper()
	b.click(".terminal-pane:not([hidden]) .xterm-screen")
	b.waitUntil(browserStep, "focus in the terminal", `(() => {
		const d = document;
		return d.activeElement && d.activeElement.classList.contains("xterm-helper-textarea") ? "" : "focus on " + (d.activeElement && d.activeElement.outerHTML.slice(0, 80));
	})()`)
	b.do("type in the terminal", typeKeys(line+"\r"))
	if msg := eventually(settle, func() string {
		if text := b.terminalText(); !strings.Contains(text, want) {
			return "the terminal shows:\n" + text
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: typed %q, want %q: %s", b.name, line, want, msg)
	}
}

// typeKeys types text into the focused element as a keyboard does, one
// keyDown that carries the character's text and one keyUp a key. That is
// what a person's typing looks like to a page. chromedp.KeyEvent sends
// the text in a separate char event after the keyDown, and xterm.js takes
// each of them as a key press: every character twice.
func typeKeys(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range text {
			down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: string(r), Text: string(r), UnmodifiedText: string(r)}
			if k, ok := kb.Keys[r]; ok {
				down.Key, down.Code, down.Text, down.UnmodifiedText = k.Key, k.Code, k.Text, k.Unmodified
				down.WindowsVirtualKeyCode, down.NativeVirtualKeyCode = k.Windows, k.Native
				if k.Shift {
					down.Modifiers = int64(chromedp.ModifierShift)
				}
			}
			up := down
			up.Type, up.Text, up.UnmodifiedText = input.DispatchKeyEventTypeKeyUp, "", ""
			for _, ev := range []input.DispatchKeyEventParams{down, up} {
				if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, ev); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// countdown is the dashboard's #countdown text.
func (b *person) countdown() string {
	text, err := evalJS[string](b, `(() => {
		const c = document.querySelector("#countdown");
		return c ? (c.hidden ? "(hidden)" : c.textContent.trim()) : "(no #countdown)";
	})()`)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return text
}

// countdownSeconds parses a countdown, h:mm:ss or m:ss; -1 when it is not one.
func countdownSeconds(countdown string) int {
	total := 0
	parts := strings.Split(countdown, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return -1
	}
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return -1
		}
		total = total*60 + n
	}
	return total
}

// countdownOf formats seconds as the dashboard does, for messages.
func (b *person) countdownOf(secs int) string {
	if secs < 0 {
		return "(none)"
	}
	if secs >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", secs/3600, secs%3600/60, secs%60)
	}
	return fmt.Sprintf("%d:%02d", secs/60, secs%60)
}

// waitCountdown waits until the countdown satisfies ok, and returns it.
func (b *person) waitCountdown(timeout time.Duration, what string, ok func(text string) bool) string {
	b.t.Helper()
	var text string
	if msg := eventually(timeout, func() string {
		if text = b.countdown(); !ok(text) {
			return "#countdown shows " + text
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: want the countdown %s: %s", b.name, what, msg)
	}
	return text
}

// finish clicks Finish in the dashboard, accepts its confirmation, and
// waits until the tab has left the session.
func (b *person) finish(session string) {
	b.t.Helper()
	before := len(b.dialogMessages())
	b.click("#finish")
	if msg := eventually(settle, func() string {
		if len(b.dialogMessages()) == before {
			return "no confirmation asked"
		}
		loc, err := evalJS[string](b, `location.href`)
		if err != nil {
			return err.Error()
		}
		if strings.HasPrefix(loc, b.sessionOrigin(session)+"/") || strings.HasPrefix(loc, b.base+"/workshops/session/"+session+"/") {
			return "still at " + loc
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: finish: %s", b.name, msg)
	}
}
