package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// The test binary doubles as the session host: with sessionHostEnv set it
// runs sessionhost.Main instead of the tests.
const (
	sessionHostEnv = "PORTICO_TEST_SESSIONHOST"
	// daemonsEnv makes the host start, before serving, a daemon that escapes
	// its process group (setsid), "sleep 1001", and a child that stays in
	// the group but drops the session marker, "sleep 1002".
	daemonsEnv = "PORTICO_TEST_DAEMONS"
	// execEnv makes the host run the scripts that tests drop in its home
	// (see runInSession), as children of its own: as its PTY shells, they
	// are in the session's sandbox and cgroups.
	execEnv = "PORTICO_TEST_EXEC"
	execDir = "exec"
	// allocEnv makes the test binary allocate and touch that many bytes,
	// then print "allocated" and wait to be killed.
	allocEnv = "PORTICO_TEST_ALLOC"
	// listenEnv makes the test binary serve /healthz on a port of
	// 127.0.0.1, whose address it prints: a server that is no host.
	listenEnv = "PORTICO_TEST_LISTEN"
)

func TestMain(m *testing.M) {
	if n := os.Getenv(allocEnv); n != "" {
		allocate(n)
		return
	}
	if os.Getenv(listenEnv) == "1" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		fmt.Println(ln.Addr())
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		return
	}
	if os.Getenv(sessionHostEnv) == "1" {
		if os.Getenv(daemonsEnv) == "1" {
			if err := startDaemons(); err != nil {
				fmt.Fprintln(os.Stderr, "start daemons:", err)
				os.Exit(2)
			}
		}
		if os.Getenv(execEnv) == "1" {
			go runScripts()
		}
		if err := sessionhost.Main(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startDaemons() error {
	escaped := exec.Command("sleep", "1001")
	escaped.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	unmarked := exec.Command("sleep", "1002")
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, markerEnv+"=") {
			unmarked.Env = append(unmarked.Env, e)
		}
	}
	for _, cmd := range []*exec.Cmd{escaped, unmarked} {
		if err := cmd.Start(); err != nil {
			return err
		}
	}
	return nil
}

// runScripts runs each <n>.sh that appears in execDir with sh, its output
// in <n>.out, then writes its exit status to <n>.rc.
func runScripts() {
	os.Mkdir(execDir, 0o700)
	done := map[string]bool{}
	for ; ; time.Sleep(2 * time.Millisecond) {
		entries, _ := os.ReadDir(execDir)
		for _, e := range entries {
			n, ok := strings.CutSuffix(e.Name(), ".sh")
			if !ok || done[n] {
				continue
			}
			done[n] = true
			go func() {
				out, err := os.Create(filepath.Join(execDir, n+".out"))
				if err != nil {
					return
				}
				cmd := exec.Command("sh", filepath.Join(execDir, n+".sh"))
				cmd.Stdout, cmd.Stderr = out, out
				err = cmd.Run()
				out.Close()
				rc := "0"
				if err != nil {
					rc = err.Error()
				}
				tmp := filepath.Join(execDir, n+".rc.tmp")
				os.WriteFile(tmp, []byte(rc), 0o600)
				os.Rename(tmp, filepath.Join(execDir, n+".rc"))
			}()
		}
	}
}

// runInSession runs script with sh as a child of the host of the session
// at home, started with execEnv, and returns its output and exit status
// ("0", or how it failed).
func runInSession(t *testing.T, home, script string) (out, rc string) {
	t.Helper()
	dir := filepath.Join(home, execDir)
	n := strconv.FormatInt(time.Now().UnixNano(), 10)
	tmp := filepath.Join(home, n+".tmp")
	if err := os.WriteFile(tmp, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, n+".sh")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, n+".rc"))
		if err == nil {
			o, _ := os.ReadFile(filepath.Join(dir, n+".out"))
			return string(o), string(b)
		}
		if time.Now().After(deadline) {
			o, _ := os.ReadFile(filepath.Join(dir, n+".out"))
			t.Fatalf("script did not finish; output so far:\n%s", o)
		}
	}
}

