// Package local is the default session runtime: each session is a process
// tree on this machine, led by a session host (internal/sessionhost) that
// runs in the session's home directory, sandboxed by bubblewrap when it is
// installed (see sandbox.go) and limited by cgroups where the portal may
// create them (see cgroup.go).
//
// Everything the runtime knows about a session is on disk, in the session
// home and the session's cgroups, so a restarted portal lists and re-adopts
// the sessions that kept running while it was down; what it keeps in
// memory is which Start and Stop calls are in flight in this process, and
// which hosts it follows to report their exits.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/untrusted"
)

// Files of a session home written by the runtime, next to the host's own.
//
// The pid file holds the pid of the process the runtime started: the host,
// or bwrap, which exits when the host does. In the sandbox, the pid 1 of
// the session's pid namespace follows, another bwrap process, which stays
// while any process of the session does; its death makes the kernel kill
// them all. The file exists, empty, from before the host starts, as the
// sandbox makes it read-only; the runtime writes it in place, never
// replacing it (which would detach that read-only mount: a mount point can
// be replaced from outside its mount namespace).
const (
	pidFile = sessionhost.StateDir + "/pid"
	logFile = sessionhost.StateDir + "/host.log"
	// hostSocket is where the host serves the portal.
	hostSocket = sessionhost.StateDir + "/host.sock"
)

const (
	// defaultStartTimeout lets a host run a setup script to its limit,
	// with a minute for the rest of its start.
	defaultStartTimeout = sessionhost.SetupTimeout + time.Minute
	// stopGrace is how long the processes of a stopping session have to
	// exit after SIGTERM before they get SIGKILL.
	stopGrace = 2 * time.Second
	// maxPollInterval bounds the wait between readiness checks of a
	// starting host; the first checks come faster, as a host is usually
	// ready within a few tens of milliseconds.
	maxPollInterval = 10 * time.Millisecond
	probeTimeout    = time.Second
	statusTimeout   = 500 * time.Millisecond
	// notedPollInterval is the wait between readiness checks of a host
	// that says when it serves (sessionhost.NoteServing).
	notedPollInterval = 100 * time.Millisecond
)

// errStopped ends a Start overtaken by a Stop of the same session.
var errStopped = errors.New("session stopped while starting")

