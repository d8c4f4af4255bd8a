package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestBrowserEducatesTerminal clicks every terminal, workshop and section
// action of the fixture testdata/educates/terminal in headless Chromium and
// checks what Educates documents happens: a command runs in the terminal it
// names, input is typed, a command is interrupted, terminals are cleared,
// text reaches the clipboard, a section opens with its autostart action,
// and a cascade reveals a hidden section.
func TestBrowserEducatesTerminal(t *testing.T) {
	p := startEducatesFixture(t, "terminal")
	b, _ := openFixtureSession(t, p)
	b.allowClipboard()
	// The page's autostart action ran as the page opened.
	b.waitTerminal("1", "page-42")

	actions := b.actionTitles()
	click := func(title string) {
		t.Helper()
		i := -1
		for j, a := range actions {
			if strings.Contains(a, title) {
				i = j
				break
			}
		}
		if i < 0 {
			t.Fatalf("no action %q among %q", title, actions)
		}
		b.clickAction(i)
	}

	click(`first-`)
	b.waitTerminal("1", "first-42")
	click(`second-`)
	b.waitTerminal("2", "second-42")
	click(`read -p`)
	b.waitTerminal("2", "Your name?")
	if text := b.terminalOf("2"); strings.Contains(text, "second-42") {
		t.Errorf("clear: true left the terminal's text:\n%s", text)
	}
	click(`portico`)
	b.waitTerminal("2", "hello-portico")
	click(`sleep 1000`)
	b.waitTerminal("1", "sleep 1000")
	click(`Interrupt command in terminal "1"`)
	click(`after-`)
	b.waitTerminal("1", "after-42")
	click(`named-`)
	b.waitTerminal("extra", "named-42")
	click(`everywhere-`)
	for _, id := range []string{"1", "2", "3", "extra"} {
		b.waitTerminal(id, "everywhere-42")
	}
	click(`Clear terminal "3"`)
	if msg := eventually(settle, func() string {
		if text := b.terminalOf("3"); strings.Contains(text, "everywhere-42") {
			return "terminal 3 still shows:\n" + text
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	for _, text := range []string{"copied-42", "edit-me-42"} {
		click(text)
		if msg := eventually(browserStep, func() string {
			if got := b.clipboard(); got != text {
				return "the clipboard holds " + got
			}
			return ""
		}); msg != "" {
			t.Fatalf("copy %s: %s", text, msg)
		}
	}

	// A section opens on a click, and its autostart action runs then.
	if text := b.terminalOf("1"); strings.Contains(text, "section-42") {
		t.Fatalf("the autostart action of a closed section ran:\n%s", text)
	}
	b.waitUntil(browserStep, "the section closed", `(() => {
		const c = [...document.querySelectorAll("#page .action-section-content")][0];
		return c && c.hidden && c.offsetParent === null ? "" : "section content shown";
	})()`)
	click(`Section: Questions`)
	b.waitUntil(browserStep, "the section open", `(() => {
		const c = [...document.querySelectorAll("#page .action-section-content")][0];
		return c && !c.hidden && c.textContent.includes("Inside the section.") ? "" : "section still closed";
	})()`)
	b.waitTerminal("1", "section-42")

	// A cascade runs the next action: here a hidden section, which opens.
	click(`Step: Run, then reveal`)
	b.waitTerminal("1", "cascade-42")
	b.waitUntil(browserStep, "the hidden section revealed", `(() => {
		const c = [...document.querySelectorAll("#page .action-section-content")][1];
		return c && !c.hidden && c.textContent.includes("Revealed by the cascade.") ? "" : "not revealed";
	})()`)
	click(`The end`)

	// Every action clicked is marked done, and none failed.
	b.waitUntil(browserStep, "every action done", `(() => {
		const failed = [...document.querySelectorAll("#page .action.failed")].map(a => a.textContent);
		if (failed.length) return "failed: " + failed.join(" | ");
		const left = [...document.querySelectorAll("#page .action:not(.done)")].map(a => a.textContent);
		return left.length ? "not done: " + left.join(" | ") : "";
	})()`)
	b.screenshot("educates-terminal")
}

// sessionOriginNow is the origin of the page the tab shows.
func (b *person) sessionOriginNow() string {
	b.t.Helper()
	origin, err := evalJS[string](b, `location.origin`)
	if err != nil {
		b.t.Fatal(err)
	}
	return origin
}

// allowClipboard lets the page of the tab read and write the clipboard, as
// a person who said yes to the browser's question.
func (b *person) allowClipboard() {
	b.t.Helper()
	origin := b.sessionOriginNow()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted,
			Origin: origin, BrowserContextID: chromedp.FromContext(b.ctx).BrowserContextID,
		}); err != nil {
			b.t.Fatalf("%s: allow %s: %v", b.name, name, err)
		}
	}
}

// clipboard is the text of the clipboard, as the page reads it.
func (b *person) clipboard() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return text
}

// actionTitles returns the text of each action of the page, in order.
func (b *person) actionTitles() []string {
	b.t.Helper()
	titles, err := evalJS[[]string](b, `[...document.querySelectorAll("#page .action")].map(a => a.textContent)`)
	if err != nil {
		b.t.Fatal(err)
	}
	return titles
}

// clickAction clicks the banner of the i-th action of the page, as a
// person does.
func (b *person) clickAction(i int) {
	b.t.Helper()
	if _, err := evalJS[bool](b, fmt.Sprintf(`(() => {
		const a = document.querySelectorAll("#page .action")[%d];
		a.id = "action-under-test";
		a.scrollIntoView({block: "center"});
		return true;
	})()`, i)); err != nil {
		b.t.Fatal(err)
	}
	b.click("#action-under-test .action-banner")
	// Done, or failed with the reason it shows.
	b.waitUntil(settle, "the action done", `(() => {
		const a = document.getElementById("action-under-test");
		if (a.classList.contains("failed")) return "failed: " + a.querySelector(".action-status").textContent;
		if (!a.classList.contains("done")) return "not done: " + a.className;
		a.removeAttribute("id");
		return "";
	})()`)
}

// terminalOf is the text of terminal id, visible or not: read from its
// buffer, as xterm.js draws no rows while its pane is hidden.
func (b *person) terminalOf(id string) string {
	text, err := evalJS[string](b, fmt.Sprintf(`(() => {
		const buf = window.Portico.terminals.get(%s).term.buffer.active, lines = [];
		for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i).translateToString(true));
		return lines.join("\n");
	})()`, jsString(id)))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return text
}

// waitTerminal waits until terminal id shows want.
func (b *person) waitTerminal(id, want string) {
	b.t.Helper()
	if msg := eventually(settle, func() string {
		if text := b.terminalOf(id); !strings.Contains(text, want) {
			return fmt.Sprintf("terminal %s shows:\n%s", id, text)
		}
		return ""
	}); msg != "" {
		b.t.Fatalf("%s: want %q: %s", b.name, want, msg)
	}
}