// allocate allocates and touches n bytes, then waits.
func allocate(n string) {
	size, err := strconv.Atoi(n)
	if err != nil {
		panic(err)
	}
	var chunks [][]byte
	for size > 0 {
		c := make([]byte, min(size, 1<<20))
		for i := range c {
			c[i] = byte(i)
		}
		chunks = append(chunks, c)
		size -= len(c)
	}
	fmt.Println("allocated", len(chunks), "MiB")
	time.Sleep(time.Hour)
}

func newRuntime(t testing.TB, dir string, opts Options) *Runtime {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = dir
	}
	if opts.Command == nil {
		opts.Command = []string{os.Args[0]}
		opts.Env = append(opts.Env, sessionHostEnv+"=1")
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testSpec(name string) runtime.Spec {
	return runtime.Spec{
		Session:        name,
		ID:             "s001",
		Environment:    "portal-w01",
		Workshop:       "lab",
		Portal:         "portal",
		PortalURL:      "http://portal.127-0-0-1.nip.io",
		SessionURL:     "http://" + name + ".127-0-0-1.nip.io",
		ConfigPassword: "config-" + name,
		Env:            []runtime.EnvVar{{Name: "GREETING", Value: "hello"}},
	}
}

// stopOnCleanup makes sure no test leaves a session running.
func stopOnCleanup(t *testing.T, r *Runtime, name string) {
	t.Cleanup(func() {
		if err := r.Stop(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// httpGet gets path from the session host at addr.
func httpGet(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	client := &http.Client{Transport: runtime.HostTransport(0)}
	resp, err := client.Get(runtime.HostURL(addr).String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// assertGone fails unless pid has exited (a zombie has).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if _, ok := new(procReader).running(pid); ok {
		t.Errorf("process %d still running", pid)
	}
}

// assertNoSessionProcesses fails if anything still carries the marker of home.
func assertNoSessionProcesses(t *testing.T, home string) {
	t.Helper()
	if pids := sessionProcesses(home, 0); len(pids) > 0 {
		t.Errorf("session processes left: %v", pids)
	}
}

func TestStartServeStop(t *testing.T) {
	dir := t.TempDir()
	r := newRuntime(t, dir, Options{})
	ctx := context.Background()
	name := "portal-w01-s001"
	stopOnCleanup(t, r, name)

	inst, err := r.Start(ctx, testSpec(name))
	if err != nil {
		t.Fatal(err)
	}
	if !inst.Ready || inst.Address == "" || inst.Session != name || inst.Failed != "" {
		t.Fatalf("instance %+v", inst)
	}
	home := filepath.Join(r.dir, name)
	for path, want := range map[string]os.FileMode{
		home: 0o700 | os.ModeDir,
		filepath.Join(home, sessionhost.ConfigFile): 0o600,
		filepath.Join(home, ".ssh", "id_rsa"):       0o600,
		filepath.Join(home, ".ssh", "id_rsa.pub"):   0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}

	if code, body := httpGet(t, inst.Address, "/healthz"); code != http.StatusOK {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body := httpGet(t, inst.Address, "/config/environment?token=config-"+name)
	if code != http.StatusOK {
		t.Fatalf("environment: %d %s", code, body)
	}
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if env["SESSION_NAME"] != name || env["GREETING"] != "hello" || env["HOME"] != home {
		t.Errorf("environment %v", env)
	}
	for _, target := range []string{"/config/environment?token=wrong", "/workshop/config/id_rsa", "/config/variables?token=config-other"} {
		if code, body := httpGet(t, inst.Address, target); code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", target, code, body)
		}
	}

	// The page's poll comes through the portal, which adds the secret.
	poll, _ := http.NewRequest("GET", runtime.HostURL(inst.Address).String()+"/session/poll?hidden=false", nil)
	poll.Header.Set(sessionhost.SecretHeader, "config-"+name)
	resp, err := (&http.Client{Transport: runtime.HostTransport(0)}).Do(poll)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("poll: %s", resp.Status)
	}
	act, err := r.Activity(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	if act.Idle < 0 || act.Idle > time.Minute || act.LastView < 0 || act.LastView > time.Minute {
		t.Errorf("activity %+v", act)
	}

	st, err := r.Status(ctx, name)
	if err != nil || st != inst {
		t.Fatalf("Status = %+v, %v; want %+v", st, err, inst)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 1 || list[0] != inst {
		t.Fatalf("List = %+v, %v", list, err)
	}

	pid, err := readPID(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid)
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home left behind: %v", err)
	}
	if _, err := r.Status(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Status after Stop: %v, want ErrNotFound", err)
	}
	if _, err := r.Activity(ctx, inst); err == nil {
		t.Error("Activity of a stopped session: no error")
	}
}

func TestStopKillsEscapedProcesses(t *testing.T) {
	inModes(t, Options{Env: []string{daemonsEnv + "=1"}}, func(t *testing.T, r *Runtime) {
		ctx := context.Background()
		name := "portal-w01-s002"
		stopOnCleanup(t, r, name)
		if _, err := r.Start(ctx, testSpec(name)); err != nil {
			t.Fatal(err)
		}
		home := filepath.Join(r.dir, name)
		leader, err := readPID(home)
		if err != nil {
			t.Fatal(err)
		}
		host := hostPID(t, home)
		escaped, unmarked := childrenNamed(host, "sleep 1001"), childrenNamed(host, "sleep 1002")
		if len(escaped) != 1 || len(unmarked) != 1 {
			t.Fatalf("daemons: escaped %v, unmarked %v", escaped, unmarked)
		}
		// Check the test does test something: one process left the group,
		// the other lost the marker.
		var pr procReader
		hostStat, _ := pr.stat(host)
		if st, _ := pr.stat(escaped[0]); st.pgrp == hostStat.pgrp || !pr.hasMarker(escaped[0], marker(home)) {
			t.Fatalf("escaped daemon: pgrp %d (host %d), marker %v", st.pgrp, hostStat.pgrp, pr.hasMarker(escaped[0], marker(home)))
		}
		if st, _ := pr.stat(unmarked[0]); st.pgrp != hostStat.pgrp || pr.hasMarker(unmarked[0], marker(home)) {
			t.Fatalf("unmarked child: pgrp %d (host %d), marker %v", st.pgrp, hostStat.pgrp, pr.hasMarker(unmarked[0], marker(home)))
		}

		if err := r.Stop(ctx, name); err != nil {
			t.Fatal(err)
		}
		for _, pid := range []int{leader, host, escaped[0], unmarked[0]} {
			assertGone(t, pid)
		}
		assertNoSessionProcesses(t, home)
	})
}

func TestRestartedPortalAdoptsSessions(t *testing.T) {
	dir := t.TempDir()
	first := newRuntime(t, dir, Options{})
	ctx := context.Background()
	name := "portal-w01-s003"
	stopOnCleanup(t, first, name)
	inst, err := first.Start(ctx, testSpec(name))
	if err != nil {
		t.Fatal(err)
	}

	// A second runtime on the same directory knows nothing in memory,
	// as after a restart of the portal.
	second := newRuntime(t, dir, Options{})
	list, err := second.List(ctx)
	if err != nil || len(list) != 1 || list[0] != inst {
		t.Fatalf("List after restart = %+v, %v; want [%+v]", list, err, inst)
	}
	if st, err := second.Status(ctx, name); err != nil || st != inst {
		t.Fatalf("Status after restart = %+v, %v", st, err)
	}
	again, err := second.Start(ctx, testSpec(name))
	if err != nil || again != inst {
		t.Fatalf("Start after restart = %+v, %v; want the running %+v", again, err, inst)
	}
	if _, err := second.Activity(ctx, inst); err != nil {
		t.Fatal(err)
	}
	pid, _ := readPID(filepath.Join(second.dir, name))
	if err := second.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid)
	if list, err := first.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List after Stop = %+v, %v", list, err)
	}
}

func TestHostKilledExternallyIsFailed(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	ctx := context.Background()
	name := "portal-w01-s004"
	stopOnCleanup(t, r, name)
	if _, err := r.Start(ctx, testSpec(name)); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(r.dir, name)
	pid, err := readPID(home)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); isHost(pid, home); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("host survived SIGKILL")
		}
	}
	want := runtime.Instance{Session: name, Failed: "session host exited"}
	if st, err := r.Status(ctx, name); err != nil || st != want {
		t.Fatalf("Status = %+v, %v; want %+v", st, err, want)
	}
	if list, err := r.List(ctx); err != nil || len(list) != 1 || list[0] != want {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Starting it again replaces the remains with a new host.
	inst, err := r.Start(ctx, testSpec(name))
	if err != nil || !inst.Ready {
		t.Fatalf("restart: %+v, %v", inst, err)
	}
	if newPID, _ := readPID(home); newPID == pid {
		t.Fatal("same pid after restart")
	}
	if err := r.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home left behind: %v", err)
	}
}

