package broker_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

var configPassword = regexp.MustCompile(`^[A-Za-z0-9]{32}$`)

// setPassword writes a session row's stored password as an older portal
// (clear text) or another replica (another key) would have.
func setPassword(t *testing.T, st store.Store, name, stored string) {
	t.Helper()
	if err := st.Update(ctx, func(tx store.Tx) error {
		s, err := tx.Session(name)
		if err != nil {
			return err
		}
		s.Password = stored
		return tx.UpdateSession(&s)
	}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigPasswordsAreSealedAtRest(t *testing.T) {
	p, rt := start(t, config.Entry{Capacity: 2, Reserved: 1, Expires: time.Hour})
	name := request(t, p, "alice", 0).Session.Name
	p.Settle()
	spec, ok := rt.Spec(name)
	if !ok || !configPassword.MatchString(spec.ConfigPassword) {
		t.Fatalf("the host was started with config password %q", spec.ConfigPassword)
	}
	for _, s := range p.Sessions() {
		if id, sealed := secret.Sealed(s.Password); !sealed || id != p.Secrets.ID() || strings.Contains(s.Password, spec.ConfigPassword) {
			t.Errorf("session %s stores its config password as %q", s.Name, s.Password)
		}
	}
	v, err := p.Broker.Session(ctx, robot(t, p), name)
	if err != nil || v.ConfigPassword != spec.ConfigPassword {
		t.Errorf("the session's config endpoint would answer %q, %v; the host knows %q", v.ConfigPassword, err, spec.ConfigPassword)
	}
	target, err := p.Broker.Target(ctx, name)
	if err != nil || target.Secret != spec.ConfigPassword {
		t.Errorf("the proxy would tell the host %q, %v; it knows %q", target.Secret, err, spec.ConfigPassword)
	}
}

func TestClearTextPasswordsOfAnUpgradeWorkAndGetSealed(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 2, Reserved: 1, Expires: time.Hour})
	name := request(t, p, "alice", 0).Session.Name
	p.Settle()
	old := secret.Alnum(32)
	setPassword(t, p.Store, name, old)

	if target, err := p.Broker.Target(ctx, name); err != nil || target.Secret != old {
		t.Fatalf("a row from before sealing: target secret %q, %v; want %q", target.Secret, err, old)
	}
	if err := p.Broker.SealPasswords(ctx); err != nil {
		t.Fatal(err)
	}
	stored := p.Session(name).Password
	if _, sealed := secret.Sealed(stored); !sealed || strings.Contains(stored, old) {
		t.Fatalf("after the upgrade pass the row stores %q", stored)
	}
	if target, err := p.Broker.Target(ctx, name); err != nil || target.Secret != old {
		t.Errorf("after sealing: target secret %q, %v; the host still knows %q", target.Secret, err, old)
	}
	if err := p.Broker.SealPasswords(ctx); err != nil || p.Session(name).Password != stored {
		t.Errorf("a second pass: %v, and the row changed", err)
	}
}

func TestAPortalWithAnotherKeyRefusesToStart(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 2, Reserved: 1, Expires: time.Hour})
	name := request(t, p, "alice", 0).Session.Name
	p.Settle()
	key, _ := secret.ParseKey(secret.NewKey())
	other, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	setPassword(t, p.Store, name, other.Seal(secret.Alnum(32), name))

	err = p.Broker.SealPasswords(ctx)
	if err == nil || !strings.Contains(err.Error(), other.ID()) || !strings.Contains(err.Error(), p.Secrets.ID()) {
		t.Errorf("a replica with another key than the database's: %v", err)
	}
	if _, err := p.Broker.Target(ctx, name); !errors.Is(err, secret.ErrOtherKey) {
		t.Errorf("forwarding to a session sealed with another key: %v", err)
	}
}
