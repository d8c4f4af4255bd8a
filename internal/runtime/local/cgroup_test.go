package local

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/runtime"
)

// requireV2Limits skips the test unless the v2 hierarchy is where session
// limits must come from: it offers memory, pids and cpu to the portal's
// own cgroup, and no v1 hierarchy has them. This looks at the hierarchy,
// not at what the runtime made of it, so that a runtime that fails to
// enable the controllers fails the test rather than skipping it.
func requireV2Limits(t *testing.T) {
	t.Helper()
	cs := detectCgroups()
	if cs.v2 == "" {
		t.Skip("no v2 cgroup this process may create (a pure cgroup v2 host, root or Delegate=yes): see /work/shared/tools/cgroup2-vm")
	}
	b, _ := os.ReadFile(filepath.Join(cs.v2, "cgroup.controllers"))
	offered := strings.Fields(string(b))
	for _, c := range limitControllers {
		if cs.v1[c] != "" || !slices.Contains(offered, c) {
			t.Skipf("the %s controller is not the v2 hierarchy's here (v1: %q; offered in %s: %q)", c, cs.v1[c], cs.v2, offered)
		}
	}
}

// On a pure cgroup v2 host, the portal's own cgroup holds processes: the
// portal at least (a systemd service), the shell and sudo that ran it too
// (a login shell). The kernel refuses to enable controllers in a cgroup
// with processes ("no internal processes"), which failed every start of a
// session with limits. Sessions must start with memory, pids and cpu
// enforced in their v2 cgroup, nested under the portal's.
func TestCgroupV2LimitsEnforced(t *testing.T) {
	requireV2Limits(t)
	r := newRuntime(t, t.TempDir(), Options{})
	if l := r.unenforced(runtime.Limits{Memory: 1, Processes: 1, CPUMilli: 1}); len(l) > 0 {
		t.Errorf("limits not enforced: %v (cgroups: %s)", l, r.cgroups)
	}
	spec := testSpec("portal-w01-s180")
	spec.Limits = runtime.Limits{Memory: 256 << 20, Processes: 40, CPUMilli: 500}
	_, home := startSession(t, r, spec)
	s := sessionCgroupsOf(home, r.cgroupMounts)
	if s == nil || s.v2dir() == "" {
		t.Fatal("the session has no v2 cgroup")
	}
	d := s.v2dir()
	if want := filepath.Join(r.cgroups.v2, cgroupParent, cgroupName(home)); d != want {
		t.Errorf("session cgroup %s, want %s", d, want)
	}
	for file, want := range map[string]string{
		"memory.max": strconv.Itoa(256 << 20),
		"pids.max":   strconv.Itoa(40 + hostTasks),
		"cpu.max":    "50000 100000",
	} {
		if b, err := os.ReadFile(filepath.Join(d, file)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s: %q, %v; want %s", file, b, err, want)
		}
	}
	// The host started in it.
	pid, _, err := readPIDs(home)
	if err != nil {
		t.Fatal(err)
	}
	var rel string
	for _, m := range r.cgroupMounts {
		if r, ok := strings.CutPrefix(d, m+"/"); ok {
			rel = "/" + r
		}
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); !strings.Contains(string(b), "0::"+rel+"\n") {
		t.Errorf("host %d in cgroup %q, want %s", pid, b, rel)
	}
}
