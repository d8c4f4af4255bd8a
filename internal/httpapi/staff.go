package httpapi

import (
	"net/http"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// The staff endpoints of Portico's own namespace, /portico/api/v1/: what
// the admin pages show and do, for the admin CLI. The Educates API has no
// way to list every session or user, nor to refresh an environment.

// staff authenticates the caller and requires staff.
func (a *API) staff(r *http.Request) (store.User, error) {
	u, err := a.caller(r)
	if err == nil && !u.Staff() {
		err = errorf(http.StatusForbidden, "Only staff may do this")
	}
	return u, err
}

// staffSessionJSON is a session as staff see it: whose it is, where it
// runs and how long it has left.
type staffSessionJSON struct {
	Name        string             `json:"name"`
	State       store.SessionState `json:"state"`
	User        string             `json:"user"`
	Environment string             `json:"environment"`
	Workshop    string             `json:"workshop"`
	Created     Time               `json:"created"`
	Started     Time               `json:"started"`
	Expires     *Time              `json:"expires,omitempty"`
	Countdown   *int               `json:"countdown,omitempty"`
	Extendable  *bool              `json:"extendable,omitempty"`
}

func staffSessionOf(v broker.SessionView) staffSessionJSON {
	s := sessionOf(v)
	return staffSessionJSON{Name: s.Name, State: v.Session.State, User: v.Session.OwnerName,
		Environment: v.Session.Environment, Workshop: v.Environment.Workshop.Name, Created: Time(v.Session.Created),
		Started: s.Started, Expires: s.Expires, Countdown: s.Countdown, Extendable: s.Extendable}
}

// staffSessions is GET /portico/api/v1/sessions/?q=: the live sessions,
// newest first, those matching q only.
func (a *API) staffSessions(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.staff(r)
	if err != nil {
		return nil, err
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	views, err := a.broker.Sessions(r.Context(), u, param(q, "q"))
	if err != nil {
		return nil, err
	}
	list := make([]staffSessionJSON, 0, len(views))
	for _, v := range views {
		list = append(list, staffSessionOf(v))
	}
	return struct {
		Sessions []staffSessionJSON `json:"sessions"`
	}{list}, nil
}

// staffSession is GET /portico/api/v1/sessions/<name>/.
func (a *API) staffSession(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.staff(r)
	if err != nil {
		return nil, err
	}
	v, err := a.broker.Session(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return struct {
		staffSessionJSON
		URL string `json:"url"`
	}{staffSessionOf(v), a.broker.SessionURL(v.Session.Name)}, nil
}

// staffEnvironments is GET /portico/api/v1/environments/: every
// environment that is not stopped, with its sessions.
func (a *API) staffEnvironments(w http.ResponseWriter, r *http.Request) (any, error) {
	if _, err := a.staff(r); err != nil {
		return nil, err
	}
	if _, err := query(r); err != nil {
		return nil, err
	}
	return a.environmentList(r)
}

func (a *API) environmentList(r *http.Request) (any, error) {
	_, views, err := a.broker.Catalog(r.Context(), broker.CatalogQuery{Sessions: true,
		States: []store.EnvState{store.EnvStarting, store.EnvRunning, store.EnvStopping}})
	if err != nil {
		return nil, err
	}
	envs := make([]environmentJSON, 0, len(views))
	for _, v := range views {
		envs = append(envs, environmentOf(v, true, true))
	}
	return struct {
		Environments []environmentJSON `json:"environments"`
	}{envs}, nil
}

// refreshEnvironment is POST /portico/api/v1/environments/<name>/refresh/:
// the environment is replaced by a fresh one, as the admin page's Refresh
// does. The answer is the environments after it, the new one among them.
func (a *API) refreshEnvironment(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.staff(r)
	if err != nil {
		return nil, err
	}
	if err := a.broker.Replace(r.Context(), u, r.PathValue("name")); err != nil {
		return nil, err
	}
	return a.environmentList(r)
}

// staffUsers is GET /portico/api/v1/users/?q=: the newest users, those
// matching q only, with the live sessions each holds.
func (a *API) staffUsers(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.staff(r)
	if err != nil {
		return nil, err
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	views, err := a.broker.Users(r.Context(), u, param(q, "q"))
	if err != nil {
		return nil, err
	}
	type user struct {
		Username string       `json:"username"`
		Email    string       `json:"email"`
		Role     store.Role   `json:"role"`
		Origin   store.Origin `json:"origin"`
		Created  Time         `json:"created"`
		Sessions int          `json:"sessions"`
	}
	list := make([]user, 0, len(views))
	for _, v := range views {
		list = append(list, user{v.User.Username, v.User.Email, v.User.Role, v.User.Origin, Time(v.User.Created), v.Sessions})
	}
	return struct {
		Users []user `json:"users"`
	}{list}, nil
}
