package e2e

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// hostCommand returns the command line of the one session host of the
// portal's session, once it runs.
func hostCommand(t *testing.T, p *portal) []string {
	t.Helper()
	var args []string
	if msg := eventually(settle, func() string {
		for _, procs := range processesBySession(p.dataDir) {
			for _, sp := range procs {
				if sp.Host {
					b, err := os.ReadFile("/proc/" + strconv.Itoa(sp.PID) + "/cmdline")
					if err != nil {
						return err.Error()
					}
					args = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
					return ""
				}
			}
		}
		return "no session host runs"
	}); msg != "" {
		t.Fatalf("%s\n%s", msg, p.output())
	}
	return args
}

// A portal runs its sessions with portico-session from beside its own
// executable: the small program, not the portal re-executed.
func TestSessionsRunTheSessionBinary(t *testing.T) {
	p := startPortal(t, definitions(entry{Capacity: 1, Reserved: 1}))
	if args := hostCommand(t, p); args[0] != sessionBinary {
		t.Errorf("session host %q, want %s", args, sessionBinary)
	}
	if strings.Contains(p.output(), "no portico-session beside the portal") {
		t.Errorf("the portal warns of a missing session binary that is there:\n%s", p.output())
	}
}

// A portal with no portico-session beside it (go run ./cmd/portico, the
// quick start) still runs sessions, as its own binary, and says what that
// costs and how to do better.
func TestSessionsRunThePortalWithoutTheSessionBinary(t *testing.T) {
	requireBinary(t)
	alone := filepath.Join(t.TempDir(), "portico")
	copyExecutable(t, binary, alone)
	p := newPortal(t, definitions(entry{Capacity: 1, Reserved: 1}))
	p.program = alone
	p.start()
	p.waitReady()
	if args := hostCommand(t, p); args[0] != alone || len(args) < 2 || args[1] != "sessionhost" {
		t.Errorf("session host %q, want %s sessionhost", args, alone)
	}
	if !strings.Contains(p.output(), "no portico-session beside the portal") || !strings.Contains(p.output(), "--session-binary") {
		t.Errorf("no warning of the missing session binary:\n%s", p.output())
	}
}

// --session-binary names the program wherever it is; one that is no
// session host stops the portal at start, not each session later.
func TestSessionBinaryFlag(t *testing.T) {
	requireBinary(t)
	// Named as the tests tell hosts by (isHost).
	elsewhere := filepath.Join(t.TempDir(), "portico-session")
	copyExecutable(t, sessionBinary, elsewhere)
	p := newPortal(t, definitions(entry{Capacity: 1, Reserved: 1}), "--session-binary", elsewhere)
	p.start()
	p.waitReady()
	if args := hostCommand(t, p); args[0] != elsewhere {
		t.Errorf("session host %q, want %s", args, elsewhere)
	}

	wrong := newPortal(t, definitions(entry{Capacity: 1}), "--session-binary", binary)
	wrong.start()
	if !wrong.awaitExit(settle) {
		t.Fatalf("the portal runs with the portal binary as --session-binary:\n%s", wrong.output())
	}
	if want := fmt.Sprintf("--session-binary: %s is github.com/portico-dev/portico/cmd/portico, not github.com/portico-dev/portico/cmd/portico-session", binary); !strings.Contains(wrong.output(), want) {
		t.Errorf("the portal's output does not say %q:\n%s", want, wrong.output())
	}
}

// copyExecutable copies the program at from to to.
func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