// Options configures a Runtime.
type Options struct {
	// Dir holds one directory per session, <Dir>/<session name>, which is
	// the session's home. Created if missing.
	Dir string
	// Command is the argv prefix that starts a session host, such as
	// [".../portico-session"] or [os.Executable(), "sessionhost"].
	Command []string
	// Env is extra KEY=VALUE environment for the session host process.
	Env []string
	// StartTimeout bounds a Start; when zero, long enough for a setup
	// script to use all of sessionhost.SetupTimeout.
	StartTimeout time.Duration
	// Hide lists absolute paths, beside the directory holding Dir (the
	// portal's data dir), that sessions must not see when sandboxed, even
	// where the sandbox shows what holds them (the portal's definitions in
	// /etc): directories look empty, files empty.
	Hide []string
	// ReadOnly lists absolute paths that sandboxed sessions see read-only,
	// beside the system directories and /etc (tools installed in /opt).
	ReadOnly []string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Runtime runs sessions as local processes. It implements runtime.Runtime.
type Runtime struct {
	dir          string
	command      []string
	env          []string
	startTimeout time.Duration
	log          *slog.Logger
	client       *http.Client

	// bwrap is the path of bubblewrap; sessions run unsandboxed without it.
	bwrap string
	// hide are the paths sessions must not see; readOnly those they see
	// read-only beside the system's.
	hide, readOnly []string
	// userns is set when sessions get identities of their own (see
	// identity.go): the sandbox runs, and the portal may map ids.
	userns bool
	// slirp is the path of slirp4netns, which gives sandboxed sessions
	// outbound network access; "" without it: they have none.
	slirp string
	// seccomp returns a file holding the seccomp filter of sandboxed
	// sessions, for bwrap to read; nil for none.
	seccomp func() (*os.File, error)
	// beforeSpawn, when set, runs in Start just before the host is
	// spawned: tests stall a start there, as a portal that freezes would.
	beforeSpawn func()
	// cgroups are where sessions get cgroups; nil or empty without any.
	cgroups *cgroupSet
	// cgroupMounts are the mount points of every cgroup hierarchy, to
	// check the cgroups a session home lists.
	cgroupMounts []string
	// prlimit is the path of prlimit(1), for a memory limit without
	// cgroups; "" when missing.
	prlimit string
	// storage gives session homes filesystems of their own (storage.go).
	storage *storage
	exits   exitQueue
	warned  sync.Map // warnings already logged

	// claimBeat is how often a claim file is touched (claim.go); tests
	// stop it, as a stalled portal's.
	claimBeat time.Duration

	mu       sync.Mutex
	sessions map[string]*entry     // sessions with a Start or Stop in flight
	claims   map[string]*claim     // the claims this process holds
	hosts    map[string]*host      // the hosts followed for Exited
	networks map[string]*netAttach // the networks this runtime attaches, until Stop
	biasing  bool                  // oomBiasLoop runs
}

var (
	_ runtime.Fencer      = (*Runtime)(nil)
	_ runtime.ExitWatcher = (*Runtime)(nil)
)

// entry serialises the Starts and Stops of one session in this process.
type entry struct {
	lock chan struct{} // a mutex whose waiters can give up with their context
	// Guarded by Runtime.mu:
	refs   int           // calls holding or waiting for lock
	starts int           // Starts among them
	abort  chan struct{} // closed by Stop to abort the Starts before it
}

// New returns a runtime keeping its sessions under opts.Dir. It looks for
// bwrap in PATH and for the cgroups it may create, and logs what sessions
// will get.
func New(opts Options) (*Runtime, error) {
	if opts.Dir == "" {
		return nil, errors.New("local runtime: no session directory")
	}
	if len(opts.Command) == 0 {
		return nil, errors.New("local runtime: no session host command")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	// Session homes are the identity of sessions (see markerEnv), so they
	// must be spelled the same way after a restart.
	dir, err := filepath.Abs(opts.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	command := slices.Clone(opts.Command)
	// Resolved now because hosts start in their home directory, where a
	// relative path would mean something else.
	path, err := exec.LookPath(command[0])
	if err == nil {
		path, err = filepath.Abs(path)
	}
	if err != nil {
		return nil, fmt.Errorf("local runtime: session host command: %w", err)
	}
	command[0] = path
	hide, err := hiddenPaths(dir, opts.Hide)
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	readOnly, err := absolutePaths(opts.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("local runtime: read-only path: %w", err)
	}
	r := &Runtime{
		dir:          dir,
		command:      command,
		env:          slices.Clone(opts.Env),
		startTimeout: opts.StartTimeout,
		log:          opts.Logger,
		hide:         hide,
		readOnly:     readOnly,
		exits:        exitQueue{ch: make(chan string)},
		sessions:     make(map[string]*entry),
		claims:       make(map[string]*claim),
		claimBeat:    claimBeat,
		hosts:        make(map[string]*host),
		networks:     make(map[string]*netAttach),
		client:       runtime.HostClient(),
	}
	if r.startTimeout <= 0 {
		r.startTimeout = defaultStartTimeout
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.bwrap, err = exec.LookPath("bwrap"); err != nil {
		if os.Geteuid() == 0 {
			return nil, errors.New("local runtime: bubblewrap not found, and sessions never run as root unsandboxed: apt-get install bubblewrap")
		}
		r.bwrap = ""
		r.log.Warn("bubblewrap not found: sessions run unsandboxed, as the portal's user, with the portal's network and files (apt-get install bubblewrap)")
	} else if out, err := exec.Command(r.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true").CombinedOutput(); err != nil {
		// Sessions would fail to start: say why now.
		r.log.Error("bubblewrap cannot make a sandbox here: sessions will fail to start", "bwrap", r.bwrap, "err", err, "output", strings.TrimSpace(string(out)))
	}
	if r.bwrap != "" {
		r.userns = os.Geteuid() == 0
		if !r.userns {
			r.log.Warn("the portal is not root: sessions run as the portal's user, and their programs can signal and trace their session host")
		}
		if prog, err := seccompProgram(); err != nil {
			r.log.Warn("sessions run without a seccomp filter", "err", err)
		} else {
			r.seccomp = func() (*os.File, error) { return seccompFile(prog) }
		}
		if r.slirp, err = exec.LookPath("slirp4netns"); err != nil {
			r.slirp = ""
			r.log.Warn("slirp4netns not found: sessions have no network beyond their own (apt-get install slirp4netns)")
		} else if !haveDevice(tunDevice, "tun") {
			r.slirp = ""
			r.log.Warn("no " + tunDevice + ": sessions have no network beyond their own (modprobe tun)")
		}
	}
	if r.prlimit, err = exec.LookPath("prlimit"); err != nil {
		r.prlimit = ""
	}
	if r.userns {
		r.releaseStaleIDs()
	}
	r.cgroups = detectCgroups()
	r.cgroupMounts = r.cgroups.mounts
	if r.cgroups.any() {
		r.log.Info("session limits by cgroups", "cgroups", r.cgroups.String())
		if n := r.cgroups.removeStale(); n > 0 {
			r.log.Info("removed the cgroups of sessions killed without a stop", "count", n)
		}
	}
	if r.cgroups.problem != nil {
		r.log.Error("sessions will start without some of their limits", "err", r.cgroups.problem)
	}
	r.storage = newStorage(dir, r.log)
	return r, nil
}

// warnOnce logs msg once for the life of r.
func (r *Runtime) warnOnce(msg string, args ...any) {
	if _, done := r.warned.LoadOrStore(msg, true); !done {
		r.log.Warn(msg, args...)
	}
}

// Start starts the session host of spec.Session and waits until it serves.
// A session already running, even one started before a portal restart, is
// returned as it is. A Start that fails leaves no process and no directory.
func (r *Runtime) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	name := spec.Session
	if !validName(name) {
		return runtime.Instance{}, fmt.Errorf("start session: invalid name %q", name)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.startTimeout,
		fmt.Errorf("session host not ready after %s", r.startTimeout))
	defer cancel()
	e, abort := r.enter(name, true)
	defer r.leave(name, e, true)
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, context.Cause(ctx))
	}
	defer func() { <-e.lock }()
	c, err := r.claim(ctx, name)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	defer r.release(name, c)
	r.warnClusterOnly(spec)

	inst, err := r.start(ctx, abort, spec)
	if err == nil && c.lost() {
		err = runtime.ErrFenced
	}
	if errors.Is(err, runtime.ErrFenced) {
		// The host at the home, if any, is the new leader's.
		r.expectExit(name)
	}
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	return inst, nil
}

// HonoursFences: Start and Stop carry the caller's fencing token into the
// session's claim (claim.go).
func (r *Runtime) HonoursFences() {}

func (r *Runtime) start(ctx context.Context, abort <-chan struct{}, spec runtime.Spec) (runtime.Instance, error) {
	select {
	case <-abort:
		return runtime.Instance{}, errStopped
	default:
	}
	name := spec.Session
	inst, pid, err := r.inspect(name)
	switch {
	case errors.Is(err, runtime.ErrNotFound):
	case err != nil:
		return runtime.Instance{}, err
	case inst.Failed == "":
		_, init, _ := readPIDs(r.home(name))
		return r.awaitReady(ctx, abort, name, pid, r.adopt(name, r.home(name), pid, init), nil, nil)
	default:
		// The remains of a host that died: clear them for a fresh start.
		if err := r.remove(ctx, name); err != nil {
			return runtime.Instance{}, err
		}
	}
	for _, l := range r.unenforced(spec.Limits) {
		r.warnOnce("session "+l+" limits are not enforced: no cgroup for them", "limits", spec.Limits)
	}
	if r.rlimitArgs(spec.Limits) != nil {
		r.warnOnce("session memory limits apply to each process alone (RLIMIT_DATA): no memory cgroup")
	}
	if r.beforeSpawn != nil {
		r.beforeSpawn()
	}
	if r.claimLost(name) {
		return runtime.Instance{}, runtime.ErrFenced
	}
	// What the host tells as it starts (sessionhost.NoteNetwork and
	// NoteServing).
	notes, notesW, err := os.Pipe()
	if err != nil {
		return runtime.Instance{}, err
	}
	defer notes.Close()
	serving := make(chan struct{}, 1)
	readNotes(notes, func(note byte) {
		switch note {
		case sessionhost.NoteNetwork:
			r.beginNetwork(name)
		case sessionhost.NoteServing:
			select {
			case serving <- struct{}{}:
			default:
			}
		}
	})
	pid, h, exited, err := r.spawn(spec, notesW)
	if err != nil {
		r.abandon(name, pid)
		return runtime.Instance{}, err
	}
	inst, err = r.awaitReady(ctx, abort, name, pid, h, exited, serving)
	if err == nil {
		r.protectSandbox(h)
		r.beginNetwork(name)
	}
	return inst, err
}

// spawn creates the session home and starts the host in it, in its
// cgroups and sandbox, with notes as the pipe for its notes, which spawn
// closes. It returns the process it started (see pidFile), or 0 if it
// started none; exited is closed when that process exits.
func (r *Runtime) spawn(spec runtime.Spec, notes *os.File) (pid int, h *host, exited <-chan struct{}, err error) {
	defer notes.Close() // the host has its copy
	name := spec.Session
	home := r.home(name)
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return 0, nil, nil, err
	}
	if err := os.Mkdir(home, 0o700); err != nil {
		return 0, nil, nil, err
	}
	if err := r.storage.mount(home, spec.Limits.Storage); err != nil {
		return 0, nil, nil, fmt.Errorf("session storage: %w", err)
	}
	state := filepath.Join(home, sessionhost.StateDir)
	if err := os.Mkdir(state, 0o700); err != nil {
		return 0, nil, nil, err
	}
	cfg := sessionhost.ConfigOf(spec)
	var ids idRange
	if r.userns {
		if ids, err = r.allocateIDs(name); err != nil {
			return 0, nil, nil, err
		}
		if err := writeFileNew(filepath.Join(home, idsFile), []byte(strconv.Itoa(ids.slot))); err != nil {
			return 0, nil, nil, err
		}
		cfg.WorkshopUser = &sessionhost.WorkshopUser{UID: workshopUID, GID: workshopGID, Name: workshopUser}
	}
	cfg.Network = r.bwrap != "" && r.slirp != "" && !spec.Offline
	if err := sessionhost.WriteConfig(home, cfg); err != nil {
		return 0, nil, nil, err
	}
	if r.bwrap != "" {
		nameserver := ""
		if cfg.Network {
			nameserver = slirpNameserver
		}
		if err := writeEtc(home, nameserver); err != nil {
			return 0, nil, nil, err
		}
	}
	if r.userns {
		// The home is the workshop user's; the state directory stays the
		// host's, closed to the workshop.
		if err := os.Chown(home, ids.host(workshopUID), ids.host(workshopGID)); err != nil {
			return 0, nil, nil, err
		}
	}
	logf, err := os.OpenFile(filepath.Join(home, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, nil, nil, err
	}
	defer logf.Close()
	pidf, err := os.OpenFile(filepath.Join(home, pidFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, nil, nil, err
	}
	defer pidf.Close()
	var cgroups *sessionCgroups
	if r.cgroups.any() {
		if cgroups, err = r.cgroups.create(home, spec.Limits); err != nil {
			return 0, nil, nil, fmt.Errorf("session cgroups: %w", err)
		}
	}

	argv := r.rlimitArgs(spec.Limits)
	var info, infoW, block, blockW, userns, usernsW *os.File
	var extra []*os.File
	pass := func(f *os.File) int {
		extra = append(extra, f)
		return 2 + len(extra) // ExtraFiles start at 3
	}
	if r.bwrap != "" {
		if info, infoW, err = os.Pipe(); err != nil {
			return 0, nil, nil, err
		}
		defer info.Close()
		defer infoW.Close()
		if block, blockW, err = os.Pipe(); err != nil {
			return 0, nil, nil, err
		}
		defer block.Close()
		defer blockW.Close()
		fds := sandboxFDs{info: pass(infoW), block: pass(block)}
		if r.seccomp != nil {
			f, err := r.seccomp()
			if err != nil {
				return 0, nil, nil, err
			}
			defer f.Close()
			fds.seccomp = pass(f)
		}
		if r.userns {
			if userns, usernsW, err = os.Pipe(); err != nil {
				return 0, nil, nil, err
			}
			defer userns.Close()
			defer usernsW.Close()
			fds.userns = pass(userns)
		}
		argv = append(append(argv, r.bwrap), r.sandboxArgs(home, workshopSources(spec), spec.Limits, fds)...)
	}
	argv = append(append(argv, r.command...), "--listen", runtime.UnixAddress(filepath.Join(home, hostSocket)),
		"--notify-fd", strconv.Itoa(pass(notes)))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = home
	cmd.Env = r.hostEnv(home)
	// A file, not a pipe: the host must keep logging after the portal dies.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = extra
	// A process group of its own keeps signals aimed at the portal's
	// terminal away from sessions, and lets Stop signal an unsandboxed
	// host's tree at once. No Pdeathsig: sessions outlive a crash of the
	// portal, which re-adopts them (and the thread that starts the host
	// ends at once, see startIn).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.userns {
		// bwrap makes the session's user namespace (see identity.go) and
		// sets the sandbox up in it, with the capabilities of that
		// namespace only; its first process, which only waits for the
		// host, stays outside with none (bwrap drops them all). Made by
		// the portal's fork, the namespace cost a copy of the portal's
		// address space: Go forks a child into a new user namespace
		// without vfork.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if cgroups != nil {
		err = cgroups.startIn(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return 0, nil, nil, err
	}
	if infoW != nil {
		infoW.Close() // bwrap's copy only: EOF if bwrap exits early
		block.Close()
	}
	if userns != nil {
		userns.Close()
	}
	child := cmd.Process.Pid
	h = r.spawned(name, child, cgroups, info != nil)
	done := make(chan struct{})
	go func() {
		// Reap the host. Hosts re-adopted after a restart of the portal are
		// not its children: PID 1 reaps those.
		err := cmd.Wait()
		close(done)
		r.log.Info("session host exited", "session", name, "pid", child, "status", err)
		r.hostExited(name, h)
	}()
	var init int
	if info != nil {
		if init, err = readSandboxInfo(info); err != nil {
			return child, h, done, fmt.Errorf("sandbox: %w; last lines of host.log:\n%s", err, logTail(filepath.Join(home, logFile)))
		}
		r.setInit(h, init)
		if userns != nil {
			if err := ids.writeMaps(init); err != nil {
				return child, h, done, fmt.Errorf("sandbox: id maps: %w", err)
			}
			if _, err := usernsW.Write([]byte{1}); err != nil {
				return child, h, done, fmt.Errorf("sandbox: %w; last lines of host.log:\n%s", err, logTail(filepath.Join(home, logFile)))
			}
		}
	}
	content := strconv.Itoa(child)
	if init > 0 {
		content += " " + strconv.Itoa(init)
	}
	if _, err := pidf.Write([]byte(content)); err != nil {
		return child, h, done, err
	}
	if cfg.Network {
		// The network comes up once the host serves (see network.go), or
		// when it asks: the host waits for it where it needs it (see
		// sessionhost.Config.Network), and fails its start if it does not
		// come.
		r.mu.Lock()
		r.networks[name] = newNetAttach(func() {
			if err := r.attachNetwork(home, init); err != nil {
				r.log.Error("session network", "session", name, "err", err)
			}
		})
		r.mu.Unlock()
	}
	if init > 0 {
		// The pid file is written: let bwrap start the host.
		if _, err := blockW.Write([]byte{1}); err != nil {
			return child, h, done, fmt.Errorf("sandbox: %w; last lines of host.log:\n%s", err, logTail(filepath.Join(home, logFile)))
		}
	}
	return child, h, done, nil
}

// protectSandbox keeps the OOM killer away from bwrap, whose death would
// end the session (see oom.go for the host). bwrap is protected only once
// the host runs: what a protected process starts inherits the protection,
// and bwrap's pid 1 starts nothing but the host.
func (r *Runtime) protectSandbox(h *host) {
	r.mu.Lock()
	pids := []int{h.pid, h.init}
	r.mu.Unlock()
	if pids[1] == 0 {
		return // unsandboxed
	}
	for _, p := range pids {
		// Fails unless the portal may (CAP_SYS_RESOURCE): then bwrap stays
		// as likely a victim as any small process.
		os.WriteFile("/proc/"+strconv.Itoa(p)+"/oom_score_adj", []byte("-1000"), 0)
	}
}

// hostEnv is the whole environment of a session host. It does not inherit
// the portal's environment, which may hold the portal's own secrets.
func (r *Runtime) hostEnv(home string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env := append([]string{"PATH=" + path, "HOME=" + home}, r.env...)
	return append(env, string(marker(home)))
}

// awaitReady polls the host until its address is published and answers
// /healthz. A host this process started says when it serves (serving):
// the polls are then a safety net, seldom. On failure it ends the session
// and reports the host's last words.
//
// exited and serving are nil for a host that this process did not start.
// For one it did, /proc cannot tell: just after exec, /proc/<pid>/environ
// is still empty, so the host would not look like one.
func (r *Runtime) awaitReady(ctx context.Context, abort <-chan struct{}, name string, pid int, h *host, exited, serving <-chan struct{}) (runtime.Instance, error) {
	home := r.home(name)
	errExited := errors.New("session host exited")
	var err error
	delay, most := time.Millisecond, maxPollInterval
	if serving != nil {
		delay, most = notedPollInterval, notedPollInterval
	}
poll:
	for ; ; delay = min(delay*6/5, most) {
		if exited == nil && !isHost(pid, home) {
			err = errExited
			break poll
		}
		if addr, aerr := r.address(home); aerr == nil && r.probe(ctx, addr, probeTimeout) == nil {
			if r.claimLost(name) {
				// The host that serves may be the new leader's, in the
				// same home: this one's is not to be followed as ready.
				r.expectExit(name)
				return runtime.Instance{}, runtime.ErrFenced
			}
			r.markReady(name, h)
			return runtime.Instance{Session: name, Address: addr, Ready: true}, nil
		}
		select {
		case <-exited:
			err = errExited
			break poll
		case <-ctx.Done():
			err = context.Cause(ctx)
			break poll
		case <-abort:
			err = errStopped
			break poll
		case <-serving:
		case <-time.After(delay):
		}
	}
	tail := logTail(filepath.Join(home, logFile))
	r.abandon(name, pid)
	return runtime.Instance{}, fmt.Errorf("%w; last lines of host.log:\n%s", err, tail)
}

// abandon ends a session whose start failed, without a grace period: its
// host never served anybody. pid is trusted as the host's process group:
// the host is this process's child, or was checked by inspect.
func (r *Runtime) abandon(name string, pid int) {
	home := r.home(name)
	r.expectExit(name)
	if r.claimLost(name) {
		return // what is there is the new leader's
	}
	r.callOffNetwork(name)
	if err := killSession(context.Background(), r.victims(home, pid), 0); err != nil {
		r.log.Error("cannot end failed session", "session", name, "err", err)
		return
	}
	if err := r.removeHome(name); err != nil {
		r.log.Error("cannot remove failed session", "session", name, "err", err)
	}
}

// Stop ends every process of the session, including daemons that left its
// process group, then removes its home. Stop of an unknown session is nil.
func (r *Runtime) Stop(ctx context.Context, name string) error {
	if !validName(name) {
		return nil
	}
	e, _ := r.enter(name, false)
	defer r.leave(name, e, false)
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", name, ctx.Err())
	}
	defer func() { <-e.lock }()
	c, err := r.claim(ctx, name)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer r.release(name, c)
	if err := r.remove(ctx, name); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	if c.lost() {
		return fmt.Errorf("stop %s: %w", name, runtime.ErrFenced)
	}
	r.unclaim(name)
	return nil
}

// remove kills the session and deletes its home. It scans for processes
// even without a home or pid file: a session whose home was deleted from
// inside may still run.
func (r *Runtime) remove(ctx context.Context, name string) error {
	if r.claimLost(name) {
		return runtime.ErrFenced
	}
	home := r.home(name)
	pid, _ := readPID(home)
	if !isHost(pid, home) {
		pid = 0 // the pid file may name anything
	}
	r.expectExit(name)
	r.callOffNetwork(name)
	if err := killSession(ctx, r.victims(home, pid), stopGrace); err != nil {
		return err
	}
	return r.removeHome(name)
}

// removeHome deletes the home of a session whose processes are gone, then
// frees its ids.
func (r *Runtime) removeHome(name string) error {
	home := r.home(name)
	ids, hasIDs := idsOf(home)
	// The ids file is in the home's filesystem, which goes first.
	if err := r.storage.release(home); err != nil {
		return err
	}
	if err := os.RemoveAll(home); err != nil {
		return err
	}
	if hasIDs {
		r.releaseIDs(name, ids)
	}
	return nil
}

// victims describes what to kill to end the session at home, whose host
// process (see pidFile) is pid, trusted to be the session's, or 0.
func (r *Runtime) victims(home string, pid int) victims {
	v := victims{home: home, cgroups: sessionCgroupsOf(home, r.cgroupMounts)}
	if pid > 0 {
		v.pgid = pid // the runtime starts hosts in a process group of their own
	}
	if _, init, _ := readPIDs(home); isSandboxInit(init, home) {
		v.leader = init
	}
	return v
}

// Status reports the session, probing its host when it looks ready.
func (r *Runtime) Status(ctx context.Context, name string) (runtime.Instance, error) {
	if !validName(name) {
		return runtime.Instance{}, runtime.ErrNotFound
	}
	inst, _, err := r.inspect(name)
	if err != nil {
		return runtime.Instance{}, err
	}
	inst = r.withStarting(inst)
	if inst.Ready {
		inst.Ready = r.probe(ctx, inst.Address, statusTimeout) == nil
	}
	return inst, nil
}

// List reports every session directory, from the disk only. A host that
// published its address is reported ready without a probe: it publishes
// only once set up.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	entries, err := os.ReadDir(r.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []runtime.Instance
	for _, e := range entries {
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		inst, _, err := r.inspect(e.Name())
		if errors.Is(err, runtime.ErrNotFound) {
			continue // stopped meanwhile
		}
		if err != nil {
			return nil, err
		}
		list = append(list, r.withStarting(inst))
	}
	return list, nil
}

