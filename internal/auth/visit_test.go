package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
)

func TestTicketLetsOneBrowserIntoOneSessionOnce(t *testing.T) {
	ctx := context.Background()
	s, c := newService(t)
	u, err := s.Register(ctx, config.Portal{}, auth.Signup{Username: "alice", Email: "alice@example.com", Password: "correct horse battery", Confirm: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	browser, err := s.StartBrowser(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	ticket := func() string {
		t.Helper()
		v, err := s.Ticket(ctx, browser, "p-w01-s001")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	unauthenticated := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%s: err = %v, want ErrUnauthenticated", what, err)
		}
	}

	if _, err := s.Ticket(ctx, "not-a-browser", "p-w01-s001"); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("Ticket(unknown browser): %v", err)
	}
	_, _, err = s.Enter(ctx, ticket(), "p-w01-s002")
	unauthenticated("a ticket of another session", err)

	tk := ticket()
	visit, who, err := s.Enter(ctx, tk, "p-w01-s001")
	if err != nil || who.ID != u.ID {
		t.Fatalf("Enter = %v, %v; want alice", who, err)
	}
	_, _, err = s.Enter(ctx, tk, "p-w01-s001")
	unauthenticated("a ticket taken already", err)

	if got, err := s.Visitor(ctx, visit, "p-w01-s001"); err != nil || got.ID != u.ID {
		t.Errorf("Visitor = %v, %v; want alice", got, err)
	}
	_, err = s.Visitor(ctx, visit, "p-w01-s002")
	unauthenticated("a visit of another session", err)
	_, err = s.Browser(ctx, visit)
	unauthenticated("a visit as the portal's cookie", err)
	_, err = s.Visitor(ctx, browser, "p-w01-s001")
	unauthenticated("the portal's cookie as a visit", err)

	old := ticket()
	c.now = c.now.Add(auth.TicketTTL)
	_, _, err = s.Enter(ctx, old, "p-w01-s001")
	unauthenticated("a ticket a minute old", err)

	// Logging out of the portal ends the visits it let in.
	if err := s.EndBrowser(ctx, browser); err != nil {
		t.Fatal(err)
	}
	_, err = s.Visitor(ctx, visit, "p-w01-s001")
	unauthenticated("a visit after logging out", err)
	_, err = s.Ticket(ctx, browser, "p-w01-s001")
	unauthenticated("a ticket after logging out", err)
}
