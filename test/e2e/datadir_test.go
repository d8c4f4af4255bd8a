package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// serveOnce runs `portico serve` on dataDir with args, as a second portal
// would be started by hand, and returns its output and exit error. A
// portal that does not exit within the bound is killed: it was meant to
// refuse at once.
func serveOnce(t *testing.T, config, dataDir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--config", config, "--data-dir", dataDir,
		"--listen", freeAddr(t)}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second portal on the data directory still runs after 10s, want it refused at once; its output:\n%s", out)
	}
	return string(out), err
}

// TestSecondPortalOnOneDataDir starts a portal on SQLite, gives out a
// session, and starts other portals in its data directory (issue 15): each
// must exit non-zero at once, naming the running portal's PID and the ways
// forward, and leave the running portal and its sessions alone.
func TestSecondPortalOnOneDataDir(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 3, Reserved: 1}))
	robot := p.robot()
	a := robot.request("alice", "timeout=0")
	awaitDelivered(t, robot, a.Name)
	before := processesBySession(p.dataDir)
	if hosts(before[a.Name]) != 1 {
		t.Fatalf("session %s has processes %+v, want one host", a.Name, before[a.Name])
	}
	config := filepath.Dir(p.config)
	pid := strconv.Itoa(p.cmd.Process.Pid)

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		// The case: a second SQLite portal on another port.
		{"on SQLite", nil, []string{"pid " + pid, "--data-dir", "--database postgres://"}},
		// A replica on PostgreSQL would adopt and stop the SQLite portal's
		// sessions as its own: refused before it reaches any database.
		{"on PostgreSQL", []string{"--database", "postgres://portico@127.0.0.1:1/none"}, []string{"pid " + pid, "--data-dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := serveOnce(t, config, p.dataDir, tc.args...)
			if err == nil {
				t.Fatalf("second portal exited 0; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("second portal's message lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "portal serving") || strings.Contains(out, "ending sessions") {
				t.Errorf("second portal got as far as serving or ending sessions:\n%s", out)
			}
		})
	}

	// The first portal and its sessions carry on as if nothing happened.
	time.Sleep(time.Second) // what a host would need to be noticed gone
	if !p.running() {
		t.Fatal("the running portal exited")
	}
	after := processesBySession(p.dataDir)
	for name, procs := range before {
		if hosts(after[name]) != 1 {
			t.Errorf("session %s had processes %+v, now %+v", name, procs, after[name])
		}
	}
	var sc schedule
	robot.mustGet("/workshops/session/"+a.Name+"/schedule/", &sc)
	if sc.Status == "" || sc.Status == "STOPPING" || sc.Status == "STOPPED" {
		t.Errorf("alice's session after the refused starts: %s", sc)
	}
	if strings.Contains(p.output(), "exited by itself") {
		t.Errorf("the running portal lost a session host:\n%s", p.output())
	}
	p.stop()

	// Once it has stopped, the data directory is free again.
	p.restart()
	p.stop()
}
