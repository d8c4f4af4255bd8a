package httpapi_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/store"
)

// clientToken gives the robot a second OAuth client, as a second front end
// of the same portal would have, and returns a robot client with a token
// of it.
func clientToken(t *testing.T, p *portaltest.Portal, id, secret string) *portaltest.Client {
	t.Helper()
	hash, err := p.Auth.HashPassword(secret)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Store.Update(t.Context(), func(tx store.Tx) error {
		robot, err := tx.User(portaltest.RobotUser)
		if err != nil {
			return err
		}
		return tx.UpsertClient(store.Client{ID: id, SecretHash: hash, User: robot.ID})
	})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	var tok auth.TokenResponse
	if status := c.Do("POST", "/oauth2/token/", strings.NewReader(form.Encode()), &tok,
		"Content-Type", "application/x-www-form-urlencoded"); status != 200 {
		t.Fatalf("token of client %s: %d", id, status)
	}
	c.Bearer = tok.AccessToken
	return c
}

// A user a front end made is its own: another client of the portal naming
// it is answered 409 with the reason, and changes nothing.
func TestRequestReusesOnlyTheClientsOwnUsers(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	a, status, raw := requestSession(t, robot, "index_url=/&user=erin")
	if status != 200 {
		t.Fatalf("request for erin: %d %s", status, raw)
	}
	other := clientToken(t, p, "other-front-end", "other-secret")
	before := p.Sessions()
	for _, user := range []string{"erin", "ERIN"} {
		_, status, raw = requestSession(t, other, "index_url=/&user="+user)
		reason := errorBody(t, status, 409, raw)
		if !strings.HasPrefix(reason, "user "+user+" was not created by this client") {
			t.Errorf("another client's request for %s: %q", user, reason)
		}
	}
	if after := p.Sessions(); !reflect.DeepEqual(after, before) {
		t.Errorf("a refused request changed the sessions:\n%+v\n%+v", before, after)
	}
	// Its own users it gets, and the first client still has erin.
	if _, status, raw := requestSession(t, other, "index_url=/&user=fred"); status != 200 {
		t.Errorf("other client's own user: %d %s", status, raw)
	}
	if again, status, _ := requestSession(t, robot, "index_url=/&user=Erin"); status != 200 || again.Name != a.Name {
		t.Errorf("erin again from her client: %d %+v", status, again)
	}
}

// user= is a username as RFC 8265 has it: words of letters, digits and
// ASCII symbols, separated by single spaces.
func TestRequestUserMustBeAUsername(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	for _, user := range []string{"x²", "ﬁsh", "ada  lovelace", "☃", "\u202eecila"} {
		_, status, raw := requestSession(t, robot, "index_url=/&user="+url.QueryEscape(user))
		if got := errorBody(t, status, 400, raw); !strings.HasPrefix(got, "Invalid user") {
			t.Errorf("user=%q: %q", user, got)
		}
	}
	if a, status, raw := requestSession(t, robot, "index_url=/&user="+url.QueryEscape("Ada Lovelace")); status != 200 || a.User != "Ada Lovelace" {
		t.Errorf("user=Ada Lovelace: %d %s", status, raw)
	}
	if len(p.Sessions()) == 0 || p.Sessions()[0].OwnerName != "Ada Lovelace" {
		t.Errorf("sessions after the requests: %+v", p.Sessions())
	}
}
