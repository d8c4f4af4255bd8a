package e2e

// The browser test of issue 4's startup timeout: a session whose setup
// takes longer than the workshop's overdue time is given up by the
// session page, which ends it and sends the person back to the catalog
// with the startup-timeout banner.

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startupOverdue is the overdue time of the slow workshop: how long the
// session page waits for the session before it gives up.
const startupOverdue = 5 * time.Second

// sessionEnd bounds the wait for a session the startup timeout ended to
// be gone: its setup script still runs, and must not hold the stop up.
const sessionEnd = 10 * time.Second

// slowDefinitions is the portal of the test with a workshop whose setup
// script sleeps for a minute, far past the entry's overdue time, and no
// reserve: the session is made, and its setup run, when it is started.
// The script is a workshop file in the Educates shape, in a directory
// next to the definitions file, which writeSlowWorkshop writes.
func slowDefinitions(t *testing.T) string {
	t.Helper()
	defs := definitions(entry{Capacity: 2, Reserved: 0})
	for _, r := range []struct{ old, new string }{
		{"      deadline: 120m\n", fmt.Sprintf("      deadline: 120m\n      overdue: %s\n", startupOverdue)},
		{"  session:\n    env:", `  workshop:
    files:
      - directory:
          path: slow-lab
        includePaths:
          - /workshop/**
  session:
    env:`},
	} {
		next := strings.Replace(defs, r.old, r.new, 1)
		if next == defs {
			t.Fatalf("definitions() has no %q to replace: update slowDefinitions", r.old)
		}
		defs = next
	}
	return defs
}

// slowSetup is the setup script: it sleeps far longer than the overdue
// time, so that the session is still starting when the page gives up.
const slowSetup = `#!/bin/sh
echo "slow setup: sleeping"
sleep 60
`

// writeSlowWorkshop writes the workshop directory of slowDefinitions
// next to the portal's definitions file.
func writeSlowWorkshop(t *testing.T, p *portal) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(p.config), "slow-lab", "workshop", "setup.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00-slow.sh"), []byte(slowSetup), 0o755); err != nil {
		t.Fatal(err)
	}
}

// sessionCommands returns the command lines of the live processes of
// session under dataDir, arguments joined by spaces.
func sessionCommands(dataDir, session string) []string {
	var cmds []string
	for _, proc := range processesBySession(dataDir)[session] {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", proc.PID))
		if err != nil {
			continue
		}
		cmds = append(cmds, strings.Join(strings.Fields(strings.ReplaceAll(string(raw), "\x00", " ")), " "))
	}
	return cmds
}

