// Command attack is the tool of the escape suite (test/e2e/escape_test.go):
// the tests copy it into a session as a workshop file and run it from the
// session's terminal, as a hostile attendee would run a program of theirs.
// Each subcommand tries one thing and prints what happened, one result a
// line, in words the test looks for:
//
//	attack connect tcp|unix ADDRESS      CONNECTED | FAILED <error>
//	attack http METHOD URL [H: V]... [-d BODY]
//	                                     STATUS <code> then the body | FAILED <error>
//	attack gateway                       GATEWAY <ipv4> | GATEWAY none
//	attack targets                       TARGET <pid> <kind> <command line>...
//	attack signal STOP|CONT|KILL         SIGNAL <pid> ok <kind> | SIGNAL <pid> denied: <error>
//	attack ptrace                        PTRACE <pid> ok <kind> | denied: ..., MEM <pid> ..., ENVIRON <pid> ...
//	attack pidfd-getfd                   PIDFD <pid> ..., GETFD <pid> <fd> ok <kind> <what>
//	attack squat PORT                    binds 127.0.0.1:PORT (else 0.0.0.0 or [::]) as soon
//	                                     as it can and holds it: STARTED, then HELD <address>
//	attack alloc BYTES                   ALLOCATED <n> once it touched every page
//	attack serve ADDRESS DIR             a static file server, for a workshop's own web server
//
// The targets are the processes of the session outside the shell's tree,
// and <kind> says what each is: "host" (a `portico sessionhost`),
// "other-uid" (another user than this program's: reaching it crosses an
// identity), or "same-uid" (a process of the session's own user, which it
// may well signal or trace).
//
// It is a test tool: it never targets a process outside its own session
// on purpose (see targets), and the tests kill whatever it leaves.
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "connect":
		if len(args) != 2 {
			usage()
		}
		connect(args[0], args[1])
	case "http":
		if len(args) < 2 {
			usage()
		}
		httpRequest(args[0], args[1], args[2:])
	case "gateway":
		gateway()
	case "targets":
		printTargets(targets())
	case "signal":
		if len(args) != 1 {
			usage()
		}
		sendSignal(args[0])
	case "ptrace":
		ptrace()
	case "pidfd-getfd":
		pidfdGetfd()
	case "squat":
		if len(args) != 1 {
			usage()
		}
		squat(args[0])
	case "alloc":
		if len(args) != 1 {
			usage()
		}
		alloc(args[0])
	case "serve":
		if len(args) != 2 {
			usage()
		}
		fmt.Println("SERVING", args[0])
		fail(http.ListenAndServe(args[0], http.FileServer(http.Dir(args[1]))))
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: attack connect|http|gateway|targets|signal|ptrace|pidfd-getfd|squat|alloc|serve ...")
	os.Exit(2)
}

func fail(err error) {
	fmt.Println("FAILED", err)
	os.Exit(1)
}

// connect dials a TCP address or a Unix socket ("@name" is abstract).
func connect(network, addr string) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		fail(err)
	}
	// Say something, so that a listener that accepted sees a live peer.
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("hello from a session\n"))
	c.Close()
	fmt.Println("CONNECTED", addr)
}

// httpRequest sends one request; args are "Name: value" headers and
// "-d BODY" (which makes it a form post).
func httpRequest(method, url string, args []string) {
	var body io.Reader
	headers := http.Header{}
	for i := 0; i < len(args); i++ {
		if args[i] == "-d" && i+1 < len(args) {
			body = strings.NewReader(args[i+1])
			headers.Set("Content-Type", "application/x-www-form-urlencoded")
			i++
			continue
		}
		if k, v, ok := strings.Cut(args[i], ":"); ok {
			headers.Set(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		fail(err)
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	fmt.Println("STATUS", resp.StatusCode)
	io.Copy(os.Stdout, io.LimitReader(resp.Body, 64<<10))
	fmt.Println()
}

// gateway prints the IPv4 default gateway of this network namespace.
func gateway() {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		fail(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		g, err := strconv.ParseUint(fields[2], 16, 32)
		if err != nil || g == 0 {
			continue
		}
		fmt.Printf("GATEWAY %d.%d.%d.%d\n", byte(g), byte(g>>8), byte(g>>16), byte(g>>24))
		return
	}
	fmt.Println("GATEWAY none")
}

// targets returns the processes of this session outside the shell that
// runs this program: the session host and whatever else the session runs
// beside the shell. In a pid namespace of its own (the sandbox) that is
// every other process it sees; without one, it is only this session's
// host, found among the ancestors of this process by its command line, so
// that a broken sandbox never makes the tool stop processes that are not
// the session's.
func targets() []int {
	self := os.Getpid()
	ancestors := ancestry(self)
	// The shell's tree: from the outermost ancestor below the host.
	shell := os.Getppid()
	for _, p := range ancestors {
		if pp := ppid(p); pp > 0 && isHost(pp) {
			shell = p
			break
		}
	}
	mine := map[int]bool{self: true}
	for _, p := range ancestors {
		if p == shell {
			break
		}
		mine[p] = true
	}
	var out []int
	if ownPIDNamespace() {
		children := childrenMap()
		var walk func(int)
		walk = func(p int) {
			mine[p] = true
			for _, c := range children[p] {
				walk(c)
			}
		}
		walk(shell)
		for _, p := range pids() {
			if !mine[p] {
				out = append(out, p)
			}
		}
		return out
	}
	for _, p := range ancestors {
		if isHost(p) {
			out = append(out, p)
		}
	}
	return out
}

// isHost tells the session host, portico-session or `portico sessionhost`,
// and the sandbox (bwrap) that runs it.
func isHost(pid int) bool {
	c := cmdline(pid)
	return strings.Contains(c, "portico-session") || strings.Contains(c, "sessionhost")
}

// ancestry lists the ancestors of pid, its parent first.
func ancestry(pid int) []int {
	var out []int
	for p := ppid(pid); p > 0 && len(out) < 64; p = ppid(p) {
		out = append(out, p)
	}
	return out
}

func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func cmdline(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

func pids() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func childrenMap() map[int][]int {
	m := map[int][]int{}
	for _, p := range pids() {
		m[ppid(p)] = append(m[ppid(p)], p)
	}
	return m
}

// ownPIDNamespace reports whether this process is in a pid namespace
// below the first one (NSpid lists more than one pid).
func ownPIDNamespace() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			return len(strings.Fields(rest)) > 1
		}
	}
	return false
}

func printTargets(list []int) {
	if len(list) == 0 {
		fmt.Println("NO TARGET")
	}
	for _, p := range list {
		fmt.Printf("TARGET %d %s %s\n", p, kind(p), cmdline(p))
	}
}

// kind says what a target is: host, other-uid or same-uid.
func kind(pid int) string {
	raw, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if args := strings.Split(string(raw), "\x00"); filepath.Base(args[0]) == "portico-session" || len(args) > 1 && args[1] == "sessionhost" {
		return "host"
	}
	if uid, ok := realUID(pid); !ok || uid != os.Getuid() {
		return "other-uid"
	}
	return "same-uid"
}

// realUID is the real uid of pid as this process's user namespace sees it.
func realUID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				uid, err := strconv.Atoi(f[0])
				return uid, err == nil
			}
		}
	}
	return 0, false
}

