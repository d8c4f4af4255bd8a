package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlite"
)

// spy counts write transactions, and can change rows at the start of the
// next one, as another request committing in between would.
type spy struct {
	store.Store
	writes  atomic.Int32
	between func(tx store.Tx) error
}

func (s *spy) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.writes.Add(1)
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if s.between != nil {
			if err := s.between(tx); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

func spied(t *testing.T) (*auth.Service, *spy) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sp := &spy{Store: db}
	s := auth.New(sp, &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	s.SetHashCost(bcrypt.MinCost)
	p := portal(config.Credentials{Password: "admin-pw"}, config.Credentials{Password: "robot-pw"}, config.Client{ID: "c", Secret: "s"})
	if _, err := s.Bootstrap(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	sp.writes.Store(0)
	return s, sp
}

// A wrong secret or password is found out before any write transaction
// begins: bcrypt held the single writer of SQLite for every guess, and
// unauthenticated loops on the token endpoints stalled every write of the
// portal.
func TestCredentialsAreCheckedBeforeAnyWrite(t *testing.T) {
	s, sp := spied(t)
	ctx := context.Background()
	bad := auth.ClientCredentials{ID: "c", Secret: "wrong"}
	unknown := auth.ClientCredentials{ID: "nobody", Secret: "s"}
	good := auth.ClientCredentials{ID: "c", Secret: "s"}
	attempts := map[string]func() error{
		"password grant, wrong secret":     func() error { _, err := s.PasswordGrant(ctx, bad, "robot@educates", "robot-pw"); return err },
		"password grant, unknown client":   func() error { _, err := s.PasswordGrant(ctx, unknown, "robot@educates", "robot-pw"); return err },
		"password grant, wrong password":   func() error { _, err := s.PasswordGrant(ctx, good, "educates", "guess"); return err },
		"password grant, unknown user":     func() error { _, err := s.PasswordGrant(ctx, good, "ghost", "guess"); return err },
		"client credentials, wrong secret": func() error { _, err := s.ClientCredentialsGrant(ctx, bad); return err },
		"refresh, wrong secret":            func() error { _, err := s.RefreshGrant(ctx, bad, "x"); return err },
		"revoke, wrong secret":             func() error { return s.Revoke(ctx, bad, "x") },
		"revoke, unknown client":           func() error { return s.Revoke(ctx, unknown, "x") },
		"web login, wrong password":        func() error { _, err := s.Password(ctx, "educates", "guess"); return err },
		"client credentials, empty secret": func() error { _, err := s.ClientCredentialsGrant(ctx, auth.ClientCredentials{ID: "c"}); return err },
	}
	for name, try := range attempts {
		sp.writes.Store(0)
		var oauth *auth.Error
		if err := try(); !errors.As(err, &oauth) {
			t.Errorf("%s: %v, want an OAuth error", name, err)
		}
		if n := sp.writes.Load(); n != 0 {
			t.Errorf("%s: %d write transactions, want none", name, n)
		}
	}
	if _, err := s.ClientCredentialsGrant(ctx, good); err != nil || sp.writes.Load() != 1 {
		t.Errorf("a good grant: %v after %d writes, want one", err, sp.writes.Load())
	}
}

// Credentials checked before the write transaction must still be the
// row's when it writes: a secret rotated or a password changed in between
// wins, and no token is issued on the old one.
func TestCredentialsChangedDuringTheCheckAreRefused(t *testing.T) {
	s, sp := spied(t)
	ctx := context.Background()
	good := auth.ClientCredentials{ID: "c", Secret: "s"}
	rehash := func(secret string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	rotate := func(tx store.Tx) error {
		c, err := tx.Client("c")
		if err != nil {
			return err
		}
		c.SecretHash = rehash("rotated")
		return tx.UpsertClient(c)
	}
	tok, err := s.PasswordGrant(ctx, good, "robot@educates", "robot-pw")
	if err != nil {
		t.Fatal(err)
	}
	grants := map[string]func() error{
		"password":           func() error { _, err := s.PasswordGrant(ctx, good, "robot@educates", "robot-pw"); return err },
		"client credentials": func() error { _, err := s.ClientCredentialsGrant(ctx, good); return err },
		"refresh":            func() error { _, err := s.RefreshGrant(ctx, good, tok.RefreshToken); return err },
		"revoke":             func() error { return s.Revoke(ctx, good, tok.AccessToken) },
	}
	for name, grant := range grants {
		sp.between = func(tx store.Tx) error {
			sp.between = nil // once: the rotation commits, as it would
			return rotate(tx)
		}
		var oauth *auth.Error
		if err := grant(); !errors.As(err, &oauth) || oauth.Code != "invalid_client" {
			t.Errorf("%s with a secret rotated meanwhile: %v, want invalid_client", name, err)
		}
		// Back to the secret the next case checks.
		if err := sp.Store.Update(ctx, func(tx store.Tx) error {
			c, err := tx.Client("c")
			c.SecretHash = rehash("s")
			return errors.Join(err, tx.UpsertClient(c))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Bearer(ctx, tok.AccessToken); err != nil {
		t.Errorf("a revocation refused for its client's rotated secret revoked the token: %v", err)
	}

	sp.between = func(tx store.Tx) error {
		sp.between = nil
		u, err := tx.User("robot@educates")
		if err != nil {
			return err
		}
		u.PasswordHash = rehash("changed")
		return tx.UpdateUser(&u)
	}
	var oauth *auth.Error
	if _, err := s.PasswordGrant(ctx, good, "robot@educates", "robot-pw"); !errors.As(err, &oauth) || oauth.Code != "invalid_grant" {
		t.Errorf("password grant with the password changed meanwhile: %v, want invalid_grant", err)
	}
}