// TestBrowserStartupTimeout: someone starts a workshop whose session does
// not get ready within the workshop's overdue time. The session page
// shows its cover with a progress bar that advances, then gives up: the
// session is ended and the person is back on the catalog with the
// startup-timeout banner and no session.
func TestBrowserStartupTimeout(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, slowDefinitions(t))
	// Before any session exists (no reserve), so before any setup runs.
	writeSlowWorkshop(t, p)
	waitReserve(t, p, 0)
	robot := p.robot()
	carol := newChromium(t).person("carol", p)

	carol.register("carol")
	carol.waitCard("available")
	session := carol.startWorkshop()
	onPage := time.Now()

	// The cover, its progress bar counting to the overdue time.
	carol.waitUntil(browserStep, "the cover with its progress bar", fmt.Sprintf(`(() => {
		if (location.pathname !== %s) return "at " + location.href;
		const cover = document.querySelector("#cover");
		if (!cover || !cover.getClientRects().length) return "no #cover shown";
		const bar = cover.querySelector("progress#progress");
		if (!bar) return "no progress#progress in the cover";
		if (document.body.dataset.overdue !== %s) return "data-overdue " + document.body.dataset.overdue;
		if (!document.body.dataset.restart.includes("notification=startup-timeout")) return "data-restart " + document.body.dataset.restart;
		if (Number(bar.max) !== %d) return "progress max " + bar.max;
		return "";
	})()`, jsString("/workshops/session/"+session+"/"), jsString(fmt.Sprint(startupOverdue.Seconds())), int(startupOverdue.Seconds())))
	// What holds the session up is its setup script, sleeping.
	if msg := eventually(startupOverdue, func() string {
		cmds := sessionCommands(p.dataDir, session)
		for _, c := range cmds {
			if c == "sleep 60" {
				return ""
			}
		}
		return fmt.Sprintf("no sleep 60 among the processes of %s: %q", session, cmds)
	}); msg != "" {
		t.Errorf("the setup script does not run: %s", msg)
	}

	// The bar advances: its value grows between two reads while the
	// session is still starting.
	progress := func() (float64, error) {
		return evalJS[float64](carol, `(() => {
			const bar = document.querySelector("#cover progress#progress");
			return bar && location.pathname.startsWith("/workshops/session/") ? Number(bar.value) : -1;
		})()`)
	}
	first, err := progress()
	if err != nil || first < 0 {
		t.Fatalf("carol: the progress bar: %v (value %v, at %s)", err, first, carol.location())
	}
	var values []float64
	if msg := eventually(startupOverdue, func() string {
		v, err := progress()
		if err != nil {
			return err.Error()
		}
		values = append(values, v)
		if v <= first {
			return fmt.Sprintf("progress still %v", v)
		}
		return ""
	}); msg != "" {
		t.Errorf("carol: the progress bar did not advance from %v before the page gave up: %s (read %v)", first, msg, values)
	} else {
		t.Logf("progress bar: %v, then %v of %v", first, values[len(values)-1], startupOverdue.Seconds())
	}
	// With some progress shown, and seconds left before the page gives up.
	carol.screenshot("startup-cover")

	// The page gives up after the overdue time, and the catalog says why.
	carol.waitUntil(startupOverdue+10*time.Second, "the catalog after the startup timeout", `document.readyState === "complete" && location.pathname === "/workshops/catalog/" ? "" : "at " + location.href`)
	gaveUp := time.Since(onPage)
	t.Logf("the session page gave up after %s (overdue %s)", gaveUp.Round(100*time.Millisecond), startupOverdue)
	if gaveUp < startupOverdue-time.Second {
		t.Errorf("the session page gave up after %s, before the overdue time %s", gaveUp, startupOverdue)
	}
	carol.banner("startup-timeout")
	// The delete link answers with a redirect, so the main frame's
	// navigations show only where it led.
	if !carol.navigatedTo("/workshops/catalog/", url.Values{"notification": {"startup-timeout"}}) {
		t.Errorf("the page did not lead to the catalog with notification=startup-timeout; navigations %q",
			carol.navigationsSince("/workshops/session/"+session+"/"))
	}
	carol.screenshot("catalog-startup-timeout")

	// The catalog the page led to shows no session of carol's.
	state, err := evalJS[string](carol, `(() => {
		const a = document.querySelector(`+jsString(catalogCard+" .availability[data-state]")+`);
		return a ? a.dataset.state : "(no card)";
	})()`)
	if err != nil || state == "session" || state == "(no card)" {
		t.Errorf("carol's catalog after the startup timeout: availability %q (%v), want no session", state, err)
	}

	// The session has ended: the portal lists it no more, and its
	// processes, the sleeping setup script too, are gone. Ending a session
	// does not wait for its start to finish: the start is abandoned.
	if msg := eventually(sessionEnd, func() string {
		for _, s := range *robot.environment().Sessions {
			if s.Name == session {
				return "the portal still lists session " + session + " " + s.State
			}
		}
		if procs := processesBySession(p.dataDir)[session]; len(procs) > 0 {
			return fmt.Sprintf("session %s still has processes %+v", session, procs)
		}
		return ""
	}); msg != "" {
		t.Errorf("%s after the startup timeout ended it, want it gone within %s: %s", session, sessionEnd, msg)
	}
}
