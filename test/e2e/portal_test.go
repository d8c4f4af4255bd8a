// Package e2e tests the real portico binary: it builds it once, runs
// `portico serve` on its own definitions, data directory and port, and
// speaks HTTP to it as a front end and a browser do, with real session
// host processes, signals and restarts.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

	portico "github.com/portico-dev/portico/client"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/openapitest"
	"github.com/portico-dev/portico/internal/portaltest"
)

// Accounts every test portal is given in its definition, so that nothing
// is generated and the tests know the credentials.
const (
	adminUser    = "e2e-admin"
	adminPass    = "e2e-admin-password"
	robotUser    = "robot@e2e"
	robotPass    = "e2e-robot-password"
	clientID     = "e2e-robot-client"
	clientSecret = "e2e-robot-client-secret"

	portalName = "e2e"
	envName    = portalName + "-w01" // the environment of the one workshop
	indexURL   = "https://hub.test/"
)

// settle bounds every wait for the portal to reach a state: generous, as
// the tests may run on a loaded two-core machine with the race detector.
const settle = 30 * time.Second

var (
	// binary is the portico binary under test, built by TestMain, and
	// sessionBinary the session host program beside it, where the portal
	// looks for it.
	binary, sessionBinary string
	// skipReason, when set, skips every test.
	skipReason string
	// raceEnabled is set by race_test.go: the binary is then built with
	// the race detector too.
	raceEnabled bool
)

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if _, err := exec.LookPath("go"); err != nil {
		skipReason = "the go command is not on PATH, and the end-to-end tests build the portico binary with it: install Go and put it on PATH"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "portico-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	defer stopKube() // started by the first test that needs it
	binary = filepath.Join(dir, "portico")
	sessionBinary = filepath.Join(dir, "portico-session")
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/portico-dev/portico/cmd/portico", "github.com/portico-dev/portico/cmd/portico-session")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

// readSources reads every file the binary is built from. go test caches a
// package's result until its test binary or a file the tests read changes;
// the portal's code is in neither, so without this a change to it could
// leave a stale pass in the cache. It runs from a test, not TestMain: only
// what tests read counts.
var readSources = sync.OnceValue(func() error {
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"github.com/portico-dev/portico/cmd/portico", "github.com/portico-dev/portico/cmd/portico-session").Output()
	if err != nil {
		return fmt.Errorf("go list: %w", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if _, err := os.ReadFile(f); err != nil {
			return err
		}
	}
	return nil
})

func requireBinary(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if err := readSources(); err != nil {
		t.Fatal(err)
	}
}

// entry is what a test sets of the portal's one workshop entry.
type entry struct {
	Capacity, Reserved int
	Expires            string // default 60m
}

// definitions is a TrainingPortal and its Workshop in the Educates shapes,
// with every credential given.
func definitions(e entry) string {
	if e.Expires == "" {
		e.Expires = "60m"
	}
	return fmt.Sprintf(`apiVersion: training.educates.dev/v1beta1
kind: TrainingPortal
metadata:
  name: %s
spec:
  portal:
    title: End-to-end tests
    credentials:
      admin:
        username: %s
        password: %s
      robot:
        username: %s
        password: %s
    clients:
      robot:
        id: %s
        secret: %s
  workshops:
    - name: lab-e2e
      capacity: %d
      reserved: %d
      expires: %s
      overtime: 15m
      deadline: 120m
---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-e2e
spec:
  title: End-to-end lab
  description: The workshop of the end-to-end tests.
  request:
    parameters:
      - name: GREETING
        value: Hello
  session:
    env:
      - name: EDITOR
        value: nano
`, portalName, adminUser, adminPass, robotUser, robotPass, clientID, clientSecret, e.Capacity, e.Reserved, e.Expires)
}

// portal is a `portico serve` process of a test, which may be killed and
// restarted on the same data directory and port.
type portal struct {
	t       *testing.T
	config  string // the definitions file, in a directory of its own
	dataDir string
	addr    string // host:port it listens on
	url     string
	logPath string   // stdout and stderr of every run
	args    []string // further flags of `portico serve`, e.g. --database
	// sessionDomain is the --session-domain the portal was given ("" for
	// the default, localhost).
	sessionDomain string
	env           []string // further environment of `portico serve`, KEY=VALUE
	// httpClient, when set, is what waitReady asks with (a portal on HTTPS).
	httpClient *http.Client
	// program is the portico binary it runs, when not binary.
	program string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	starts int
}

// startPortal writes defs and starts a portal on them; with no defs, on
// the bundled example. Cleanup stops it and kills every session process
// left under its data directory.
func startPortal(t *testing.T, defs string) *portal {
	t.Helper()
	p := newPortal(t, defs)
	p.start()
	p.waitReady()
	return p
}

// handedOut are the addresses freeAddr gave: a port closed again is free
// for the kernel to give to the next caller, who may pick it before the
// first one's portal listens on it.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddr returns a loopback address with a port nobody listens on, and
// that it has not returned before in this process.
func freeAddr(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

func (p *portal) writeConfig(defs string) {
	p.t.Helper()
	// Atomically, so that a reload never reads half a file.
	tmp := p.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(defs), 0o600); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.config); err != nil {
		p.t.Fatal(err)
	}
}