// Allocate posts the owner and parameters to the session host.
func (r *Runtime) Allocate(ctx context.Context, inst runtime.Instance, secret string, a runtime.Allocation) error {
	if inst.Address == "" {
		return fmt.Errorf("allocate %s: no address", inst.Session)
	}
	ctx, cancel := context.WithTimeout(ctx, sessionhost.CallTimeout)
	defer cancel()
	if err := (sessionhost.Client{HTTP: r.client}).Allocate(ctx, inst.Address, secret, a); err != nil {
		return fmt.Errorf("allocate %s: %w", inst.Session, err)
	}
	return nil
}

// Activity asks the session host how recently it was used.
func (r *Runtime) Activity(ctx context.Context, inst runtime.Instance) (runtime.Activity, error) {
	if inst.Address == "" {
		return runtime.Activity{}, fmt.Errorf("activity of %s: no address", inst.Session)
	}
	ctx, cancel := context.WithTimeout(ctx, sessionhost.CallTimeout)
	defer cancel()
	act, err := (sessionhost.Client{HTTP: r.client}).Activity(ctx, inst.Address)
	if err != nil {
		return act, fmt.Errorf("activity of %s: %w", inst.Session, err)
	}
	return act, nil
}

// inspect reads the state of a session from its home: ErrNotFound without
// one, Failed when its host is not running, Ready once its address is
// published. pid is the host's pid, 0 when unknown.
func (r *Runtime) inspect(name string) (inst runtime.Instance, pid int, err error) {
	home := r.home(name)
	fi, err := os.Lstat(home)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return runtime.Instance{}, 0, runtime.ErrNotFound
	}
	if err != nil {
		return runtime.Instance{}, 0, err
	}
	pid, init, err := readPIDs(home)
	if err != nil || !isHost(pid, home) {
		return runtime.Instance{Session: name, Failed: "session host exited"}, pid, nil
	}
	h := r.adopt(name, home, pid, init)
	addr, err := r.address(home)
	if err != nil {
		return runtime.Instance{Session: name}, pid, nil
	}
	r.markReady(name, h)
	return runtime.Instance{Session: name, Address: addr, Ready: true}, pid, nil
}

