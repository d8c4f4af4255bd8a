package main

// The peer: JupyterHub 3.0 from Debian doing what the on-demand scenario
// has Portico do. It is run by hand, not in CI:
//
//	apt-get install -y jupyterhub node-configurable-http-proxy
//	go run ./cmd/portico-bench --peer jupyterhub    # or --scenarios ondemand,peer
//
// The hub runs with SimpleLocalProcessSpawner, a trivial threaded Python
// HTTP server as the single-user server (it binds the port of
// JUPYTERHUB_SERVICE_URL), its own SQLite database, and a service holding
// an API token with the admin:users and admin:servers scopes; the proxy is
// configurable-http-proxy, which with Debian 12's Node.js needs
// NODE_PATH=/usr/share/nodejs. Everything listens on loopback. The users
// of a round are created before the round starts (not timed; Portico
// creates its users inside the timed request), then each client POSTs
// /hub/api/users/<name>/server and polls GET /hub/api/users/<name> until
// the server is ready (pending null, server set).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const hubToken = "bench-service-token-0123456789abcdef0123456789abcdef"

const singleUserServer = `# The single-user server of the harness: a threaded HTTP server that
# answers every GET, on the address of JUPYTERHUB_SERVICE_URL.
import http.server, os, urllib.parse

url = urllib.parse.urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok": true}\n'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer((url.hostname, url.port), Handler).serve_forever()
`

const hubConfig = `c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = %[1]d
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = %[2]d
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%[3]d"
c.ConfigurableHTTPProxy.pid_file = %[4]q
c.JupyterHub.db_url = "sqlite:///%[5]s"
c.JupyterHub.cookie_secret_file = %[6]q
c.JupyterHub.pid_file = %[7]q
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = %[8]q
c.Spawner.cmd = ["/usr/bin/python3", %[9]q]
c.Spawner.args = []
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.log_level = "WARN"
c.JupyterHub.services = [{"name": "bench", "api_token": %[10]q}]
c.JupyterHub.load_roles = [{"name": "bench", "scopes": ["admin:users", "admin:servers"], "services": ["bench"]}]
`

// hub is a running JupyterHub.
type hub struct {
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	api    string // http://127.0.0.1:<hub port>/hub/api
	ctl    *http.Client
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// jupyterhubMissing says why the peer cannot run here, or "".
func jupyterhubMissing() string {
	for _, bin := range []string{"/usr/bin/jupyterhub", "/usr/bin/configurable-http-proxy", "/usr/bin/python3"} {
		if !isExecutable(bin) {
			return bin + " is missing: apt-get install -y jupyterhub node-configurable-http-proxy"
		}
	}
	return ""
}

func (b *bench) startHub(ctx context.Context, name string) (*hub, error) {
	if why := jupyterhubMissing(); why != "" {
		return nil, errors.New(why)
	}
	dir, err := b.tempDir("jupyterhub-" + name)
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	script := filepath.Join(dir, "singleuser.py")
	if err := os.WriteFile(script, []byte(singleUserServer), 0o644); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "jupyterhub_config.py")
	text := fmt.Sprintf(hubConfig, ports[0], ports[1], ports[2], filepath.Join(dir, "proxy.pid"),
		filepath.Join(dir, "jupyterhub.sqlite"), filepath.Join(dir, "cookie_secret"), filepath.Join(dir, "hub.pid"),
		filepath.Join(dir, "homes", "{username}"), script, hubToken)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "jupyterhub.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command("/usr/bin/jupyterhub", "-f", conf)
	cmd.Dir = dir
	// Debian's python3 (not one earlier in PATH); the proxy finds its
	// modules through NODE_PATH.
	cmd.Env = append(os.Environ(), "NODE_PATH=/usr/share/nodejs", markerEnv+"="+b.root,
		"PATH=/usr/bin:/bin:/usr/sbin:/sbin")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := &hub{dir: dir, cmd: cmd, exited: make(chan struct{}), api: fmt.Sprintf("http://127.0.0.1:%d/hub/api", ports[1]), ctl: newClient(4)}
	go func() { cmd.Wait(); close(h.exited) }()
	deadline := time.Now().Add(time.Minute)
	for {
		var info struct {
			Version string `json:"version"`
		}
		if err := h.call(ctx, h.ctl, http.MethodGet, "/", nil, &info, http.StatusOK); err == nil {
			b.debugf("JupyterHub %s serving its API at %s", info.Version, h.api)
			break
		}
		select {
		case <-h.exited:
			return nil, fmt.Errorf("jupyterhub exited: %v\n%s", cmd.ProcessState, tail(logPath, 3000))
		case <-ctx.Done():
			h.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("jupyterhub not answering after a minute\n%s", tail(logPath, 3000))
		}
	}
	return h, nil
}

// call sends a request to the hub's API as the service.
func (h *hub) call(ctx context.Context, client *http.Client, method, path string, in, out any, want ...int) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.api+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+hubToken)
	resp, err := do(client, req, want[0])
	var se *statusError
	if errors.As(err, &se) {
		for _, w := range want[1:] {
			if se.code == w {
				err = nil
				break
			}
		}
	}
	if err != nil || out == nil || len(resp) == 0 {
		return err
	}
	return json.Unmarshal(resp, out)
}

func (h *hub) stop() {
	h.ctl.CloseIdleConnections()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		<-h.exited
	}
}

