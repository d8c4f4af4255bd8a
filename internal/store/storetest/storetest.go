// Package storetest is the conformance suite of store.Store: every store
// (sqlite, postgres) runs it unchanged from its own tests.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/username"
)

// Run runs the suite. open returns a new, empty store for each subtest and
// closes it when that subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"Environments", testEnvironments},
		{"Sessions", testSessions},
		{"SessionQueries", testSessionQueries},
		{"Listings", testListings},
		{"ClaimReserved", testClaimReserved},
		{"NextDeadline", testNextDeadline},
		{"DeleteStoppedSessions", testDeleteStoppedSessions},
		{"Users", testUsers},
		{"UsernameKeys", testUsernameKeys},
		{"DeleteIdleAnonymousUsers", testDeleteIdleAnonymousUsers},
		{"Clients", testClients},
		{"Tokens", testTokens},
		{"Leases", testLeases},
		{"Fencing", testFencing},
		{"Rollback", testRollback},
		{"ViewDoesNotWrite", testViewDoesNotWrite},
		{"Changes", testChanges},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ConcurrentClaimReserved", testConcurrentClaimReserved},
		{"ConcurrentCapacity", testConcurrentCapacity},
		{"ConcurrentPortalLimit", testConcurrentPortalLimit},
		{"ConcurrentUserLimit", testConcurrentUserLimit},
		{"ConcurrentNewUser", testConcurrentNewUser},
		{"ConcurrentLeases", testConcurrentLeases},
		{"ConcurrentTakeToken", testConcurrentTakeToken},
		{"Webhooks", testWebhooks},
		{"WebhookClaimExpires", testWebhookClaimExpires},
		{"ConcurrentWebhookClaims", testConcurrentWebhookClaims},
		{"Settings", testSettings},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// base is the suite's clock: times are stored to the millisecond, in UTC.
var base = time.Date(2030, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

func at(d time.Duration) time.Time { return base.Add(d) }

func update(t *testing.T, st store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, st store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := st.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func newEnv(name string) store.Environment {
	return store.Environment{
		Name: name, Key: "lab-" + name, State: store.EnvRunning, Position: 1,
		Workshop: config.Workshop{Name: "lab-" + name, Title: "Lab", Tags: []string{"a", "b"},
			Labels:     map[string]string{"k": "v"},
			Parameters: []config.Parameter{{Name: "P", Value: "1"}},
			SessionEnv: []config.EnvVar{{Name: "E", Value: "x"}},
			Files:      []map[string]any{{"image": "img:1", "path": "."}}},
		Capacity: 10, Initial: 2, Reserved: 1,
		Expires: 30 * time.Minute, Overtime: 5 * time.Minute, Deadline: 2 * time.Hour,
		Orphaned: 10 * time.Minute, Overdue: 3 * time.Minute, Refresh: 0,
		Env:     []config.EnvVar{{Name: "A", Value: "b"}},
		Labels:  map[string]string{"team": "x"},
		Created: base,
	}
}

func insertEnv(t *testing.T, st store.Store, e store.Environment) store.Environment {
	t.Helper()
	update(t, st, func(tx store.Tx) error { return tx.InsertEnvironment(&e) })
	return e
}

func insertUser(t *testing.T, st store.Store, name string, role store.Role, created time.Time) store.User {
	t.Helper()
	u := store.User{Username: name, Role: role, Created: created}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&u) })
	return u
}

// newSession is a reserved, ready session of env.
func newSession(env store.Environment, id string, created time.Time) store.Session {
	return store.Session{Name: env.Name + "-" + id, ID: id, EnvID: env.ID, Environment: env.Name,
		State: store.Waiting, Created: created, Address: "127.0.0.1:1", Password: "pw"}
}