func (p *portal) start() {
	p.t.Helper()
	if p.running() {
		p.t.Fatal("portal started twice")
	}
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	p.starts++
	fmt.Fprintf(logf, "=== e2e: start %d of the portal\n", p.starts)
	args := []string{"serve", "--data-dir", p.dataDir, "--listen", p.addr}
	if p.config != "" { // else the bundled example
		args = append(args, "--config", filepath.Dir(p.config))
	}
	args = append(args, p.args...)
	cmd := exec.Command(cmp.Or(p.program, binary), args...)
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
}

func (p *portal) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitReady polls until the portal answers an API request (401 without a
// token) or fails the test if it exits or takes too long.
func (p *portal) waitReady() {
	p.t.Helper()
	c := p.httpClient
	if c == nil {
		c = &http.Client{Timeout: 2 * time.Second}
	}
	deadline := time.Now().Add(settle)
	for {
		if !p.running() {
			p.t.Fatalf("portal exited during start-up: %v (its output follows)", p.cmd.ProcessState)
		}
		resp, err := c.Get(p.url + "/workshops/catalog/environments/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("portal not ready after %s (last: %v, %v)", settle, resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the running portal.
func (p *portal) signal(sig syscall.Signal) {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("signal %v: portal not running", sig)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// awaitExit waits for the portal to exit; false after timeout.
func (p *portal) awaitExit(timeout time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill9 kills the portal with SIGKILL, leaving its sessions running.
func (p *portal) kill9() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	if !p.awaitExit(settle) {
		p.t.Fatal("portal survives SIGKILL")
	}
}

// stop shuts the portal down with SIGTERM and checks that it exits cleanly.
func (p *portal) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if !p.awaitExit(settle) {
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Fatalf("portal did not exit within %s of SIGTERM", settle)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("portal exited with %v after SIGTERM", p.cmd.ProcessState)
	}
}

// restart starts the portal again on the same definitions, data directory
// and port, and waits until it serves.
func (p *portal) restart() {
	p.t.Helper()
	p.start()
	p.waitReady()
}

func (p *portal) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	return string(b)
}

// cleanup stops the portal and kills every session process it left, so
// that a failing test leaves nothing running.
func (p *portal) cleanup() {
	t := p.t
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Process.Signal(syscall.SIGCONT) // if a test froze it
		if !p.awaitExit(15 * time.Second) {
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if left := killSessions(p.dataDir); len(left) > 0 {
		t.Errorf("session processes survive SIGKILL: %v", left)
	}
	// The homes of sessions left running (replicas leave them to each
	// other) are file systems of their own, mounted until their session
	// ends.
	if err := unmountHomes(p.dataDir); err != nil {
		t.Error(err)
	}
	out := p.output()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Error("the race detector found a data race in the portal (see its output)")
	}
	if t.Failed() {
		t.Logf("output of the portal (%s):\n%s", p.logPath, out)
	}
}

// killSessions SIGKILLs every session process under dataDir and returns
// those still alive after a while (none, normally).
func killSessions(dataDir string) []int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := sessionProcesses(dataDir)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountHomes unmounts what is mounted under the sessions directory of
// dataDir, as the runtime does when a session ends.
func unmountHomes(dataDir string) error {
	root, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	prefix := filepath.Join(root, "sessions") + "/"
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var errs []error
	for line := range strings.Lines(string(b)) {
		// id parent major:minor root mount-point ...
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			if err := syscall.Unmount(f[4], syscall.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", f[4], err))
			}
		}
	}
	return errors.Join(errs...)
}

// sessionProc is a live process of a session.
type sessionProc struct {
	PID     int
	Session string // session name: the directory under <data dir>/sessions
	Host    bool   // the session host (portico-session, or `portico sessionhost`), not one it started
}

// sessionProcesses returns the live (not zombie) processes of the sessions
// of the portal with data directory dataDir.
func sessionProcesses(dataDir string) []int {
	var pids []int
	for _, p := range scanSessions(dataDir) {
		pids = append(pids, p.PID)
	}
	return pids
}

// scanSessions finds the processes of the sessions under dataDir by the
// PORTICO_SESSION=<session home> entry the local runtime puts in their
// environment, the home being under the absolute, symlink-resolved
// <data dir>/sessions.
func scanSessions(dataDir string) []sessionProc {
	root, err := filepath.Abs(dataDir)
	if err != nil {
		panic(err)
	}
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	prefix := filepath.Join(root, "sessions") + "/"
	entries, err := os.ReadDir("/proc")
	if err != nil {
		panic(err)
	}
	var out []sessionProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue // gone, or a kernel thread
		}
		var home string
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("PORTICO_SESSION=")); ok {
				home = string(v)
				break
			}
		}
		rest, ok := strings.CutPrefix(home, prefix)
		if !ok || rest == "" || zombie(pid) {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		out = append(out, sessionProc{PID: pid, Session: name, Host: isHost(args)})
	}
	return out
}