func TestStopUnknownAndInvalidNames(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, name := range []string{"portal-w01-s999", "", ".", "..", "../etc", "a/b", ".hidden", "bad\x00name", strings.Repeat("x", 300)} {
		if err := r.Stop(ctx, name); err != nil {
			t.Errorf("Stop(%q) = %v, want nil", name, err)
		}
		if _, err := r.Status(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("Status(%q) = %v, want ErrNotFound", name, err)
		}
	}
	for _, name := range []string{"", "..", "../etc", "a/b", ".hidden"} {
		if _, err := r.Start(ctx, testSpec(name)); err == nil {
			t.Errorf("Start(%q): no error", name)
		}
	}
	if list, err := r.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		command []string
		timeout time.Duration
		want    []string
	}{
		// The runtime must notice the exit, not wait for the timeout.
		{"exits", []string{"sh", "-c", "echo cannot set up the session >&2; exit 3", "sh"}, time.Minute,
			[]string{"session host exited", "cannot set up the session"}},
		{"never ready", []string{"sh", "-c", "exec sleep 1000", "sh"}, 200 * time.Millisecond,
			[]string{"not ready after 200ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(t, t.TempDir(), Options{Command: tc.command, StartTimeout: tc.timeout})
			name := "portal-w01-s005"
			_, err := r.Start(ctx, testSpec(name))
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Start error %q does not contain %q", err, want)
				}
			}
			home := filepath.Join(r.dir, name)
			if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("home left behind: %v", err)
			}
			assertNoSessionProcesses(t, home)
			if _, err := r.Status(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
				t.Errorf("Status = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestStopAbortsStart(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{Command: []string{"sh", "-c", "exec sleep 1000", "sh"}})
	ctx := context.Background()
	name := "portal-w01-s006"
	home := filepath.Join(r.dir, name)
	started := make(chan error, 1)
	go func() {
		_, err := r.Start(ctx, testSpec(name))
		started <- err
	}()
	// Wait for the host to be spawned, reported as starting.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		pid, _ := readPID(home)
		if isHost(pid, home) {
			break
		}
		if time.Now().After(deadline) {
			select {
			case err := <-started:
				t.Fatalf("host not spawned; Start: %v", err)
			default:
			}
			t.Fatal("host not spawned")
		}
	}
	if st, err := r.Status(ctx, name); err != nil || st != (runtime.Instance{Session: name}) {
		t.Fatalf("Status while starting = %+v, %v", st, err)
	}
	if err := r.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := <-started; !errors.Is(err, errStopped) {
		t.Fatalf("Start = %v, want errStopped", err)
	}
	assertNoSessionProcesses(t, home)
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home left behind: %v", err)
	}
}