// servers lists the single-user servers running under the hub.
func (h *hub) servers() []int {
	var out []int
	script := filepath.Join(h.dir, "singleuser.py")
	for _, pid := range pids() {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(cmdline, []byte(script)) {
			out = append(out, pid)
		}
	}
	return out
}

// hubStarter starts single-user servers through the hub's REST API.
type hubStarter struct{ h *hub }

func (s hubStarter) prepare(ctx context.Context, client *http.Client, users []string) error {
	return s.h.call(ctx, client, http.MethodPost, "/users", map[string]any{"usernames": users}, nil, http.StatusCreated)
}

func (s hubStarter) start(ctx context.Context, client *http.Client, user string) (string, error) {
	return user, s.h.call(ctx, client, http.MethodPost, "/users/"+user+"/server", nil, nil, http.StatusAccepted, http.StatusCreated)
}

type hubUser struct {
	Server  *string `json:"server"`
	Pending *string `json:"pending"`
}

func (s hubStarter) ready(ctx context.Context, client *http.Client, user string) (bool, error) {
	var u hubUser
	if err := s.h.call(ctx, client, http.MethodGet, "/users/"+user, nil, &u, http.StatusOK); err != nil {
		return false, err
	}
	switch {
	case u.Pending != nil:
		return false, nil
	case u.Server != nil:
		return true, nil
	}
	return false, fmt.Errorf("the server of %s is neither pending nor running", user)
}

func (s hubStarter) stop(ctx context.Context, client *http.Client, user string) error {
	if err := s.h.call(ctx, client, http.MethodDelete, "/users/"+user+"/server", nil, nil, http.StatusNoContent, http.StatusAccepted); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var u hubUser
		if err := s.h.call(ctx, client, http.MethodGet, "/users/"+user, nil, &u, http.StatusOK); err != nil {
			return err
		}
		if u.Pending == nil && u.Server == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server of %s has not stopped after a minute", user)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s hubStarter) settle(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	for len(s.h.servers()) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d single-user servers still running after a minute", len(s.h.servers()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// peerScenario runs the on-demand scenario on JupyterHub and reports
// Portico's figures (from the ondemand scenario of the same run, run now
// if it was not selected) as ratios to JupyterHub's.
func (b *bench) peerScenario(ctx context.Context) error {
	o := b.opts
	if why := jupyterhubMissing(); why != "" {
		return fmt.Errorf("the JupyterHub peer cannot run here: %s", why)
	}
	if b.onDemand == nil {
		if err := b.onDemandScenario(ctx); err != nil {
			return fmt.Errorf("portico's on-demand figures: %w", err)
		}
	}
	b.report.section("peer: JupyterHub", "JupyterHub 3.0 (Debian 12) with SimpleLocalProcessSpawner and a trivial threaded "+
		"Python HTTP server as the single-user server, configurable-http-proxy, SQLite, all on loopback; a fresh hub per level. "+
		"The same rounds as on-demand allocation: N clients at once POST /hub/api/users/<name>/server for users created "+
		"before the round (untimed), then poll GET /hub/api/users/<name> at the same interval until the server is ready. "+
		"Ratios are Portico's figure over JupyterHub's.")
	var errs []error
	for _, n := range o.odClients {
		res, err := b.peerLevel(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%d clients: %w", n, err))
			continue
		}
		b.logf("jupyterhub, %d clients: %d servers, %.1f ready/s, p50 %.1f ms, p99 %.1f ms, %d errors",
			n, res.Sessions, res.Rate, res.Latency.P50ms, res.Latency.P99ms, res.Errors)
		c := clientsCase(n)
		pr, ok := b.onDemand[n]
		note := ""
		if res.Errors > 0 {
			note = fmt.Sprintf("%d failed: %s", res.Errors, res.FirstError)
		}
		if !ok {
			b.report.add(row{Case: c, Metric: "JupyterHub request → ready p50", Value: res.Latency.P50ms, Unit: "ms", Detail: res, Note: note})
			continue
		}
		b.report.add(row{Case: c, Metric: "portico request → ready p50", Value: pr.Latency.P50ms, Unit: "ms",
			Reference: "JupyterHub", RefValue: res.Latency.P50ms, Detail: res, Note: note})
		b.report.add(row{Case: c, Metric: "portico request → ready p99", Value: pr.Latency.P99ms, Unit: "ms",
			Reference: "JupyterHub", RefValue: res.Latency.P99ms})
		x := row{Case: c, Metric: "portico sessions ready per second", Value: pr.Rate, Unit: "/s", Reference: "JupyterHub", RefValue: res.Rate}
		if n == 64 {
			x.Target, x.Met = "≥ 10× JupyterHub (or ≥ 200/s)", met(pr.Rate >= 10*res.Rate || pr.Rate >= 200)
		}
		b.report.add(x)
	}
	return errors.Join(errs...)
}

func (b *bench) peerLevel(ctx context.Context, n int) (burstResult, error) {
	h, err := b.startHub(ctx, fmt.Sprintf("%d", n))
	if err != nil {
		return burstResult{}, err
	}
	defer h.stop()
	s := hubStarter{h}
	if _, err := b.warmStart(ctx, s); err != nil {
		return burstResult{}, fmt.Errorf("warm-up server: %w", err)
	}
	return b.bursts(ctx, s, n, fmt.Sprintf("jh%d", n), nil)
}

// preparer is a starter whose users must exist before their servers start.
type preparer interface {
	prepare(ctx context.Context, client *http.Client, users []string) error
}
