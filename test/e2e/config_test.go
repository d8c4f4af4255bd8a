package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadOnSIGHUP changes the definitions of a running portal: SIGHUP
// applies capacity and reserve changes, and a definition that does not load
// is rejected with an error naming its file while the running one is kept.
func TestReloadOnSIGHUP(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 3, Reserved: 1}))
	robot := p.robot()

	// wants waits until the environment has these numbers and a session
	// process for each of its live sessions, and no other.
	wants := func(when string, capacity, reserved, allocated, available int) {
		t.Helper()
		if msg := eventually(settle, func() string {
			env := robot.status()
			procs := processesBySession(p.dataDir)
			if env.Capacity != capacity || env.Reserved != reserved || env.Allocated != allocated || env.Available != available ||
				len(procs) != allocated+available {
				return fmt.Sprintf("status %+v, processes of %v; want capacity %d, reserved %d, %d allocated, %d available",
					env, sortedKeys(procs), capacity, reserved, allocated, available)
			}
			return ""
		}); msg != "" {
			t.Fatalf("%s: %s", when, msg)
		}
	}
	// rejections returns the log lines of rejected reloads.
	rejections := func() []string {
		var lines []string
		for line := range strings.Lines(p.output()) {
			if strings.Contains(line, "reload rejected") {
				lines = append(lines, line)
			}
		}
		return lines
	}
	reload := func(defs string) {
		t.Helper()
		p.writeConfig(defs)
		p.signal(syscall.SIGHUP)
	}
	rejected := func(n int, what ...string) {
		t.Helper()
		if msg := eventually(settle, func() string {
			if got := rejections(); len(got) != n {
				return fmt.Sprintf("%d rejected reloads logged, want %d", len(got), n)
			}
			return ""
		}); msg != "" {
			t.Fatal(msg)
		}
		line := rejections()[n-1]
		for _, w := range append([]string{"level=ERROR", p.config}, what...) {
			if !strings.Contains(line, w) {
				t.Errorf("rejected reload logged as %q, which does not name %q", line, w)
			}
		}
	}

	wants("at start", 3, 1, 0, 1)

	// More capacity and a larger reserve.
	reload(definitions(entry{Capacity: 5, Reserved: 2}))
	wants("after reloading capacity 5, reserved 2", 5, 2, 0, 2)
	if msg := eventually(settle, func() string {
		if !strings.Contains(p.output(), "definitions reloaded") {
			return "reload not logged"
		}
		return ""
	}); msg != "" {
		t.Error(msg)
	}
	alice := robot.request("alice", "timeout=0")
	p.activate(alice)
	wants("with alice's session", 5, 2, 1, 2)

	// Broken YAML: rejected, the running definitions kept.
	reload("apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata: {name: e2e\nspec: [\n")
	rejected(1, "invalid YAML")
	// An invalid field: rejected too, naming the field.
	reload(definitions(entry{Capacity: 4, Reserved: 1, Expires: "soon"}))
	rejected(2, "spec.workshops[0].expires")
	if !p.running() {
		t.Fatal("the portal exited after a bad reload")
	}
	bob := robot.request("bob", "timeout=0")
	wants("after the rejected reloads", 5, 2, 2, 2)
	for _, a := range []allocation{alice, bob} {
		if status := robot.get("/workshops/session/"+a.Name+"/schedule/", nil); status != http.StatusOK {
			t.Errorf("schedule of %s after the rejected reloads: %d", a.Name, status)
		}
	}

	// A good definition applies again: the reserve is trimmed, the
	// allocated sessions stay.
	reload(definitions(entry{Capacity: 4, Reserved: 1}))
	wants("after reloading capacity 4, reserved 1", 4, 1, 2, 1)
	if got := len(rejections()); got != 2 {
		t.Errorf("%d rejected reloads logged, want 2", got)
	}
	p.stop()
}

// TestBadConfigStopsStartup starts `portico serve` on bad definitions: it
// exits non-zero, with an error naming the file and the field.
func TestBadConfigStopsStartup(t *testing.T) {
	requireBinary(t)
	withoutWorkshop, _, _ := strings.Cut(definitions(entry{Capacity: 2, Reserved: 1}), "\n---\n")
	for _, tc := range []struct {
		name, defs string
		want       []string
	}{
		{"bad duration", definitions(entry{Capacity: 2, Reserved: 1, Expires: "soon"}),
			[]string{"portal.yaml:", "spec.workshops[0].expires", `"soon" is not a duration`}},
		{"negative capacity", definitions(entry{Capacity: -2, Reserved: 1}),
			[]string{"portal.yaml:", "spec.workshops[0].capacity"}},
		{"workshop not defined", withoutWorkshop,
			[]string{"portal.yaml:", "spec.workshops[0].name", `no Workshop named "lab-e2e"`}},
		{"broken YAML", "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nspec: [\n",
			[]string{"portal.yaml", "invalid YAML"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "config", "portal.yaml")
			if err := os.Mkdir(filepath.Dir(config), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(config, []byte(tc.defs), 0o600); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(dir, "data")
			addr := freeAddr(t)
			ctx, cancel := context.WithTimeout(context.Background(), settle)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--config", filepath.Dir(config), "--data-dir", dataDir, "--listen", addr)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case ctx.Err() != nil:
				t.Fatalf("portico serve still runs after %s on bad definitions:\n%s", settle, out)
			case !errors.As(err, &exit) || exit.ExitCode() <= 0:
				t.Fatalf("portico serve on bad definitions: %v, want a non-zero exit\n%s", err, out)
			}
			for _, w := range append([]string{config}, tc.want...) {
				if !strings.Contains(string(out), w) {
					t.Errorf("error does not name %q:\n%s", w, out)
				}
			}
			if pids := sessionProcesses(dataDir); len(pids) > 0 {
				t.Errorf("session processes %v started on bad definitions", pids)
				killSessions(dataDir)
			}
			if c, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/"); err == nil {
				c.Body.Close()
				t.Errorf("something serves on %s after a failed start", addr)
			}
		})
	}
}