func TestConcurrentStarts(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	ctx := context.Background()
	names := []string{"portal-w01-s010", "portal-w01-s011", "portal-w01-s012"}
	for _, name := range names {
		stopOnCleanup(t, r, name)
	}
	const perSession = 5
	var wg sync.WaitGroup
	results := make([][]runtime.Instance, len(names))
	for i, name := range names {
		results[i] = make([]runtime.Instance, perSession)
		for j := range perSession {
			wg.Go(func() {
				inst, err := r.Start(ctx, testSpec(name))
				if err != nil {
					t.Error(err)
				}
				results[i][j] = inst
			})
		}
	}
	wg.Wait()
	for i, name := range names {
		for _, inst := range results[i] {
			if inst != results[i][0] || !inst.Ready {
				t.Errorf("%s: instances differ: %+v", name, results[i])
			}
		}
		// One host per session, whatever the number of Starts.
		home := filepath.Join(r.dir, name)
		if hosts := hostProcesses(home, os.Args[0]); len(hosts) != 1 {
			t.Errorf("%s: %d hosts, want 1", name, len(hosts))
		}
	}

	for _, name := range names {
		wg.Go(func() {
			if err := r.Stop(ctx, name); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := r.Status(ctx, name); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if list, err := r.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

// BenchmarkStartStop measures a session's start-to-ready time (and its stop)
// with the test binary as session host.
func BenchmarkStartStop(b *testing.B) {
	r := newRuntime(b, b.TempDir(), Options{})
	ctx := context.Background()
	var ready time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench-s%d", i)
		t0 := time.Now()
		if _, err := r.Start(ctx, testSpec(name)); err != nil {
			b.Fatal(err)
		}
		ready += time.Since(t0)
		if err := r.Stop(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ready.Microseconds())/float64(b.N)/1000, "ms-to-ready/op")
}

// BenchmarkScan measures the /proc scan that Stop runs to find the
// processes of a session, per process on the machine.
func BenchmarkScan(b *testing.B) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Skip(err)
	}
	procs := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			procs++
		}
	}
	for b.Loop() {
		sessionProcesses("/nonexistent/session", 1) // as Stop scans: by group and marker
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(procs), "ns/process")
}

