package local

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The ways the runtime runs sessions, which tests may run in turn.
var modes = []struct {
	name             string
	sandbox, cgroups bool
}{
	{"sandbox", true, true},
	{"sandbox without cgroups", true, false},
	{"cgroups only", false, true},
	{"unsandboxed, no cgroups", false, false},
}

// inModes runs test once in each mode, on a new runtime made with opts.
func inModes(t *testing.T, opts Options, test func(t *testing.T, r *Runtime)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			r := newRuntime(t, t.TempDir(), opts)
			if m.sandbox {
				requireSandbox(t, r)
			} else {
				r.bwrap, r.userns = "", false // as New leaves them without bubblewrap
			}
			if m.cgroups {
				requireCgroups(t, r)
			} else {
				r.cgroups = nil
			}
			test(t, r)
		})
	}
}

func requireSandbox(t *testing.T, r *Runtime) {
	t.Helper()
	if r.bwrap == "" {
		t.Skip("bubblewrap is not installed: apt-get install -y bubblewrap")
	}
}

// requireCgroups skips the test unless sessions get cgroups with every
// one of controllers, or any cgroup when there are none.
func requireCgroups(t *testing.T, r *Runtime, controllers ...string) {
	t.Helper()
	if !r.cgroups.any() {
		t.Skip("no cgroup hierarchy where this process may create cgroups: /sys/fs/cgroup/<controller>/<own cgroup> (see /proc/self/cgroup) must be writable")
	}
	for _, c := range controllers {
		if !r.cgroups.enabled(c) {
			t.Skipf("no %[1]s cgroup this process may create: /sys/fs/cgroup/%[1]s/<own cgroup> (v1) or a v2 hierarchy with %[1]s delegated must be writable", c)
		}
	}
}

// hostPID returns the pid of the session host of home: the child of the
// sandbox's pid 1 that is pid 2 in the sandbox, else the process the
// runtime started.
func hostPID(t *testing.T, home string) int {
	t.Helper()
	pid, init, err := readPIDs(home)
	if err != nil {
		t.Fatal(err)
	}
	if init == 0 {
		return pid
	}
	for _, p := range allProcesses() {
		if status(p, "PPid") == strconv.Itoa(init) && strings.HasSuffix(status(p, "NSpid"), "\t2") {
			return p
		}
	}
	t.Fatalf("no host in the sandbox of %d", init)
	return 0
}

// hostProcesses returns the live processes of the session at home that run
// the host executable exe.
func hostProcesses(home, exe string) []int {
	var hosts []int
	for _, p := range sessionProcesses(home, 0) {
		if args := cmdline(p); len(args) > 0 && args[0] == exe {
			hosts = append(hosts, p)
		}
	}
	return hosts
}

// childrenNamed returns the live children of parent whose command line is
// args, spaces between the arguments.
func childrenNamed(parent int, args string) []int {
	var pids []int
	for _, p := range allProcesses() {
		if status(p, "PPid") == strconv.Itoa(parent) && strings.Join(cmdline(p), " ") == args {
			if _, ok := new(procReader).running(p); ok {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// namespaceProcesses returns the live processes in the pid namespace of
// pid, with their command lines.
func namespaceProcesses(pid int) map[int]string {
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return nil
	}
	procs := map[int]string{}
	for _, p := range allProcesses() {
		if l, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/ns/pid"); l == ns {
			if _, ok := new(procReader).running(p); ok {
				procs[p] = strings.Join(cmdline(p), " ")
			}
		}
	}
	return procs
}

func allProcesses() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// status returns the value of field in /proc/<pid>/status.
func status(pid int, field string) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":\t")); ok {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// assertNoCgroups fails if a cgroup of the session at home is left.
func assertNoCgroups(t *testing.T, r *Runtime, home string) {
	t.Helper()
	if !r.cgroups.any() {
		return
	}
	for _, parent := range append(mapValues(r.cgroups.v1), r.cgroups.v2) {
		if parent == "" {
			continue
		}
		d := filepath.Join(parent, cgroupParent, cgroupName(home))
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup left: %s", d)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// lookPath is exec.LookPath that skips the test when file is missing.
func lookPath(t *testing.T, file string) string {
	t.Helper()
	p, err := exec.LookPath(file)
	if err != nil {
		t.Skipf("%s not found", file)
	}
	return p
}
