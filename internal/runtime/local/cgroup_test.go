package local

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	if l := r.unenforced(runtime.Limits{Memory: 1, Processes: 1, CPUMilli: 1}); len(l) > 0 || r.cgroups.problem != nil {
		t.Errorf("limits not enforced: %v (cgroups: %s): %v", l, r.cgroups, r.cgroups.problem)
	}
	// The portal left its cgroup for a leaf, unless its cgroup is the root
	// (which has no cgroup.type), where processes may stay.
	if exists(r.cgroups.v2, "cgroup.type") {
		if b, _ := os.ReadFile(filepath.Join(r.cgroups.v2, "cgroup.procs")); len(b) > 0 {
			t.Errorf("processes left in %s: %q", r.cgroups.v2, b)
		}
		b, _ := os.ReadFile("/proc/self/cgroup")
		if !strings.HasSuffix(strings.TrimSpace(string(b)), "/"+portalCgroup) {
			t.Errorf("the portal is in %q, want a %s leaf", b, portalCgroup)
		}
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

// fakeKernel is a cgroup v2 file system under root with the rules of the
// kernel that matter to delegateV2: a cgroup enables for its children
// only controllers it offers, and none while it holds processes; a
// process may not enter a cgroup that enables controllers for its
// children. The root cgroup is exempt from both.
type fakeKernel struct {
	root    string
	offered map[string][]string // cgroup.controllers
	enabled map[string][]string // cgroup.subtree_control
	procs   map[string][]string // cgroup.procs
	// refuse fails the writes of a value with this word (a controller,
	// a pid) to a file (a path) with an error.
	refuse map[[2]string]error
	// moved runs after each process moved: a shell forks meanwhile, a
	// process exits.
	moved  func(k *fakeKernel)
	mkdirs []string
}

func newFakeKernel(own string, procs ...string) *fakeKernel {
	k := &fakeKernel{
		root:    "/sys/fs/cgroup",
		offered: map[string][]string{},
		enabled: map[string][]string{},
		procs:   map[string][]string{},
		refuse:  map[[2]string]error{},
	}
	all := []string{"cpuset", "cpu", "io", "memory", "pids"}
	for d := own; ; d = filepath.Dir(d) {
		k.offered[d] = all
		if d != own {
			k.enabled[d] = all
		}
		if d == k.root {
			break
		}
	}
	k.procs[own] = procs
	return k
}

func (k *fakeKernel) read(dir, file string) (string, error) {
	if _, ok := k.offered[dir]; !ok {
		return "", unix.ENOENT
	}
	switch file {
	case "cgroup.controllers":
		return strings.Join(k.offered[dir], " ") + "\n", nil
	case "cgroup.subtree_control":
		return strings.Join(k.enabled[dir], " ") + "\n", nil
	case "cgroup.procs":
		return strings.Join(append(slices.Clone(k.procs[dir]), ""), "\n"), nil
	}
	return "", unix.ENOENT
}

func (k *fakeKernel) write(dir, file, value string) error {
	if _, ok := k.offered[dir]; !ok {
		return unix.ENOENT
	}
	// The kernel's own checks come first.
	refused := func() error {
		for _, w := range strings.Fields(value) {
			if err := k.refuse[[2]string{filepath.Join(dir, file), strings.TrimPrefix(w, "+")}]; err != nil {
				return err
			}
		}
		return nil
	}
	switch file {
	case "cgroup.subtree_control":
		for _, w := range strings.Fields(value) {
			if !slices.Contains(k.offered[dir], strings.TrimPrefix(w, "+")) {
				return unix.ENOENT
			}
		}
		if dir != k.root && len(k.procs[dir]) > 0 {
			return unix.EBUSY
		}
		if err := refused(); err != nil {
			return err
		}
		for _, w := range strings.Fields(value) {
			if c := strings.TrimPrefix(w, "+"); !slices.Contains(k.enabled[dir], c) {
				k.enabled[dir] = append(k.enabled[dir], c)
			}
		}
		return nil
	case "cgroup.procs":
		if dir != k.root && len(k.enabled[dir]) > 0 {
			return unix.EBUSY
		}
		if err := refused(); err != nil {
			return err
		}
		for from, procs := range k.procs {
			if i := slices.Index(procs, value); i >= 0 {
				k.procs[from] = slices.Delete(procs, i, i+1)
				k.procs[dir] = append(k.procs[dir], value)
				if k.moved != nil {
					k.moved(k)
				}
				return nil
			}
		}
		return unix.ESRCH
	}
	return unix.EACCES
}

func (k *fakeKernel) mkdir(dir string) error {
	if _, ok := k.offered[dir]; ok {
		return unix.EEXIST
	}
	if _, ok := k.offered[filepath.Dir(dir)]; !ok {
		return unix.ENOENT
	}
	k.offered[dir] = slices.Clone(k.enabled[filepath.Dir(dir)])
	k.mkdirs = append(k.mkdirs, dir)
	return nil
}

func TestDelegateV2(t *testing.T) {
	const (
		root    = "/sys/fs/cgroup"
		service = root + "/system.slice/portico.service"
		login   = root + "/user.slice/user-0.slice/session-1.scope"
	)
	limits := []string{"memory", "pids", "cpu"}
	tests := []struct {
		name  string
		own   string
		procs []string // in own; the portal is 100
		setup func(k *fakeKernel)
		// want: the controllers enabled, the processes left in own and
		// those in its portalCgroup, and an error with this text.
		enabled      []string
		left, inLeaf []string
		err          string
		anyProcs     bool // where processes end up does not matter
	}{{
		name: "root cgroup, exempt", own: root, procs: []string{"1", "100"},
		enabled: limits, left: []string{"1", "100"},
	}, {
		name: "service, alone", own: service, procs: []string{"100"},
		enabled: limits, inLeaf: []string{"100"},
	}, {
		name: "login shell: its shell and sudo move too", own: login, procs: []string{"10", "11", "100"},
		enabled: limits, inLeaf: []string{"10", "11", "100"},
	}, {
		name: "enabled already: nothing moves", own: service,
		setup: func(k *fakeKernel) {
			k.enabled[service] = []string{"cpu", "memory", "pids"}
			k.procs[service+"/"+portalCgroup] = []string{"100"}
		},
		enabled: limits, inLeaf: []string{"100"},
	}, {
		name: "some enabled already", own: service,
		setup:   func(k *fakeKernel) { k.enabled[service] = []string{"memory"} },
		enabled: limits,
	}, {
		name: "a shell forks, a process exits, while they move", own: login, procs: []string{"10", "11", "100"},
		setup: func(k *fakeKernel) {
			forks := 0
			k.moved = func(k *fakeKernel) {
				if forks < 3 {
					forks++
					k.procs[login] = append(k.procs[login], strconv.Itoa(200+forks))
				}
				k.procs[login] = slices.DeleteFunc(k.procs[login], func(p string) bool { return p == "11" })
			}
		},
		enabled: limits, inLeaf: []string{"10", "100", "201", "202", "203"},
	}, {
		name: "processes keep entering", own: login, procs: []string{"10", "100"},
		setup: func(k *fakeKernel) {
			n := 0
			k.moved = func(k *fakeKernel) { n++; k.procs[login] = append(k.procs[login], strconv.Itoa(300+n)) }
		},
		err: "processes keep entering", anyProcs: true,
	}, {
		name: "a process may not move", own: login, procs: []string{"10", "100"},
		setup: func(k *fakeKernel) {
			k.refuse[[2]string{login + "/" + portalCgroup + "/cgroup.procs", "10"}] = unix.EACCES
		},
		left: []string{"10", "100"}, err: "move process 10 into " + login + "/" + portalCgroup + ": permission denied", anyProcs: true,
	}, {
		name: "cpu refused: the others enabled", own: service, procs: []string{"100"},
		setup:   func(k *fakeKernel) { k.refuse[[2]string{service + "/cgroup.subtree_control", "cpu"}] = unix.EINVAL },
		enabled: []string{"memory", "pids"}, inLeaf: []string{"100"}, err: "cannot enable cpu in " + service,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKernel(tt.own, tt.procs...)
			if tt.setup != nil {
				tt.setup(k)
			}
			leaf := filepath.Join(tt.own, portalCgroup)
			before := len(k.procs[leaf])
			enabled, moved, err := delegateV2(k, tt.own, limits)
			if !slices.Equal(enabled, tt.enabled) {
				t.Errorf("enabled %q, want %q", enabled, tt.enabled)
			}
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("error %v, want %q", err, tt.err)
			}
			if tt.anyProcs {
				return
			}
			if got := k.procs[tt.own]; !slices.Equal(got, tt.left) {
				t.Errorf("left in %s: %q, want %q", tt.own, got, tt.left)
			}
			if got := k.procs[leaf]; !slices.Equal(got, tt.inLeaf) {
				t.Errorf("in %s: %q, want %q", leaf, got, tt.inLeaf)
			}
			if want := len(tt.inLeaf) - before; moved != want {
				t.Errorf("moved %d, want %d", moved, want)
			}
			if len(tt.inLeaf) == 0 && len(k.mkdirs) > 0 {
				t.Errorf("made %q", k.mkdirs)
			}
		})
	}
}