// Two portals start one session at once: a leader that stalled in the
// middle of a start, and the replica that took over. The session must end
// up with a working host. Without the claim, the second start made a home
// and a host, and the first, once it resumed, failed on that home and its
// cleanup killed the second one's host.
func TestConcurrentStartsByTwoPortals(t *testing.T) {
	dir := t.TempDir()
	a := newRuntime(t, dir, Options{})
	b := newRuntime(t, dir, Options{})
	spec := testSpec("portal-w01-s171")
	stopOnCleanup(t, b, spec.Session)
	resume, first := stallStart(context.Background(), a, spec)
	_, errB := b.Start(context.Background(), spec)
	resume()
	errA := <-first
	t.Logf("first start: %v; second start: %v", errA, errB)
	if errA != nil && errB != nil {
		t.Fatalf("both starts failed: %v; %v", errA, errB)
	}
	inst, err := b.Status(context.Background(), spec.Session)
	if err != nil || !inst.Ready || inst.Failed != "" {
		t.Fatalf("the session after both starts: %+v %v, want a ready host", inst, err)
	}
}

// stallStart starts spec in r and returns once the start has stalled
// before it spawns the host, as in a portal that froze there; resume lets
// it go on, and first delivers its outcome.
func stallStart(ctx context.Context, r *Runtime, spec runtime.Spec) (resume func(), first <-chan error) {
	stalled, resumed := make(chan struct{}), make(chan struct{})
	r.beforeSpawn = func() {
		close(stalled)
		<-resumed
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Start(ctx, spec)
		done <- err
	}()
	<-stalled
	return func() { close(resumed) }, done
}

// While another portal holds a session, this one keeps its hands off it,
// and says so at once; the claim goes with the session when it stops.
func TestSessionBusyInAnotherPortal(t *testing.T) {
	dir := t.TempDir()
	a := newRuntime(t, dir, Options{})
	b := newRuntime(t, dir, Options{})
	const name = "portal-w01-s170"
	stopOnCleanup(t, a, name)
	c, err := a.claim(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Start(context.Background(), testSpec(name)); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("start while another portal holds the session: %v, want ErrBusy", err)
	}
	if err := b.Stop(context.Background(), name); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("stop while another portal holds the session: %v, want ErrBusy", err)
	}
	a.release(name, c)
	if inst, err := b.Start(context.Background(), testSpec(name)); err != nil || !inst.Ready {
		t.Fatalf("start once released: %+v %v", inst, err)
	}
	if err := a.Stop(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.lockPath(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("claim file after stop: %v", err)
	}
	c, err = b.claim(context.Background(), name)
	if err != nil {
		t.Fatalf("claim after stop: %v", err)
	}
	b.release(name, c)
}

