// Package portaltest builds a whole portal in process for tests: the real
// SQLite store in a temporary directory, the broker with a fake clock, the
// auth service and the REST API behind httptest, with a client that speaks
// to it as a robot front end does.
package portaltest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/openapitest"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlite"
	"github.com/portico-dev/portico/internal/web"
)

// Clock is a clock tests move by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at a fixed, millisecond-aligned time.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
}

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Credentials of the accounts every test portal has.
const (
	AdminUser     = "educates"
	AdminPassword = "admin-password"
	RobotUser     = "robot@educates"
	RobotPassword = "robot-password"
	ClientID      = "robot-client"
	ClientSecret  = "robot-secret"
)

// Portal is a running in-process portal.
type Portal struct {
	T       testing.TB
	Clock   *Clock
	Store   store.Store
	Broker  *broker.Broker
	Auth    *auth.Service
	Runtime runtime.Runtime
	Server  *httptest.Server
	Defs    *config.Definitions
	// Events records every analytics event.
	Events *Recorder
	// Secrets seals the config passwords in Store.
	Secrets *secret.Box
}

// Options adjust a test portal.
type Options struct {
	Runtime runtime.Runtime // required
	Clock   *Clock          // default NewClock()
	Dir     string          // default t.TempDir()
	// Observer of the broker (default: none).
	Observer broker.Observer
	// Outbox of the broker (default: none).
	Outbox broker.Outbox
	// Events is also told every event the Recorder records (default:
	// nobody else).
	Events broker.Events
}

// Definitions returns a portal with one workshop "lab" (environment
// "portal-w01") configured by entry; callers adjust the result.
func Definitions(entry config.Entry) *config.Definitions {
	ws := &config.Workshop{
		Name: "lab", Title: "Lab", Description: "A lab", Fingerprint: "f1",
		Parameters: []config.Parameter{{Name: "GREETING", Value: "hello"}},
		Labels:     map[string]string{"kind": "lab"},
	}
	if entry.Name == "" {
		entry.Name = "lab"
	}
	entry.Position = 1
	if entry.Deadline < entry.Expires {
		entry.Deadline = entry.Expires
	}
	return &config.Definitions{
		Portal: config.Portal{
			Name:              "portal",
			Title:             "Workshops",
			Registration:      config.Registration{Type: "one-step", Enabled: true},
			CatalogVisibility: "private",
			Admin:             config.Credentials{Username: AdminUser, Password: AdminPassword},
			Robot:             config.Credentials{Username: RobotUser, Password: RobotPassword},
			RobotClient:       config.Client{ID: ClientID, Secret: ClientSecret},
			Entries:           []config.Entry{entry},
		},
		Workshops: map[string]*config.Workshop{ws.Name: ws},
	}
}

