package auth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/ratelimit"
)

// The limits of wrong passwords hold for the web login and the password
// grant together, per client address.
func TestPasswordLimitsSharedByLoginAndGrant(t *testing.T) {
	s, _ := spied(t)
	a := ratelimit.WithClient(context.Background(), "192.0.2.1")
	b := ratelimit.WithClient(context.Background(), "192.0.2.2")
	good := auth.ClientCredentials{ID: "c", Secret: "s"}
	for i := range 5 {
		var err error
		if i%2 == 0 {
			_, err = s.Password(a, "educates", "guess")
		} else {
			_, err = s.PasswordGrant(a, good, "educates", "guess")
		}
		var oauth *auth.Error
		if !errors.As(err, &oauth) {
			t.Fatalf("wrong password %d: %v", i+1, err)
		}
	}
	var refused *ratelimit.Refused
	if _, err := s.PasswordGrant(a, good, "educates", "admin-pw"); !errors.As(err, &refused) {
		t.Fatalf("the right password from the guessing address: %v, want a refusal", err)
	}
	if _, err := s.Password(a, "educates", "admin-pw"); !errors.As(err, &refused) {
		t.Fatalf("the right password on the login from the guessing address: %v, want a refusal", err)
	}
	if _, err := s.PasswordGrant(b, good, "educates", "admin-pw"); err != nil {
		t.Fatalf("the right password from another address: %v", err)
	}
}