// isHost tells a session host by its command line: portico-session, or
// the portal's own binary as `portico sessionhost`.
func isHost(args []string) bool {
	return filepath.Base(args[0]) == "portico-session" || len(args) > 1 && args[1] == "sessionhost"
}

// zombie reports whether pid has exited (or is gone) but may not be reaped
// yet: PID 1 reaps orphans lazily here.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state == 'Z' || state == 'X'
}

// processesBySession groups the session processes of dataDir by session.
func processesBySession(dataDir string) map[string][]sessionProc {
	m := map[string][]sessionProc{}
	for _, p := range scanSessions(dataDir) {
		m[p.Session] = append(m[p.Session], p)
	}
	return m
}

// hosts counts the session host processes in list.
func hosts(list []sessionProc) int {
	n := 0
	for _, p := range list {
		if p.Host {
			n++
		}
	}
	return n
}

// eventually calls check until it reports nothing wrong or timeout passes,
// and returns its last complaint ("" on success).
func eventually(timeout time.Duration, check func() string) string {
	deadline := time.Now().Add(timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		msg := check()
		if msg == "" || time.Now().After(deadline) {
			return msg
		}
		time.Sleep(delay)
	}
}

// client speaks HTTP to a portal. It never follows redirects.
type client struct {
	t      *testing.T
	base   string
	http   *http.Client
	bearer string
}