func insertSessions(t *testing.T, st store.Store, ss ...store.Session) {
	t.Helper()
	update(t, st, func(tx store.Tx) error {
		for i := range ss {
			if err := tx.InsertSession(&ss[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func names(ss []store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

// ---- environments ----

func testEnvironments(t *testing.T, st store.Store) {
	e := newEnv("p-w01")
	update(t, st, func(tx store.Tx) error { return tx.InsertEnvironment(&e) })
	if e.ID == 0 || e.Version != 1 {
		t.Fatalf("inserted environment has id %d, version %d", e.ID, e.Version)
	}
	bare := store.Environment{Name: "p-w02", Key: "bare", State: store.EnvStarting, Position: 0, Created: at(time.Hour)}
	update(t, st, func(tx store.Tx) error { return tx.InsertEnvironment(&bare) })
	if bare.ID == e.ID || bare.Labels == nil || bare.Env == nil {
		t.Errorf("second environment: id %d (first %d), labels %v, env %v", bare.ID, e.ID, bare.Labels, bare.Env)
	}

	view(t, st, func(tx store.Tx) error {
		got, err := tx.Environment(e.Name)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("Environment:\n got %+v\nwant %+v", got, e)
		}
		if got, err = tx.EnvironmentByID(bare.ID); err != nil {
			return err
		}
		if !reflect.DeepEqual(got, bare) {
			t.Errorf("EnvironmentByID:\n got %+v\nwant %+v", got, bare)
		}
		_, err = tx.Environment("nope")
		wantErr(t, "Environment(unknown)", err, store.ErrNotFound)
		_, err = tx.EnvironmentByID(9999)
		wantErr(t, "EnvironmentByID(unknown)", err, store.ErrNotFound)
		return nil
	})

	// A taken name is a conflict that leaves the transaction usable.
	update(t, st, func(tx store.Tx) error {
		dup := newEnv(e.Name)
		wantErr(t, "InsertEnvironment(taken name)", tx.InsertEnvironment(&dup), store.ErrConflict)
		_, err := tx.Environment(e.Name)
		return err
	})

	// Optimistic updates.
	stale := e
	e.State, e.Tally, e.Capacity, e.Refresh = store.EnvStopping, 7, 3, time.Hour
	e.Labels = map[string]string{"new": "label"}
	update(t, st, func(tx store.Tx) error { return tx.UpdateEnvironment(&e) })
	if e.Version != 2 {
		t.Errorf("version after update %d, want 2", e.Version)
	}
	err := st.Update(context.Background(), func(tx store.Tx) error { return tx.UpdateEnvironment(&stale) })
	wantErr(t, "UpdateEnvironment(stale)", err, store.ErrConflict)
	if stale.Version != 1 {
		t.Errorf("failed update changed the version to %d", stale.Version)
	}
	update(t, st, func(tx store.Tx) error {
		got, err := tx.LockEnvironment(e.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("LockEnvironment after update:\n got %+v\nwant %+v", got, e)
		}
		_, err = tx.LockEnvironment(9999)
		wantErr(t, "LockEnvironment(unknown)", err, store.ErrNotFound)
		return tx.LockPortal()
	})

	// Listing: filtered by state, ordered by position then id.
	third := newEnv("p-w03")
	third.Position = 0
	insertEnv(t, st, third)
	view(t, st, func(tx store.Tx) error {
		list := func(states ...store.EnvState) []string {
			envs, err := tx.Environments(states...)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range envs {
				out = append(out, e.Name)
			}
			return out
		}
		for _, c := range []struct {
			states []store.EnvState
			want   []string
		}{
			{nil, []string{"p-w02", "p-w03", "p-w01"}},
			{[]store.EnvState{store.EnvRunning}, []string{"p-w03"}},
			{[]store.EnvState{store.EnvStarting, store.EnvStopping}, []string{"p-w02", "p-w01"}},
			{[]store.EnvState{store.EnvStopped}, nil},
		} {
			if got := list(c.states...); !slices.Equal(got, c.want) {
				t.Errorf("Environments(%v) = %v, want %v", c.states, got, c.want)
			}
		}
		return nil
	})
}

// ---- sessions ----

func testSessions(t *testing.T, st store.Store) {
	env := insertEnv(t, st, newEnv("p-w01"))
	u := insertUser(t, st, "alice", store.RoleRegistered, base)
	s := store.Session{
		Name: "p-w01-s001", ID: "s001", EnvID: env.ID, Environment: env.Name, State: store.Running,
		Owner: u.ID, OwnerName: u.Username,
		Created: at(time.Second), Started: at(2 * time.Second), Expires: at(time.Hour),
		Activation: true, Activated: true,
		Params:   []config.EnvVar{{Name: "P", Value: "v"}},
		IndexURL: "https://example.com/x?y=1", Analytics: "https://a.example", Password: "secret",
		Address: "127.0.0.1:4321", Failure: "", Attempts: 0,
		RetryAt: at(3 * time.Second), CheckAt: at(4 * time.Second),
	}
	reserved := store.Session{Name: "p-w01-s002", ID: "s002", EnvID: env.ID, Environment: env.Name,
		State: store.Starting, Created: at(5 * time.Second), Failure: "boom", Attempts: 3}
	insertSessions(t, st, s, reserved)
	s.Version, reserved.Version = 1, 1
	reserved.Params = []config.EnvVar{}

	view(t, st, func(tx store.Tx) error {
		for _, want := range []store.Session{s, reserved} {
			got, err := tx.Session(want.Name)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Session(%s):\n got %+v\nwant %+v", want.Name, got, want)
			}
		}
		_, err := tx.Session("nope")
		wantErr(t, "Session(unknown)", err, store.ErrNotFound)
		return nil
	})

	update(t, st, func(tx store.Tx) error {
		dup := s
		wantErr(t, "InsertSession(taken name)", tx.InsertSession(&dup), store.ErrConflict)
		_, err := tx.Session(s.Name)
		return err
	})

	// Optimistic updates, including clearing the owner and flags.
	stale := s
	s.State, s.Owner, s.OwnerName, s.Activation, s.Activated = store.Stopping, 0, "", false, false
	s.Expires, s.CheckAt, s.Failure, s.Attempts = at(time.Minute), time.Time{}, "gone", 1
	update(t, st, func(tx store.Tx) error { return tx.UpdateSession(&s) })
	if s.Version != 2 {
		t.Errorf("version after update %d, want 2", s.Version)
	}
	err := st.Update(context.Background(), func(tx store.Tx) error { return tx.UpdateSession(&stale) })
	wantErr(t, "UpdateSession(stale)", err, store.ErrConflict)
	view(t, st, func(tx store.Tx) error {
		got, err := tx.Session(s.Name)
		if err == nil && !reflect.DeepEqual(got, s) {
			t.Errorf("Session after update:\n got %+v\nwant %+v", got, s)
		}
		return err
	})
	missing := store.Session{Name: "nope", Version: 1, EnvID: env.ID}
	err = st.Update(context.Background(), func(tx store.Tx) error { return tx.UpdateSession(&missing) })
	wantErr(t, "UpdateSession(unknown)", err, store.ErrConflict)
}

// sessionFixture: two environments, two users and sessions in every state.
// Offsets are seconds after base.
func sessionFixture(t *testing.T, st store.Store) (a, b store.Environment, u1, u2 store.User) {
	a = insertEnv(t, st, newEnv("p-w01"))
	b = insertEnv(t, st, newEnv("p-w02"))
	u1 = insertUser(t, st, "u1", store.RoleRegistered, base)
	u2 = insertUser(t, st, "u2", store.RoleAnonymous, base)
	sec := func(n int) time.Time {
		if n == 0 {
			return time.Time{}
		}
		return at(time.Duration(n) * time.Second)
	}
	mk := func(env store.Environment, id string, state store.SessionState, owner store.User,
		created, expires, retry int, addr string, attempts, check int) store.Session {
		s := newSession(env, id, at(time.Duration(created)*time.Second))
		s.State, s.Owner, s.Expires, s.RetryAt, s.Address = state, owner.ID, sec(expires), sec(retry), addr
		s.Attempts, s.CheckAt = attempts, sec(check)
		return s
	}
	none := store.User{}
	insertSessions(t, st,
		mk(a, "s01", store.Waiting, none, 1, 0, 0, "h:1", 0, 0),
		mk(a, "s02", store.Starting, none, 2, 0, 2, "", 0, 0),
		mk(a, "s03", store.Starting, none, 3, 0, 50, "", 2, 0),
		mk(a, "s04", store.Running, u1, 4, 100, 0, "h:4", 0, 30),
		mk(a, "s05", store.Stopping, u2, 5, 20, 0, "h:5", 0, 0),
		mk(a, "s06", store.Stopped, u1, 6, 10, 0, "h:6", 0, 0),
		mk(a, "s08", store.Stopped, none, 9, 0, 0, "h:8", 0, 0), // same creation time as s07: name decides
		mk(a, "s07", store.Stopped, none, 9, 0, 0, "h:7", 0, 0),
		mk(b, "s01", store.Waiting, none, 0, 0, 0, "h:b1", 0, 0),
		mk(b, "s02", store.Running, u2, 7, 60, 0, "h:b2", 0, 40),
		mk(b, "s03", store.Starting, u1, 8, 70, 8, "", 0, 0),
	)
	return a, b, u1, u2
}

func testSessionQueries(t *testing.T, st store.Store) {
	a, b, u1, u2 := sessionFixture(t, st)
	sec := func(n int) time.Time { return at(time.Duration(n) * time.Second) }
	all := []string{"p-w02-s01", "p-w01-s01", "p-w01-s02", "p-w01-s03", "p-w01-s04", "p-w01-s05",
		"p-w01-s06", "p-w02-s02", "p-w02-s03", "p-w01-s07", "p-w01-s08"}
	reversed := slices.Clone(all)
	slices.Reverse(reversed)
	cases := []struct {
		q    store.SessionQuery
		want []string
	}{
		{store.SessionQuery{}, all},
		{store.SessionQuery{EnvID: a.ID}, []string{"p-w01-s01", "p-w01-s02", "p-w01-s03", "p-w01-s04",
			"p-w01-s05", "p-w01-s06", "p-w01-s07", "p-w01-s08"}},
		{store.SessionQuery{EnvID: b.ID}, []string{"p-w02-s01", "p-w02-s02", "p-w02-s03"}},
		{store.SessionQuery{Owner: u1.ID}, []string{"p-w01-s04", "p-w01-s06", "p-w02-s03"}},
		{store.SessionQuery{Owner: u2.ID, EnvID: a.ID}, []string{"p-w01-s05"}},
		{store.SessionQuery{Ownership: store.Owned}, []string{"p-w01-s04", "p-w01-s05", "p-w01-s06",
			"p-w02-s02", "p-w02-s03"}},
		{store.SessionQuery{Ownership: store.Unowned}, []string{"p-w02-s01", "p-w01-s01", "p-w01-s02",
			"p-w01-s03", "p-w01-s07", "p-w01-s08"}},
		{store.SessionQuery{States: []store.SessionState{store.Waiting, store.Starting}},
			[]string{"p-w02-s01", "p-w01-s01", "p-w01-s02", "p-w01-s03", "p-w02-s03"}},
		{store.SessionQuery{States: store.Live, Ownership: store.Owned}, []string{"p-w01-s04", "p-w01-s05",
			"p-w02-s02", "p-w02-s03"}},
		{store.SessionQuery{ExpiresBy: sec(60)}, []string{"p-w01-s05", "p-w01-s06", "p-w02-s02"}},
		{store.SessionQuery{ExpiresBy: sec(60), States: store.Live}, []string{"p-w01-s05", "p-w02-s02"}},
		{store.SessionQuery{StartBy: sec(10)}, []string{"p-w01-s02", "p-w02-s03"}},
		{store.SessionQuery{StartBy: sec(50)}, []string{"p-w01-s02", "p-w01-s03", "p-w02-s03"}},
		{store.SessionQuery{CheckBy: sec(35)}, []string{"p-w01-s04"}},
		{store.SessionQuery{CheckBy: sec(40)}, []string{"p-w01-s04", "p-w02-s02"}},
		{store.SessionQuery{EnvID: a.ID, Ownership: store.Unowned, States: []store.SessionState{store.Starting,
			store.Waiting}, Healthy: true}, []string{"p-w01-s01", "p-w01-s02"}},
		{store.SessionQuery{Failing: true}, []string{"p-w01-s03"}},
		{store.SessionQuery{Order: "created"}, all},
		{store.SessionQuery{Order: "-created"}, reversed},
		{store.SessionQuery{Order: "waiting-first", States: []store.SessionState{store.Waiting, store.Starting}},
			[]string{"p-w02-s01", "p-w01-s01", "p-w01-s02", "p-w01-s03", "p-w02-s03"}},
		{store.SessionQuery{EnvID: a.ID, Order: "waiting-first", States: []store.SessionState{store.Starting,
			store.Waiting}, Ownership: store.Unowned}, []string{"p-w01-s01", "p-w01-s02", "p-w01-s03"}},
		{store.SessionQuery{Limit: 2}, all[:2]},
		{store.SessionQuery{Order: "-created", Limit: 3}, reversed[:3]},
	}
	view(t, st, func(tx store.Tx) error {
		for _, c := range cases {
			got, err := tx.FindSessions(c.q)
			if err != nil {
				return fmt.Errorf("FindSessions(%+v): %w", c.q, err)
			}
			if !slices.Equal(names(got), c.want) {
				t.Errorf("FindSessions(%+v)\n got %v\nwant %v", c.q, names(got), c.want)
			}
			if c.q.Limit == 0 {
				n, err := tx.CountSessions(c.q)
				if err != nil {
					return fmt.Errorf("CountSessions(%+v): %w", c.q, err)
				}
				if n != len(c.want) {
					t.Errorf("CountSessions(%+v) = %d, want %d", c.q, n, len(c.want))
				}
			}
		}
		// Rows carry their joins.
		got, err := tx.FindSessions(store.SessionQuery{Owner: u2.ID, EnvID: b.ID})
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].OwnerName != "u2" || got[0].Environment != "p-w02" || got[0].Version != 1 {
			t.Errorf("joined columns: %+v", got)
		}
		return nil
	})

	// Claiming in a write transaction selects the same rows.
	update(t, st, func(tx store.Tx) error {
		got, err := tx.FindSessions(store.SessionQuery{EnvID: a.ID, Ownership: store.Unowned,
			States: []store.SessionState{store.Waiting, store.Starting}, Healthy: true,
			Order: "waiting-first", Limit: 1, Claim: true})
		if err != nil {
			return err
		}
		if want := []string{"p-w01-s01"}; !slices.Equal(names(got), want) {
			t.Errorf("claim: got %v, want %v", names(got), want)
		}
		got, err = tx.FindSessions(store.SessionQuery{Ownership: store.Unowned, States: []store.SessionState{
			store.Starting, store.Waiting}, Limit: 3, Claim: true})
		if err != nil {
			return err
		}
		if want := []string{"p-w02-s01", "p-w01-s01", "p-w01-s02"}; !slices.Equal(names(got), want) {
			t.Errorf("claim across environments: got %v, want %v", names(got), want)
		}
		return nil
	})
}

// testListings checks the narrow reads of the catalog against what
// FindSessions and CountSessions say of the same rows.
func testListings(t *testing.T, st store.Store) {
	a, b, u1, _ := sessionFixture(t, st)
	// One row with every listed column set, the start time among them.
	update(t, st, func(tx store.Tx) error {
		s, err := tx.Session("p-w01-s04")
		if err != nil {
			return err
		}
		s.Started = at(3 * time.Second)
		return tx.UpdateSession(&s)
	})
	empty := insertEnv(t, st, newEnv("p-w03"))
	view(t, st, func(tx store.Tx) error {
		for _, c := range []struct {
			env  store.Environment
			want []string
		}{
			{a, []string{"p-w01-s04", "p-w01-s05"}},
			{b, []string{"p-w02-s02", "p-w02-s03"}},
			{empty, nil},
		} {
			full, err := tx.FindSessions(store.SessionQuery{EnvID: c.env.ID, Ownership: store.Owned, States: store.Live})
			if err != nil {
				return err
			}
			var want []store.Held
			for _, s := range full {
				want = append(want, store.Held{Name: s.Name, State: s.State, OwnerName: s.OwnerName, Started: s.Started, Expires: s.Expires})
			}
			var got []store.Held
			if err := tx.EachHeld(c.env.ID, func(h store.Held) error { got = append(got, h); return nil }); err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("EachHeld(%s)\n got %+v\nwant %+v", c.env.Name, got, want)
			}
			var gotNames []string
			for _, h := range got {
				gotNames = append(gotNames, h.Name)
			}
			if !slices.Equal(gotNames, c.want) {
				t.Errorf("EachHeld(%s) lists %v, want %v", c.env.Name, gotNames, c.want)
			}
		}
		stop := errors.New("stop")
		calls := 0
		err := tx.EachHeld(a.ID, func(store.Held) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("EachHeld with fn failing: %v after %d calls, want stop after 1", err, calls)
		}

		counts, err := tx.SessionCounts()
		if err != nil {
			return err
		}
		want := map[int64]store.SessionCounts{a.ID: {Allocated: 2, Available: 1}, b.ID: {Allocated: 2, Available: 1}}
		if !reflect.DeepEqual(counts, want) {
			t.Errorf("SessionCounts = %+v, want %+v", counts, want)
		}
		for _, env := range []store.Environment{a, b} {
			allocated, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Owned, States: store.Live})
			if err != nil {
				return err
			}
			available, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
				States: []store.SessionState{store.Waiting}})
			if err != nil {
				return err
			}
			if c := counts[env.ID]; c.Allocated != allocated || c.Available != available {
				t.Errorf("SessionCounts of %s = %+v; CountSessions says %d allocated, %d available", env.Name, c, allocated, available)
			}
		}
		return nil
	})
	// A session handed out leaves the reserve's count for the allocated.
	update(t, st, func(tx store.Tx) error {
		s, err := tx.Session("p-w01-s01")
		if err != nil {
			return err
		}
		s.Owner = u1.ID
		return tx.UpdateSession(&s)
	})
	view(t, st, func(tx store.Tx) error {
		counts, err := tx.SessionCounts()
		if err != nil {
			return err
		}
		if c := counts[a.ID]; c != (store.SessionCounts{Allocated: 3, Available: 0}) {
			t.Errorf("after a claim: %+v, want 3 allocated, 0 available", c)
		}
		return nil
	})
}

