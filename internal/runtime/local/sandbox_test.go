package local

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// dataDir makes a portal data dir outside /tmp, which the sandbox hides
// anyway, with a database file in it; the runtime's Dir is its sessions
// directory.
func dataDir(t *testing.T) string {
	t.Helper()
	base := "/var/tmp"
	if _, err := os.Stat(base); err != nil {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "portico-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "portico.db"), []byte("the portal's secrets"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startSession(t *testing.T, r *Runtime, spec runtime.Spec) (runtime.Instance, string) {
	t.Helper()
	stopOnCleanup(t, r, spec.Session)
	inst, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return inst, filepath.Join(r.dir, spec.Session)
}

// Acceptance: with bubblewrap, a session cannot write outside its home,
// cannot see the other sessions' homes nor the portal's data dir.
func TestSandboxConfinesSession(t *testing.T) {
	data := dataDir(t)
	r := newRuntime(t, "", Options{Dir: filepath.Join(data, "sessions"), Env: []string{execEnv + "=1"}})
	requireSandbox(t, r)
	_, homeA := startSession(t, r, testSpec("portal-w01-s101"))
	_, homeB := startSession(t, r, testSpec("portal-w01-s102"))
	if err := os.WriteFile(filepath.Join(homeB, "secret.txt"), []byte("B's secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	private := fmt.Sprintf("/tmp/portico-private-%d", time.Now().UnixNano())
	t.Cleanup(func() { os.Remove(private) })

	out, rc := runInSession(t, homeA, `
try() { if "$@" 2>/dev/null; then echo "allowed: $*"; else echo "denied: $*"; fi; }
try touch /etc/portico-sandbox-test
try touch /usr/portico-sandbox-test
try touch `+data+`/portico-sandbox-test
try touch `+data+`/sessions/portico-sandbox-test
try touch `+homeB+`/intruder
try cat `+homeB+`/secret.txt
try ls `+homeB+`
try cat `+data+`/portico.db
try sh -c 'echo 1 > .portico/pid'
try sh -c 'echo {} > .portico/session.json'
try sh -c 'echo forged > .portico/host.log'
try mv .portico .portico-moved
try rm -f .portico/pid
try mount -t tmpfs none /mnt
try umount `+data+`
try sh -c 'echo 1 > /sys/fs/cgroup/pids/cgroup.procs'
echo "sessions: $(ls -A `+data+`/sessions | tr '\n' ' ')"
echo "data: $(ls -A `+data+` | tr '\n' ' ')"
echo "pid 1: $(tr '\0' ' ' < /proc/1/cmdline | cut -d' ' -f1)"
echo "processes: $(ls /proc | grep -c '^[0-9]*$')"
try sh -c 'echo mine > $HOME/mine.txt'
try sh -c 'echo private > `+private+`'
try touch /var/tmp/portico-sandbox-test
try sh -c 'echo 127.0.0.1:1 > .portico/address.test'
`)
	if rc != "0" {
		t.Fatalf("script: %s\n%s", rc, out)
	}
	t.Logf("in the sandbox:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		allowed := strings.HasPrefix(l, "allowed: ")
		wantAllowed := strings.Contains(l, "mine.txt") || strings.Contains(l, private) || strings.Contains(l, "address.test") ||
			strings.HasSuffix(l, "touch /var/tmp/portico-sandbox-test") // the session's own /tmp
		if (strings.HasPrefix(l, "denied: ") || allowed) && allowed != wantAllowed {
			t.Errorf("%s", l)
		}
	}
	for _, want := range []string{
		"sessions: portal-w01-s101 \n", // not s102
		"data: sessions \n",            // not portico.db
		"bwrap\n",                      // pid 1
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	var n int
	if _, err := fmt.Sscanf(out[strings.Index(out, "processes: "):], "processes: %d", &n); err != nil || n > 8 {
		t.Errorf("the session sees %d processes (%v), want only its own", n, err)
	}
	// The writes that succeeded landed in the home, or in the session's
	// private /tmp.
	if b, err := os.ReadFile(filepath.Join(homeA, "mine.txt")); err != nil || string(b) != "mine\n" {
		t.Errorf("home write: %q, %v", b, err)
	}
	if _, err := os.Stat(private); err == nil {
		t.Errorf("%s written to the portal's /tmp", private)
	}
	for _, p := range []string{"/etc/portico-sandbox-test", "/var/tmp/portico-sandbox-test", filepath.Join(data, "portico-sandbox-test"), filepath.Join(homeB, "intruder"), filepath.Join(homeA, ".portico-moved")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists", p)
			os.RemoveAll(p)
		}
	}
	if pid, init, err := readPIDs(homeA); err != nil || !isHost(pid, homeA) || !isSandboxInit(init, homeA) {
		t.Errorf("pid file: %d %d %v", pid, init, err)
	}
}

// Acceptance: after Stop, and after a Stop by a restarted portal with a
// deadline (as for an expired session), no process of the session is left,
// daemons started with setsid or nohup included.
func TestStopLeavesNoProcess(t *testing.T) {
	inModes(t, Options{Env: []string{execEnv + "=1"}}, func(t *testing.T, r *Runtime) {
		for i, how := range []string{"terminate", "expiry after a restart"} {
			t.Run(how, func(t *testing.T) {
				name := fmt.Sprintf("portal-w01-s11%d", i)
				_, home := startSession(t, r, testSpec(name))
				tag := 7300 + 10*i
				script := fmt.Sprintf(`
setsid sleep %s &
nohup sleep %s >/dev/null 2>&1 &
(setsid sh -c 'sleep %s & wait' &)
`, sleepArg(tag+1), sleepArg(tag+2), sleepArg(tag+3))
				daemons := []string{"sleep " + sleepArg(tag+1), "sleep " + sleepArg(tag+2), "sleep " + sleepArg(tag+3)}
				if r.bwrap != "" || r.cgroups.any() {
					// Escaped and unmarked: only a pid namespace or a cgroup
					// finds this one.
					script += fmt.Sprintf("env -i setsid sleep %s &\n", sleepArg(tag+4))
					daemons = append(daemons, "sleep "+sleepArg(tag+4))
				}
				if out, rc := runInSession(t, home, script); rc != "0" {
					t.Fatalf("script: %s\n%s", rc, out)
				}
				var pids []int
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					pids = pids[:0]
					for _, d := range daemons {
						pids = append(pids, processesNamed(d)...)
					}
					if len(pids) == len(daemons) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("daemons %v: found %v", daemons, pids)
					}
				}
				pids = append(pids, hostPID(t, home))
				if p, init, _ := readPIDs(home); init > 0 {
					pids = append(pids, p, init)
				}

				switch how {
				case "terminate":
					if err := r.Stop(context.Background(), name); err != nil {
						t.Fatal(err)
					}
				default:
					restarted := newRuntime(t, r.dir, Options{})
					restarted.bwrap, restarted.userns, restarted.cgroups = r.bwrap, r.userns, r.cgroups
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := restarted.Stop(ctx, name); err != nil {
						t.Fatal(err)
					}
				}
				for _, p := range pids {
					assertGone(t, p)
				}
				for _, d := range daemons {
					if left := processesNamed(d); len(left) > 0 {
						t.Errorf("%s left: %v", d, left)
					}
				}
				assertNoSessionProcesses(t, home)
				assertNoCgroups(t, r, home)
			})
		}
	})
}

// sleepArg returns an argument for sleep that lasts about n seconds and
// that no other test process uses: tests find their sleeps by command line.
func sleepArg(n int) string { return fmt.Sprintf("%d.%d", n, os.Getpid()) }

// processesNamed returns the live processes whose command line is args.
func processesNamed(args string) []int {
	var pids []int
	for _, p := range allProcesses() {
		if strings.Join(cmdline(p), " ") == args {
			if _, ok := new(procReader).running(p); ok {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// Acceptance: a process that exceeds the memory limit is killed; the
// session host survives and serves.
func TestMemoryLimitKillsTheProcessNotTheHost(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	requireCgroups(t, r, "memory")
	const limit = 96 << 20
	spec := testSpec("portal-w01-s120")
	spec.Limits = runtime.Limits{Memory: limit}
	inst, home := startSession(t, r, spec)
	host := hostPID(t, home)
	if b := cgroupValue(t, home, "memory.limit_in_bytes", "memory.max"); b != strconv.Itoa(limit) {
		t.Fatalf("memory limit %s, want %d", b, limit)
	}

	out, rc := runInSession(t, home, fmt.Sprintf("%s=%d %q; echo \"exit $?\"", allocEnv, 4*limit, os.Args[0]))
	// The shell running the allocation is a program of the session too: it
	// may be the next victim, while the allocation's memory is released.
	if strings.Contains(out, "allocated") || !(rc == "0" && strings.Contains(out, "exit 137") || rc == "signal: killed") {
		t.Fatalf("allocation of %d bytes under a limit of %d: %s\n%s", 4*limit, limit, rc, out)
	}
	if n := oomKills(t, home); n < 1 {
		t.Errorf("%d OOM kills counted", n)
	}
	if _, ok := new(procReader).running(host); !ok {
		t.Fatal("the session host died")
	}
	if code, body := httpGet(t, inst.Address, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz after the OOM kill: %d %s", code, body)
	}
	if st, err := r.Status(context.Background(), spec.Session); err != nil || st != inst {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	// The session still runs commands.
	if out, rc := runInSession(t, home, "echo still here"); rc != "0" || out != "still here\n" {
		t.Fatalf("after the OOM kill: %s %q", rc, out)
	}
	select {
	case name := <-r.Exited():
		t.Fatalf("Exited reports %s", name)
	default:
	}
}

// A fork bomb hits the process limit without harming the host.
func TestProcessLimitStopsForkBomb(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	requireCgroups(t, r, "pids")
	spec := testSpec("portal-w01-s121")
	spec.Limits = runtime.Limits{Processes: 20}
	inst, home := startSession(t, r, spec)
	if b := cgroupValue(t, home, "pids.max"); b != strconv.Itoa(20+hostTasks) {
		t.Fatalf("pids.max %s, want %d", b, 20+hostTasks)
	}
	out, rc := runInSession(t, home, `
i=0
while [ $i -lt 100 ]; do sleep `+sleepArg(7500)+` & i=$((i+1)); done 2>/dev/null
echo done
`)
	t.Logf("fork bomb: %s %s", rc, out)
	started := processesNamed("sleep " + sleepArg(7500))
	if len(started) == 0 || len(started) > 20+hostTasks {
		t.Errorf("%d sleeps started under a limit of %d tasks", len(started), 20+hostTasks)
	}
	for range 5 {
		if code, body := httpGet(t, inst.Address, "/healthz"); code != http.StatusOK {
			t.Fatalf("healthz with the session at its limit: %d %s", code, body)
		}
	}
	if err := r.Stop(context.Background(), spec.Session); err != nil {
		t.Fatal(err)
	}
	if left := processesNamed("sleep " + sleepArg(7500)); len(left) > 0 {
		t.Errorf("sleeps left: %v", left)
	}
	assertNoCgroups(t, r, home)
}

func TestCPULimit(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireCgroups(t, r, "cpu")
	spec := testSpec("portal-w01-s122")
	spec.Limits = runtime.Limits{CPUMilli: 500}
	_, home := startSession(t, r, spec)
	if q := cgroupValue(t, home, "cpu.cfs_quota_us", "cpu.max"); q != "50000" && q != "50000 100000" {
		t.Fatalf("cpu quota %q, want half of a 100 ms period", q)
	}
}

// cgroupValue returns the content of the first of files found in the
// session's cgroups.
func cgroupValue(t *testing.T, home string, files ...string) string {
	t.Helper()
	s := sessionCgroupsOf(home, detectCgroups().mounts)
	if s == nil {
		t.Fatal("the session has no cgroups")
	}
	for _, f := range files {
		for _, d := range s.dirs {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				return strings.TrimSpace(string(b))
			}
		}
	}
	t.Fatalf("no %v in %v", files, s.dirs)
	return ""
}

// oomKills returns how many processes of the session the OOM killer
// killed.
func oomKills(t *testing.T, home string) int {
	t.Helper()
	for _, f := range []string{"memory.oom_control", "memory.events"} {
		s := sessionCgroupsOf(home, detectCgroups().mounts)
		for _, d := range s.dirs {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
					n, _ := strconv.Atoi(v)
					return n
				}
			}
		}
	}
	t.Fatal("no OOM kill counter")
	return 0
}

func TestExitedReportsHostsThatDie(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	ctx := context.Background()
	expectExited := func(r *Runtime, want string) {
		t.Helper()
		select {
		case name := <-r.Exited():
			if name != want {
				t.Fatalf("Exited reports %q, want %q", name, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Exited does not report %s", want)
		}
	}
	expectNothing := func(r *Runtime) {
		t.Helper()
		select {
		case name := <-r.Exited():
			t.Fatalf("Exited reports %q", name)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// A host this runtime started.
	_, home := startSession(t, r, testSpec("portal-w01-s130"))
	if err := syscall.Kill(hostPID(t, home), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	expectExited(r, "portal-w01-s130")
	if st, err := r.Status(ctx, "portal-w01-s130"); err != nil || st.Failed == "" {
		t.Fatalf("Status after the host died: %+v, %v", st, err)
	}

	// A host found by a restarted portal.
	startSession(t, r, testSpec("portal-w01-s131"))
	restarted := newRuntime(t, r.dir, Options{})
	if _, err := restarted.List(ctx); err != nil {
		t.Fatal(err)
	}
	home = filepath.Join(r.dir, "portal-w01-s131")
	if err := syscall.Kill(hostPID(t, home), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	expectExited(restarted, "portal-w01-s131")
	expectExited(r, "portal-w01-s131")

	// Stops and failed starts are not reported.
	startSession(t, r, testSpec("portal-w01-s132"))
	if _, err := restarted.List(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, "portal-w01-s132"); err != nil {
		t.Fatal(err)
	}
	failing := newRuntime(t, t.TempDir(), Options{Command: []string{"sh", "-c", "exit 3"}})
	if _, err := failing.Start(ctx, testSpec("portal-w01-s133")); err == nil {
		t.Fatal("Start succeeded")
	}
	expectNothing(r)
	expectNothing(failing)
	// restarted did not stop s132: for it, the host exited by itself.
	expectExited(restarted, "portal-w01-s132")
}

// An address file that names another session's host does not get the
// portal to use it: a session's host is its socket, nothing else.
func TestForgedAddressIgnored(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	ctx := context.Background()
	instA, homeA := startSession(t, r, testSpec("portal-w01-s140"))
	instB, _ := startSession(t, r, testSpec("portal-w01-s141"))

	// The runtime checks what it reads: write directly, as a session
	// unsandboxed could, and from inside.
	if err := os.WriteFile(filepath.Join(homeA, sessionhost.AddressFile), []byte(instB.Address), 0o600); err != nil {
		t.Fatal(err)
	}
	restarted := newRuntime(t, r.dir, Options{})
	for _, rt := range []*Runtime{r, restarted} {
		st, err := rt.Status(ctx, "portal-w01-s140")
		if err != nil || st.Address == instB.Address || st.Ready {
			t.Errorf("Status with B's address in A's home: %+v, %v", st, err)
		}
	}
	list, err := restarted.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range list {
		if inst.Session == "portal-w01-s140" && (inst.Address != "" || inst.Ready) {
			t.Errorf("List: %+v", inst)
		}
	}

	// The real address is taken again once published again.
	if err := os.WriteFile(filepath.Join(homeA, sessionhost.AddressFile), []byte(instA.Address), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []*Runtime{r, restarted} {
		if st, err := rt.Status(ctx, "portal-w01-s140"); err != nil || st != instA {
			t.Errorf("Status with the real address = %+v, %v; want %+v", st, err, instA)
		}
	}
}

func TestParseCgroups(t *testing.T) {
	hybrid := `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:33 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	hybridSelf := `9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
`
	all := func(string) bool { return true }
	cs := parseCgroups(hybrid, hybridSelf, all)
	want := map[string]string{
		"memory":  "/sys/fs/cgroup/memory/process_api/abc",
		"pids":    "/sys/fs/cgroup/pids",
		"cpu":     "/sys/fs/cgroup/cpu",
		"freezer": "/sys/fs/cgroup/freezer",
	}
	if fmt.Sprint(cs.v1) != fmt.Sprint(want) || cs.v2 != "/sys/fs/cgroup/unified" || len(cs.mounts) != 7 {
		t.Errorf("hybrid: %+v", cs)
	}

	// Only what may be written counts.
	cs = parseCgroups(hybrid, hybridSelf, func(d string) bool { return strings.Contains(d, "memory") })
	if fmt.Sprint(cs.v1) != fmt.Sprint(map[string]string{"memory": want["memory"]}) || cs.v2 != "" {
		t.Errorf("memory only: %+v", cs)
	}

	// Pure v2, in a service's cgroup; a space in a mount point.
	cs = parseCgroups(`25 20 0:22 / /sys/fs/cgroup\040x rw - cgroup2 cgroup2 rw,nsdelegate
`, "0::/system.slice/portico.service\n", all)
	if len(cs.v1) != 0 || cs.v2 != "/sys/fs/cgroup x/system.slice/portico.service" {
		t.Errorf("v2: %+v", cs)
	}

	// A container that sees its own cgroup as the root of a v1 mount.
	cs = parseCgroups(`50 40 0:31 /docker/123 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
51 40 0:32 /docker/123 /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
`, "4:memory:/docker/123/sub\n3:cpu,cpuacct:/docker/1234\n", all)
	if fmt.Sprint(cs.v1) != fmt.Sprint(map[string]string{"memory": "/sys/fs/cgroup/memory/sub"}) {
		t.Errorf("container: %+v", cs)
	}
}

func TestSandboxArgsOrder(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Hide: []string{"/etc/shadow", "/root"}})
	home := filepath.Join(r.dir, "portal-w01-s150")
	data := filepath.Dir(r.dir)
	// A source holding the data dir must not uncover it: bound first,
	// then covered. Any other source comes after the hidden paths.
	args := r.sandboxArgs(home, []string{"/srv/workshops/lab", filepath.Dir(data)}, runtime.Limits{}, sandboxFDs{info: 3})
	at := func(flag, path string) int {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == flag && args[i+1] == path {
				return i
			}
		}
		t.Fatalf("no %s %s in %q", flag, path, args)
		return -1
	}
	for _, f := range []string{"--die-with-parent", "--share-net", "--unshare-all"} {
		if slices.Contains(args, f) {
			t.Errorf("%s in %q", f, args)
		}
	}
	if !slices.Contains(args, "--unshare-net") {
		t.Errorf("no --unshare-net in %q", args)
	}
	for i := 0; i+2 < len(args); i++ {
		if args[i] == "--ro-bind" && args[i+1] == "/" {
			t.Errorf("the whole file system is shown: %q", args)
		}
	}
	order := []int{
		at("--tmpfs", "/tmp"),
		at("--ro-bind", "/etc"),
		at("--ro-bind-try", filepath.Dir(data)),
		at("--ro-bind", "/dev/null"), // /etc/shadow
		at("--tmpfs", data),
		at("--tmpfs", "/root"),
		at("--ro-bind-try", "/srv/workshops/lab"),
		at("--bind", home),
		at("--bind", filepath.Join(home, ".portico")),
		at("--ro-bind-try", filepath.Join(home, ".portico/pid")),
	}
	if !slices.IsSorted(order) {
		t.Errorf("mount order %v in %q", order, args)
	}
	if args[len(args)-1] != "--" {
		t.Errorf("args end with %q", args[len(args)-1])
	}
}

// Without a memory cgroup, a memory limit is an rlimit on each process.
func TestMemoryLimitWithoutCgroups(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	lookPath(t, "prlimit")
	r.cgroups = nil
	const limit = 512 << 20 // what RLIMIT_DATA leaves a Go host
	spec := testSpec("portal-w01-s123")
	spec.Limits = runtime.Limits{Memory: limit}
	inst, home := startSession(t, r, spec)
	out, rc := runInSession(t, home, fmt.Sprintf("%s=%d %q; echo \"exit $?\"", allocEnv, 2*limit, os.Args[0]))
	// The Go runtime (or, with -race, ThreadSanitizer) gets no memory and
	// exits.
	if rc != "0" || strings.Contains(out, "allocated") || strings.Contains(out, "exit 0") || !strings.Contains(out, "exit ") {
		t.Fatalf("allocation of %d bytes under an rlimit of %d: %s\n%s", 2*limit, limit, rc, out)
	}
	if code, body := httpGet(t, inst.Address, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d %s", code, body)
	}
}

func TestSandboxProtectedFromOOMKiller(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireSandbox(t, r)
	probe := exec.Command("sleep", "10")
	if err := probe.Start(); err != nil {
		t.Fatal(err)
	}
	err := os.WriteFile("/proc/"+strconv.Itoa(probe.Process.Pid)+"/oom_score_adj", []byte("-1000"), 0)
	probe.Process.Kill()
	probe.Wait()
	if err != nil {
		t.Skipf("this process may not protect others from the OOM killer (CAP_SYS_RESOURCE): %v", err)
	}
	_, home := startSession(t, r, testSpec("portal-w01-s124"))
	pid, init, err := readPIDs(home)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[int]string{pid: "-1000", init: "-1000", hostPID(t, home): "0"} {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/oom_score_adj"); strings.TrimSpace(string(b)) != want {
			t.Errorf("process %d (%s): oom_score_adj %q, want %s", p, cmdline(p)[0], b, want)
		}
	}
}

func TestStaleCgroupsRemoved(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireCgroups(t, r)
	var parent string
	for _, p := range append(mapValues(r.cgroups.v1), r.cgroups.v2) {
		if p != "" {
			parent = filepath.Join(p, cgroupParent)
			break
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(parent, "stale-test-"+strconv.Itoa(os.Getpid())), filepath.Join(parent, "fresh-test-"+strconv.Itoa(os.Getpid()))
	for _, d := range []string{stale, fresh} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Rmdir(d); syscall.Rmdir(parent) })
	}
	old := time.Now().Add(-2 * staleCgroupAge)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Skipf("cannot age a cgroup: %v", err)
	}
	if n := r.cgroups.removeStale(); n < 1 {
		t.Errorf("removed %d cgroups", n)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale cgroup left")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh cgroup removed: %v", err)
	}
}

// The session's programs, not its host, are the OOM killer's first choice.
func TestSessionProgramsPreferredOOMVictims(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	requireCgroups(t, r)
	_, home := startSession(t, r, testSpec("portal-w01-s125"))
	if out, rc := runInSession(t, home, "sleep "+sleepArg(7601)+" &"); rc != "0" {
		t.Fatalf("script: %s %s", rc, out)
	}
	score := func(pid int) string {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
		return strings.TrimSpace(string(b))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sleeps := processesNamed("sleep " + sleepArg(7601))
		if len(sleeps) == 1 && score(sleeps[0]) == programOOMScore {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sleep %v: oom_score_adj %q", sleeps, score(sleeps[0]))
		}
	}
	// What a marked program (this shell, once it ran a moment) starts is
	// marked from birth.
	out, rc := runInSession(t, home, "sleep 1; cat /proc/self/oom_score_adj")
	if rc != "0" || strings.TrimSpace(out) != programOOMScore {
		t.Errorf("a new program's oom_score_adj: %s %q", rc, out)
	}
	pid, init, _ := readPIDs(home)
	for _, p := range []int{pid, init, hostPID(t, home)} {
		if p > 0 && score(p) == programOOMScore {
			t.Errorf("process %d (%s) marked", p, cmdline(p)[0])
		}
	}
}

// The bundled example is unpacked into the portal's data dir, which the
// sandbox hides: its workshop files must still reach the session (they
// did not, and every session of the quick start failed to start), while
// the rest of the data dir stays hidden.
func TestWorkshopFilesInsideTheDataDir(t *testing.T) {
	data := dataDir(t)
	r := newRuntime(t, "", Options{Dir: filepath.Join(data, "sessions"), Env: []string{execEnv + "=1"}})
	requireSandbox(t, r)
	lab := filepath.Join(data, "examples", "lab")
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lab, "hello.txt"), []byte("from the workshop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := testSpec("portal-w01-s160")
	spec.WorkshopDir = filepath.Join(data, "examples")
	spec.WorkshopFiles = []map[string]any{{"directory": map[string]any{"path": "lab"}}}
	_, home := startSession(t, r, spec)
	if b, err := os.ReadFile(filepath.Join(home, "hello.txt")); err != nil || string(b) != "from the workshop\n" {
		t.Fatalf("workshop file in the home: %q, %v", b, err)
	}
	out, rc := runInSession(t, home, `
cat `+data+`/portico.db 2>/dev/null && echo "database visible"
touch `+lab+`/new 2>/dev/null && echo "workshop files writable"
ls `+data+`
`)
	if rc != "0" || strings.Contains(out, "visible") || strings.Contains(out, "writable") {
		t.Errorf("in the sandbox (rc %s):\n%s", rc, out)
	}
}

// A session's network is its own: loopback and, unless its workshop is
// offline, the user-mode stack's interface; never the host's interfaces.
func TestSessionNetworkOfItsOwn(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Env: []string{execEnv + "=1"}})
	requireSandbox(t, r)
	if r.slirp == "" {
		t.Skip("slirp4netns is not installed: apt-get install -y slirp4netns")
	}
	for _, offline := range []bool{false, true} {
		spec := testSpec(fmt.Sprintf("portal-w01-s16%d", map[bool]int{false: 0, true: 1}[offline]))
		spec.Offline = offline
		_, home := startSession(t, r, spec)
		// The network comes up once the host serves: what the host runs
		// waits for it (its terminals, its setup scripts), as this does.
		script := `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '; echo; cat /etc/resolv.conf`
		if !offline {
			script = `for i in $(seq 200); do awk '$2 == "00000000"' /proc/net/route | grep -q . && break; sleep 0.05; done; ` + script
		}
		out, rc := runInSession(t, home, script)
		if rc != "0" {
			t.Fatalf("script: %s\n%s", rc, out)
		}
		ifaces, resolv, _ := strings.Cut(out, "\n")
		want := "lo tap0 "
		if offline {
			want = "lo "
		}
		if ifaces != want {
			t.Errorf("offline %v: interfaces %q, want %q", offline, ifaces, want)
		}
		if strings.Contains(resolv, "nameserver") == offline {
			t.Errorf("offline %v: resolv.conf %q", offline, resolv)
		}
	}
}

// The workshop's programs, setup scripts first, run as the workshop's
// user: a host id of the session's own range, no capability, an empty
// bounding set, no_new_privs and the seccomp filter; the host is another
// uid, which they cannot trace.
func TestWorkshopProgramsIdentity(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireSandbox(t, r)
	if !r.userns {
		t.Skip("identities of their own need root")
	}
	spec := testSpec("portal-w01-s170")
	spec.WorkshopFiles = []map[string]any{{"inline": map[string]any{"paths": map[string]any{
		"workshop/setup.d/10-identity.sh": `id -u > $HOME/id.out; id -un >> $HOME/id.out
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status >> $HOME/id.out
awk '$2 == "00000000"' /proc/net/route | wc -l > $HOME/routes.out
sleep 1000 &
echo $! > $HOME/sleep.pid
`}}}}
	_, home := startSession(t, r, spec)
	b, err := os.ReadFile(filepath.Join(home, "id.out"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1001\n", "eduk8s\n", "CapEff:\t0000000000000000\n", "CapBnd:\t0000000000000000\n", "NoNewPrivs:\t1\n", "Seccomp:\t2\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("setup script's identity lacks %q:\n%s", want, b)
		}
	}
	// The network comes up while the host starts: setup scripts have it.
	if r.slirp != "" {
		if b, err := os.ReadFile(filepath.Join(home, "routes.out")); err != nil || strings.TrimSpace(string(b)) == "0" {
			t.Errorf("no default route when the setup script ran: %q, %v", b, err)
		}
	}
	ids, ok := idsOf(home)
	if !ok {
		t.Fatal("no ids recorded for the session")
	}
	// From the host's side: the workshop's program is the session's own
	// host id, the host is another.
	var pid int
	if b, err := os.ReadFile(filepath.Join(home, "sleep.pid")); err != nil {
		t.Fatal(err)
	} else if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatal(err)
	}
	inner := namespaceProcesses(hostPID(t, home))
	var outer int
	for p := range inner {
		if strings.Contains(inner[p], "sleep") {
			outer = p
		}
	}
	if outer == 0 {
		t.Fatalf("the setup script's daemon (pid %d inside) is not among the session's processes %v", pid, inner)
	}
	if got, want := strings.Fields(status(outer, "Uid"))[0], strconv.Itoa(ids.host(workshopUID)); got != want {
		t.Errorf("workshop program's host uid %s, want %s", got, want)
	}
	if got := strings.Fields(status(hostPID(t, home), "Uid"))[0]; got == strconv.Itoa(ids.host(workshopUID)) {
		t.Errorf("the host shares the workshop's uid %s", got)
	}
	if got := status(hostPID(t, home), "Seccomp"); strings.TrimSpace(got) != "2" {
		t.Errorf("the host runs without the seccomp filter: %q", got)
	}
	// bwrap's first process, which made the session's user namespace and
	// stays outside it, keeps no capability.
	bwrap, _, _ := readPIDs(home)
	for _, f := range []string{"CapPrm", "CapEff"} {
		if got := strings.TrimSpace(status(bwrap, f)); got != "0000000000000000" {
			t.Errorf("bwrap's first process has %s %s", f, got)
		}
	}
}

// The network is attached once the host serves, as its Start returns: a
// Stop right after the Start ends slirp4netns all the same.
func TestStopRightAfterStartEndsTheNetwork(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireSandbox(t, r)
	if r.slirp == "" {
		t.Skip("slirp4netns is not installed: apt-get install -y slirp4netns")
	}
	var homes []string
	for i := range 5 {
		name := fmt.Sprintf("portal-w01-s18%d", i)
		_, home := startSession(t, r, testSpec(name))
		if err := r.Stop(context.Background(), name); err != nil {
			t.Fatal(err)
		}
		homes = append(homes, home)
	}
	// Looked for once all are stopped: a slirp4netns started after the
	// Stop that should have ended it has had the time to show up.
	for _, home := range homes {
		assertNoSessionProcesses(t, home)
	}
}
