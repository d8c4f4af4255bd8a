package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// markerEnv marks every process of a session: it is set on the session host
// and inherited by everything the host starts, including daemons that left
// the host's process group with setsid. Its value is the session home, an
// absolute path, so that two runtimes on one machine (two portals, parallel
// test packages) never claim each other's sessions by name.
//
// Finding a session's processes by scanning /proc costs two small reads per
// process on the machine (about 18 ms per thousand processes on a 2-core
// test machine, see BenchmarkScan), paid only on Stop. It misses a process
// that clears its environment and leaves the process group: the session's
// pid namespace (sandboxed) and cgroups close that gap, see killSession.
const markerEnv = "PORTICO_SESSION"

func marker(home string) []byte { return []byte(markerEnv + "=" + home) }

// procReader reads /proc files with raw system calls into a buffer reused
// across a scan: os.ReadFile costs three times as much on these files (an
// fstat, and a second read that makes the kernel format stat again), and a
// scan reads up to two files per process on the machine.
type procReader struct{ buf []byte }

// procStat is what the runtime reads of /proc/<pid>/stat.
type procStat struct {
	state      byte // R, S, Z...
	ppid, pgrp int
}

// stat reads the state, parent and process group of pid.
func (r *procReader) stat(pid int) (procStat, error) {
	// One read: a stat line is far shorter than the buffer.
	b, err := r.read("/proc/"+strconv.Itoa(pid)+"/stat", false)
	if err != nil {
		return procStat{}, err
	}
	// The command name, in parentheses, may hold spaces and parentheses:
	// the fields that follow start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed stat")
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	pgrp, err2 := strconv.Atoi(string(f[2]))
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp}, errors.Join(err1, err2)
}

// running reports whether pid exists and has not exited. A zombie counts as
// exited: PID 1 reaps orphans lazily, and a zombie runs nothing.
func (r *procReader) running(pid int) (pgrp int, ok bool) {
	st, err := r.stat(pid)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		return 0, false
	}
	return st.pgrp, true
}

// hasMarker reports whether pid's environment, as it was at exec, holds
// the marker entry m. A process that is exiting has no environment left,
// so a marked process is a live one.
func (r *procReader) hasMarker(pid int, m []byte) bool {
	env, err := r.read("/proc/"+strconv.Itoa(pid)+"/environ", true)
	if err != nil {
		return false
	}
	for e := range bytes.SplitSeq(env, []byte{0}) {
		if bytes.Equal(e, m) {
			return true
		}
	}
	return false
}

// read returns the content of path, all of it when whole is set, else what
// one read(2) returns.
func (r *procReader) read(path string, whole bool) ([]byte, error) {
	if r.buf == nil {
		r.buf = make([]byte, 16<<10)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(r.buf) {
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		m, err := unix.Read(fd, r.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || !whole {
			return r.buf[:n], nil
		}
	}
}

// isHost reports whether pid is the live session host of home. The check
// on the environment guards against a recycled pid and against a pid file
// that names some other process.
func isHost(pid int, home string) bool {
	if pid <= 0 {
		return false
	}
	var r procReader
	if _, ok := r.running(pid); !ok {
		return false
	}
	return r.hasMarker(pid, marker(home))
}

// sessionProcesses returns the live processes that carry the marker of
// home or belong to process group pgid (when pgid > 0).
func sessionProcesses(home string, pgid int) []int {
	return sessionProcessesIn(home, pgid, "")
}

// sessionProcessesIn is sessionProcesses, with the processes of the pid
// namespace ns too (a /proc/<pid>/ns/pid link, when not empty).
func sessionProcessesIn(home string, pgid int, ns string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	m, self := marker(home), os.Getpid()
	var r procReader
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if pgid > 0 {
			pgrp, ok := r.running(pid)
			if !ok {
				continue
			}
			if pgrp == pgid {
				pids = append(pids, pid)
				continue
			}
		}
		if r.hasMarker(pid, m) {
			pids = append(pids, pid)
			continue
		}
		if ns != "" && pidNamespace(pid) == ns {
			if _, ok := r.running(pid); ok {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// pidNamespace identifies the pid namespace of pid, "" if unknown.
func pidNamespace(pid int) string {
	ns, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	return ns
}

// victims are what identifies the processes of one session.
type victims struct {
	home string // the marker of its processes (see markerEnv)
	// pgid is the process group of the process the runtime started (the
	// host unsandboxed), 0 for none.
	pgid int
	// leader is the sandbox's pid 1, 0 for none: every process of the
	// session is in its pid namespace, whatever it did to its environment,
	// process group or session, and when it dies the kernel kills them all.
	leader int
	// cgroups hold every process of the session, nil without cgroups.
	cgroups *sessionCgroups
}

// killSession ends every process of a session: SIGTERM to the process
// group, the marked processes and those of its cgroups, then SIGKILL to
// what remains after grace or when ctx ends, starting with the sandbox's
// pid 1 and the whole cgroup at once where the kernel can (cgroup.kill, a
// frozen v1 cgroup). Processes are re-scanned on each round because a
// dying daemon may still fork. It then removes the session's cgroups.
func killSession(ctx context.Context, v victims, grace time.Duration) error {
	// A process found once stays tracked until it is a zombie: while it
	// exits it has no environment to show, yet is not gone.
	found := make(map[int]bool)
	var r procReader
	var ns string
	killLeader := func() {}
	if v.leader > 0 {
		ns = pidNamespace(v.leader)
		// Signalled through a pidfd, which cannot reach another process
		// once it died and its pid was reused, over several rounds.
		if fd, err := unix.PidfdOpen(v.leader, 0); err == nil {
			defer unix.Close(fd)
			killLeader = func() { unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) }
		} else {
			killed := false
			killLeader = func() {
				if !killed {
					unix.Kill(v.leader, unix.SIGKILL)
					killed = true
				}
			}
		}
	}
	live := func() []int {
		for _, p := range sessionProcessesIn(v.home, v.pgid, ns) {
			found[p] = true
		}
		for _, p := range v.cgroups.procs() {
			found[p] = true
		}
		var pids []int
		for p := range found {
			if _, ok := r.running(p); ok {
				pids = append(pids, p)
			} else {
				delete(found, p)
			}
		}
		return pids
	}
	signal := func(sig unix.Signal) int {
		if sig == unix.SIGKILL {
			killLeader()
			v.cgroups.kill()
		}
		if v.pgid > 0 && v.pgid != unix.Getpgrp() {
			unix.Kill(-v.pgid, sig)
		}
		pids := live()
		for _, p := range pids {
			unix.Kill(p, sig)
		}
		return len(pids)
	}

	if signal(unix.SIGTERM) > 0 {
		timeout := time.After(grace)
	wait:
		for delay := time.Millisecond; len(live()) > 0; delay = min(2*delay, 50*time.Millisecond) {
			select {
			case <-ctx.Done():
				break wait
			case <-timeout:
				break wait
			case <-time.After(delay):
			}
		}
	}

	// Only a process in uninterruptible sleep survives SIGKILL; give it a
	// moment, then report it.
	deadline := time.Now().Add(killTimeout)
	for signal(unix.SIGKILL) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("session processes survive SIGKILL: %v", live())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return v.cgroups.remove()
}

// killTimeout bounds the wait for SIGKILLed processes to die.
const killTimeout = 5 * time.Second