// A workshop's setup scripts may each take up to sessionhost.SetupTimeout:
// the start must wait that long (it gave up after 30 s, so a workshop
// with a longer setup could never start).
func TestDefaultStartTimeoutOutlastsSetup(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	if r.startTimeout <= sessionhost.SetupTimeout {
		t.Errorf("start timeout %s, setup scripts may take %s", r.startTimeout, sessionhost.SetupTimeout)
	}
}

// A claim released while the portal forks a process (a host, slirp4netns)
// is released: the child's copy of the claim's descriptor, which it holds
// until it runs its program, kept the session claimed, and a Start or Stop
// right after failed with ErrBusy.
func TestReleasedClaimNotHeldByCopies(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	const name = "portal-w01-s172"
	c, err := r.claim(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	// The copy a fork makes: another descriptor of the same open file.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	copied := -1
	for _, e := range entries {
		if target, _ := os.Readlink("/proc/self/fd/" + e.Name()); target == r.lockPath(name) {
			fd, _ := strconv.Atoi(e.Name())
			if copied, err = syscall.Dup(fd); err != nil {
				t.Fatal(err)
			}
		}
	}
	if copied < 0 {
		t.Fatal("no descriptor of the claim file")
	}
	defer syscall.Close(copied)
	r.release(name, c)
	c, err = r.claim(context.Background(), name)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	r.release(name, c)
}

// A portal that stalls in the middle of a start keeps its claim only as
// long as its lease: work with a newer fencing token breaks the claim once
// the stalled portal has stopped touching it, and starts the session; the
// stalled portal, once it resumes, leaves the session alone, and its stale
// stop is refused. Before, a portal frozen for ever kept the session
// STARTING until it died.
func TestStalledClaimBrokenByNewerLeader(t *testing.T) {
	dir := t.TempDir()
	a := newRuntime(t, dir, Options{})
	b := newRuntime(t, dir, Options{})
	a.claimBeat = time.Hour // frozen: its heartbeat stops with it
	spec := testSpec("portal-w01-s173")
	name := spec.Session
	old, current := runtime.WithFence(context.Background(), 1), runtime.WithFence(context.Background(), 2)
	t.Cleanup(func() {
		if err := b.Stop(current, name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	resume, first := stallStart(old, a, spec)

	// Its claim is fresh: the holder may only be slow.
	if _, err := b.Start(current, spec); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("start while the stalled portal's claim is fresh: %v, want ErrBusy", err)
	}
	// Untouched for longer than claimStale: the holder does not run.
	untouched := time.Now().Add(-2 * claimStale)
	if err := os.Chtimes(b.lockPath(name), untouched, untouched); err != nil {
		t.Fatal(err)
	}
	// Work no newer than the holder's does not break it.
	if _, err := b.Start(old, spec); !errors.Is(err, runtime.ErrBusy) {
		t.Fatalf("start with the holder's own token: %v, want ErrBusy", err)
	}
	inst, err := b.Start(current, spec)
	if err != nil || !inst.Ready {
		t.Fatalf("start by the newer leader: %+v %v", inst, err)
	}

	resume()
	if err := <-first; !errors.Is(err, runtime.ErrFenced) {
		t.Errorf("the resumed start: %v, want ErrFenced", err)
	}
	if err := a.Stop(old, name); !errors.Is(err, runtime.ErrFenced) {
		t.Errorf("the stalled portal's stop: %v, want ErrFenced", err)
	}
	got, err := b.Status(context.Background(), name)
	if err != nil || !got.Ready || got.Address != inst.Address {
		t.Fatalf("the session after the stalled portal resumed: %+v %v, want the newer leader's host at %s", got, err, inst.Address)
	}
	if code, _ := httpGet(t, got.Address, "/healthz"); code != http.StatusOK {
		t.Errorf("the newer leader's host answers %d", code)
	}
}
