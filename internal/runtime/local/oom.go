package local

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// When a session exceeds its memory limit, the kernel kills one of its
// processes: the one with the highest OOM score, its memory plus its
// oom_score_adj. The session host must not be that one, and the obvious
// protection does not work: an oom_score_adj of -1000 on the host would be
// inherited by everything it starts, shells included, leaving the kernel
// nothing to kill (and lowering the value takes CAP_SYS_RESOURCE, which a
// portal in a container may lack). So the runtime does the opposite: it
// raises the score of the session's programs to the maximum, which any
// process may do to another of the same user. It cannot do so as they
// start, so it looks at the session's cgroups every oomBiasInterval and
// marks what it finds beside bwrap and the host; what those start inherits
// the mark from birth. The host remains a possible victim for the first
// moments of a program the host starts, when that program holds more memory
// than the host; then the host's exit is reported on Exited.
//
// With the maximum score, session programs are also the first victims of a
// machine-wide out-of-memory, before the portal and the hosts.
const (
	programOOMScore = "1000"
	oomBiasInterval = 200 * time.Millisecond
)

// oomBias is what the biasing loop knows of one host. Only that loop uses
// it.
type oomBias struct {
	host   int          // the host process, 0 until found
	marked map[int]bool // processes given programOOMScore
}

// startOOMBias starts the loop that marks session programs, unless it
// runs. r.mu must be held.
func (r *Runtime) startOOMBias() {
	if !r.biasing {
		r.biasing = true
		go r.oomBiasLoop()
	}
}

// oomBiasLoop marks the programs of every followed session that has
// cgroups, until there is none.
func (r *Runtime) oomBiasLoop() {
	for {
		time.Sleep(oomBiasInterval)
		type work struct {
			h         *host
			pid, init int
		}
		var hosts []work
		waiting := false
		r.mu.Lock()
		for _, h := range r.hosts {
			switch {
			case h.cgroups == nil || h.exited:
			case h.sandboxed && h.init == 0:
				// Its host is known once its sandbox's pid 1 is: before,
				// bwrap would pass for it.
				waiting = true
			default:
				hosts = append(hosts, work{h, h.pid, h.init})
			}
		}
		if len(hosts) == 0 && !waiting {
			r.biasing = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		for _, w := range hosts {
			w.h.bias.mark(w.h.cgroups, w.pid, w.init)
		}
	}
}

// mark gives programOOMScore to the processes of the session's cgroups
// other than the process the runtime started (pid), the sandbox's pid 1
// (init) and the host.
func (b *oomBias) mark(cgroups *sessionCgroups, pid, init int) {
	if len(cgroups.dirs) == 0 {
		return
	}
	// Every hierarchy holds the same processes.
	procs := (&sessionCgroups{dirs: cgroups.dirs[:1]}).procs()
	if b.marked == nil {
		b.marked = map[int]bool{}
	}
	for p := range b.marked {
		if !slices.Contains(procs, p) {
			delete(b.marked, p)
		}
	}
	if b.host == 0 {
		b.host = findHost(procs, pid, init)
	}
	var pr procReader
	var hostExe string
	if b.host != 0 {
		hostExe, _ = os.Readlink("/proc/" + strconv.Itoa(b.host) + "/exe")
	}
	for _, p := range procs {
		if p == pid || p == init || b.host == 0 || p == b.host || b.marked[p] {
			continue
		}
		// A child the host forked but has not exec'd yet shares the
		// host's memory (Go forks with CLONE_VM), and the kernel gives a
		// new oom_score_adj to every process that shares it: the host
		// would be marked too. It is marked once it runs its program.
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(p) + "/exe"); exe == hostExe {
			if st, err := pr.stat(p); err == nil && st.ppid == b.host {
				continue
			}
		}
		if os.WriteFile("/proc/"+strconv.Itoa(p)+"/oom_score_adj", []byte(programOOMScore), 0) == nil {
			b.marked[p] = true
		}
	}
}

// findHost returns the host among procs: pid unsandboxed, else the child
// of the sandbox's pid 1 that is pid 2 in its namespace; 0 if not found.
func findHost(procs []int, pid, init int) int {
	if init == 0 {
		return pid
	}
	for _, p := range procs {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		if err != nil {
			continue
		}
		var ppid, nspid string
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				nspid = strings.TrimSpace(v)
			}
		}
		if ppid == strconv.Itoa(init) && strings.HasSuffix(nspid, "\t2") {
			return p
		}
	}
	return 0
}