// testClaimReserved: a claim takes the ready reserve first, then the one
// still starting, never a failing, owned or ended session nor one of
// another environment, and writes the claim in one go.
func testClaimReserved(t *testing.T, st store.Store) {
	a, b, u1, u2 := sessionFixture(t, st)
	params := []config.EnvVar{{Name: "P", Value: "given"}}
	var first, second store.Session
	update(t, st, func(tx store.Tx) (err error) {
		// Through the REST API: the session waits for activation as it is.
		first, err = tx.ClaimReserved(a.ID, store.Claim{Owner: u1.ID, Params: params, IndexURL: "https://x/",
			Analytics: "https://a/", Activation: true, Started: at(time.Hour), Expires: at(time.Hour + time.Minute),
			CheckAt: at(2 * time.Hour)})
		if err != nil {
			return err
		}
		// On the portal's pages: the owner has it at once.
		second, err = tx.ClaimReserved(a.ID, store.Claim{Owner: u2.ID, Started: at(time.Hour),
			Expires: at(2 * time.Hour), CheckAt: at(3 * time.Hour)})
		if err != nil {
			return err
		}
		_, err = tx.ClaimReserved(a.ID, store.Claim{Owner: u2.ID})
		wantErr(t, "claim with no healthy reserve left", err, store.ErrNotFound)
		return nil
	})
	want := newSession(a, "s01", at(time.Second))
	want.Address, want.Version, want.Owner, want.OwnerName = "h:1", 2, u1.ID, "u1"
	want.Params, want.IndexURL, want.Analytics = params, "https://x/", "https://a/"
	want.Activation, want.Started, want.Expires = true, at(time.Hour), at(time.Hour+time.Minute)
	if !reflect.DeepEqual(first, want) {
		t.Errorf("claimed for activation\n got %+v\nwant %+v", first, want)
	}
	if second.Name != "p-w01-s02" || second.State != store.Starting || second.Owner != u2.ID ||
		second.OwnerName != "u2" || !second.Activated || second.Activation || !second.CheckAt.IsZero() ||
		!second.Expires.Equal(at(2*time.Hour)) || second.Version != 2 || second.Environment != "p-w01" {
		t.Errorf("starting reserve claimed directly: %+v", second)
	}
	view(t, st, func(tx store.Tx) error {
		for _, w := range []store.Session{first, second} {
			got, err := tx.Session(w.Name)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("stored claim of %s\n got %+v\nwant %+v", w.Name, got, w)
			}
		}
		return nil
	})
	var third store.Session
	update(t, st, func(tx store.Tx) (err error) {
		third, err = tx.ClaimReserved(b.ID, store.Claim{Owner: u1.ID, Started: at(time.Hour),
			Expires: at(2 * time.Hour), CheckAt: at(3 * time.Hour)})
		return err
	})
	// A ready reserve claimed directly runs at once, checked for activity.
	if third.Name != "p-w02-s01" || third.State != store.Running || !third.CheckAt.Equal(at(3*time.Hour)) ||
		!third.Started.Equal(at(time.Hour)) || third.Params == nil {
		t.Errorf("ready reserve claimed directly: %+v", third)
	}
	err := st.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.ClaimReserved(b.ID, store.Claim{Owner: u1.ID})
		return err
	})
	wantErr(t, "claim in an environment without reserve", err, store.ErrNotFound)
}

// ---- deadlines and cleanup ----

