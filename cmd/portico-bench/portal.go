package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/secret"
)

// Credentials written into every generated portal definition, so that the
// harness needs nothing the portal generates.
const (
	benchPortal   = "bench"
	benchEnv      = benchPortal + "-w01" // the environment of the only workshop
	adminPassword = "bench-admin-password"
	robotUser     = "robot@bench"
	robotPassword = "bench-robot-password"
	clientID      = "bench-robot"
	clientSecret  = "bench-robot-secret"
	indexURL      = "https://front-end.invalid/"
)

// portalConfig is what a portal of the harness is made of.
type portalConfig struct {
	name     string // names its directory
	runtime  string // local, noop or kubernetes
	capacity int
	reserved int // also the initial batch
	expires  string
	database string // postgres://...; empty for SQLite in the data directory
	// Replicas of one database share a data directory (default: data in
	// the portal's own directory) and the key of its sealed secrets
	// (default: a new one).
	dataDir, secretKey string
	env                []string // further KEY=VALUE environment
	args               []string // further flags of portico serve
	// noReserveWait returns once the portal serves, without waiting for
	// its reserve: a replica restarted under faults may not lead.
	noReserveWait bool
}

// portal is a running `portico serve`.
type portal struct {
	b        *bench
	cfg      portalConfig
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	pid      int
	url      string
	debugURL string
	token    string
	ctl      *http.Client // for the harness's own calls, apart from the load
}

func (c portalConfig) yaml() string {
	expires := c.expires
	if expires == "" {
		expires = "60m"
	}
	return fmt.Sprintf(`apiVersion: training.educates.dev/v1beta1
kind: TrainingPortal
metadata:
  name: %s
spec:
  portal:
    title: Portico benchmark
    credentials:
      admin: {username: admin, password: %s}
      robot: {username: %q, password: %s}
    clients:
      robot: {id: %s, secret: %s}
  workshops:
    - name: bench
      capacity: %d
      reserved: %d
      initial: %d
      expires: %s
---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: bench
spec:
  title: Benchmark workshop
  description: A workshop with nothing in it, for the benchmark harness.
  session:
    resources:
      # Less than the 1Gi default, so that the on-demand level of 64
      # sessions fits the disk of a small machine: a start's cost hardly
      # depends on the size (the image is allocated, not written).
      storage: 256Mi
`, benchPortal, adminPassword, robotUser, robotPassword, clientID, clientSecret,
		c.capacity, c.reserved, c.reserved, expires)
}

var (
	servingURL = regexp.MustCompile(`msg="portal serving" url=(\S+)`)
	debugURL   = regexp.MustCompile(`msg="debug endpoints serving" url=(\S+)/debug/pprof/`)
)

