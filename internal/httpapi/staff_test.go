package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/store"
)

// The staff endpoints: staff only (a robot and a user get 403, no token
// 401), every live session and user listed, a session shown, an
// environment refreshed.
func TestStaffEndpoints(t *testing.T) {
	p := newPortal(t)
	robot := p.Robot()
	a, _, _ := requestSession(t, robot, "index_url=/&user=alice")
	p.Settle()
	admin := p.Login(portaltest.AdminUser, portaltest.AdminPassword)

	for _, ep := range []struct{ method, path string }{
		{"GET", "/portico/api/v1/sessions/"}, {"GET", "/portico/api/v1/sessions/" + a.Name + "/"},
		{"GET", "/portico/api/v1/environments/"}, {"POST", "/portico/api/v1/environments/portal-w01/refresh/"},
		{"GET", "/portico/api/v1/users/"},
	} {
		resp, raw := robot.Raw(ep.method, ep.path, nil)
		errorBody(t, resp.StatusCode, http.StatusForbidden, raw)
		resp, raw = p.Client().Raw(ep.method, ep.path, nil)
		errorBody(t, resp.StatusCode, http.StatusUnauthorized, raw)
	}

	var sessions struct {
		Sessions []struct {
			Name, State, User, Environment, Workshop, Created string
			Countdown                                         *int
		}
	}
	if status := admin.Do("GET", "/portico/api/v1/sessions/", nil, &sessions); status != 200 || len(sessions.Sessions) != 2 {
		t.Fatalf("sessions: %d %+v", status, sessions)
	}
	// Newest first: the reserve made after alice took the first one.
	if s := sessions.Sessions[1]; s.Name != a.Name || s.User != "alice" || s.Environment != "portal-w01" ||
		s.Workshop != "lab" || s.State != string(store.Waiting) || !datetime.MatchString(s.Created) || s.Countdown == nil {
		t.Errorf("alice's session: %+v", s)
	}
	if status := admin.Do("GET", "/portico/api/v1/sessions/?q=ALI", nil, &sessions); status != 200 || len(sessions.Sessions) != 1 {
		t.Errorf("sessions matching ALI: %d %+v", status, sessions)
	}

	var one struct{ Name, User, URL string }
	if status := admin.Do("GET", "/portico/api/v1/sessions/"+a.Name, nil, &one); status != 200 ||
		one.User != "alice" || one.URL != p.Broker.SessionURL(a.Name) {
		t.Errorf("session: %d %+v", status, one)
	}
	resp, raw := admin.Raw("GET", "/portico/api/v1/sessions/portal-w01-s999/", nil)
	errorBody(t, resp.StatusCode, http.StatusNotFound, raw)

	var users struct {
		Users []struct {
			Username, Origin string
			Sessions         int
		}
	}
	if status := admin.Do("GET", "/portico/api/v1/users/?q=alice", nil, &users); status != 200 ||
		len(users.Users) != 1 || users.Users[0].Sessions != 1 || users.Users[0].Origin != "client" {
		t.Errorf("users: %d %+v", status, users)
	}

	type envs struct {
		Environments []struct {
			Name, State string
			Sessions    []struct{ Name string }
		}
	}
	var before envs
	if status := admin.Do("GET", "/portico/api/v1/environments/", nil, &before); status != 200 ||
		len(before.Environments) != 1 || len(before.Environments[0].Sessions) != 1 {
		t.Fatalf("environments: %d %+v", status, before)
	}
	resp, raw = admin.Raw("POST", "/portico/api/v1/environments/portal-w01/refresh/", nil)
	var after envs
	if resp.StatusCode != 200 || json.Unmarshal(raw, &after) != nil {
		t.Fatalf("refresh: %d %s", resp.StatusCode, raw)
	}
	states := map[string]string{}
	for _, e := range after.Environments {
		states[e.Name] = e.State
	}
	if states["portal-w01"] != string(store.EnvStopping) || states["portal-w02"] == "" {
		t.Errorf("after refresh: %s", raw)
	}
	resp, raw = admin.Raw("POST", "/portico/api/v1/environments/portal-w01/refresh/", nil)
	errorBody(t, resp.StatusCode, http.StatusBadRequest, raw)
	resp, raw = admin.Raw("POST", "/portico/api/v1/environments/nope/refresh/", nil)
	errorBody(t, resp.StatusCode, http.StatusNotFound, raw)
	resp, raw = admin.Raw("GET", "/portico/api/v1/environments/portal-w02/refresh/", nil)
	errorBody(t, resp.StatusCode, http.StatusMethodNotAllowed, raw)
}