// address returns the address of the host of home once it published it:
// the Unix socket the runtime told it to serve on. The state directory
// belongs to the host, so nothing but the host (or, unsandboxed, the
// session's programs, which then are as trusted as the host) can have
// made a socket there.
func (r *Runtime) address(home string) (string, error) {
	want := runtime.UnixAddress(filepath.Join(home, hostSocket))
	got, err := untrusted.ReadFile(filepath.Join(home, sessionhost.AddressFile), 4096)
	if err != nil {
		return "", err
	}
	if string(bytes.TrimSpace(got)) != want {
		return "", errors.New("the session host published another address than its socket")
	}
	return want, nil
}

// withStarting reports a session whose Start is in flight in this process
// as starting rather than failed: its host may not be spawned yet.
func (r *Runtime) withStarting(inst runtime.Instance) runtime.Instance {
	if inst.Failed == "" {
		return inst
	}
	r.mu.Lock()
	e := r.sessions[inst.Session]
	starting := e != nil && e.starts > 0
	r.mu.Unlock()
	if starting {
		return runtime.Instance{Session: inst.Session}
	}
	return inst
}

// enter registers a Start (starting) or a Stop of session name. A Stop
// aborts the Starts registered before it; it returns the channel that
// aborts this Start.
func (r *Runtime) enter(name string, starting bool) (*entry, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.sessions[name]
	if e == nil {
		e = &entry{lock: make(chan struct{}, 1), abort: make(chan struct{})}
		r.sessions[name] = e
	}
	e.refs++
	if starting {
		e.starts++
	} else if e.starts > 0 {
		close(e.abort)
		e.abort = make(chan struct{})
	}
	return e, e.abort
}

