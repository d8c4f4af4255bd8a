package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// catalogCaller authenticates a catalog request: a token is required unless
// the catalog is public. It reports whether the caller is a robot. On a
// public catalog a token that is not valid (an expired one) leaves the
// caller anonymous, as in Educates, with a WWW-Authenticate hint.
func (a *API) catalogCaller(w http.ResponseWriter, r *http.Request) (robot bool, err error) {
	u, err := a.caller(r)
	if errors.Is(err, auth.ErrUnauthenticated) && a.broker.Portal().CatalogVisibility == "public" {
		if _, present := bearer(r); present {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portico", error="invalid_token"`)
		}
		return false, nil
	}
	return err == nil && u.Role == store.RoleRobot, err
}

// catalogEnvironments is GET /workshops/catalog/environments/ (spec §7.2).
// Robots may ask for sessions and other states; everyone else sees running
// environments without sessions.
func (a *API) catalogEnvironments(w http.ResponseWriter, r *http.Request) (any, error) {
	robot, err := a.catalogCaller(w, r)
	if err != nil {
		return nil, err
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	cq := broker.CatalogQuery{Names: q["name"], Labels: map[string]string{}}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "labels["); ok && strings.HasSuffix(key, "]") {
			cq.Labels[strings.TrimSuffix(key, "]")] = vs[len(vs)-1]
		}
	}
	if robot {
		cq.Sessions = isTrue(param(q, "sessions"))
		// Educates ignored a state it did not know (and listed running
		// environments when it knew none): a front end may send state=.
		for _, s := range q["state"] {
			st := store.EnvState(strings.ToUpper(strings.TrimSpace(s)))
			switch st {
			case store.EnvStarting, store.EnvRunning, store.EnvStopping, store.EnvStopped:
				cq.States = append(cq.States, st)
			}
		}
	}
	pv, views, err := a.broker.Catalog(r.Context(), cq)
	if err != nil {
		return nil, err
	}
	envs := make([]environmentJSON, 0, len(views))
	for _, v := range views {
		envs = append(envs, environmentOf(v, true, cq.Sessions))
	}
	return struct {
		Portal       portalJSON        `json:"portal"`
		Environments []environmentJSON `json:"environments"`
	}{portalOf(pv), envs}, nil
}

func isTrue(s string) bool { return strings.EqualFold(s, "true") || s == "1" }

// catalogWorkshops is GET /workshops/catalog/workshops/ (spec §7.3).
func (a *API) catalogWorkshops(w http.ResponseWriter, r *http.Request) (any, error) {
	if _, err := a.catalogCaller(w, r); err != nil {
		return nil, err
	}
	if _, err := query(r); err != nil {
		return nil, err
	}
	pv, views, err := a.broker.Catalog(r.Context(), broker.CatalogQuery{})
	if err != nil {
		return nil, err
	}
	type environment struct {
		Name      string         `json:"name"`
		State     store.EnvState `json:"state"`
		Duration  int            `json:"duration"`
		Capacity  int            `json:"capacity"`
		Reserved  int            `json:"reserved"`
		Allocated int            `json:"allocated"`
		Available int            `json:"available"`
	}
	type workshop struct {
		workshopJSON
		Environment environment `json:"environment"`
	}
	list := make([]workshop, 0, len(views))
	for _, v := range views {
		e := environmentOf(v, true, false)
		list = append(list, workshop{e.Workshop, environment{e.Name, e.State, e.Duration, e.Capacity,
			e.Reserved, e.Allocated, e.Available}})
	}
	return struct {
		Portal    portalJSON `json:"portal"`
		Workshops []workshop `json:"workshops"`
	}{portalOf(pv), list}, nil
}

// environmentStatus is GET /workshops/environment/<name>/status/ (spec
// §7.4).
func (a *API) environmentStatus(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.robot(r, "Status requests not permitted")
	if err != nil {
		return nil, err
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	sessions := isTrue(param(q, "sessions"))
	_, v, err := a.broker.EnvironmentStatus(r.Context(), u, r.PathValue("name"), sessions)
	if err != nil {
		return nil, err
	}
	e := environmentOf(v, false, sessions)
	// Spec §7.4 orders sessions before the counts.
	return struct {
		Name      string         `json:"name"`
		State     store.EnvState `json:"state"`
		Workshop  workshopJSON   `json:"workshop"`
		Sessions  *heldList      `json:"sessions,omitempty"`
		Duration  int            `json:"duration"`
		Capacity  int            `json:"capacity"`
		Reserved  int            `json:"reserved"`
		Allocated int            `json:"allocated"`
		Available int            `json:"available"`
	}{e.Name, e.State, e.Workshop, e.Sessions, e.Duration, e.Capacity, e.Reserved, e.Allocated, e.Available}, nil
}

// userSessions is GET /workshops/user/<name>/sessions/ (spec §7.12). Any
// username works, with @, . or : too (Educates' slug route refused them).
func (a *API) userSessions(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.robot(r, "Session requests not permitted")
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	views, err := a.broker.UserSessions(r.Context(), u, name)
	if err != nil {
		return nil, err
	}
	list := make([]sessionJSON, 0, len(views))
	for _, v := range views {
		list = append(list, userSessionOf(v))
	}
	return struct {
		User     string        `json:"user"`
		Sessions []sessionJSON `json:"sessions"`
	}{name, list}, nil
}
