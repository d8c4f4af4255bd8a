package broker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/store"
)

func TestStaffListingsAndExpire(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	p.Settle()
	activate(t, p, request(t, p, "alice", time.Minute))
	bob := activate(t, p, request(t, p, "bob", time.Minute))
	p.Settle()
	admin := userOf(t, p, portaltest.AdminUser)
	alice := userOf(t, p, "alice")

	if _, err := p.Broker.Sessions(ctx, alice, ""); broker.KindOf(err) != broker.Forbidden {
		t.Errorf("Sessions for an attendee: %v, want forbidden", err)
	}
	if _, err := p.Broker.Users(ctx, alice, ""); broker.KindOf(err) != broker.Forbidden {
		t.Errorf("Users for an attendee: %v, want forbidden", err)
	}
	if err := p.Broker.Expire(ctx, alice, bob.Name); broker.KindOf(err) != broker.Forbidden {
		t.Errorf("Expire by an attendee: %v, want forbidden", err)
	}

	all, err := p.Broker.Sessions(ctx, admin, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range all {
		names = append(names, v.Session.Name)
	}
	// Two allocated and the reserve that replaced them, newest first.
	if want := []string{"portal-w01-s003", "portal-w01-s002", "portal-w01-s001"}; !slices.Equal(names, want) {
		t.Errorf("Sessions = %v, want %v", names, want)
	}
	found, err := p.Broker.Sessions(ctx, admin, "BOB")
	if err != nil || len(found) != 1 || found[0].Session.Name != bob.Name {
		t.Errorf("Sessions(BOB) = %v %v, want bob's only", found, err)
	}

	users, err := p.Broker.Users(ctx, admin, "")
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]int{}
	for _, u := range users {
		held[u.User.Username] = u.Sessions
	}
	if held["alice"] != 1 || held["bob"] != 1 || held[portaltest.AdminUser] != 0 {
		t.Errorf("sessions per user = %v", held)
	}

	if err := p.Broker.Expire(ctx, admin, bob.Name); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if s := p.Session(bob.Name); s.State != store.Stopped && s.State != store.Stopping {
		t.Errorf("expired session is %s", s.State)
	}
	if err := p.Broker.Expire(ctx, admin, "portal-w01-s999"); broker.KindOf(err) != broker.NotFound {
		t.Errorf("Expire(unknown) = %v, want not found", err)
	}
}

func TestNewAnonymous(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 1})
	u, err := p.Broker.NewAnonymous(ctx, "anon@educates:1234")
	if err != nil || u.Role != store.RoleAnonymous || u.ID == 0 {
		t.Fatalf("NewAnonymous = %+v, %v", u, err)
	}
}
