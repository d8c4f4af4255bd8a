package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// markerEnv is set on every process the harness starts (and inherited by
// what they start, where they pass their environment on), so that stray
// processes of a run can be found and ended. Session hosts, whose
// environment the local runtime clears, carry the runtime's own marker,
// PORTICO_SESSION=<session home>, a path under the run's directory.
const markerEnv = "PORTICO_BENCH_ROOT"

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the CPU time pid has used: the sum of its threads' run
// times from /proc/<pid>/task/*/schedstat (nanoseconds), or else, where
// that is missing, utime+stime (10 ms ticks).
func cpuSeconds(pid int) (float64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var ns uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && len(tasks) > 1 {
				continue // a thread that just exited
			}
			return statCPUSeconds(pid)
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return statCPUSeconds(pid)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return statCPUSeconds(pid)
		}
		ns += v
	}
	return float64(ns) / 1e9, nil
}

// statCPUSeconds is the user plus system CPU time pid has used, in ticks.
func statCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// anything: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / clockTicks, nil
}

// statusKB reads one "Name: N kB" field of /proc/<pid>/status (VmRSS,
// VmHWM, ...).
func statusKB(pid int, field string) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// pssKB is the proportional set size of pid: its resident memory with each
// shared page divided among the processes sharing it.
func pssKB(pid int) (int64, error) {
	return procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss")
}

func procKB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		v := strings.Fields(rest)
		if len(v) == 0 {
			break
		}
		return strconv.ParseInt(v[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// pids lists the processes of the machine.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// ours reports whether pid was started, directly or not, by the run whose
// directory is root: it carries the harness marker or a session marker
// under root, or names a path under root on its command line.
func ours(pid int, root string) bool {
	if pid == os.Getpid() {
		return false
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err == nil {
		for e := range bytes.SplitSeq(env, []byte{0}) {
			if string(e) == markerEnv+"="+root || bytes.HasPrefix(e, []byte("PORTICO_SESSION="+root+"/")) {
				return true
			}
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(root+"/"))
}

// killStrays ends, with SIGKILL, every process the run left behind. The
// scenarios stop what they start; this is the safety net for failures.
func killStrays(root string) int {
	if root == "" {
		return 0
	}
	roots := []string{root}
	if real, err := filepath.EvalSymlinks(root); err == nil && real != root {
		roots = append(roots, real)
	}
	n := 0
	for _, pid := range pids() {
		for _, r := range roots {
			if ours(pid, r) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}

// machine describes the computer the run is on.
type machine struct {
	CPU        string  `json:"cpu"`
	Cores      int     `json:"cores"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	MemoryGB   float64 `json:"memory_gb"`
	Kernel     string  `json:"kernel"`
	OS         string  `json:"os"`
	GoVersion  string  `json:"go"`
	LoadStart  string  `json:"load_average_start"`
	LoadEnd    string  `json:"load_average_end,omitempty"`
}

func describeMachine(goVersion string) machine {
	m := machine{GoVersion: goVersion, GOMAXPROCS: gomaxprocs()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				if m.CPU == "" {
					m.CPU = strings.TrimSpace(v)
				}
			case "processor":
				m.Cores++
			}
		}
	}
	if kb, err := procKB("/proc/meminfo", "MemTotal"); err == nil {
		m.MemoryGB = float64(kb) / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	m.LoadStart = loadAverage()
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// sessionProc is a process of a session of the local runtime.
type sessionProc struct {
	pid     int
	session string // name of the session: its home under the sessions directory
	host    bool   // the session host itself, not a wrapper (bwrap) or a program of the session
}

// sessionProcesses lists the processes of the local runtime's sessions
// kept under dir: those whose environment holds the runtime's session
// marker, PORTICO_SESSION=<session home under dir>. Wrappers the runtime
// may start the host in (bubblewrap) carry it too.
func sessionProcesses(dir string) []sessionProc {
	var prefixes [][]byte
	for _, d := range []string{dir, realPath(dir)} {
		prefixes = append(prefixes, []byte("PORTICO_SESSION="+d+"/"))
	}
	var out []sessionProc
	for _, pid := range pids() {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		var session string
		for e := range bytes.SplitSeq(env, []byte{0}) {
			for _, p := range prefixes {
				if home, ok := bytes.CutPrefix(e, p); ok {
					name, _, _ := bytes.Cut(home, []byte("/"))
					session = string(name)
				}
			}
		}
		if session == "" {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		argv := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		prog := filepath.Base(string(argv[0]))
		host := prog == sessionBinary || len(argv) > 1 && prog != "bwrap" && slices.ContainsFunc(argv, func(a []byte) bool {
			return string(a) == "sessionhost"
		})
		out = append(out, sessionProc{pid: pid, session: session, host: host})
	}
	return out
}

func realPath(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}
