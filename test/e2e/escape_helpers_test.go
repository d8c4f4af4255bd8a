package e2e

// Helpers of the escape suite (escape_test.go), usable by any end-to-end
// test that works inside a session:
//
//   - sessionShell: a shell in a session's terminal, reached through the
//     portal's websocket as a browser reaches it, that runs one command at
//     a time and returns its output and exit status;
//   - startEscapePortal: a portal laid out as on a server (definitions in
//     /etc, log in /var/log, data in /var/tmp when the test runs as root),
//     with the attack tool (testdata/attack) in its workshop's files;
//   - newTestNet and listenInNetns: a network namespace of the test's own
//     with a veth to it, and listeners inside it: servers "outside the
//     session" that a session may legitimately reach;
//   - require* skips that name the install step.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// randomHex returns n random bytes in hexadecimal: names that concurrent
// runs of the suite on one machine do not share.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func requireBwrap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("the escape suite attacks the sandbox of sessions, which needs bubblewrap: apt-get install bubblewrap")
	}
}

func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root: run the end-to-end tests as root", what)
	}
}

// requireSlirp skips a test whose guarantee rests on the session's own
// network namespace, which reaches out through slirp4netns.
func requireSlirp(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		t.Skip("sessions get their own network through slirp4netns: apt-get install slirp4netns")
	}
}

// --- A shell in a session's terminal ---------------------------------------

// sessionShell is a terminal of a session, opened through the portal with
// a browser's cookie. run types one command and waits for its end: the
// command is framed by markers that the shell prints and that its echo
// cannot contain, so its output and exit status are known exactly.
type sessionShell struct {
	t      *testing.T
	conn   *websocket.Conn
	cancel context.CancelFunc
	nonce  string
	seq    int

	mu   sync.Mutex
	out  bytes.Buffer  // everything the terminal printed
	wake chan struct{} // a token when out grew
	done chan struct{} // closed when the websocket ended
	err  error         // why it ended
}

// openShell opens terminal id of session for browser (which activated the
// session), waiting for the session to serve, and quiets the shell (no
// echo, no prompt commands).
func openShell(t *testing.T, p *portal, browser *client, session, id string) *sessionShell {
	t.Helper()
	origin := browser.enter(session)
	header := cookieHeader(t, origin, browser)
	header.Set("Origin", origin)
	target := strings.Replace(origin, "http", "ws", 1) + "/terminal/" + id
	var conn *websocket.Conn
	if msg := eventually(settle, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPHeader: header, HTTPClient: &http.Client{Transport: browser.http.Transport}})
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			return fmt.Sprintf("terminal %s of %s: %v (status %d)", id, session, err, status)
		}
		conn = c
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	conn.SetReadLimit(4 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	s := &sessionShell{t: t, conn: conn, cancel: cancel, nonce: randomHex(4),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.read(ctx)
	t.Cleanup(s.close)
	if out, code, err := s.run("stty -echo; unset PROMPT_COMMAND; PS1='$ '; PS2=''", settle); err != nil || code != 0 {
		t.Fatalf("terminal %s of %s does not run commands: status %d, %v: %q", id, session, code, err, out)
	}
	return s
}

func (s *sessionShell) read(ctx context.Context) {
	defer close(s.done)
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		if typ != websocket.MessageBinary {
			continue // status messages of the host
		}
		s.mu.Lock()
		s.out.Write(data)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *sessionShell) close() {
	s.cancel()
	s.conn.CloseNow()
}

// start types cmd (one or more lines) and returns the tag that await
// waits for.
func (s *sessionShell) start(cmd string) string {
	s.seq++
	tag := fmt.Sprintf("%s-%d", s.nonce, s.seq)
	// The markers are printed from pieces: the typed text (echoed, when
	// echo is on) never contains them whole.
	line := fmt.Sprintf("printf '@@%%s@@\\n' 'B%s'; { %s\n} 2>&1; printf '@@%%s:%%s@@\\n' 'E%s' \"$?\"\n", tag, cmd, tag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageBinary, []byte(line)); err != nil {
		s.t.Logf("typing into the terminal: %v", err)
	}
	return tag
}

// errTimeout is await's error when the command did not end in time.
var errTimeout = errors.New("the command did not finish in time")

// await waits for the command of tag to end, and returns its output
// (carriage returns removed) and exit status. On a timeout or a closed
// terminal it returns what the command printed so far and an error.
func (s *sessionShell) await(tag string, timeout time.Duration) (string, int, error) {
	begin := "@@B" + tag + "@@"
	end := regexp.MustCompile(`@@E` + regexp.QuoteMeta(tag) + `:(\d+)@@`)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		text := s.out.String()
		ended := s.err
		s.mu.Unlock()
		var partial string
		if i := strings.Index(text, begin); i >= 0 {
			rest := text[i+len(begin):]
			if m := end.FindStringSubmatchIndex(rest); m != nil {
				code, _ := strconv.Atoi(rest[m[2]:m[3]])
				return cleanOutput(rest[:m[0]]), code, nil
			}
			partial = cleanOutput(rest)
		}
		if ended != nil {
			select {
			case <-s.done:
				return partial, -1, fmt.Errorf("the terminal closed: %w", ended)
			default:
			}
		}
		select {
		case <-s.wake:
		case <-s.done:
		case <-timer.C:
			return partial, -1, errTimeout
		}
	}
}