// Start builds and starts the portal serving defs. The reconciler does not
// run by itself: tests call Settle.
func Start(t testing.TB, defs *config.Definitions, opts Options) *Portal {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = NewClock()
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(opts.Dir, "portico.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	p := &Portal{T: t, Clock: opts.Clock, Store: db, Runtime: opts.Runtime, Defs: defs, Events: &Recorder{next: opts.Events}}
	p.Auth = auth.New(db, opts.Clock)
	p.Auth.SetHashCost(bcrypt.MinCost)
	p.Server = httptest.NewUnstartedServer(nil)
	url := "http://" + p.Server.Listener.Addr().String()
	key, err := secret.ParseKey(secret.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	if p.Secrets, err = secret.NewBox(key); err != nil {
		t.Fatal(err)
	}
	p.Broker = broker.New(broker.Options{Store: db, Runtime: opts.Runtime, Clock: opts.Clock, Events: p.Events,
		Outbox: opts.Outbox, Logger: log, URL: url, Secrets: p.Secrets, Observer: opts.Observer}, defs)
	if _, err := p.Auth.Bootstrap(ctx, defs.Portal); err != nil {
		t.Fatal(err)
	}
	if err := p.Broker.Apply(ctx, defs); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	httpapi.Register(mux, p.Broker, p.Auth, opts.Clock, log)
	pages := web.Handler(mux, p.Broker, p.Auth, opts.Clock, log)
	// Every answer of the API is held to its OpenAPI document. A
	// session's origin is a server of its own, which hands some paths to
	// the same API handlers the portal's host serves.
	api := openapitest.Default(t).Middleware(t, pages)
	// Request IDs and request logs as the binary has them (metrics aside).
	p.Server.Config.Handler = httpapi.Observe(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := p.Broker.Origins().Session(r.Host); ok {
			pages.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}), log, nil)
	p.Server.Start()
	t.Cleanup(p.Server.Close)
	t.Cleanup(p.Broker.Wait)
	p.Settle()
	return p
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// Settle runs the reconciler until nothing changes any more.
func (p *Portal) Settle() {
	p.T.Helper()
	ctx := context.Background()
	prev := ""
	for range 50 {
		if _, err := p.Broker.Reconcile(ctx); err != nil {
			p.T.Fatalf("reconcile: %v", err)
		}
		p.Broker.Wait()
		snap := p.snapshot()
		if snap == prev {
			return
		}
		prev = snap
	}
	p.T.Fatal("reconciler did not settle in 50 passes")
}

func (p *Portal) snapshot() string {
	var b strings.Builder
	p.Store.View(context.Background(), func(tx store.Tx) error {
		envs, _ := tx.Environments()
		for _, e := range envs {
			fmt.Fprintf(&b, "%s %s %d|", e.Name, e.State, e.Version)
		}
		ss, _ := tx.FindSessions(store.SessionQuery{})
		for _, s := range ss {
			fmt.Fprintf(&b, "%s %s %d|", s.Name, s.State, s.Version)
		}
		return nil
	})
	h := sha256.Sum256([]byte(b.String()))
	return string(h[:])
}

// Sessions returns every session row, oldest first.
func (p *Portal) Sessions() []store.Session {
	p.T.Helper()
	var out []store.Session
	err := p.Store.View(context.Background(), func(tx store.Tx) (err error) {
		out, err = tx.FindSessions(store.SessionQuery{})
		return err
	})
	if err != nil {
		p.T.Fatal(err)
	}
	return out
}

// Session returns one session row.
func (p *Portal) Session(name string) store.Session {
	p.T.Helper()
	var s store.Session
	err := p.Store.View(context.Background(), func(tx store.Tx) (err error) {
		s, err = tx.Session(name)
		return err
	})
	if err != nil {
		p.T.Fatalf("session %s: %v", name, err)
	}
	return s
}

// ConfigPassword returns the config password of a session in clear text,
// as its host knows it (the row holds it sealed).
func (p *Portal) ConfigPassword(name string) string {
	p.T.Helper()
	pw, err := p.Secrets.Open(p.Session(name).Password, name)
	if err != nil {
		p.T.Fatal(err)
	}
	return pw
}

// Environments returns every environment row.
func (p *Portal) Environments() []store.Environment {
	p.T.Helper()
	var out []store.Environment
	err := p.Store.View(context.Background(), func(tx store.Tx) (err error) {
		out, err = tx.Environments()
		return err
	})
	if err != nil {
		p.T.Fatal(err)
	}
	return out
}

// Count counts sessions by state in an environment ("" for all).
func (p *Portal) Count(env string, states ...store.SessionState) int {
	n := 0
	for _, s := range p.Sessions() {
		if (env == "" || s.Environment == env) && (len(states) == 0 || contains(states, s.State)) {
			n++
		}
	}
	return n
}

func contains(states []store.SessionState, s store.SessionState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// Client is an HTTP client of the portal.
type Client struct {
	p      *Portal
	HTTP   *http.Client
	Bearer string
}

// Client returns a client without credentials and with a cookie jar. It
// reaches the sessions' origins, under localhost, as browsers do.
func (p *Portal) Client() *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{p: p, HTTP: &http.Client{Jar: jar, Transport: LocalhostTransport(), CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// LocalhostTransport is an HTTP transport that resolves every name under
// localhost to loopback, as browsers do (RFC 6761) and Go's resolver does
// not.
func LocalhostTransport() *http.Transport { return localhostTransport(&net.Dialer{}) }

func localhostTransport(d *net.Dialer) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// Enter opens a session's dashboard the way a browser does: through the
// portal's open link, with a ticket, to a cookie of the session's origin.
// It returns the origin.
func (c *Client) Enter(session string) string {
	c.p.T.Helper()
	resp, raw := c.Raw("GET", "/workshops/session/"+session+"/open/", nil)
	enter := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(enter, "/.portico/enter?") {
		c.p.T.Fatalf("open %s: %d %q, Location %q", session, resp.StatusCode, raw, enter)
	}
	if resp, raw = c.Raw("GET", enter, nil); resp.StatusCode != http.StatusFound {
		c.p.T.Fatalf("enter %s: %d %q", session, resp.StatusCode, raw)
	}
	return c.p.Broker.SessionURL(session)
}

// ClientFrom returns a client without credentials whose connections come
// from addr, an address of 127.0.0.0/8 other than 127.0.0.1: all of that
// block is loopback on Linux, so the portal sees another client address
// without a proxy or a header.
func (p *Portal) ClientFrom(addr string) *Client {
	c := p.Client()
	c.HTTP.Transport = localhostTransport(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}})
	p.T.Cleanup(c.HTTP.CloseIdleConnections)
	return c
}

// Robot returns a client logged in as the robot through the password grant.
func (p *Portal) Robot() *Client {
	return p.Login(RobotUser, RobotPassword)
}

// Login returns a client with a bearer token of username.
func (p *Portal) Login(username, password string) *Client {
	p.T.Helper()
	c := p.Client()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password},
		"client_id": {ClientID}, "client_secret": {ClientSecret}}
	var tok auth.TokenResponse
	if status := c.Do("POST", "/oauth2/token/", strings.NewReader(form.Encode()), &tok,
		"Content-Type", "application/x-www-form-urlencoded"); status != 200 {
		p.T.Fatalf("login %s: status %d", username, status)
	}
	c.Bearer = tok.AccessToken
	return c
}

// Do sends a request and decodes a JSON answer into out (when not nil);
// it returns the status. headers are name, value pairs.
func (c *Client) Do(method, path string, body io.Reader, out any, headers ...string) int {
	c.p.T.Helper()
	resp, raw := c.Raw(method, path, body, headers...)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.p.T.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

// Raw sends a request (to a path of the portal, or a URL) and returns the response with its whole body.
func (c *Client) Raw(method, path string, body io.Reader, headers ...string) (*http.Response, []byte) {
	c.p.T.Helper()
	if !strings.HasPrefix(path, "http://") && !strings.HasPrefix(path, "https://") {
		path = c.p.Server.URL + path
	}
	req, err := http.NewRequest(method, path, body)
	if err != nil {
		c.p.T.Fatal(err)
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.p.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.p.T.Fatal(err)
	}
	return resp, raw
}

// Recorder keeps analytics events.
type Recorder struct {
	mu     sync.Mutex
	events []broker.Event
	next   broker.Events
}

func (r *Recorder) Emit(e broker.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	if r.next != nil {
		r.next.Emit(e)
	}
}

// Names returns the names of the events recorded for a session, in order.
func (r *Recorder) Names(session string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Session == session {
			out = append(out, e.Name)
		}
	}
	return out
}