func testNextDeadline(t *testing.T, st store.Store) {
	next := func() time.Time {
		t.Helper()
		var n time.Time
		view(t, st, func(tx store.Tx) (err error) {
			n, err = tx.NextDeadline()
			return err
		})
		return n
	}
	step := func(what string, want time.Time) {
		t.Helper()
		if got := next(); !got.Equal(want) {
			t.Errorf("NextDeadline after %s = %v, want %v", what, got, want)
		}
	}
	step("nothing", time.Time{})

	env := newEnv("p-w01")
	env.Refresh = 10 * time.Hour
	env = insertEnv(t, st, env)
	step("a running environment with a refresh interval", at(10*time.Hour))
	noRefresh := newEnv("p-w02")
	insertEnv(t, st, noRefresh)
	stopped := newEnv("p-w03")
	stopped.State, stopped.Refresh = store.EnvStopped, time.Hour
	insertEnv(t, st, stopped)
	step("environments that do not refresh", at(10*time.Hour))

	s := newSession(env, "s01", base)
	s.State, s.Expires = store.Running, at(5*time.Hour)
	insertSessions(t, st, s)
	step("a running session's expiry", at(5*time.Hour))
	s = newSession(env, "s02", base)
	s.State, s.Expires = store.Stopping, at(time.Hour)
	insertSessions(t, st, s)
	s = newSession(env, "s03", base)
	s.State, s.Expires = store.Stopped, at(time.Hour)
	insertSessions(t, st, s)
	step("sessions stopping and stopped", at(5*time.Hour))

	s = newSession(env, "s04", base)
	s.State, s.CheckAt = store.Running, at(3*time.Hour)
	insertSessions(t, st, s)
	step("an activity check", at(3*time.Hour))

	s = newSession(env, "s05", base)
	s.State, s.Address, s.RetryAt = store.Starting, "", at(2*time.Hour)
	insertSessions(t, st, s)
	step("a start to retry", at(2*time.Hour))
	s = newSession(env, "s06", base)
	s.State, s.Address, s.RetryAt = store.Starting, "h:6", at(time.Minute)
	insertSessions(t, st, s)
	step("a started session's stale retry time", at(2*time.Hour))

	s = newSession(env, "s07", base)
	s.State, s.Expires = store.Waiting, at(time.Hour)
	insertSessions(t, st, s)
	step("an activation deadline", at(time.Hour))
	s = newSession(env, "s08", base)
	s.State, s.Expires, s.Address, s.RetryAt = store.Starting, at(30*time.Minute), "", at(40*time.Minute)
	insertSessions(t, st, s)
	step("a starting session's deadline", at(30*time.Minute))
}

func testDeleteStoppedSessions(t *testing.T, st store.Store) {
	env := insertEnv(t, st, newEnv("p-w01"))
	u := insertUser(t, st, "u", store.RoleRegistered, base)
	mk := func(id string, state store.SessionState, expires time.Duration) store.Session {
		s := newSession(env, id, base)
		s.State, s.Owner, s.Expires = state, u.ID, at(expires)
		return s
	}
	insertSessions(t, st, mk("s01", store.Stopped, time.Hour), mk("s02", store.Stopped, 3*time.Hour),
		mk("s03", store.Running, time.Hour), mk("s04", store.Stopping, time.Hour))
	tok := func(hash string, kind store.TokenKind, session string) store.Token {
		return store.Token{Hash: []byte(hash), Kind: kind, Grant: hash, User: u.ID, Session: session}
	}
	update(t, st, func(tx store.Tx) error {
		return errors.Join(
			tx.InsertToken(tok("a1", store.ActivationToken, "p-w01-s01")),
			tx.InsertToken(tok("a2", store.ActivationToken, "p-w01-s02")),
			tx.InsertToken(tok("a3", store.ActivationToken, "p-w01-s03")),
			tx.InsertToken(tok("x1", store.AccessToken, "")))
	})
	update(t, st, func(tx store.Tx) error {
		n, err := tx.DeleteStoppedSessions(at(2 * time.Hour))
		if n != 1 {
			t.Errorf("DeleteStoppedSessions = %d, want 1", n)
		}
		return err
	})
	view(t, st, func(tx store.Tx) error {
		got, err := tx.FindSessions(store.SessionQuery{})
		if want := []string{"p-w01-s02", "p-w01-s03", "p-w01-s04"}; !slices.Equal(names(got), want) {
			t.Errorf("left sessions %v, want %v", names(got), want)
		}
		for hash, want := range map[string]error{"a1": store.ErrNotFound, "a2": nil, "a3": nil, "x1": nil} {
			_, err := tx.Token([]byte(hash))
			if !errors.Is(err, want) {
				t.Errorf("token %s: %v, want %v", hash, err, want)
			}
		}
		return err
	})
}

// ---- users ----

func testUsers(t *testing.T, st store.Store) {
	u := store.User{Username: "alice", Email: "a@example.com", FirstName: "Alice", LastName: "Liddell",
		PasswordHash: "$2a$hash", Role: store.RoleAdmin, Origin: store.OriginPortal, Created: at(time.Minute)}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&u) })
	if u.ID == 0 {
		t.Fatal("InsertUser set no id")
	}
	v := insertUser(t, st, "bob", store.RoleRobot, base)
	if v.ID == u.ID {
		t.Fatal("two users with one id")
	}
	// A taken username is a conflict that leaves the transaction usable.
	update(t, st, func(tx store.Tx) error {
		dup := store.User{Username: "alice", Role: store.RoleAnonymous, Created: base}
		wantErr(t, "InsertUser(taken)", tx.InsertUser(&dup), store.ErrConflict)
		got, err := tx.User("alice")
		if err == nil && got.ID != u.ID {
			t.Errorf("User after conflict: %+v", got)
		}
		return err
	})
	err := st.Update(context.Background(), func(tx store.Tx) error {
		dup := store.User{Username: "alice", Role: store.RoleAnonymous, Created: base}
		return tx.InsertUser(&dup)
	})
	wantErr(t, "Update(InsertUser(taken))", err, store.ErrConflict)

	view(t, st, func(tx store.Tx) error {
		got, err := tx.User("alice")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("User:\n got %+v\nwant %+v", got, u)
		}
		if got, err = tx.UserByID(v.ID); err != nil {
			return err
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("UserByID:\n got %+v\nwant %+v", got, v)
		}
		list, err := tx.Users(10)
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0].ID != u.ID || list[1].ID != v.ID {
			t.Errorf("Users(10) = %+v, want %s (newest) then %s", list, u.Username, v.Username)
		}
		if list, err = tx.Users(1); err != nil || len(list) != 1 {
			t.Errorf("Users(1) = %d users, %v; want 1", len(list), err)
		}
		_, err = tx.User("nobody")
		wantErr(t, "User(unknown)", err, store.ErrNotFound)
		_, err = tx.UserByID(9999)
		wantErr(t, "UserByID(unknown)", err, store.ErrNotFound)
		return nil
	})

	u.Email, u.FirstName, u.LastName, u.PasswordHash, u.Role = "new@example.com", "A", "L", "", store.RoleRegistered
	update(t, st, func(tx store.Tx) error { return tx.UpdateUser(&u) })
	view(t, st, func(tx store.Tx) error {
		got, err := tx.UserByID(u.ID)
		if err == nil && !reflect.DeepEqual(got, u) {
			t.Errorf("after UpdateUser:\n got %+v\nwant %+v", got, u)
		}
		return err
	})
	// Nothing renames an account, or changes where it came from.
	renamed := u
	renamed.Username, renamed.Origin, renamed.Client = "bob", store.OriginClient, "robot"
	update(t, st, func(tx store.Tx) error { return tx.UpdateUser(&renamed) })
	view(t, st, func(tx store.Tx) error {
		got, err := tx.UserByID(u.ID)
		if err == nil && !reflect.DeepEqual(got, u) {
			t.Errorf("after UpdateUser with another name and origin:\n got %+v\nwant %+v", got, u)
		}
		return err
	})
	ghost := store.User{ID: 9999, Username: "ghost", Role: store.RoleAnonymous}
	if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.UpdateUser(&ghost) }); err == nil {
		t.Error("UpdateUser(unknown) succeeded")
	}

	update(t, st, func(tx store.Tx) error {
		wantErr(t, "LockUser(unknown)", tx.LockUser(9999), store.ErrNotFound)
		return tx.LockUser(u.ID)
	})
}