func TestParseCgroupsPortalLeaf(t *testing.T) {
	pure := "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
	all := func(string) bool { return true }
	// Moved into its leaf, or started again in it: the portal's cgroup is
	// the leaf's parent.
	cs := parseCgroups(pure, "0::/user.slice/session-1.scope/"+portalCgroup+"\n", all)
	if cs.v2 != "/sys/fs/cgroup/user.slice/session-1.scope" {
		t.Errorf("in the leaf: v2 %q", cs.v2)
	}
	// A parent it may not write is not its own.
	cs = parseCgroups(pure, "0::/system.slice/x.service/"+portalCgroup+"\n", func(d string) bool { return strings.HasSuffix(d, portalCgroup) })
	if cs.v2 != "/sys/fs/cgroup/system.slice/x.service/"+portalCgroup {
		t.Errorf("parent read-only: v2 %q", cs.v2)
	}
	// A container's root cgroup, as PID 1 moved into the leaf.
	cs = parseCgroups("50 40 0:31 /docker/123 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/docker/123/"+portalCgroup+"\n", all)
	if cs.v2 != "/sys/fs/cgroup" {
		t.Errorf("container: v2 %q", cs.v2)
	}
	// Only the leaf's own name counts.
	cs = parseCgroups(pure, "0::/system.slice/"+portalCgroup+"-2.service\n", all)
	if cs.v2 != "/sys/fs/cgroup/system.slice/"+portalCgroup+"-2.service" {
		t.Errorf("another name: v2 %q", cs.v2)
	}
}