func (p *portal) client() *client {
	return &client{t: p.t, base: p.url, http: &http.Client{
		Timeout:       settle,
		Transport:     p.checked(portaltest.LocalhostTransport()), // sessions' origins are under localhost
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// apiDocument holds the answers of the portal's API to its OpenAPI
// document.
var apiDocument = sync.OnceValues(func() (*openapitest.Validator, error) {
	doc, err := httpapi.OpenAPI()
	if err != nil {
		return nil, err
	}
	return openapitest.New(doc)
})

// checked is base, with every answer of the portal's API checked against
// its OpenAPI document.
func (p *portal) checked(base http.RoundTripper) http.RoundTripper {
	p.t.Helper()
	v, err := apiDocument()
	if err != nil {
		p.t.Fatalf("OpenAPI document: %v", err)
	}
	u, err := url.Parse(p.url)
	if err != nil {
		p.t.Fatal(err)
	}
	return v.Transport(p.t, u.Host, base)
}

// robot returns a client with a token of the robot account from the
// password grant, the client authenticated by HTTP Basic.
func (p *portal) robot() *client {
	p.t.Helper()
	c := p.client()
	tok, err := p.api(robotUser, robotPass).Token(context.Background())
	if err != nil || tok.TokenType != "Bearer" {
		p.t.Fatalf("robot token: %v %+v", err, tok)
	}
	c.bearer = tok.AccessToken
	return c
}

// api returns a client of the public Go client package logged in as
// username (the robot client's client_credentials grant without one).
func (p *portal) api(username, password string) *portico.Client {
	p.t.Helper()
	c, err := portico.New(portico.Config{URL: p.url, ClientID: clientID, ClientSecret: clientSecret,
		Username: username, Password: password, HTTPClient: &http.Client{Timeout: settle, Transport: p.checked(http.DefaultTransport)}})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// do sends a request to path (relative to the portal, or absolute) and
// returns the response with its whole body. headers are name, value pairs.
func (c *client) do(method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
	c.t.Helper()
	target := path
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		target = c.base + path
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp, raw
}

// get sends a GET and decodes a JSON answer of any status into out (when
// not nil); it returns the status.
func (c *client) get(path string, out any) int {
	c.t.Helper()
	resp, raw := c.do("GET", path, nil)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("GET %s: %d, body not JSON: %q", path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// mustGet is get that fails the test unless the answer is 200.
func (c *client) mustGet(path string, out any) {
	c.t.Helper()
	resp, raw := c.do("GET", path, nil)
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("GET %s: body not JSON: %q", path, raw)
		}
	}
}

// allocation is the answer to a session request.
type allocation struct {
	Name, Session, User, URL, Namespace, Workshop, Environment string
}

// requestPath is the request endpoint of the test environment for user,
// with extra query parameters.
func requestPath(user, extra string) string {
	q := "index_url=" + url.QueryEscape(indexURL) + "&user=" + url.QueryEscape(user)
	if extra != "" {
		q += "&" + extra
	}
	return "/workshops/environment/" + envName + "/request/?" + q
}

// request asks for a session of the test environment for user; it fails
// the test unless granted.
func (c *client) request(user, extra string) allocation {
	c.t.Helper()
	resp, raw := c.do("GET", requestPath(user, extra), nil)
	var a allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil || a.Name == "" {
		c.t.Fatalf("request for %s: %d %s", user, resp.StatusCode, raw)
	}
	return a
}

// activate opens an activation URL as a browser and checks that it logs
// the browser in and sends it to the session.
func (p *portal) activate(a allocation) {
	p.t.Helper()
	resp, raw := p.client().do("GET", a.URL, nil)
	if want := "/workshops/session/" + a.Name + "/"; resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
		p.t.Fatalf("activation of %s: %d to %q, want 302 to %q (%s)", a.Name, resp.StatusCode, resp.Header.Get("Location"), want, raw)
	}
	if len(resp.Cookies()) == 0 {
		p.t.Fatalf("activation of %s sets no cookie", a.Name)
	}
}

// sessionURL is the origin the portal at portalURL serves session from.
func sessionURL(portalURL, session string) string {
	u, err := url.Parse(portalURL)
	if err != nil {
		panic(err)
	}
	return "http://" + session + ".localhost:" + u.Port()
}

// enter opens the dashboard of session as the browser c (logged in on the
// portal) does: through the portal's open link, with a ticket, to a cookie
// of the session's origin. It returns the origin; the session must serve.
func (c *client) enter(session string) string {
	c.t.Helper()
	var enter string
	if msg := eventually(settle, func() string {
		resp, raw := c.do("GET", "/workshops/session/"+session+"/open/", nil)
		enter = resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.Contains(enter, "/.portico/enter?") {
			return fmt.Sprintf("open %s: %d to %q %s", session, resp.StatusCode, enter, raw)
		}
		return ""
	}); msg != "" {
		c.t.Fatal(msg)
	}
	if resp, raw := c.do("GET", enter, nil); resp.StatusCode != http.StatusFound {
		c.t.Fatalf("enter %s: %d %s", session, resp.StatusCode, raw)
	}
	return sessionURL(c.base, session)
}

// catalogSession is a session in the catalog.
type catalogSession struct {
	Name, State, User, Namespace string
}

// environment is an environment in the catalog or its status.
type environment struct {
	Name, State                             string
	Duration, Capacity, Reserved, Allocated int
	Available                               int
	Sessions                                *[]catalogSession
}

func (e environment) String() string {
	s := fmt.Sprintf("%s %s: capacity %d, reserved %d, %d allocated, %d available",
		e.Name, e.State, e.Capacity, e.Reserved, e.Allocated, e.Available)
	if e.Sessions != nil {
		s += fmt.Sprintf(", sessions %+v", *e.Sessions)
	}
	return s
}

// environment returns the test environment from the catalog, with its
// allocated sessions.
func (c *client) environment() environment {
	c.t.Helper()
	e, ok := c.catalogEnvironment()
	if !ok {
		c.t.Fatalf("environment %s not in the catalog", envName)
	}
	return e
}

// catalogEnvironment returns the test environment from the catalog, if it
// is there: the catalog lists running environments, and a new portal's
// environment starts running with the first pass of its reconciler.
func (c *client) catalogEnvironment() (environment, bool) {
	c.t.Helper()
	var cat struct {
		Environments []environment
	}
	c.mustGet("/workshops/catalog/environments/?sessions=true", &cat)
	for _, e := range cat.Environments {
		if e.Name == envName {
			if e.Sessions == nil {
				c.t.Fatalf("catalog for a robot without sessions: %+v", e)
			}
			return e, true
		}
	}
	return environment{}, false
}

// status returns the status of the test environment.
func (c *client) status() environment {
	c.t.Helper()
	var e environment
	c.mustGet("/workshops/environment/"+envName+"/status/", &e)
	return e
}

// schedule is the answer of the schedule and extend endpoints.
type schedule struct {
	Status, Started, Expires string
	Extended                 *bool
	Expiring                 bool
	Countdown                *int
	Extendable               *bool
}

func (s schedule) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sortedKeys returns the keys of m in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
