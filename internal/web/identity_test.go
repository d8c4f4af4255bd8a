package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/store"
)

// Identities across the portal's pages and the REST API: one account per
// normalised name, no sign-up that takes a robot's user or passes for
// another account, staff or the portal.

// register submits the sign-up form for username in a new browser.
func register(t *testing.T, p *portaltest.Portal, username, email string) (*portaltest.Client, int, string, string) {
	t.Helper()
	c := p.Client()
	status, loc, body := post(t, p, c, "/accounts/register/", url.Values{"username": {username},
		"email": {email}, "password1": {"correct horse"}, "password2": {"correct horse"}})
	return c, status, loc, body
}

// robotRequest asks for a session of portal-w01 for user, as the robot
// front end does.
func robotRequest(t *testing.T, robot *portaltest.Client, user string) (*http.Response, []byte) {
	t.Helper()
	return robot.Raw("GET", "/workshops/environment/portal-w01/request/?index_url=https%3A%2F%2Fhub.test%2F&user="+url.QueryEscape(user), nil)
}

// state is what a request that is refused must leave as it was: every
// session row and the events that are not of a session (User/Create).
func state(p *portaltest.Portal) string {
	var b strings.Builder
	for _, s := range p.Sessions() {
		fmt.Fprintf(&b, "%s %s owner=%d v%d\n", s.Name, s.State, s.Owner, s.Version)
	}
	fmt.Fprintf(&b, "events %v", p.Events.Names(""))
	return b.String()
}

// Squatting: a person who signs up with the name a robot front end will
// later use for one of its own users does not get that user's session; the
// robot is told why, and nothing is written.
func TestSignUpCannotSquatARobotsUser(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	frank, status, loc, body := register(t, p, "frank@corp.example", "frank@corp.example")
	if status != http.StatusFound {
		t.Fatalf("sign up frank@corp.example: %d %s %s", status, loc, body)
	}
	robot := p.Robot()
	before := state(p)
	for _, user := range []string{"frank@corp.example", "Frank@Corp.Example"} {
		resp, raw := robotRequest(t, robot, user)
		reason := errorReason(t, resp, raw, http.StatusConflict)
		if !strings.Contains(reason, "user "+user+" was not created by this client") {
			t.Errorf("409 for %s says %q", user, reason)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("409 is %s", resp.Header.Get("Content-Type"))
		}
	}
	if after := state(p); after != before {
		t.Errorf("a refused request wrote:\nbefore %s\nafter  %s", before, after)
	}
	// The squatter holds nothing; the reserve went to nobody.
	if status, _, body := get(t, frank, "/workshops/catalog/"); status != 200 || strings.Contains(body, "portal-w01-s") {
		t.Errorf("frank's catalog: %d, shows a session: %v", status, strings.Contains(body, "portal-w01-s"))
	}
	// The robot's own users are served as before, from that reserve.
	resp, raw := robotRequest(t, robot, "grace@corp.example")
	if resp.StatusCode != 200 {
		t.Fatalf("request for a new user after the refusal: %d %s", resp.StatusCode, raw)
	}
}

// A robot reaches its own user by any spelling of the name, and gets the
// account's own name back.
func TestRobotUserNamesAreNormalised(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	robot := p.Robot()
	var first, again struct{ Name, User string }
	resp, raw := robotRequest(t, robot, "Dora")
	if resp.StatusCode != 200 || json.Unmarshal(raw, &first) != nil {
		t.Fatalf("request for Dora: %d %s", resp.StatusCode, raw)
	}
	for _, spelling := range []string{"dora", "DORA", "ｄｏｒａ"} {
		resp, raw := robotRequest(t, robot, spelling)
		if resp.StatusCode != 200 || json.Unmarshal(raw, &again) != nil || again.Name != first.Name || again.User != "Dora" {
			t.Errorf("request for %q: %d %s; want Dora's session %s", spelling, resp.StatusCode, raw, first.Name)
		}
	}
	// Staff in another spelling are still staff, never a new account.
	for _, user := range []string{"EDUCATES", "Robot@Educates"} {
		resp, raw := robotRequest(t, robot, user)
		if got := errorReason(t, resp, raw, http.StatusBadRequest); got != "Session requests not permitted for user" {
			t.Errorf("request for %s: %q", user, got)
		}
	}
	// Dora signs up on the portal: her name is taken, in every spelling.
	for _, name := range []string{"dora", "DORA"} {
		if _, status, _, body := register(t, p, name, "dora@example.com"); status != http.StatusBadRequest ||
			!strings.Contains(body, "A user with that username already exists.") {
			t.Errorf("sign up as %s beside the robot's Dora: %d", name, status)
		}
	}
}

// Look-alikes: each of these either is refused at sign-up, with the
// reason on the form, or is the account it looks like.
func TestSignUpRefusesLookAlikes(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	if _, status, loc, body := register(t, p, "alice", "alice@example.com"); status != http.StatusFound {
		t.Fatalf("sign up alice: %d %s %s", status, loc, body)
	}
	for _, tc := range []struct{ name, reason string }{
		{"Alice", "A user with that username already exists."},
		{"ALICE", "A user with that username already exists."},
		{"ａｌｉｃｅ", "A user with that username already exists."}, // fullwidth
		{"аlice", "Use the letters of one alphabet"},           // Cyrillic а
		{"ɑlice", "looks like the name of another account"},    // Latin alpha
		{"Educates", "That username is reserved."},
		{"admin", "That username is reserved."},
		{"root", "That username is reserved."},
		{"Portal", "That username is reserved."}, // the portal's name
		{"robot@educates", "That username is reserved."},
	} {
		_, status, _, body := register(t, p, tc.name, "x@example.com")
		if status != http.StatusBadRequest || !strings.Contains(body, tc.reason) {
			t.Errorf("sign up as %q: %d, want 400 with %q on the form", tc.name, status, tc.reason)
		}
	}
	// The spellings of alice log in as alice, on the page and for a token;
	// the look-alike is nobody.
	for _, name := range []string{"ALICE", "ａｌｉｃｅ"} {
		c := login(t, p, name, "correct horse")
		if status, _, body := get(t, c, "/workshops/catalog/"); status != 200 || !strings.Contains(body, "alice") {
			t.Errorf("logged in as %q: catalog %d without alice's name", name, status)
		}
		if u := p.Login(name, "correct horse"); u.Bearer == "" {
			t.Errorf("no token for %q", name)
		}
	}
	if status, _, _ := post(t, p, p.Client(), "/accounts/login/", url.Values{"username": {"аlice"}, "password": {"correct horse"}}); status != http.StatusUnauthorized {
		t.Errorf("login as Cyrillic аlice: %d", status)
	}
	var accounts int
	p.Store.View(t.Context(), func(tx store.Tx) error {
		list, err := tx.Users(100)
		for _, u := range list {
			if u.Role == store.RoleRegistered {
				accounts++
			}
		}
		return err
	})
	if accounts != 1 {
		t.Errorf("%d registered accounts, want alice's only", accounts)
	}
}