func (r *Runtime) leave(name string, e *entry, starting bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.refs--
	if starting {
		e.starts--
	}
	if e.refs == 0 {
		delete(r.sessions, name)
	}
}

func (r *Runtime) home(name string) string { return filepath.Join(r.dir, name) }

func (r *Runtime) probe(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return (sessionhost.Client{HTTP: r.client}).Healthy(ctx, addr)
}

// validName accepts the names the portal gives sessions (portal-w01-s001)
// and anything else that is one plain, visible path element.
func validName(name string) bool {
	if name == "" || len(name) > 253 || name[0] == '.' {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readPID reads the pid of the host process from the pid file of home.
func readPID(home string) (int, error) {
	pid, _, err := readPIDs(home)
	return pid, err
}

// readPIDs reads the pid file of home: the host process, and the sandbox's
// pid 1 (0 when unsandboxed).
func readPIDs(home string) (pid, init int, err error) {
	const maxSize = 64 // two pids and a space
	b, err := untrusted.ReadFile(filepath.Join(home, pidFile), maxSize)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 2 {
		return 0, 0, fmt.Errorf("malformed pid file %q", b)
	}
	if pid, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, err
	}
	if len(f) == 2 {
		if init, err = strconv.Atoi(f[1]); err != nil {
			return 0, 0, err
		}
	}
	return pid, init, nil
}

// logTail returns the last lines of the log at path, for error messages.
func logTail(path string) string {
	const maxBytes, maxLines = 4 << 10, 10
	f, err := untrusted.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	truncated := err == nil && fi.Size() > maxBytes
	if truncated {
		f.Seek(fi.Size()-maxBytes, io.SeekStart)
	}
	// At most maxBytes, however much the host appended since Stat.
	b, _ := io.ReadAll(io.LimitReader(f, maxBytes))
	if truncated {
		_, b, _ = bytes.Cut(b, []byte("\n")) // a partial first line
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	if lines[0] == "" {
		return "(empty)"
	}
	return strings.Join(lines, "\n")
}