func cleanOutput(s string) string {
	return strings.TrimLeft(strings.ReplaceAll(s, "\r", ""), "\n")
}

// run runs cmd and waits at most timeout; on a timeout it interrupts the
// command with ^C.
func (s *sessionShell) run(cmd string, timeout time.Duration) (string, int, error) {
	tag := s.start(cmd)
	out, code, err := s.await(tag, timeout)
	if errors.Is(err, errTimeout) {
		s.interrupt()
	}
	return out, code, err
}

// mustRun is run that fails the test unless cmd ends in time (whatever
// its status).
func (s *sessionShell) mustRun(t *testing.T, cmd string, timeout time.Duration) (string, int) {
	t.Helper()
	out, code, err := s.run(cmd, timeout)
	if err != nil {
		t.Fatalf("in the session's terminal, %q: %v; it printed %q", cmd, err, out)
	}
	return out, code
}

func (s *sessionShell) interrupt() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.conn.Write(ctx, websocket.MessageBinary, []byte{3})
}

// --- A portal laid out as on a server --------------------------------------

// escapeOptions shape the portal of an escape test.
type escapeOptions struct {
	capacity  int
	resources string   // YAML lines under spec.session.resources, if any
	args      []string // further flags of `portico serve`
}

// escapePortal is a portal whose secrets live where a server keeps them,
// outside its data directory: its definitions (with the robot's client
// secret) in /etc, its log in /var/log (in the home of a non-root user
// otherwise), so that an attack on them is an attack on what a real
// installation exposes, not on a test's temporary directory.
type escapePortal struct {
	*portal
	robotClient *client
	// tool is the attack tool as the session sees it, in its home.
	tool string
	// toolName is its file name, random, by which the cleanup finds what
	// it left running.
	toolName string
	// configMarker and logMarker are random words in the definitions and
	// in the log, which nothing else prints.
	configMarker, logMarker string
	// setupMarker is what the workshop's setup script writes.
	setupMarker string
}

