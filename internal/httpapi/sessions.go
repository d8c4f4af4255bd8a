package httpapi

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"
)

// The session endpoints of spec §7.11: the caller must be the session's
// owner, staff or a robot.

func (a *API) authorize(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	v, err := a.broker.InUse(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return struct {
		Owner string `json:"owner"`
		User  string `json:"user"`
		Staff bool   `json:"staff"`
	}{v.Session.OwnerName, u.Username, u.Staff()}, nil
}

func (a *API) sessionConfig(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	v, err := a.broker.Session(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return struct {
		URL      string `json:"url"`
		Password string `json:"password"`
	}{a.broker.SessionURL(v.Session.Name), v.ConfigPassword}, nil
}

func (a *API) schedule(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	v, err := a.broker.Session(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return scheduleOf(v.Schedule, false), nil
}

func (a *API) extend(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	sc, err := a.broker.Extend(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return scheduleOf(sc, true), nil
}

func (a *API) terminate(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	s, err := a.broker.Terminate(r.Context(), u, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return struct {
		Started Time `json:"started"`
		Expires Time `json:"expires"`
	}{Time(s.Started), Time(s.Expires)}, nil
}

// event is POST .../event/ with {"event": {"name": ..., "data": {...}}}.
func (a *API) event(w http.ResponseWriter, r *http.Request) (any, error) {
	u, err := a.caller(r)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, badRequest("No event data provided")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, err
	}
	var payload struct {
		Event struct {
			Name string         `json:"name"`
			Data map[string]any `json:"data"`
		} `json:"event"`
	}
	if !utf8.Valid(body) || json.Unmarshal(body, &payload) != nil {
		return nil, badRequest(`Malformed event: the body must be {"event": {"name": "...", "data": {...}}}`)
	}
	if err := a.broker.Event(r.Context(), u, r.PathValue("name"), payload.Event.Name, payload.Event.Data); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
