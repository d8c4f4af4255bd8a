package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
)

func TestRegister(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{}, config.Credentials{}, config.Client{})
	good := auth.Signup{Username: "alice", Email: "alice@example.com", Password: "correct horse", Confirm: "correct horse"}
	u, err := s.Register(ctx, p, good)
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != store.RoleRegistered || u.ID == 0 {
		t.Errorf("registered user = %+v", u)
	}
	if _, err := s.Password(ctx, "alice", "correct horse"); err != nil {
		t.Errorf("cannot log in after registering: %v", err)
	}

	tests := []struct {
		name  string
		in    auth.Signup
		field string
	}{
		{"duplicate", good, "username"},
		{"empty username", auth.Signup{Email: "b@example.com", Password: "correct horse", Confirm: "correct horse"}, "username"},
		{"bad username", auth.Signup{Username: "bob smith", Email: "b@example.com", Password: "correct horse", Confirm: "correct horse"}, "username"},
		{"bad email", auth.Signup{Username: "bob", Email: "bob", Password: "correct horse", Confirm: "correct horse"}, "email"},
		{"short", auth.Signup{Username: "bob", Email: "b@example.com", Password: "short", Confirm: "short"}, "password1"},
		{"numeric", auth.Signup{Username: "bob", Email: "b@example.com", Password: "1234567890", Confirm: "1234567890"}, "password1"},
		{"common", auth.Signup{Username: "bob", Email: "b@example.com", Password: "Password123", Confirm: "Password123"}, "password1"},
		{"like username", auth.Signup{Username: "roberta", Email: "b@example.com", Password: "roberta2024", Confirm: "roberta2024"}, "password1"},
		{"like email", auth.Signup{Username: "bob", Email: "zanzibar@example.com", Password: "zanzibar!!", Confirm: "zanzibar!!"}, "password1"},
		{"mismatch", auth.Signup{Username: "bob", Email: "b@example.com", Password: "correct horse", Confirm: "correct house"}, "password2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Register(ctx, p, tt.in)
			var bad auth.Invalid
			if !errors.As(err, &bad) || bad[tt.field] == "" {
				t.Fatalf("err = %v, want a reason for %s", err, tt.field)
			}
		})
	}
	if _, err := s.Password(ctx, "bob", "correct horse"); err == nil {
		t.Error("a refused registration created the user")
	}
}

func TestRotateRobot(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{}, config.Credentials{}, config.Client{})
	if _, err := s.Bootstrap(ctx, p); err != nil {
		t.Fatal(err)
	}
	before, err := s.Robot(ctx, p)
	if err != nil || before.ClientID == "" || before.Username != p.Robot.Username {
		t.Fatalf("Robot = %+v, %v", before, err)
	}
	got, err := s.RotateRobot(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientID != before.ClientID || got.Password == "" || got.ClientSecret == "" {
		t.Fatalf("RotateRobot = %+v", got)
	}
	cc := auth.ClientCredentials{ID: got.ClientID, Secret: got.ClientSecret}
	if _, err := s.PasswordGrant(ctx, cc, got.Username, got.Password); err != nil {
		t.Errorf("new credentials refused: %v", err)
	}
}

// Django counts the 150 characters of a username in characters: a name in
// another script within that limit signs up.
func TestRegisterLimitsUsernameInCharacters(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{}, config.Credentials{}, config.Client{})
	name := strings.Repeat("ж", 150) // 300 bytes
	in := auth.Signup{Username: name, Email: "zh@example.com", Password: "correct horse", Confirm: "correct horse"}
	if _, err := s.Register(ctx, p, in); err != nil {
		t.Fatalf("150-character username: %v", err)
	}
	in.Username += "ж"
	var bad auth.Invalid
	if _, err := s.Register(ctx, p, in); !errors.As(err, &bad) || bad["username"] == "" {
		t.Errorf("151-character username: %v", err)
	}
}

// Sign-up refuses the names of the portal's own accounts, its name and the
// names that speak for any portal, names that are taken in another
// spelling, and names that look like any of them.
func TestRegisterRefusesReservedAndLookAlikeNames(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{Username: "staffer"}, config.Credentials{Username: "frontend-bot"}, config.Client{})
	p.Name = "summit"
	if _, err := s.Bootstrap(ctx, p); err != nil {
		t.Fatal(err)
	}
	signup := func(name string) auth.Signup {
		return auth.Signup{Username: name, Email: "x@example.com", Password: "correct horse", Confirm: "correct horse"}
	}
	if _, err := s.Register(ctx, p, signup("Alice")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		"admin", "Admin", "ROOT", "Educates", "educates", "portico", "r00t", "adrnin",
		"staffer", "STAFFER", "frontend-bot", "Summit", "summit", "SUMMlT",
		"alice", "ALICE", "ａｌｉｃｅ", // Alice in other spellings
		"аlice", // Cyrillic а among Latin letters
		"Аlice", // and a capital one
		"ɑlice", // Latin alpha: one script, but looks like Alice
		"a1ice", // a digit for an l
		"ΑDMIN", // Greek Alpha
		"х²",    // no PRECIS form
		"ᴬlice", // a compatibility character
	} {
		_, err := s.Register(ctx, p, signup(name))
		var bad auth.Invalid
		if !errors.As(err, &bad) || bad["username"] == "" {
			t.Errorf("Register(%q) = %v, want a reason for the username", name, err)
		}
	}
	for _, name := range []string{"иван", "σίσυφος", "田中"} {
		if _, err := s.Register(ctx, p, signup(name)); err != nil {
			t.Errorf("Register(%q) = %v; a name in one script of its own is fine", name, err)
		}
	}
	// Fullwidth letters are kept as their usual form, so the account is
	// not named with letters that look like nobody else's.
	u, err := s.Register(ctx, p, signup("ｂｏｂ"))
	if err != nil || u.Username != "bob" || u.Origin != store.OriginSignup {
		t.Errorf("Register(fullwidth bob) = %+v, %v; want bob, of origin signup", u, err)
	}
	for _, login := range []string{"ALICE", "ａｌｉｃｅ", "alice"} {
		if got, err := s.Password(ctx, login, "correct horse"); err != nil || got.Username != "Alice" {
			t.Errorf("Password(%q) = %+v, %v; want Alice", login, got, err)
		}
	}
}