// testUsernameKeys: accounts are unique by the normalised form of their
// name, found by any spelling of it, and told apart from look-alikes.
func testUsernameKeys(t *testing.T, st store.Store) {
	alice := store.User{Username: "Alice", Role: store.RoleRegistered, Origin: store.OriginSignup, Created: base}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&alice) })
	frank := store.User{Username: "frank@corp.example", Role: store.RoleAnonymous, Origin: store.OriginClient,
		Client: "front-end", Created: base}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&frank) })

	for _, name := range []string{"alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ"} {
		err := st.Update(context.Background(), func(tx store.Tx) error {
			dup := store.User{Username: name, Role: store.RoleRegistered, Origin: store.OriginSignup, Created: base}
			return tx.InsertUser(&dup)
		})
		wantErr(t, fmt.Sprintf("InsertUser(%q) beside Alice", name), err, store.ErrConflict)
	}
	view(t, st, func(tx store.Tx) error {
		for _, name := range []string{"Alice", "alice", "ALICE", "ａｌｉｃｅ"} {
			got, err := tx.User(name)
			if err != nil || !reflect.DeepEqual(got, alice) {
				t.Errorf("User(%q) = %+v, %v; want %+v", name, got, err, alice)
			}
		}
		got, err := tx.User("FRANK@corp.example")
		if err != nil || !reflect.DeepEqual(got, frank) {
			t.Errorf("User(FRANK@corp.example) = %+v, %v; want %+v", got, err, frank)
		}
		for _, name := range []string{"аlice", "x²", "", "alice\t"} { // Cyrillic а; no key
			_, err := tx.User(name)
			wantErr(t, fmt.Sprintf("User(%q)", name), err, store.ErrNotFound)
		}
		return nil
	})

	// A look-alike is another name to the store (sign-up refuses it,
	// not the store); UserLike finds what it looks like.
	cyrillic := store.User{Username: "аlice", Role: store.RoleAnonymous, Origin: store.OriginClient, Client: "x", Created: base}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&cyrillic) })
	if cyrillic.ID == alice.ID {
		t.Fatal("Cyrillic аlice is Alice's account")
	}
	view(t, st, func(tx store.Tx) error {
		for _, name := range []string{"alice", "аlice", "a1ice"} {
			got, err := tx.UserLike(name)
			if err != nil || got.ID != alice.ID {
				t.Errorf("UserLike(%q) = %+v, %v; want Alice, the first of her look-alikes", name, got, err)
			}
		}
		_, err := tx.UserLike("bob")
		wantErr(t, "UserLike(bob)", err, store.ErrNotFound)
		return nil
	})

	err := st.Update(context.Background(), func(tx store.Tx) error {
		bad := store.User{Username: "tab\there", Role: store.RoleAnonymous, Created: base}
		return tx.InsertUser(&bad)
	})
	if !errors.Is(err, username.ErrInvalid) {
		t.Errorf("InsertUser(tab\\there) = %v, want username.ErrInvalid", err)
	}
}

func testDeleteIdleAnonymousUsers(t *testing.T, st store.Store) {
	env := insertEnv(t, st, newEnv("p-w01"))
	old := insertUser(t, st, "old", store.RoleAnonymous, base)
	young := insertUser(t, st, "young", store.RoleAnonymous, at(2*time.Hour))
	busy := insertUser(t, st, "busy", store.RoleAnonymous, base)
	ended := insertUser(t, st, "ended", store.RoleAnonymous, base)
	reg := insertUser(t, st, "registered", store.RoleRegistered, base)
	s1 := newSession(env, "s01", base)
	s1.Owner, s1.State = busy.ID, store.Running
	s2 := newSession(env, "s02", base)
	s2.Owner, s2.State = ended.ID, store.Stopped
	insertSessions(t, st, s1, s2)
	update(t, st, func(tx store.Tx) error {
		return errors.Join(
			tx.InsertToken(store.Token{Hash: []byte("t-old"), Kind: store.BrowserToken, Grant: "g1", User: old.ID}),
			tx.InsertToken(store.Token{Hash: []byte("t-young"), Kind: store.BrowserToken, Grant: "g2", User: young.ID}))
	})
	update(t, st, func(tx store.Tx) error {
		n, err := tx.DeleteIdleAnonymousUsers(at(time.Hour))
		if n != 1 {
			t.Errorf("DeleteIdleAnonymousUsers = %d, want 1", n)
		}
		return err
	})
	view(t, st, func(tx store.Tx) error {
		_, err := tx.UserByID(old.ID)
		wantErr(t, "idle anonymous user", err, store.ErrNotFound)
		_, err = tx.Token([]byte("t-old"))
		wantErr(t, "its token", err, store.ErrNotFound)
		for _, u := range []store.User{young, busy, ended, reg} {
			if _, err := tx.UserByID(u.ID); err != nil {
				t.Errorf("user %s: %v", u.Username, err)
			}
		}
		_, err = tx.Token([]byte("t-young"))
		return err
	})
}

// ---- clients and tokens ----

func testClients(t *testing.T, st store.Store) {
	robot := insertUser(t, st, "robot", store.RoleRobot, base)
	update(t, st, func(tx store.Tx) error {
		return errors.Join(
			tx.UpsertClient(store.Client{ID: "web", SecretHash: "h1"}),
			tx.UpsertClient(store.Client{ID: "zz-robot", SecretHash: "h2", User: robot.ID}),
			tx.UpsertClient(store.Client{ID: "robot", SecretHash: "h3", User: robot.ID}))
	})
	view(t, st, func(tx store.Tx) error {
		c, err := tx.Client("web")
		if err != nil {
			return err
		}
		if c != (store.Client{ID: "web", SecretHash: "h1"}) {
			t.Errorf("Client(web) = %+v", c)
		}
		if c, err = tx.ClientOf(robot.ID); err != nil {
			return err
		}
		if c != (store.Client{ID: "robot", SecretHash: "h3", User: robot.ID}) {
			t.Errorf("ClientOf(robot) = %+v, want the first by id", c)
		}
		_, err = tx.Client("nope")
		wantErr(t, "Client(unknown)", err, store.ErrNotFound)
		_, err = tx.ClientOf(9999)
		wantErr(t, "ClientOf(unknown)", err, store.ErrNotFound)
		return nil
	})
	update(t, st, func(tx store.Tx) error {
		return errors.Join(
			tx.UpsertClient(store.Client{ID: "web", SecretHash: "h4", User: robot.ID}),
			tx.UpsertClient(store.Client{ID: "robot", SecretHash: "h5"}),
			tx.DeleteClient("zz-robot"),
			tx.DeleteClient("never-was"))
	})
	view(t, st, func(tx store.Tx) error {
		c, err := tx.Client("web")
		if err == nil && c != (store.Client{ID: "web", SecretHash: "h4", User: robot.ID}) {
			t.Errorf("Client(web) after upsert = %+v", c)
		}
		if c, err = tx.Client("robot"); err == nil && c != (store.Client{ID: "robot", SecretHash: "h5"}) {
			t.Errorf("Client(robot) after upsert = %+v", c)
		}
		if c, err = tx.ClientOf(robot.ID); err == nil && c.ID != "web" {
			t.Errorf("ClientOf(robot) after upsert = %+v", c)
		}
		_, err = tx.Client("zz-robot")
		wantErr(t, "deleted client", err, store.ErrNotFound)
		return nil
	})
}

