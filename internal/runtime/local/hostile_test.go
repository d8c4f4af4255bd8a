package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// The files the runtime reads in a session home are the session's to
// replace with anything. Whatever it leaves there, a portal, restarted or
// not, must answer promptly, without reading more than a few kilobytes,
// and without following a symlink out of the home.

// hostileFiles are what a session can leave in place of a file the
// runtime reads, as sh commands that make "$1".
var hostileFiles = []struct{ name, sh string }{
	// An endless file: read whole, it fills the portal's memory.
	{"symlink to /dev/zero", `ln -s /dev/zero "$1"`},
	// An open for reading blocks until somebody opens it for writing.
	{"FIFO", `mkfifo "$1"`},
	// Read whole, 10 GB of memory; it takes no room on disk.
	{"10 GB sparse file", `truncate -s 10G "$1"`},
	{"directory", `mkdir "$1"`},
}

// makeHostile replaces path (which may be missing) with the hostile file
// made by the sh command mk.
func makeHostile(t *testing.T, path, mk string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", `rm -f "$1" && `+mk, "sh", path).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", mk, err, out)
	}
}

// promptly runs f and fails the test unless f returns within timeout,
// having allocated less than a few tens of megabytes meanwhile.
func promptly(t *testing.T, what string, timeout time.Duration, f func()) {
	t.Helper()
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("%s: no answer after %s", what, timeout)
	}
	goruntime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("%s: allocated %d MiB", what, grew>>20)
	}
}

// A session without a host, as a restarted portal finds one whose host
// died, with a hostile pid file or cgroups file: List and Status report
// it failed, and Stop removes it.
func TestHostileStateFilesOfADeadSession(t *testing.T) {
	ctx := context.Background()
	name := "portal-w01-s201"
	for _, file := range []string{pidFile, cgroupsFile} {
		for _, h := range hostileFiles {
			t.Run(filepath.Base(file)+"/"+h.name, func(t *testing.T) {
				dir := t.TempDir()
				home := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Join(home, sessionhost.StateDir), 0o700); err != nil {
					t.Fatal(err)
				}
				if file != pidFile {
					// pid 1 is no session's host.
					if err := os.WriteFile(filepath.Join(home, pidFile), []byte("1"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				makeHostile(t, filepath.Join(home, file), h.sh)
				r := newRuntime(t, dir, Options{}) // the portal restarts
				want := runtime.Instance{Session: name, Failed: "session host exited"}

				promptly(t, "List", 20*time.Second, func() {
					if list, err := r.List(ctx); err != nil || len(list) != 1 || list[0] != want {
						t.Errorf("List = %+v, %v; want [%+v]", list, err, want)
					}
				})
				promptly(t, "Status", 20*time.Second, func() {
					if st, err := r.Status(ctx, name); err != nil || st != want {
						t.Errorf("Status = %+v, %v; want %+v", st, err, want)
					}
				})
				promptly(t, "Stop", 20*time.Second, func() {
					if err := r.Stop(ctx, name); err != nil {
						t.Errorf("Stop: %v", err)
					}
				})
				if _, err := os.Lstat(home); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("home left behind: %v", err)
				}
			})
		}
	}
}

// A running session replaces the address its host published: a restarted
// portal lists it as not ready, and a Start that adopts it fails once its
// timeout passes, ending it.
func TestHostileAddressFile(t *testing.T) {
	ctx := context.Background()
	r := newRuntime(t, t.TempDir(), Options{})
	r.bwrap, r.cgroups = "", nil // what the test needs of a session: its home
	for i, h := range hostileFiles {
		t.Run(h.name, func(t *testing.T) {
			name := fmt.Sprintf("portal-w01-s21%d", i)
			_, home := startSession(t, r, testSpec(name))
			makeHostile(t, filepath.Join(home, sessionhost.AddressFile), h.sh)
			restarted := newRuntime(t, r.dir, Options{StartTimeout: time.Second})
			want := runtime.Instance{Session: name} // starting: not ready, no address

			promptly(t, "List", 20*time.Second, func() {
				list, err := restarted.List(ctx)
				if err != nil {
					t.Errorf("List: %v", err)
				}
				for _, inst := range list {
					if inst.Session == name && inst != want {
						t.Errorf("List: %+v, want %+v", inst, want)
					}
				}
			})
			promptly(t, "Status", 20*time.Second, func() {
				if st, err := restarted.Status(ctx, name); err != nil || st != want {
					t.Errorf("Status = %+v, %v; want %+v", st, err, want)
				}
			})
			promptly(t, "Start", 20*time.Second, func() {
				_, err := restarted.Start(ctx, testSpec(name))
				if err == nil || !strings.Contains(err.Error(), "not ready after") {
					t.Errorf("Start = %v, want a timeout", err)
				}
			})
			if _, err := os.Lstat(home); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("home left behind: %v", err)
			}
		})
	}
}

// A session host that replaces its log before it dies: the Start that
// fails says so promptly, with no more of the log than its last lines and
// nothing of a file the log was made to point to.
func TestHostileHostLog(t *testing.T) {
	ctx := context.Background()
	// The state directory of another session, and its log.
	other := t.TempDir()
	otherLog := filepath.Join(other, "host.log")
	if err := os.WriteFile(otherLog, []byte("another session's log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, sh string }{
		{"symlink to another session's log", `rm "$1" && ln -s "$2" "$1"`},
		// Refusing a symlink in the last component only is not enough.
		{"state directory replaced by a symlink", `cd "$(dirname "$1")/.." && mv .portico .portico-was && ln -s "$(dirname "$2")" .portico`},
	}
	for _, h := range hostileFiles {
		cases = append(cases, struct{ name, sh string }{h.name, `rm -f "$1" && ` + h.sh})
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			script := "echo host starting; " + c.sh + "; exit 3"
			r := newRuntime(t, t.TempDir(), Options{Command: []string{"sh", "-c", script, "sh", logFile, otherLog}})
			r.bwrap, r.cgroups = "", nil // the session's files are all the test needs
			name := fmt.Sprintf("portal-w01-s22%d", i)
			home := filepath.Join(r.dir, name)
			stopOnCleanup(t, r, name)

			promptly(t, "Start", 20*time.Second, func() {
				_, err := r.Start(ctx, testSpec(name))
				if err == nil || !strings.Contains(err.Error(), "session host exited") {
					t.Errorf("Start = %v, want the host's exit", err)
					return
				}
				if strings.Contains(err.Error(), "another session") {
					t.Errorf("Start error shows another session's log: %v", err)
				}
				if len(err.Error()) > 8<<10 {
					t.Errorf("Start error of %d bytes", len(err.Error()))
				}
			})
			if _, err := os.Lstat(home); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("home left behind: %v", err)
			}
			if b, err := os.ReadFile(otherLog); err != nil || string(b) != "another session's log\n" {
				t.Errorf("the other session's log is now %q, %v", b, err)
			}
		})
	}
}