// withoutControllersEnv runs TestCgroupV2WithoutControllers as the portal,
// in a cgroup whose parent delegates no controller.
const withoutControllersEnv = "PORTICO_TEST_WITHOUT_CONTROLLERS"

// When sessions cannot get the limit controllers, the portal says so at
// start, once, with the fix; sessions still start, without those limits.
func TestCgroupV2WithoutControllers(t *testing.T) {
	if os.Getenv(withoutControllersEnv) == "1" {
		portalWithoutControllers(t)
		return
	}
	requireV2Limits(t)
	// <the portal's cgroup>/<outer>/portal: outer offers the controllers
	// and enables none for portal.
	outer := filepath.Join(detectCgroups().v2, "portico-test-"+strconv.Itoa(os.Getpid()))
	inner := filepath.Join(outer, "portal")
	for _, d := range []string{outer, inner} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{filepath.Join(inner, cgroupParent), inner, outer} {
			for deadline := time.Now().Add(5 * time.Second); unix.Rmdir(d) == unix.EBUSY && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	f, err := os.Open(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCgroupV2WithoutControllers$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), withoutControllersEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	out, err := cmd.CombinedOutput()
	t.Logf("the portal in %s:\n%s", inner, out)
	if err != nil || !strings.Contains(string(out), "--- PASS: TestCgroupV2WithoutControllers") {
		t.Fatalf("the portal in %s: %v", inner, err)
	}
}

func portalWithoutControllers(t *testing.T) {
	var logs syncBuffer
	r, err := New(Options{
		Dir:     t.TempDir(),
		Command: []string{os.Args[0]},
		Env:     []string{sessionHostEnv + "=1"},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cgroups: %s", r.cgroups)
	if r.cgroups.v2 == "" || len(r.cgroups.v2ctl) > 0 {
		t.Errorf("v2 %q, controllers %q; want a cgroup without controllers", r.cgroups.v2, r.cgroups.v2ctl)
	}
	if _, err := os.Stat(filepath.Join(r.cgroups.v2, portalCgroup)); err == nil {
		t.Errorf("moved into %s for nothing", portalCgroup)
	}
	spec := testSpec("portal-w01-s181")
	spec.Limits = runtime.Limits{Memory: 256 << 20, Processes: 40, CPUMilli: 500}
	_, home := startSession(t, r, spec)
	if s := sessionCgroupsOf(home, r.cgroupMounts); s == nil || s.v2dir() == "" || exists(s.v2dir(), "pids.max") {
		t.Errorf("session cgroups %+v: want a v2 cgroup without controllers, to kill it", s)
	}
	if l := r.unenforced(spec.Limits); !slices.Contains(l, "processes") || !slices.Contains(l, "cpu") {
		t.Errorf("unenforced %q", l)
	}
	text := logs.String()
	t.Logf("log:\n%s", text)
	errs := strings.Count(text, "level=ERROR")
	if errs != 1 || !strings.Contains(text, "no memory, pids, cpu cgroup controller for sessions") || !strings.Contains(text, "Delegate=yes") {
		t.Errorf("%d errors logged, want one naming the controllers and the fix", errs)
	}
}

// syncBuffer is a bytes.Buffer for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// On v1, a thread of the portal joins a session's cgroups to fork its host
// (startIn), and cgroup.procs then lists the portal while that thread
// lives. A Stop of that session at that moment must not signal the portal:
// it took the whole portal down under churn (SIGTERM, then SIGKILL).
func TestKillSessionSparesThePortal(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	procs := fmt.Sprintf("%d\n%d\n", os.Getpid(), child.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644); err != nil {
		t.Fatal(err)
	}
	cg := &sessionCgroups{dirs: []string{dir}}
	if got := cg.procs(); !slices.Equal(got, []int{child.Process.Pid}) {
		t.Fatalf("procs = %v, want only the session's %d (not the portal's %d)", got, child.Process.Pid, os.Getpid())
	}
	// Without the fix the test binary gets SIGTERM here and dies.
	killSession(t.Context(), victims{home: dir, cgroups: cg}, 50*time.Millisecond)
	if err := child.Wait(); err == nil {
		t.Error("the session's process survived")
	}
}
