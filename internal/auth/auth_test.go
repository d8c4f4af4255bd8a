package auth_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store/sqlite"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newService(t *testing.T) (*auth.Service, *clock) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := auth.New(db, c)
	s.SetHashCost(bcrypt.MinCost)
	return s, c
}

func portal(admin, robot config.Credentials, client config.Client) config.Portal {
	if admin.Username == "" {
		admin.Username = "educates"
	}
	if robot.Username == "" {
		robot.Username = "robot@educates"
	}
	return config.Portal{Admin: admin, Robot: robot, RobotClient: client}
}

func TestBootstrapGeneratesOnceAndKeeps(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{}, config.Credentials{}, config.Client{})
	gen, err := s.Bootstrap(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.AdminPassword) != 32 || len(gen.RobotPassword) != 32 || len(gen.ClientID) != 32 || len(gen.ClientSecret) != 32 {
		t.Fatalf("generated %+v", gen)
	}
	again, err := s.Bootstrap(ctx, p)
	if err != nil || again != (auth.Generated{}) {
		t.Fatalf("second start generated %+v (%v); credentials must be kept", again, err)
	}
	cc := auth.ClientCredentials{ID: gen.ClientID, Secret: gen.ClientSecret}
	if _, err := s.PasswordGrant(ctx, cc, "robot@educates", gen.RobotPassword); err != nil {
		t.Fatalf("generated credentials do not work after a restart: %v", err)
	}
}

func TestBootstrapAppliesConfiguredCredentials(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	first := portal(config.Credentials{Password: "a1"}, config.Credentials{Password: "r1"}, config.Client{ID: "c", Secret: "s1"})
	if gen, err := s.Bootstrap(ctx, first); err != nil || gen != (auth.Generated{}) {
		t.Fatalf("configured credentials: %+v %v, want nothing generated", gen, err)
	}
	// Changed passwords and secret take effect; old ones stop working.
	second := portal(config.Credentials{Password: "a2"}, config.Credentials{Password: "r2"}, config.Client{ID: "c", Secret: "s2"})
	if _, err := s.Bootstrap(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PasswordGrant(ctx, auth.ClientCredentials{ID: "c", Secret: "s1"}, "robot@educates", "r2"); err == nil {
		t.Error("old client secret still accepted")
	}
	if _, err := s.PasswordGrant(ctx, auth.ClientCredentials{ID: "c", Secret: "s2"}, "robot@educates", "r1"); err == nil {
		t.Error("old robot password still accepted")
	}
	if _, err := s.PasswordGrant(ctx, auth.ClientCredentials{ID: "c", Secret: "s2"}, "educates", "a2"); err != nil {
		t.Errorf("new admin password: %v", err)
	}
	// A client id given later replaces the generated one.
	third := portal(config.Credentials{Password: "a2"}, config.Credentials{Password: "r2"}, config.Client{ID: "other", Secret: "s3"})
	if _, err := s.Bootstrap(ctx, third); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClientCredentialsGrant(ctx, auth.ClientCredentials{ID: "c", Secret: "s2"}); err == nil {
		t.Error("replaced client still accepted")
	}
	if _, err := s.ClientCredentialsGrant(ctx, auth.ClientCredentials{ID: "other", Secret: "s3"}); err != nil {
		t.Errorf("new client: %v", err)
	}
}

func TestBootstrapRefusesAccountWithOtherRole(t *testing.T) {
	s, _ := newService(t)
	p := portal(config.Credentials{Username: "same"}, config.Credentials{Username: "same"}, config.Client{})
	if _, err := s.Bootstrap(context.Background(), p); err == nil {
		t.Fatal("admin and robot with one username were accepted")
	}
}

func TestTokensExpire(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	p := portal(config.Credentials{Password: "a"}, config.Credentials{Password: "r"}, config.Client{ID: "c", Secret: "s"})
	if _, err := s.Bootstrap(ctx, p); err != nil {
		t.Fatal(err)
	}
	cc := auth.ClientCredentials{ID: "c", Secret: "s"}
	tok, err := s.PasswordGrant(ctx, cc, "robot@educates", "r")
	if err != nil {
		t.Fatal(err)
	}
	c.now = c.now.Add(auth.AccessTTL - time.Second)
	if _, err := s.Bearer(ctx, tok.AccessToken); err != nil {
		t.Fatalf("token before expiry: %v", err)
	}
	c.now = c.now.Add(2 * time.Second)
	if _, err := s.Bearer(ctx, tok.AccessToken); err != auth.ErrUnauthenticated {
		t.Fatalf("token after expiry: %v", err)
	}
	if _, err := s.RefreshGrant(ctx, cc, tok.RefreshToken); err != nil {
		t.Fatalf("refresh within 30 days: %v", err)
	}
}
