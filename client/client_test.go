package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/client"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
)

func newPortal(t *testing.T) *portaltest.Portal {
	t.Helper()
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	return portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
}

// exchanges records what a client sends: "METHOD path" and, for the token
// endpoint, the grant type; and the status of each answer.
type exchanges struct {
	mu  sync.Mutex
	log []string
}

func (x *exchanges) RoundTrip(r *http.Request) (*http.Response, error) {
	entry := r.Method + " " + r.URL.Path
	if r.URL.Path == "/oauth2/token/" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		entry += " " + form.Get("grant_type")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		entry += " " + resp.Status[:3]
	}
	x.mu.Lock()
	x.log = append(x.log, entry)
	x.mu.Unlock()
	return resp, err
}

// take returns what was sent since the last call.
func (x *exchanges) take() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := strings.Join(x.log, "; ")
	x.log = nil
	return out
}

func newClient(t *testing.T, p *portaltest.Portal, username, password string) (*client.Client, *exchanges) {
	t.Helper()
	x := &exchanges{}
	c, err := client.New(client.Config{URL: p.Server.URL, ClientID: portaltest.ClientID, ClientSecret: portaltest.ClientSecret,
		Username: username, Password: password, HTTPClient: &http.Client{Transport: x}, Now: p.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c, x
}

// A front end's whole flow through the client, as the robot.
func TestRobotFlow(t *testing.T) {
	p := newPortal(t)
	ctx := context.Background()
	c, _ := newClient(t, p, portaltest.RobotUser, portaltest.RobotPassword)

	cat, err := c.Environments(ctx, client.CatalogOptions{Sessions: true})
	if err != nil || len(cat.Environments) != 1 || cat.Portal.Name != "portal" || cat.Environments[0].Workshop.Resource != "lab" {
		t.Fatalf("catalog: %v %+v", err, cat)
	}
	ws, err := c.Workshops(ctx)
	if err != nil || len(ws.Workshops) != 1 || ws.Workshops[0].Environment.Name != "portal-w01" {
		t.Fatalf("workshops: %v %+v", err, ws)
	}

	a, err := c.RequestSession(ctx, "portal-w01", client.SessionRequest{User: "alice@example.com", IndexURL: "https://hub.test/",
		Timeout: 2 * time.Minute, Parameters: []client.Parameter{{Name: "GREETING", Value: "hi"}}})
	if err != nil || a.User != "alice@example.com" || a.Environment != "portal-w01" || a.Workshop != "lab" {
		t.Fatalf("request: %v %+v", err, a)
	}
	if u := c.ActivationURL(a); !strings.HasPrefix(u, p.Server.URL+"/workshops/session/"+a.Name+"/activate/?token=") {
		t.Errorf("activation URL %q", u)
	}
	p.Settle()

	status, err := c.EnvironmentStatus(ctx, "portal-w01", true)
	if err != nil || status.Allocated != 1 || len(status.Sessions) != 1 || status.Sessions[0].User != "alice@example.com" {
		t.Errorf("status: %v %+v", err, status)
	}
	mine, err := c.UserSessions(ctx, "alice@example.com")
	if err != nil || len(mine) != 1 || mine[0].Name != a.Name || mine[0].Expires.IsZero() {
		t.Errorf("user sessions: %v %+v", err, mine)
	}
	sc, err := c.SessionSchedule(ctx, a.Name)
	if err != nil || sc.Status != "WAITING" || !sc.Expires.Equal(p.Clock.Now().Add(2*time.Minute)) {
		t.Errorf("schedule: %v %+v", err, sc)
	}
	if sc, err := c.ExtendSession(ctx, a.Name); err != nil || sc.Extended {
		t.Errorf("extend right away: %v %+v", err, sc)
	}
	if cfg, err := c.SessionConfig(ctx, a.Name); err != nil || cfg.URL != p.Broker.SessionURL(a.Name) || cfg.Password == "" {
		t.Errorf("config: %v %+v", err, cfg)
	}
	if _, err := c.TerminateSession(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if _, err := c.SessionSchedule(ctx, a.Name); !client.IsNotFound(err) {
		t.Errorf("schedule of an ended session: %v, want not found", err)
	}
}

// Errors are *client.Error with the status and the portal's reason.
func TestErrorsAreTyped(t *testing.T) {
	p := newPortal(t)
	ctx := context.Background()
	robot, _ := newClient(t, p, portaltest.RobotUser, portaltest.RobotPassword)

	_, err := robot.RequestSession(ctx, "nope", client.SessionRequest{IndexURL: "/"})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 404 || e.Reason == "" || !client.IsNotFound(err) {
		t.Errorf("unknown environment: %#v", err)
	}
	_, err = robot.RequestSession(ctx, "portal-w01", client.SessionRequest{IndexURL: "/", Email: "not an address"})
	if !client.IsBadRequest(err) || !strings.Contains(err.Error(), "email") {
		t.Errorf("bad email: %v", err)
	}
	if _, err := robot.Sessions(ctx, ""); !client.IsForbidden(err) {
		t.Errorf("staff endpoint as the robot: %v", err)
	}

	wrong, _ := newClient(t, p, portaltest.RobotUser, "wrong")
	_, err = wrong.Environments(ctx, client.CatalogOptions{})
	if !errors.As(err, &e) || e.Status != 400 || e.Code != "invalid_grant" {
		t.Errorf("wrong password: %#v", err)
	}
	if _, err := client.New(client.Config{URL: "portal.example.com", ClientID: "a", ClientSecret: "b"}); err == nil {
		t.Error("a URL without scheme is taken")
	}
}

// The token is refreshed before it expires, by the client's clock; the
// refresh token rotates.
func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	p := newPortal(t)
	ctx := context.Background()
	c, x := newClient(t, p, portaltest.RobotUser, portaltest.RobotPassword)
	if _, err := c.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := c.Token(ctx)
	if got, want := x.take(), "POST /oauth2/token/ password 200; GET /workshops/catalog/workshops/ 200"; got != want {
		t.Errorf("first call sent %q, want %q", got, want)
	}
	if !first.Expiry.Equal(p.Clock.Now().Add(10 * time.Hour)) {
		t.Errorf("token expiry %v", first.Expiry)
	}

	p.Clock.Advance(10*time.Hour - 30*time.Second)
	if _, err := c.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := x.take(), "POST /oauth2/token/ refresh_token 200; GET /workshops/catalog/workshops/ 200"; got != want {
		t.Errorf("near expiry sent %q, want %q", got, want)
	}
	if next, _ := c.Token(ctx); next.AccessToken == first.AccessToken || next.RefreshToken == first.RefreshToken {
		t.Error("the token was not renewed")
	}
}

// A token the portal refuses (expired by the portal's clock, or revoked)
// is renewed once and the request sent again.
func TestUnauthorizedRenewsOnce(t *testing.T) {
	p := newPortal(t)
	ctx := context.Background()
	c, x := newClient(t, p, portaltest.RobotUser, portaltest.RobotPassword)
	if _, err := c.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	// The client's clock stays; the portal's runs past the token's life.
	frozen, err := client.New(client.Config{URL: p.Server.URL, ClientID: portaltest.ClientID, ClientSecret: portaltest.ClientSecret,
		Username: portaltest.RobotUser, Password: portaltest.RobotPassword, HTTPClient: &http.Client{Transport: x},
		Now: func() time.Time { return time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := frozen.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	p.Clock.Advance(11 * time.Hour)
	x.take()
	if _, err := frozen.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := x.take(), "GET /workshops/catalog/workshops/ 401; POST /oauth2/token/ refresh_token 200; GET /workshops/catalog/workshops/ 200"; got != want {
		t.Errorf("token expired by the portal's clock: sent %q, want %q", got, want)
	}

	// Revoking the access token revokes its refresh token too: the
	// client logs in again.
	tok, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Revoke(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	x.take()
	if _, err := c.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := x.take(), "GET /workshops/catalog/workshops/ 401; POST /oauth2/token/ refresh_token 400; POST /oauth2/token/ password 200; GET /workshops/catalog/workshops/ 200"; got != want {
		t.Errorf("after revocation sent %q, want %q", got, want)
	}

	// A client_credentials client has no refresh token: it asks anew.
	cc, x := newClient(t, p, "", "")
	if _, err := cc.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	tok, _ = cc.Token(ctx)
	cc.Revoke(ctx, tok.AccessToken)
	x.take()
	if _, err := cc.Workshops(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := x.take(), "GET /workshops/catalog/workshops/ 401; POST /oauth2/token/ client_credentials 200; GET /workshops/catalog/workshops/ 200"; got != want {
		t.Errorf("client_credentials after revocation sent %q, want %q", got, want)
	}

	// Only once: a fresh token refused again is the answer.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth2/token/" {
			io.WriteString(w, `{"access_token":"t","token_type":"Bearer","expires_in":36000,"scope":"user:info"}`)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":"no"}`)
	}))
	defer refusing.Close()
	rc, err := client.New(client.Config{URL: refusing.URL, ClientID: "a", ClientSecret: "b", HTTPClient: &http.Client{Transport: x}})
	if err != nil {
		t.Fatal(err)
	}
	x.take()
	if _, err := rc.Workshops(ctx); !client.IsUnauthorized(err) {
		t.Errorf("always refused: %v", err)
	}
	if got, want := x.take(), "POST /oauth2/token/ client_credentials 200; GET /workshops/catalog/workshops/ 401; "+
		"POST /oauth2/token/ client_credentials 200; GET /workshops/catalog/workshops/ 401"; got != want {
		t.Errorf("always refused: sent %q, want %q", got, want)
	}
}

// The staff endpoints, as the portal's admin.
func TestStaff(t *testing.T) {
	p := newPortal(t)
	ctx := context.Background()
	robot, _ := newClient(t, p, portaltest.RobotUser, portaltest.RobotPassword)
	a, err := robot.RequestSession(ctx, "lab", client.SessionRequest{User: "bob", IndexURL: "/"})
	if err != nil {
		t.Fatal(err)
	}
	p.Settle()
	admin, _ := newClient(t, p, portaltest.AdminUser, portaltest.AdminPassword)

	list, err := admin.Sessions(ctx, "bob")
	if err != nil || len(list) != 1 || list[0].Name != a.Name || list[0].User != "bob" || list[0].Created.IsZero() {
		t.Fatalf("sessions: %v %+v", err, list)
	}
	s, err := admin.Session(ctx, a.Name)
	if err != nil || s.URL != p.Broker.SessionURL(a.Name) || s.Workshop != "lab" {
		t.Errorf("session: %v %+v", err, s)
	}
	users, err := admin.Users(ctx, "bob")
	if err != nil || len(users) != 1 || users[0].Sessions != 1 {
		t.Errorf("users: %v %+v", err, users)
	}
	envs, err := admin.AllEnvironments(ctx)
	if err != nil || len(envs) != 1 || len(envs[0].Sessions) != 1 {
		t.Errorf("environments: %v %+v", err, envs)
	}
	envs, err = admin.RefreshEnvironment(ctx, "portal-w01")
	if err != nil || len(envs) != 2 {
		t.Errorf("refresh: %v %+v", err, envs)
	}
	if _, err := admin.TerminateSession(ctx, a.Name); err != nil {
		t.Errorf("staff ends a session: %v", err)
	}
}
