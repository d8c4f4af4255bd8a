package broker_test

import (
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
)

// Certificates are obtained for the origins of sessions that exist, and for
// no other name under the session domain.
func TestSessionExists(t *testing.T) {
	p, _ := start(t, config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	al := request(t, p, "alice", time.Minute)
	exists := func(name string) bool {
		t.Helper()
		ok, err := p.Broker.SessionExists(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !exists(al.Session.Name) {
		t.Errorf("allocated session %s does not exist", al.Session.Name)
	}
	for _, name := range []string{"portal-w01-s999", "portal", "", "PORTAL-W01-S001"} {
		if exists(name) {
			t.Errorf("session %q exists", name)
		}
	}
	activate(t, p, al)
	p.Clock.Advance(time.Hour + time.Second)
	p.Settle()
	wantState(t, p, al.Session.Name, store.Stopped)
	if exists(al.Session.Name) {
		t.Errorf("ended session %s still exists", al.Session.Name)
	}
}