func testTokens(t *testing.T, st store.Store) {
	u := insertUser(t, st, "u", store.RoleRegistered, base)
	hash := func(s string) []byte { return []byte{0, 0xff, s[0], 0x80, s[len(s)-1]} } // not text
	toks := []store.Token{
		{Hash: hash("a1"), Kind: store.AccessToken, Grant: "g1", User: u.ID, Client: "web", Expires: at(time.Hour)},
		{Hash: hash("r1"), Kind: store.RefreshToken, Grant: "g1", User: u.ID, Client: "web", Expires: at(3 * time.Hour)},
		{Hash: hash("a2"), Kind: store.AccessToken, Grant: "g2", User: u.ID, Client: "web", Expires: at(time.Hour)},
		{Hash: hash("b1"), Kind: store.BrowserToken, Grant: "g3", User: u.ID},
		{Hash: hash("v1"), Kind: store.ActivationToken, Grant: "p-w01-s001", User: u.ID,
			Session: "p-w01-s001", Expires: at(2 * time.Hour), Revoked: true},
	}
	update(t, st, func(tx store.Tx) error {
		for _, k := range toks {
			if err := tx.InsertToken(k); err != nil {
				return err
			}
		}
		wantErr(t, "InsertToken(taken hash)", tx.InsertToken(toks[0]), store.ErrConflict)
		_, err := tx.Token(toks[0].Hash)
		return err
	})
	check := func(what string, want []store.Token, gone ...[]byte) {
		t.Helper()
		view(t, st, func(tx store.Tx) error {
			for _, k := range want {
				got, err := tx.Token(k.Hash)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, k) {
					t.Errorf("%s: Token:\n got %+v\nwant %+v", what, got, k)
				}
			}
			for _, h := range gone {
				_, err := tx.Token(h)
				wantErr(t, what+": deleted token", err, store.ErrNotFound)
			}
			return nil
		})
	}
	check("inserted", toks, []byte("unknown"))

	update(t, st, func(tx store.Tx) error { return tx.RevokeGrant("g1") })
	toks[0].Revoked, toks[1].Revoked = true, true
	check("revoked g1", toks)

	update(t, st, func(tx store.Tx) error {
		n, err := tx.DeleteExpiredTokens(at(time.Hour))
		if n != 2 {
			t.Errorf("DeleteExpiredTokens = %d, want 2", n)
		}
		return err
	})
	check("expired deleted", toks[1:2], toks[0].Hash, toks[2].Hash)
	check("never expiring kept", toks[3:])

	update(t, st, func(tx store.Tx) error {
		got, err := tx.TakeToken(toks[3].Hash)
		if err == nil && !reflect.DeepEqual(got, toks[3]) {
			t.Errorf("TakeToken:\n got %+v\nwant %+v", got, toks[3])
		}
		return err
	})
	check("taken", nil, toks[3].Hash)
	update(t, st, func(tx store.Tx) error {
		_, err := tx.TakeToken(toks[3].Hash)
		wantErr(t, "TakeToken(taken)", err, store.ErrNotFound)
		_, err = tx.TakeToken(toks[4].Hash)
		wantErr(t, "TakeToken(revoked)", err, store.ErrNotFound)
		return nil
	})
	check("revoked token kept", toks[4:])
}