func sendSignal(name string) {
	sig := map[string]syscall.Signal{"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT, "KILL": syscall.SIGKILL}[name]
	if sig == 0 {
		usage()
	}
	list := targets()
	printTargets(list)
	for _, p := range list {
		if err := syscall.Kill(p, sig); err != nil {
			fmt.Printf("SIGNAL %d denied: %v\n", p, err)
		} else {
			fmt.Printf("SIGNAL %d ok %s\n", p, kind(p))
		}
	}
}

// ptrace seizes each target (without stopping it; the kernel detaches
// when this process exits) and opens its memory and environment.
func ptrace() {
	list := targets()
	printTargets(list)
	for _, p := range list {
		if err := unix.PtraceSeize(p); err != nil {
			fmt.Printf("PTRACE %d denied: %v\n", p, err)
		} else {
			fmt.Printf("PTRACE %d ok %s\n", p, kind(p))
		}
		if f, err := os.Open(fmt.Sprintf("/proc/%d/mem", p)); err != nil {
			fmt.Printf("MEM %d denied: %v\n", p, err)
		} else {
			f.Close()
			fmt.Printf("MEM %d ok %s\n", p, kind(p))
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p)); err != nil {
			fmt.Printf("ENVIRON %d denied: %v\n", p, err)
		} else if len(b) == 0 {
			fmt.Printf("ENVIRON %d empty\n", p)
		} else {
			fmt.Printf("ENVIRON %d ok %s (%d bytes)\n", p, kind(p), len(b))
		}
	}
}

// pidfdGetfd copies the file descriptors of each target into this
// process with pidfd_getfd(2), which the kernel allows to whoever may
// ptrace the target.
func pidfdGetfd() {
	list := targets()
	printTargets(list)
	for _, p := range list {
		pidfd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			fmt.Printf("PIDFD %d denied: %v\n", p, err)
			continue
		}
		fmt.Printf("PIDFD %d opened\n", p)
		got, lastErr := 0, error(nil)
		for fd := 0; fd < 256; fd++ {
			nfd, err := unix.PidfdGetfd(pidfd, fd, 0)
			if err != nil {
				if err != unix.EBADF {
					lastErr = err
				}
				continue
			}
			what, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", nfd))
			fmt.Printf("GETFD %d %d ok %s %s\n", p, fd, kind(p), what)
			unix.Close(nfd)
			got++
		}
		if got == 0 {
			fmt.Printf("GETFD %d denied: %v\n", p, lastErr)
		}
		unix.Close(pidfd)
	}
}

// squat binds the port as soon as it is free and holds it until killed.
func squat(port string) {
	fmt.Println("STARTED")
	addrs := []string{"127.0.0.1:" + port, "0.0.0.0:" + port, "[::]:" + port}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for ctx.Err() == nil {
		for _, a := range addrs {
			if ln, err := net.Listen("tcp", a); err == nil {
				fmt.Println("HELD", a)
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						c.Close()
					}
				}()
				<-ctx.Done()
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// alloc allocates n bytes and touches every page.
func alloc(n string) {
	size, err := strconv.ParseInt(n, 10, 64)
	if err != nil || size <= 0 {
		usage()
	}
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	fmt.Println("ALLOCATED", len(b))
}