// startEscapePortal builds the attack tool, writes the definitions of a
// workshop that carries it and a setup script, and starts the portal.
func startEscapePortal(t *testing.T, o escapeOptions) *escapePortal {
	t.Helper()
	requireBinary(t)
	requireBwrap(t)
	e := &escapePortal{
		toolName:     "attack-" + randomHex(4),
		configMarker: "escape-config-marker-" + randomHex(8),
		logMarker:    "escape-log-marker-" + randomHex(8),
		setupMarker:  "escape-setup-marker-" + randomHex(8),
	}
	e.tool = "$HOME/escape-bin/" + e.toolName
	tools := t.TempDir()
	if err := os.Mkdir(filepath.Join(tools, "escape-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(tools, "escape-bin", e.toolName), "./testdata/attack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the attack tool: %v\n%s", err, out)
	}

	configDir, logPath, dataDir := escapeLayout(t)
	p := &portal{
		t:       t,
		config:  filepath.Join(configDir, "portal.yaml"),
		dataDir: dataDir,
		logPath: logPath,
		addr:    freeAddr(t),
		args:    o.args,
	}
	p.url = "http://" + p.addr
	e.portal = p

	defs := "# " + e.configMarker + "\n" + escapeDefinitions(t, o, tools, e.setupMarker)
	p.writeConfig(defs)
	if err := os.WriteFile(logPath, []byte("=== "+e.logMarker+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// After the portal's cleanup (cleanups run last first): whatever the
	// tool left running, if the session's end did not take it.
	t.Cleanup(func() { killByName(t, e.toolName) })
	t.Cleanup(p.cleanup)
	p.start()
	p.waitReady()
	e.robotClient = p.robot()
	return e
}

// escapeLayout makes the definitions directory, the log file's path and
// the data directory of a portal, each removed when the test ends.
func escapeLayout(t *testing.T) (configDir, logPath, dataDir string) {
	t.Helper()
	mkdir := func(parent, pattern string) string {
		if parent != "" {
			if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
				parent = ""
			}
		}
		if parent == "" {
			parent = t.TempDir()
		}
		dir, err := os.MkdirTemp(parent, pattern)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	var etc, logs, data string
	if os.Geteuid() == 0 {
		etc, logs, data = "/etc", "/var/log", "/var/tmp"
	} else if home, err := os.UserHomeDir(); err == nil {
		etc, logs, data = home, home, home
	}
	configDir = mkdir(etc, "portico-escape-")
	if err := os.Chmod(configDir, 0o700); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(mkdir(logs, "portico-escape-log-"), "portico.log")
	dataDir = filepath.Join(mkdir(data, "portico-escape-data-"), "data")
	return configDir, logPath, dataDir
}

// escapeDefinitions is definitions() with a workshop that brings the
// attack tool (directory tools, copied into the home) and a setup script
// that writes marker to ~/escape-setup-marker.
func escapeDefinitions(t *testing.T, o escapeOptions, tools, marker string) string {
	t.Helper()
	defs := definitions(entry{Capacity: o.capacity})
	files := fmt.Sprintf(`  workshop:
    files:
      - directory:
          path: %q
      - inline:
          paths:
            workshop/setup.d/50-escape.sh: |
              echo %s > escape-setup-marker
  session:
`, tools, marker)
	if o.resources != "" {
		files += "    resources:\n"
		for line := range strings.Lines(strings.TrimSpace(o.resources)) {
			files += "      " + strings.TrimSpace(line) + "\n"
		}
	}
	next := strings.Replace(defs, "  session:\n", files, 1)
	if next == defs {
		t.Fatal("definitions() has no spec.session: update escapeDefinitions")
	}
	return next
}

// escapeSession is a session of an escape test and the browser of its
// owner, which activated it.
type escapeSession struct {
	allocation
	browser *client
}

// session requests a session for user, activates it in a new browser and
// waits until it runs.
func (e *escapePortal) session(user string) *escapeSession {
	t := e.t
	t.Helper()
	a := e.robotClient.request(user, "")
	s := &escapeSession{allocation: a, browser: e.browser()}
	e.activateIn(s)
	if msg := eventually(2*settle, func() string {
		var sc schedule
		e.robotClient.mustGet("/workshops/session/"+a.Name+"/schedule/", &sc)
		if sc.Status != "RUNNING" {
			return fmt.Sprintf("session %s of %s: %+v", a.Name, user, sc)
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	s.browser.enter(a.Name) // a cookie of the session's origin, for its dashboard
	return s
}

// activateIn opens the session's activation URL in its browser.
func (e *escapePortal) activateIn(s *escapeSession) {
	e.t.Helper()
	if resp, raw := s.browser.do("GET", s.URL, nil); resp.StatusCode != http.StatusFound {
		e.t.Fatalf("activation of %s: %d %s", s.Name, resp.StatusCode, raw)
	}
}

// shell opens terminal id of s, for the test t.
func (e *escapePortal) shell(t *testing.T, s *escapeSession, id string) *sessionShell {
	t.Helper()
	return openShell(t, e.portal, s.browser, s.Name, id)
}

// answers reports what is wrong ("" for nothing) with the session's
// dashboard, asked through the portal within timeout, as its owner's
// browser asks.
func (e *escapePortal) answers(s *escapeSession, timeout time.Duration) string {
	c := &http.Client{Timeout: timeout, Jar: s.browser.http.Jar, Transport: s.browser.http.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(sessionURL(e.url, s.Name) + "/")
	if err != nil {
		return fmt.Sprintf("the dashboard of %s does not answer: %v", s.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("the dashboard of %s: %d %.200s", s.Name, resp.StatusCode, body)
	}
	return ""
}

// killByName SIGKILLs every process whose program is named name (the
// attack tool, whose name is random per test).
func killByName(t *testing.T, name string) {
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		arg0, _, _ := strings.Cut(string(raw), "\x00")
		if filepath.Base(arg0) == name {
			t.Logf("killing %d (%s), left by the session", pid, arg0)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// --- Servers outside the session --------------------------------------------

// testNet is a network namespace of the test's own, joined to the host's
// by a veth pair with addresses from a documentation range: a test host
// that a session may reach the way it reaches the Internet.
type testNet struct {
	name           string
	hostIP, nsIP   netip.Addr
	hostIf, peerIf string
	// ns holds the namespace from its making on: /run/netns/<name> is a
	// bind mount that other runs' ip commands on this machine can shadow
	// (a plain file then, and setns says EINVAL), this file cannot be.
	ns *os.File
}

// newTestNet makes the namespace and removes it when the test ends. It
// takes a random /30 of a documentation /24 that no route or address of
// this machine overlaps (on some machines 192.0.2.0/24 is the real
// network), so that concurrent runs and the machine's own network are
// left alone.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t, "a network namespace of the test")
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the test's network namespace is made with ip: apt-get install iproute2")
	}
	taken := takenPrefixes(t)
	id := randomHex(3)
	n := &testNet{name: "portico-e2e-" + id, hostIf: "pe2e" + id + "h", peerIf: "pe2e" + id + "n"}
	for _, base := range []string{"198.51.100.0", "203.0.113.0", "192.0.2.0"} {
		b := netip.MustParseAddr(base).As4()
		if overlaps(taken, netip.PrefixFrom(netip.AddrFrom4(b), 24)) {
			continue
		}
		for range 32 {
			k, _ := rand.Int(rand.Reader, big.NewInt(63))
			b[3] = byte(4*(k.Int64()+1) + 1)
			host := netip.AddrFrom4(b)
			if overlaps(taken, netip.PrefixFrom(host, 30)) {
				continue
			}
			n.hostIP, n.nsIP = host, host.Next()
			break
		}
		if n.hostIP.IsValid() {
			break
		}
	}
	if !n.hostIP.IsValid() {
		t.Fatal("no free /30 in the documentation ranges for the test's network namespace")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.hostIf).Run()
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", n.name, err, out)
		}
	})
	ip("link", "add", n.hostIf, "type", "veth", "peer", "name", n.peerIf, "netns", n.name)
	ip("addr", "add", n.hostIP.String()+"/30", "dev", n.hostIf)
	ip("link", "set", n.hostIf, "up")
	ip("-n", n.name, "addr", "add", n.nsIP.String()+"/30", "dev", n.peerIf)
	ip("-n", n.name, "link", "set", n.peerIf, "up")
	ip("-n", n.name, "link", "set", "lo", "up")
	f, err := os.Open("/run/netns/" + n.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		t.Fatalf("/run/netns/%s is not a network namespace (statfs type %#x, %v)", n.name, fs.Type, err)
	}
	n.ns = f
	return n
}

// takenPrefixes lists the IPv4 prefixes of this machine's routes and
// addresses.
func takenPrefixes(t *testing.T) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	routes, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	for line := range strings.Lines(string(routes)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil {
			out = append(out, p)
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out
}

func overlaps(list []netip.Prefix, p netip.Prefix) bool {
	for _, q := range list {
		if q.Bits() > 0 && q.Overlaps(p) {
			return true
		}
	}
	return false
}

// listen listens on TCP port 0 of the namespace's address, from a thread
// that joined the namespace and ends with the goroutine; the listener
// stays in the namespace. It closes when the test ends, before the
// namespace goes.
func (n *testNet) listen(t *testing.T) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, now in the namespace, ends with
		// this goroutine.
		goruntime.LockOSThread()
		if err := unix.Setns(int(n.ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		ln, err := net.Listen("tcp", netip.AddrPortFrom(n.nsIP, 0).String())
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("listening in %s: %v", n.name, r.err)
	}
	t.Cleanup(func() { r.ln.Close() })
	return r.ln
}

// serve serves h on ln until the test ends.
func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// connCounter counts the connections a listener of the test accepts: an
// attack that reaches it shows here whatever the session says.
type connCounter struct {
	mu sync.Mutex
	k  int
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.k
}

// countConnections accepts and counts the connections of ln until it is
// closed (at the end of the test).
func countConnections(t *testing.T, ln net.Listener) *connCounter {
	c := &connCounter{}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.k++
			c.mu.Unlock()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

// --- Processes and output -------------------------------------------------

// procState is the state letter of pid in /proc/<pid>/stat, 0 if gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func commandLine(pid int) string {
	raw, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	s := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// firstLines returns the first n lines of s.
func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// --- Servers outside the session, for the workshop --------------------------

// outsideServerMissing says why the test cannot make a server outside
// the session ("" when it can).
func outsideServerMissing() string {
	if os.Geteuid() != 0 {
		return "a network namespace of the test's needs root: run the end-to-end tests as root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the test's network namespace is made with ip: apt-get install iproute2"
	}
	if _, err := exec.LookPath("git"); err != nil {
		return "the test's repository is made with git: apt-get install git"
	}
	return ""
}

// startOutsideServer serves a git repository (dumb HTTP) and a file from
// a test host in a network namespace of the test's, and returns its URL.
func startOutsideServer(t *testing.T) string {
	t.Helper()
	n := newTestNet(t)
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.invalid",
			"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	git(work, "init", "-q")
	if err := os.WriteFile(filepath.Join(work, "README.md"), []byte("The escape suite repository.\nescape suite repository\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(work, "add", "README.md")
	git(work, "commit", "-q", "-m", "A repository for a session to clone")
	git(root, "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	git(filepath.Join(root, "repo.git"), "update-server-info")
	if err := os.WriteFile(filepath.Join(root, "download.txt"), []byte("downloaded from outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln := n.listen(t)
	serve(t, ln, http.FileServer(http.Dir(root)))
	return "http://" + ln.Addr().String()
}

// --- Restarts ---------------------------------------------------------------

// awaitReady waits for the restarted portal to answer its API, and says
// what went wrong ("" for nothing): it exited, or took longer than
// timeout.
func (e *escapePortal) awaitReady(timeout time.Duration) string {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if !e.running() {
			return fmt.Sprintf("it exited during start-up (%v); its log ends with:\n%s", e.cmd.ProcessState, lastLines(e.output(), 15))
		}
		resp, err := c.Get(e.url + "/workshops/catalog/environments/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return ""
			}
		}
		if time.Now().After(deadline) {
			return fmt.Sprintf("not ready after %s (last: %v); its log ends with:\n%s", timeout, err, lastLines(e.output(), 15))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// adoptedOrEnded waits at most timeout for the session to be re-adopted by
// the restarted portal (it runs, its dashboard answers, and ending it ends
// its processes) or ended cleanly (gone from the API, with no process
// left), and says what is wrong ("" for nothing).
func (e *escapePortal) adoptedOrEnded(s *escapeSession, timeout time.Duration) string {
	robot := e.robotClient
	path := "/workshops/session/" + s.Name + "/schedule/"
	var last string
	adopted, died := false, false
	msg := eventually(timeout, func() string {
		if !e.running() {
			died = true
			return ""
		}
		resp, raw, err := quickGet(robot, path)
		switch {
		case err != nil:
			last = fmt.Sprintf("schedule: %v", err)
		case resp.StatusCode == http.StatusNotFound:
			if procs := processesBySession(e.dataDir)[s.Name]; len(procs) > 0 {
				last = fmt.Sprintf("the session is gone from the API but %d of its processes run", len(procs))
				return last
			}
			return ""
		case resp.StatusCode == http.StatusOK && strings.Contains(string(raw), `"RUNNING"`):
			if msg := e.answers(s, 5*time.Second); msg != "" {
				last = msg
				return last
			}
			adopted = true
			return ""
		default:
			last = fmt.Sprintf("schedule: %d %s", resp.StatusCode, raw)
		}
		return last
	})
	if died {
		return fmt.Sprintf("the portal exited (%v); its log ends with:\n%s", e.cmd.ProcessState, lastLines(e.output(), 15))
	}
	if msg != "" {
		return fmt.Sprintf("the session was neither re-adopted nor ended within %s: %s (the portal's resident memory: %d MiB)",
			timeout, msg, residentBytes(e.cmd.Process.Pid)>>20)
	}
	if !adopted {
		return ""
	}
	// Re-adopted: the runtime can still end it.
	if resp, raw, err := quickGet(robot, "/workshops/session/"+s.Name+"/terminate/"); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("terminating the re-adopted session: %v %v %s", err, resp, raw)
	}
	if msg := eventually(timeout, func() string {
		if !e.running() {
			return "the portal exited"
		}
		if procs := processesBySession(e.dataDir)[s.Name]; len(procs) > 0 {
			return fmt.Sprintf("%d processes left", len(procs))
		}
		if resp, _, err := quickGet(robot, path); err != nil || resp.StatusCode != http.StatusNotFound {
			return fmt.Sprintf("schedule after terminate: %v %v", err, resp)
		}
		return ""
	}); msg != "" {
		return fmt.Sprintf("the re-adopted session does not end: %s (the portal's resident memory: %d MiB)", msg, residentBytes(e.cmd.Process.Pid)>>20)
	}
	return ""
}

// quickGet is a GET with the client's credentials and a short timeout,
// returning errors rather than failing the test.
func quickGet(c *client, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, raw, err
}

// watchMemory kills the portal with SIGKILL if its resident memory passes
// limit (as reading /dev/zero to the end would make it), failing the test;
// the returned function stops watching.
func (e *escapePortal) watchMemory(t *testing.T, limit int64) func() {
	proc := e.cmd.Process
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if rss := residentBytes(proc.Pid); rss > limit {
				proc.Kill()
				t.Errorf("the portal's memory passed %d MiB (%d MiB): the test killed it", limit>>20, rss>>20)
				return
			}
		}
	}()
	return func() { close(stop); <-done }
}

// residentBytes is VmRSS of pid.
func residentBytes(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeBytes is the space free to root on the filesystem of path.
func freeBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bfree) * st.Bsize
}