// startPortal starts `portico serve` on a free loopback port, waits until it
// serves, gets a robot token, and waits until its initial reserve is ready.
func (b *bench) startPortal(ctx context.Context, cfg portalConfig) (*portal, error) {
	dir, err := b.tempDir("portal-" + cfg.name)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "portal.yaml")
	if err := os.WriteFile(conf, []byte(cfg.yaml()), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "portal.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	dataDir := cmp.Or(cfg.dataDir, filepath.Join(dir, "data"))
	args := []string{"serve", "--config", conf, "--data-dir", dataDir,
		"--listen", "127.0.0.1:0", "--runtime", cfg.runtime, "--debug-listen", "127.0.0.1:0"}
	args = append(args, cfg.args...)
	env := append(append(os.Environ(), markerEnv+"="+b.root), cfg.env...)
	if cfg.database != "" {
		// A portal on PostgreSQL is given the key of its sealed secrets.
		args = append(args, "--database", cfg.database)
		env = append(env, "PORTICO_SECRET_KEY="+cmp.Or(cfg.secretKey, secret.NewKey()))
	}
	cmd := exec.Command(b.portico, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the harness die, the portal goes with it (sessions of the
	// local runtime outlive it by design: killStrays ends those).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &portal{b: b, cfg: cfg, dir: dir, cmd: cmd, exited: make(chan struct{}), pid: cmd.Process.Pid, ctl: newClient(4)}
	go func() { cmd.Wait(); close(p.exited) }()
	fail := func(err error) (*portal, error) {
		p.kill()
		return nil, fmt.Errorf("portal %s: %w\n%s", cfg.name, err, tail(logPath, 2000))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for p.url == "" || p.debugURL == "" {
		log, _ := os.ReadFile(logPath)
		if m := servingURL.FindSubmatch(log); m != nil {
			p.url = string(m[1])
		}
		if m := debugURL.FindSubmatch(log); m != nil {
			p.debugURL = string(m[1])
		}
		select {
		case <-p.exited:
			return fail(fmt.Errorf("exited: %v", cmd.ProcessState))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(errors.New("not serving after 2 minutes"))
		}
	}
	if p.token, err = p.robotToken(ctx); err != nil {
		return fail(err)
	}
	if cfg.reserved > 0 && !cfg.noReserveWait {
		if err := p.waitAvailable(ctx, cfg.reserved, 2*time.Minute); err != nil {
			return fail(err)
		}
	}
	b.debugf("portal %s serving at %s (pid %d)", cfg.name, p.url, p.pid)
	return p, nil
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(b)
}

// robotToken gets an access token for the robot with the client
// credentials grant.
func (p *portal) robotToken(ctx context.Context) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/oauth2/token/", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(clientID, clientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	body, err := do(p.ctl, req, http.StatusOK)
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token answer %q: %v", body, err)
	}
	return tok.AccessToken, nil
}

// get sends an authorised GET and decodes a JSON answer into out (when not
// nil).
func (p *portal) get(ctx context.Context, client *http.Client, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	body, err := do(client, req, http.StatusOK)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(body, out)
}

// requestPath is the REST request of a session for user.
func requestPath(user string, timeout string) string {
	q := url.Values{"index_url": {indexURL}, "user": {user}}
	if timeout != "" {
		q.Set("timeout", timeout)
	}
	return "/workshops/environment/" + benchEnv + "/request/?" + q.Encode()
}

// requestSession asks for a session for user and returns its name.
func (p *portal) requestSession(ctx context.Context, client *http.Client, user, timeout string) (string, error) {
	var s struct {
		Name string `json:"name"`
	}
	if err := p.get(ctx, client, requestPath(user, timeout), &s); err != nil {
		return "", err
	}
	if s.Name == "" {
		return "", errors.New("request answered without a session name")
	}
	return s.Name, nil
}

type catalogAnswer struct {
	Environments []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Allocated int    `json:"allocated"`
		Available int    `json:"available"`
		Sessions  []struct {
			Name string `json:"name"`
		} `json:"sessions"`
	} `json:"environments"`
}

// environment reports the allocated and available sessions of the bench
// environment.
func (p *portal) environment(ctx context.Context) (allocated, available int, err error) {
	var c catalogAnswer
	if err := p.get(ctx, p.ctl, "/workshops/catalog/environments/", &c); err != nil {
		return 0, 0, err
	}
	for _, e := range c.Environments {
		if e.Name == benchEnv {
			return e.Allocated, e.Available, nil
		}
	}
	return 0, 0, fmt.Errorf("environment %s not in the catalog", benchEnv)
}

// waitAvailable waits until n reserved sessions are ready.
func (p *portal) waitAvailable(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, avail, err := p.environment(ctx)
		if err == nil && avail >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d reserved sessions ready after %s (%v)", avail, n, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return errors.New("portal exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// status is a session's state from its schedule: WAITING when its host is
// ready; "" once the session is gone.
func (p *portal) status(ctx context.Context, client *http.Client, session string) (string, error) {
	var sc struct {
		Status string `json:"status"`
	}
	err := p.get(ctx, client, "/workshops/session/"+session+"/schedule/", &sc)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return "", nil
	}
	return sc.Status, err
}

// terminate ends a session.
func (p *portal) terminate(ctx context.Context, client *http.Client, session string) error {
	return p.get(ctx, client, "/workshops/session/"+session+"/terminate/", nil)
}

// hosts lists the processes of the portal's sessions (local runtime).
func (p *portal) hosts() []sessionProc {
	return sessionProcesses(filepath.Join(cmp.Or(p.cfg.dataDir, filepath.Join(p.dir, "data")), "sessions"))
}

// waitNoHosts waits until no process of the portal's sessions is left.
func (p *portal) waitNoHosts(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n := len(p.hosts())
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d session processes still running after %s", n, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cpu is the CPU time the portal has used, in seconds.
func (p *portal) cpu() (float64, error) { return cpuSeconds(p.pid) }

// rssKB is the portal's resident set size.
func (p *portal) rssKB() (int64, error) { return statusKB(p.pid, "VmRSS") }

// stop shuts the portal down: a portal on the noop runtime is killed (its
// sessions are nothing, and ending thousands of them is no figure of the
// run); one on the local runtime is stopped gracefully (SIGTERM), and
// killed if it does not exit within 20 s. Scenarios end the sessions of
// the local runtime themselves first.
func (p *portal) stop() {
	p.ctl.CloseIdleConnections()
	if p.cfg.runtime == "noop" {
		p.kill()
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.b.logf("portal %s did not stop within 20 s; killing it", p.cfg.name)
		p.kill()
	}
}

func (p *portal) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}
