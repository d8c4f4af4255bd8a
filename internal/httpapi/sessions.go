package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
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
	}{a.broker.SessionURL(v.Session.Name), v.Session.Password}, nil
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
	if err := json.Unmarshal(body, &payload); err != nil {
		return nil, badRequest("Malformed event: %v", err)
	}
	if err := a.broker.Event(r.Context(), u, r.PathValue("name"), payload.Event.Name, payload.Event.Data); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// proxyConfig forwards /sessions/<name>/config/<type> to the session's
// host, found by the address stored with the session, so any replica
// serves any session. The session host checks the config token.
func (a *API) proxyConfig(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		a.writeError(w, r, errorf(http.StatusMethodNotAllowed, "Method %s not allowed", r.Method))
		return
	}
	addr, err := a.broker.Address(r.Context(), r.PathValue("name"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = "/config/" + r.PathValue("type")
			pr.Out.URL.RawPath = ""
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			a.log.Warn("session host unreachable", "session", r.PathValue("name"), "err", err)
			a.writeError(w, r, errorf(http.StatusBadGateway, "The session is not answering"))
		},
	}
	proxy.ServeHTTP(w, r)
}

// activate is GET /workshops/session/<name>/activate/?token= (spec §7.10):
// it logs the browser in as the session's owner and sends it to the
// session page.
func (a *API) activate(w http.ResponseWriter, r *http.Request) (any, error) {
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	s, owner, err := a.broker.Activate(r.Context(), name, first(q, "token"))
	if errors.Is(err, broker.ErrEnded) {
		http.Redirect(w, r, withNotification(a.indexFor(s), "session-deleted"), http.StatusFound)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := a.login(w, r, owner); err != nil {
		return nil, err
	}
	http.Redirect(w, r, "/workshops/session/"+s.Name+"/", http.StatusFound)
	return nil, nil
}

// indexFor is where a person goes after a session: the session's index
// URL, else the portal index, else the catalog.
func (a *API) indexFor(s store.Session) string {
	if s.IndexURL != "" {
		return s.IndexURL
	}
	if idx := a.broker.Portal().Index; idx != "" {
		return idx
	}
	return "/workshops/catalog/"
}

// withNotification sets the notification query parameter of a URL, keeping
// the others (spec §6.10).
func withNotification(target, notification string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set("notification", notification)
	u.RawQuery = q.Encode()
	return u.String()
}

// cookieName is the browser login cookie.
const cookieName = "portico_session"

func (a *API) login(w http.ResponseWriter, r *http.Request, u store.User) error {
	value, err := a.auth.StartBrowser(r.Context(), u)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(a.broker.URL(), "https:")})
	return nil
}
