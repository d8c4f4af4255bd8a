package local

import (
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// host is what the runtime follows of one session host: its exit, to
// report it on Exited. Guarded by Runtime.mu.
type host struct {
	// pid is the process the runtime started, bwrap or the host itself,
	// which lives as long as the host (see pidFile).
	pid int
	// init is the sandbox's pid 1, 0 unsandboxed or until known.
	init int
	// sandboxed is set for a host that the runtime started in a sandbox,
	// whose init is not known at first.
	sandboxed bool
	// cgroups are the session's, nil without.
	cgroups *sessionCgroups
	bias    oomBias // used by oomBiasLoop only

	ready    bool // its Start succeeded, or it was found serving
	expected bool // a Stop or a failed Start ends it
	exited   bool
	reported bool
}

// Exited delivers the names of the sessions whose host exited by itself
// after it was ready: killed from outside, out of memory, crashed. Hosts
// that a Stop ends, and hosts whose Start fails, are not reported. Hosts
// adopted after a restart of the portal are followed from the first List,
// Status or Start that finds them.
func (r *Runtime) Exited() <-chan string { return r.exits.ch }

// exitQueue is an unbounded queue in front of the Exited channel: the
// goroutines that see hosts exit never wait for its reader.
type exitQueue struct {
	ch      chan string
	mu      sync.Mutex
	pending []string
	sending bool // a goroutine is handing pending to ch
}

func (q *exitQueue) push(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, name)
	if !q.sending {
		q.sending = true
		go q.send()
	}
}

func (q *exitQueue) send() {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.sending = false
			q.mu.Unlock()
			return
		}
		name := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		q.ch <- name
	}
}

// spawned registers the host of session name that this runtime started as
// process pid, in cgroups (nil without).
func (r *Runtime) spawned(name string, pid int, cgroups *sessionCgroups, sandboxed bool) *host {
	h := &host{pid: pid, cgroups: cgroups, sandboxed: sandboxed}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.hosts[name]; old != nil {
		old.expected = true
	}
	r.hosts[name] = h
	if cgroups != nil {
		r.startOOMBias()
	}
	return h
}

// setInit records the sandbox's pid 1 of h once known.
func (r *Runtime) setInit(h *host, init int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.init = init
}

// adopt returns the host that r follows for session name, whose live
// process (see pidFile) is pid, with init the sandbox's pid 1 (checked
// here) or 0, and starts following it when r did not start it.
func (r *Runtime) adopt(name, home string, pid, init int) *host {
	r.mu.Lock()
	h := r.hosts[name]
	r.mu.Unlock()
	if h != nil && h.pid == pid { // h.pid never changes
		return h
	}
	if !isSandboxInit(init, home) {
		init = 0
	}
	cgroups := sessionCgroupsOf(home, r.cgroupMounts)
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.hosts[name]; h != nil && h.pid == pid {
		return h
	}
	if old := r.hosts[name]; old != nil {
		old.expected = true // superseded
	}
	h = &host{pid: pid, init: init, cgroups: cgroups}
	r.hosts[name] = h
	if cgroups != nil {
		r.startOOMBias()
	}
	go r.follow(name, home, h)
	return h
}

// follow waits for the exit of an adopted host, which is not a child of
// this process: with a pidfd, which the Go poller watches without tying up
// a thread; where pidfds are missing, by looking at /proc every second.
func (r *Runtime) follow(name, home string, h *host) {
	defer r.hostExited(name, h)
	fd, err := unix.PidfdOpen(h.pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err == nil {
		f := os.NewFile(uintptr(fd), "pidfd")
		defer f.Close()
		// The pid may have been reused between the caller's check and the
		// open: check again, now that the pidfd holds the process.
		if !isHost(h.pid, home) {
			return
		}
		rc, err := f.SyscallConn()
		if err == nil {
			err = rc.Read(func(fd uintptr) bool {
				p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				n, _ := unix.Poll(p, 0)
				return n > 0
			})
		}
		if err == nil {
			return
		}
	}
	for isHost(h.pid, home) {
		time.Sleep(followInterval)
	}
}

// followInterval is how often an adopted host is looked at where pidfds
// are missing (Linux before 5.3).
const followInterval = time.Second

// markReady records that h served.
func (r *Runtime) markReady(name string, h *host) {
	r.mu.Lock()
	h.ready = true
	report := r.shouldReport(h)
	r.mu.Unlock()
	if report {
		r.reportExit(name)
	}
}

// hostExited records the exit of h.
func (r *Runtime) hostExited(name string, h *host) {
	r.mu.Lock()
	h.exited = true
	if r.hosts[name] == h {
		delete(r.hosts, name)
	}
	report := r.shouldReport(h)
	r.mu.Unlock()
	if report {
		r.reportExit(name)
	}
}

// expectExit marks the host of session name as ended on purpose.
func (r *Runtime) expectExit(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.hosts[name]; h != nil {
		h.expected = true
	}
}

// shouldReport decides, once, whether the exit of h is one for Exited.
// r.mu must be held.
func (r *Runtime) shouldReport(h *host) bool {
	if h.exited && h.ready && !h.expected && !h.reported {
		h.reported = true
		return true
	}
	return false
}

func (r *Runtime) reportExit(name string) {
	r.log.Warn("session host exited by itself", "session", name)
	r.exits.push(name)
}