// testConcurrentTakeToken: a one-time token goes to one taker only.
func testConcurrentTakeToken(t *testing.T, st store.Store) {
	warm(t, st)
	u := insertUser(t, st, "u", store.RoleRegistered, base)
	for round := range 3 {
		hash := []byte(fmt.Sprintf("ticket-%d", round))
		update(t, st, func(tx store.Tx) error {
			return tx.InsertToken(store.Token{Hash: hash, Kind: store.TicketToken, Grant: string(hash), User: u.ID,
				Session: "p-w01-s001", Expires: at(time.Minute)})
		})
		took := make([]bool, workers)
		parallel(workers, func(i int) {
			err := st.Update(context.Background(), func(tx store.Tx) error {
				_, err := tx.TakeToken(hash)
				took[i] = err == nil
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		})
		if n := len(slices.DeleteFunc(took, func(b bool) bool { return !b })); n != 1 {
			t.Errorf("round %d: %d workers took the token, want 1", round, n)
		}
	}
}

// ---- leases ----

func testLeases(t *testing.T, st store.Store) {
	// Lease times are the database's: the suite cannot move its clock, so
	// a lease meant to lapse is taken for no time at all (it has lapsed
	// by the next transaction), and one meant to run for an hour.
	acquire := func(name, holder string, ttl time.Duration, want int64) {
		t.Helper()
		update(t, st, func(tx store.Tx) error {
			got, err := tx.AcquireLease(name, holder, ttl)
			if err == nil && got != want {
				t.Errorf("AcquireLease(%s, %s, %v) = generation %d, want %d", name, holder, ttl, got, want)
			}
			return err
		})
	}
	release := func(name, holder string) {
		t.Helper()
		update(t, st, func(tx store.Tx) error { return tx.ReleaseLease(name, holder) })
	}
	acquire("rec", "A", time.Hour, 1)
	acquire("rec", "B", time.Hour, 0) // held
	acquire("rec", "A", time.Hour, 1) // renewed: the same tenure
	acquire("rec", "A", 0, 1)         // renewed for no time: it has lapsed
	acquire("rec", "B", time.Hour, 2) // taken over: a new generation
	acquire("rec", "A", time.Hour, 0) // the old holder has lost it
	release("rec", "A")               // not the holder: no effect
	acquire("rec", "A", time.Hour, 0)
	release("rec", "B")
	acquire("rec", "A", time.Hour, 3)   // free again; generations never go back
	acquire("other", "B", time.Hour, 1) // leases are independent
	release("never", "A")               // releasing an unknown lease is fine
	// A lease taken in a transaction that rolls back was never taken.
	err := st.Update(context.Background(), func(tx store.Tx) error {
		if gen, err := tx.AcquireLease("gone", "A", time.Hour); err != nil || gen != 1 {
			t.Errorf("AcquireLease = %v, %v", gen, err)
		}
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	acquire("gone", "B", time.Hour, 1)
}

// testFencing: a write that checks its lease is refused once the lease has
// changed hands, and nothing of its transaction is kept.
func testFencing(t *testing.T, st store.Store) {
	check := func(holder string, gen int64, want error) {
		t.Helper()
		update(t, st, func(tx store.Tx) error {
			wantErr(t, fmt.Sprintf("CheckLease(rec, %s, %d)", holder, gen), tx.CheckLease("rec", holder, gen), want)
			return nil
		})
	}
	check("A", 0, store.ErrFenced) // no such lease yet
	var gen int64
	update(t, st, func(tx store.Tx) (err error) {
		gen, err = tx.AcquireLease("rec", "A", 0) // lapses at once
		return err
	})
	check("A", gen, nil) // lapsed, but nobody took it over: still A's
	check("A", gen+1, store.ErrFenced)
	check("B", gen, store.ErrFenced)

	env := insertEnv(t, st, newEnv("p-w01"))
	s := newSession(env, "s001", base)
	insertSessions(t, st, s)
	// A frozen holder's view of the session, taken before the take-over.
	stale := s
	view(t, st, func(tx store.Tx) (err error) { stale, err = tx.Session(s.Name); return err })

	update(t, st, func(tx store.Tx) error {
		got, err := tx.AcquireLease("rec", "B", time.Hour)
		if err == nil && got != gen+1 {
			t.Errorf("take-over: generation %d, want %d", got, gen+1)
		}
		return err
	})
	check("A", gen, store.ErrFenced)
	check("B", gen+1, nil)

	// The woken holder records a start as its work would: refused whole.
	err := st.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.CheckLease("rec", "A", gen); err != nil {
			return err
		}
		stale.State, stale.Address = store.Running, "stale:1"
		return tx.UpdateSession(&stale)
	})
	wantErr(t, "a stale holder's write", err, store.ErrFenced)
	// The new holder's write of the same row goes through.
	update(t, st, func(tx store.Tx) error {
		if err := tx.CheckLease("rec", "B", gen+1); err != nil {
			return err
		}
		cur, err := tx.Session(s.Name)
		if err != nil {
			return err
		}
		cur.State, cur.Address = store.Waiting, "current:1"
		return tx.UpdateSession(&cur)
	})
	view(t, st, func(tx store.Tx) error {
		got, err := tx.Session(s.Name)
		if err == nil && (got.State != store.Waiting || got.Address != "current:1") {
			t.Errorf("session after both writes: %s at %q, want WAITING at current:1", got.State, got.Address)
		}
		return err
	})
}

// ---- transactions ----

var errBoom = errors.New("boom")

func testRollback(t *testing.T, st store.Store) {
	env := insertEnv(t, st, newEnv("p-w01"))
	err := st.Update(context.Background(), func(tx store.Tx) error {
		u := store.User{Username: "ghost", Role: store.RoleAnonymous, Created: base}
		if err := tx.InsertUser(&u); err != nil {
			return err
		}
		s := newSession(env, "s01", base)
		if err := tx.InsertSession(&s); err != nil {
			return err
		}
		e := env
		e.Tally = 5
		if err := tx.UpdateEnvironment(&e); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, "Update", err, errBoom)
	view(t, st, func(tx store.Tx) error {
		_, err := tx.User("ghost")
		wantErr(t, "user of a rolled back transaction", err, store.ErrNotFound)
		_, err = tx.Session(env.Name + "-s01")
		wantErr(t, "session of a rolled back transaction", err, store.ErrNotFound)
		e, err := tx.EnvironmentByID(env.ID)
		if err == nil && (e.Tally != 0 || e.Version != 1) {
			t.Errorf("environment of a rolled back transaction: tally %d, version %d", e.Tally, e.Version)
		}
		return err
	})
	// Errors of fn come back as they are.
	err = st.View(context.Background(), func(tx store.Tx) error { return errBoom })
	wantErr(t, "View", err, errBoom)
	err = st.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.Environment("nope")
		return err
	})
	wantErr(t, "Update", err, store.ErrNotFound)
}

func testViewDoesNotWrite(t *testing.T, st store.Store) {
	env := insertEnv(t, st, newEnv("p-w01"))
	// The store may refuse the writes or drop them; it must not keep them.
	st.View(context.Background(), func(tx store.Tx) error {
		u := store.User{Username: "ghost", Role: store.RoleAnonymous, Created: base}
		tx.InsertUser(&u)
		return nil
	})
	st.View(context.Background(), func(tx store.Tx) error {
		e := env
		e.Tally = 9
		tx.UpdateEnvironment(&e)
		return nil
	})
	view(t, st, func(tx store.Tx) error {
		_, err := tx.User("ghost")
		wantErr(t, "user inserted in View", err, store.ErrNotFound)
		e, err := tx.EnvironmentByID(env.ID)
		if err == nil && e.Tally != 0 {
			t.Errorf("environment updated in View: tally %d", e.Tally)
		}
		return err
	})
}

func testChanges(t *testing.T, st store.Store) {
	ch := st.Changes()
	if ch == nil {
		return // one process owns the database
	}
	if cap(ch) > 1 {
		// Signals coalesce: a burst of commits is one wake-up.
		t.Logf("Changes has capacity %d", cap(ch))
	}
	// Commits keep going whether anyone reads the channel or not.
	for i := range 5 {
		insertUser(t, st, fmt.Sprintf("u%d", i), store.RoleAnonymous, base)
	}
}

// ---- concurrency ----

// parallel runs fn in n goroutines started together and waits for them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

const workers = 16

// warm has up to workers transactions open at once, so that the store's
// pool holds that many connections and the races that follow start
// together rather than staggered by connection set-up. Stores with fewer
// connections (SQLite's readers) go through in batches: a transaction
// waits for the others only while more keep arriving.
func warm(t *testing.T, st store.Store) {
	var arrived atomic.Int32
	all := make(chan struct{})
	parallel(workers, func(int) {
		err := st.View(context.Background(), func(tx store.Tx) error {
			seen := arrived.Add(1)
			if seen == workers {
				close(all)
			}
			for {
				select {
				case <-all:
				case <-time.After(50 * time.Millisecond):
					if n := arrived.Load(); n != seen {
						seen = n
						continue
					}
				}
				break
			}
			_, err := tx.CountSessions(store.SessionQuery{})
			return err
		})
		if err != nil {
			t.Errorf("warm: %v", err)
		}
	})
}

// testConcurrentClaims: workers claim reserved sessions until none is left;
// no session is claimed twice, none is lost.
func testConcurrentClaims(t *testing.T, st store.Store) {
	warm(t, st)
	env := insertEnv(t, st, newEnv("p-w01"))
	const reserved = 40
	var ss []store.Session
	for i := range reserved {
		ss = append(ss, newSession(env, fmt.Sprintf("s%03d", i), at(time.Duration(i)*time.Millisecond)))
	}
	insertSessions(t, st, ss...)
	users := make([]store.User, workers)
	for i := range users {
		users[i] = insertUser(t, st, fmt.Sprintf("user%d", i), store.RoleAnonymous, base)
	}
	claimed := make([][]string, workers)
	parallel(workers, func(i int) {
		for {
			var got string
			err := st.Update(context.Background(), func(tx store.Tx) error {
				got = ""
				found, err := tx.FindSessions(store.SessionQuery{EnvID: env.ID, Ownership: store.Unowned,
					States: []store.SessionState{store.Waiting}, Order: "waiting-first", Limit: 1, Claim: true})
				if err != nil || len(found) == 0 {
					return err
				}
				s := found[0]
				s.Owner, s.State = users[i].ID, store.Running
				if err := tx.UpdateSession(&s); err != nil {
					return err
				}
				got = s.Name
				return nil
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if got == "" {
				return
			}
			claimed[i] = append(claimed[i], got)
		}
	})
	seen := map[string]int{}
	for i, names := range claimed {
		for _, n := range names {
			if j, dup := seen[n]; dup {
				t.Errorf("session %s claimed by workers %d and %d", n, j, i)
			}
			seen[n] = i
		}
	}
	if len(seen) != reserved {
		t.Errorf("%d sessions claimed, want %d", len(seen), reserved)
	}
	view(t, st, func(tx store.Tx) error {
		all, err := tx.FindSessions(store.SessionQuery{EnvID: env.ID})
		for _, s := range all {
			if i, ok := seen[s.Name]; !ok || s.Owner != users[i].ID || s.Version != 2 {
				t.Errorf("session %s: owner %d, version %d; claimed by worker %d (%v)", s.Name, s.Owner, s.Version, i, ok)
			}
		}
		return err
	})
}

// testConcurrentCapacity: transactions that lock the environment, count
// its sessions and add one within capacity never exceed it.
func testConcurrentCapacity(t *testing.T, st store.Store) {
	warm(t, st)
	env := newEnv("p-w01")
	env.Capacity = 7
	env = insertEnv(t, st, env)
	var mu sync.Mutex
	added := 0
	parallel(workers, func(i int) {
		for range 2 {
			var ok bool
			err := st.Update(context.Background(), func(tx store.Tx) error {
				ok = false
				e, err := tx.LockEnvironment(env.ID)
				if err != nil {
					return err
				}
				n, err := tx.CountSessions(store.SessionQuery{EnvID: e.ID, States: store.Live})
				if err != nil || n >= e.Capacity {
					return err
				}
				e.Tally++
				s := newSession(e, fmt.Sprintf("s%03d", e.Tally), base)
				if err := tx.InsertSession(&s); err != nil {
					return err
				}
				ok = true
				return tx.UpdateEnvironment(&e)
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
			if ok {
				mu.Lock()
				added++
				mu.Unlock()
			}
		}
	})
	view(t, st, func(tx store.Tx) error {
		n, err := tx.CountSessions(store.SessionQuery{EnvID: env.ID})
		e, err2 := tx.EnvironmentByID(env.ID)
		if n != env.Capacity || added != env.Capacity || e.Tally != env.Capacity {
			t.Errorf("%d sessions (%d reported added, tally %d), capacity %d", n, added, e.Tally, env.Capacity)
		}
		return errors.Join(err, err2)
	})
}

// testConcurrentPortalLimit: LockPortal serialises checks of a limit that
// spans environments.
func testConcurrentPortalLimit(t *testing.T, st store.Store) {
	warm(t, st)
	envs := []store.Environment{insertEnv(t, st, newEnv("p-w01")), insertEnv(t, st, newEnv("p-w02"))}
	const maximum = 5
	parallel(workers, func(i int) {
		err := st.Update(context.Background(), func(tx store.Tx) error {
			if err := tx.LockPortal(); err != nil {
				return err
			}
			n, err := tx.CountSessions(store.SessionQuery{States: store.Live})
			if err != nil || n >= maximum {
				return err
			}
			s := newSession(envs[i%2], fmt.Sprintf("w%02d", i), base)
			return tx.InsertSession(&s)
		})
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	})
	view(t, st, func(tx store.Tx) error {
		n, err := tx.CountSessions(store.SessionQuery{})
		if n != maximum {
			t.Errorf("%d sessions, portal maximum %d", n, maximum)
		}
		return err
	})
}

// testConcurrentUserLimit: LockUser serialises checks of one user's
// sessions across environments.
func testConcurrentUserLimit(t *testing.T, st store.Store) {
	var envs []store.Environment
	for i := range 4 {
		envs = append(envs, insertEnv(t, st, newEnv(fmt.Sprintf("p-w%02d", i))))
	}
	const limit = 3
	warm(t, st)
	for round := range 3 {
		u := insertUser(t, st, fmt.Sprint("u", round), store.RoleAnonymous, base)
		parallel(workers, func(i int) {
			err := st.Update(context.Background(), func(tx store.Tx) error {
				if err := tx.LockUser(u.ID); err != nil {
					return err
				}
				n, err := tx.CountSessions(store.SessionQuery{Owner: u.ID, States: store.Live})
				if err != nil || n >= limit {
					return err
				}
				s := newSession(envs[i%len(envs)], fmt.Sprintf("r%dw%02d", round, i), base)
				s.Owner = u.ID
				return tx.InsertSession(&s)
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		})
		view(t, st, func(tx store.Tx) error {
			n, err := tx.CountSessions(store.SessionQuery{Owner: u.ID})
			if n != limit {
				t.Errorf("round %d: user has %d sessions, limit %d", round, n, limit)
			}
			return err
		})
	}
}

// testConcurrentNewUser: transactions that look a user up and create it
// when missing all succeed and agree (the store runs the loser again).
func testConcurrentNewUser(t *testing.T, st store.Store) {
	warm(t, st)
	for round := range 5 {
		// Spellings of one name: whichever is inserted first, the others
		// find it.
		names := []string{fmt.Sprint("newcomer", round), fmt.Sprint("NewComer", round), fmt.Sprint("ＮＥＷＣＯＭＥＲ", round)}
		ids := make([]int64, workers)
		parallel(workers, func(i int) {
			name := names[i%len(names)]
			err := st.Update(context.Background(), func(tx store.Tx) error {
				u, err := tx.User(name)
				if errors.Is(err, store.ErrNotFound) {
					u = store.User{Username: name, Role: store.RoleAnonymous, Created: base}
					err = tx.InsertUser(&u)
				}
				ids[i] = u.ID
				return err
			})
			if err != nil {
				t.Errorf("round %d, worker %d: %v", round, i, err)
			}
		})
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		if ids[0] == 0 || ids[0] != ids[len(ids)-1] {
			t.Errorf("round %d: user ids seen: %v", round, ids)
		}
	}
}

// testConcurrentLeases: of holders racing for a free lease, one wins, in
// the next generation.
func testConcurrentLeases(t *testing.T, st store.Store) {
	warm(t, st)
	for round := range 3 {
		won := make([]int64, workers)
		parallel(workers, func(i int) {
			err := st.Update(context.Background(), func(tx store.Tx) (err error) {
				won[i], err = tx.AcquireLease("rec", fmt.Sprintf("h%d", i), time.Hour)
				return err
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
			}
		})
		var winners []int
		for i, gen := range won {
			if gen != 0 {
				winners = append(winners, i)
				if want := int64(round + 1); gen != want {
					t.Errorf("round %d: worker %d won generation %d, want %d", round, i, gen, want)
				}
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: workers %v won the lease, want one", round, winners)
		}
		update(t, st, func(tx store.Tx) error { return tx.ReleaseLease("rec", fmt.Sprintf("h%d", winners[0])) })
	}
}

// ---- upgrades ----

// Legacy returns the statements that make a database as the release
// before keyed usernames left it: the migrations in dir (the store's
// migrations directory, relative to the test) before 0005_accounts,
// recorded as applied, and accounts that normalise alike, one name that
// does not normalise, a sign-up named as a robot's user will be, and the
// robot with its client. CheckUpgrade checks what the store makes of it.
func Legacy(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	out := []string{`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)`}
	for _, f := range files {
		version := strings.TrimSuffix(filepath.Base(f), ".sql")
		if version >= "0005" {
			break
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(body), `INSERT INTO schema_migrations (version) VALUES ('`+version+`')`)
	}
	return append(out,
		`INSERT INTO users (username, password_hash, role, created) VALUES ('robot@educates', 'h', 'robot', 1)`,
		`INSERT INTO clients (id, secret_hash, user_id) SELECT 'robot-client', 'h', id FROM users WHERE role = 'robot'`,
		`INSERT INTO users (username, password_hash, role, created) VALUES ('educates', 'h', 'admin', 2)`,
		`INSERT INTO users (username, password_hash, role, created) VALUES ('Alice', 'h', 'registered', 3)`,
		`INSERT INTO users (username, role, created) VALUES ('alice', 'anonymous', 4)`,
		`INSERT INTO users (username, password_hash, role, created) VALUES ('ALICE', 'h', 'registered', 5)`,
		`INSERT INTO users (username, role, created) VALUES ('x²', 'anonymous', 6)`,
		`INSERT INTO users (username, password_hash, role, created) VALUES ('frank@corp.example', 'h', 'registered', 7)`,
		// A lease held as the upgrade runs, far into the future.
		`INSERT INTO leases (name, holder, expires) VALUES ('reconciler', 'old-leader', 99999999999999)`,
	)
}

// CheckUpgrade checks a store opened on a database that Legacy made: every
// account is still there and still reachable by its own name, the oldest
// of names that normalise alike keeps the normalised name, nobody new can
// take it, every account has its origin, and a lease held before the
// upgrade is held in a generation (0 would tell its holder it is not).
func CheckUpgrade(t *testing.T, st store.Store) {
	update(t, st, func(tx store.Tx) error {
		gen, err := tx.AcquireLease("reconciler", "old-leader", time.Minute)
		if err == nil && gen != 1 {
			t.Errorf("the lease held before the upgrade is renewed in generation %d, want 1", gen)
		}
		return err
	})
	view(t, st, func(tx store.Tx) error {
		list, err := tx.Users(100)
		if err != nil {
			return err
		}
		if len(list) != 7 {
			t.Errorf("%d accounts after the upgrade, want the 7 there were: %+v", len(list), list)
		}
		for _, tc := range []struct {
			lookup, found string
			origin        store.Origin
			client        string
		}{
			{"robot@educates", "robot@educates", store.OriginPortal, ""},
			{"EDUCATES", "educates", store.OriginPortal, ""},
			{"Alice", "Alice", store.OriginSignup, ""},
			{"aLiCe", "Alice", store.OriginSignup, ""}, // the oldest keeps the key
			{"alice", "alice", store.OriginClient, "robot-client"},
			{"ALICE", "ALICE", store.OriginSignup, ""},
			{"x²", "x²", store.OriginClient, "robot-client"},
			{"Frank@Corp.Example", "frank@corp.example", store.OriginSignup, ""},
		} {
			u, err := tx.User(tc.lookup)
			if err != nil || u.Username != tc.found || u.Origin != tc.origin || u.Client != tc.client {
				t.Errorf("User(%q) = %+v, %v; want %s of origin %s %s", tc.lookup, u, err, tc.found, tc.origin, tc.client)
			}
		}
		u, err := tx.UserLike("аlice") // Cyrillic а
		if err != nil || u.Username != "Alice" {
			t.Errorf("UserLike(аlice) = %+v, %v; want Alice", u, err)
		}
		return nil
	})
	for _, name := range []string{"aLICE", "ａｌｉｃｅ", "Frank@corp.example", "EDUCATES"} {
		err := st.Update(context.Background(), func(tx store.Tx) error {
			u := store.User{Username: name, Role: store.RoleRegistered, Origin: store.OriginSignup, Created: base}
			return tx.InsertUser(&u)
		})
		wantErr(t, fmt.Sprintf("InsertUser(%q) after the upgrade", name), err, store.ErrConflict)
	}
	u := store.User{Username: "carol", Role: store.RoleRegistered, Origin: store.OriginSignup, Created: base}
	update(t, st, func(tx store.Tx) error { return tx.InsertUser(&u) })
}

// testConcurrentClaimReserved: workers claim with ClaimReserved until no
// reserve is left; every session goes to exactly one of them.
func testConcurrentClaimReserved(t *testing.T, st store.Store) {
	warm(t, st)
	env := insertEnv(t, st, newEnv("p-w01"))
	const reserved = 40
	var ss []store.Session
	for i := range reserved {
		s := newSession(env, fmt.Sprintf("s%03d", i), at(time.Duration(i)*time.Millisecond))
		if i%3 == 0 {
			s.State, s.Address = store.Starting, ""
		}
		ss = append(ss, s)
	}
	insertSessions(t, st, ss...)
	users := make([]store.User, workers)
	for i := range users {
		users[i] = insertUser(t, st, fmt.Sprintf("user%d", i), store.RoleAnonymous, base)
	}
	claimed := make([][]string, workers)
	parallel(workers, func(i int) {
		for {
			var got string
			err := st.Update(context.Background(), func(tx store.Tx) error {
				s, err := tx.ClaimReserved(env.ID, store.Claim{Owner: users[i].ID, Activation: true})
				got = s.Name
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				return err
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if got == "" {
				return
			}
			claimed[i] = append(claimed[i], got)
		}
	})
	seen := map[string]int{}
	for i, names := range claimed {
		for _, n := range names {
			if j, dup := seen[n]; dup {
				t.Errorf("session %s claimed by workers %d and %d", n, j, i)
			}
			seen[n] = i
		}
	}
	if len(seen) != reserved {
		t.Errorf("%d sessions claimed, want %d", len(seen), reserved)
	}
	view(t, st, func(tx store.Tx) error {
		all, err := tx.FindSessions(store.SessionQuery{EnvID: env.ID})
		for _, s := range all {
			if i, ok := seen[s.Name]; !ok || s.Owner != users[i].ID || s.Version != 2 {
				t.Errorf("session %s: owner %d, version %d; claimed by worker %d (%v)", s.Name, s.Owner, s.Version, i, ok)
			}
		}
		return err
	})
}
