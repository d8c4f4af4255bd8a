package broker

import (
	"context"
	"strings"

	"github.com/portico-dev/portico/internal/store"
)

// What staff see and do on the admin pages.

// maxListed bounds the admin listings: beyond this many rows a page is
// not read but searched.
const maxListed = 1000

func staffOnly(caller store.User) error {
	if !caller.Staff() {
		return errorf(Forbidden, "Only staff may do this")
	}
	return nil
}

// Sessions lists the live sessions, newest first, whose name, environment,
// workshop or owner contains search (ignoring case).
func (b *Broker) Sessions(ctx context.Context, caller store.User, search string) ([]SessionView, error) {
	if err := staffOnly(caller); err != nil {
		return nil, err
	}
	search = strings.ToLower(strings.TrimSpace(search))
	var out []SessionView
	err := b.store.View(ctx, func(tx store.Tx) error {
		list, err := tx.FindSessions(store.SessionQuery{States: store.Live, Order: "-created", Limit: maxListed})
		if err != nil {
			return err
		}
		views, err := b.sessionViews(tx, list)
		out = views[:0]
		for _, v := range views {
			if search == "" || containsFold(search, v.Session.Name, v.Session.Environment, v.Session.OwnerName,
				v.Environment.Key, v.Environment.Workshop.Title) {
				out = append(out, v)
			}
		}
		return err
	})
	return out, err
}

func containsFold(lowered string, fields ...string) bool {
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), lowered) {
			return true
		}
	}
	return false
}

// sessionViews pairs sessions with their environments, read once each.
func (b *Broker) sessionViews(tx store.Tx, list []store.Session) ([]SessionView, error) {
	envs := map[int64]*store.Environment{}
	out := make([]SessionView, 0, len(list))
	for _, s := range list {
		env, ok := envs[s.EnvID]
		if !ok {
			e, err := tx.EnvironmentByID(s.EnvID)
			if err != nil {
				return out, err
			}
			env = &e
			envs[s.EnvID] = env
		}
		out = append(out, SessionView{Session: s, Environment: env, Schedule: b.schedule(s, *env)})
	}
	return out, nil
}

// UserView is a user with the number of live sessions they hold.
type UserView struct {
	User     store.User
	Sessions int
}

// Users lists the newest users whose name or email contains search.
func (b *Broker) Users(ctx context.Context, caller store.User, search string) ([]UserView, error) {
	if err := staffOnly(caller); err != nil {
		return nil, err
	}
	search = strings.ToLower(strings.TrimSpace(search))
	var out []UserView
	err := b.store.View(ctx, func(tx store.Tx) error {
		users, err := tx.Users(maxListed)
		if err != nil {
			return err
		}
		live, err := tx.FindSessions(store.SessionQuery{Ownership: store.Owned, States: store.Live})
		if err != nil {
			return err
		}
		held := map[int64]int{}
		for _, s := range live {
			held[s.Owner]++
		}
		out = out[:0]
		for _, u := range users {
			if search == "" || containsFold(search, u.Username, u.Email) {
				out = append(out, UserView{User: u, Sessions: held[u.ID]})
			}
		}
		return nil
	})
	return out, err
}

// Expire makes a session's time run out now: the reconciler ends it as
// it ends any expired session (the "Expire Sessions" action of Educates'
// admin).
func (b *Broker) Expire(ctx context.Context, caller store.User, name string) error {
	if err := staffOnly(caller); err != nil {
		return err
	}
	return b.update(ctx, func(tx store.Tx, record func(Event)) error {
		s, _, err := b.access(tx, caller, name)
		if err != nil || s.State == store.Stopping {
			return err
		}
		s.Expires = b.now()
		return tx.UpdateSession(&s)
	})
}

// NewAnonymous creates a user for a person who has not signed up: the
// anonymous mode of the portal's pages (spec §3.2, §7.6).
func (b *Broker) NewAnonymous(ctx context.Context, username string) (store.User, error) {
	var u store.User
	err := b.update(ctx, func(tx store.Tx, record func(Event)) error {
		u = store.User{Username: username, Role: store.RoleAnonymous, Origin: store.OriginAnonymous, Created: b.now()}
		return b.insertUser(tx, &u, record)
	})
	return u, err
}
