package lookup

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/internal/ratelimit"
)

// maxBody bounds what is read of a request's body.
const maxBody = 64 << 10

type api struct {
	s   *Service
	log *slog.Logger
}

// Handler serves the lookup service's REST API: the routes of Educates'
// lookup service, with the same request and answer shapes.
func Handler(s *Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &api{s: s, log: log}
	mux := http.NewServeMux()
	routes := []struct {
		path    string
		methods map[string]func(*http.Request) (any, error)
	}{
		{"/login", post(a.login)},
		{"/auth/login", post(a.login)},
		{"/auth/logout", post(a.authed(a.logout))},
		{"/auth/verify", get(a.authed(func(*http.Request, *Caller) (any, error) { return struct{}{}, nil }))},
		{"/api/v1/clients", get(a.authed(a.clients))},
		{"/api/v1/clients/{client}", get(a.authed(a.client))},
		{"/api/v1/tenants", get(a.authed(a.tenants))},
		{"/api/v1/tenants/{tenant}", get(a.authed(a.tenant))},
		{"/api/v1/tenants/{tenant}/workshops", get(a.authed(a.tenantWorkshops))},
		{"/api/v1/clusters", get(a.authed(a.clusters))},
		{"/api/v1/clusters/{cluster}", get(a.authed(a.cluster))},
		{"/api/v1/clusters/{cluster}/portals", get(a.authed(a.clusterPortals))},
		{"/api/v1/clusters/{cluster}/portals/{portal}", get(a.authed(a.clusterPortal))},
		{"/api/v1/clusters/{cluster}/portals/{portal}/environments", get(a.authed(a.environments))},
		{"/api/v1/clusters/{cluster}/portals/{portal}/environments/{environment}", get(a.authed(a.environment))},
		{"/api/v1/clusters/{cluster}/portals/{portal}/environments/{environment}/sessions", get(a.authed(a.sessions))},
		{"/api/v1/clusters/{cluster}/portals/{portal}/environments/{environment}/users", get(a.authed(a.users))},
		{"/api/v1/clusters/{cluster}/portals/{portal}/environments/{environment}/users/{user}/sessions", get(a.authed(a.sessions))},
		{"/api/v1/portals", get(a.authed(a.portals))},
		{"/api/v1/workshops", map[string]func(*http.Request) (any, error){
			http.MethodGet: a.authed(a.workshops), http.MethodPost: a.authed(a.requestWorkshop)}},
	}
	for _, rt := range routes {
		mux.Handle(rt.path, a.serve(rt.methods))
	}
	mux.Handle("/", a.serve(nil))
	return mux
}

func get(h func(*http.Request) (any, error)) map[string]func(*http.Request) (any, error) {
	return map[string]func(*http.Request) (any, error){http.MethodGet: h, http.MethodHead: h}
}

func post(h func(*http.Request) (any, error)) map[string]func(*http.Request) (any, error) {
	return map[string]func(*http.Request) (any, error){http.MethodPost: h}
}

// serve runs the handler of the request's method and writes its answer or
// its error; without handlers the path is unknown.
func (a *api) serve(methods map[string]func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			v   any
			err error
		)
		switch h, ok := methods[r.Method]; {
		case methods == nil:
			err = &Error{NotFound, "Not found"}
		case !ok:
			allowed := make([]string, 0, len(methods))
			for m := range methods {
				allowed = append(allowed, m)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			err = errMethod
		default:
			v, err = h(r)
		}
		if err != nil {
			status, reason := a.status(w, r, err)
			writeJSON(w, status, map[string]string{"error": reason})
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

var errMethod = errors.New("Method not allowed")

// status maps an error to its status code and reason: the one place where
// that is decided.
func (a *api) status(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	var (
		e       *Error
		refused *ratelimit.Refused
		mbe     *http.MaxBytesError
	)
	switch {
	case errors.As(err, &e):
		if e.Kind == Unauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lookup"`)
		}
		return map[Kind]int{Invalid: http.StatusBadRequest, Unauthorized: http.StatusUnauthorized,
			Forbidden: http.StatusForbidden, NotFound: http.StatusNotFound,
			Unavailable: http.StatusServiceUnavailable}[e.Kind], e.Reason
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, err.Error()
	case errors.As(err, &refused):
		w.Header().Set("Retry-After", strconv.Itoa(refused.Seconds()))
		return http.StatusTooManyRequests, refused.Reason
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "Request body too large"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "The request was cancelled or timed out"
	}
	a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, "Internal error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// authed authenticates the request's bearer token before h runs.
func (a *api) authed(h func(*http.Request, *Caller) (any, error)) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return nil, errUnauthorized("A bearer token is needed: log in at /login")
		}
		c, err := a.s.Authenticate(strings.TrimSpace(token))
		if err != nil {
			return nil, err
		}
		return h(r, c)
	}
}

// decode reads a JSON object body into v; any other body is a 400.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return errInvalid("The body must be JSON (Content-Type: application/json)")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errInvalid("The field " + te.Field + " has the wrong type")
		}
		return errInvalid("The body must be a JSON object")
	}
	return nil
}

func (a *api) login(r *http.Request) (any, error) {
	var body struct {
		Username *string `json:"username"`
		Password *string `json:"password"`
	}
	if err := decode(r, &body); err != nil {
		return nil, err
	}
	if body.Username == nil {
		return nil, errInvalid("No username provided")
	}
	if body.Password == nil {
		return nil, errInvalid("No password provided")
	}
	return a.s.Login(*body.Username, *body.Password, ratelimit.ClientIP(r))
}

func (a *api) logout(_ *http.Request, c *Caller) (any, error) {
	a.s.Logout(c)
	return struct{}{}, nil
}

func (a *api) clients(_ *http.Request, c *Caller) (any, error) {
	v, err := a.s.Clients(c)
	return wrap("clients", v, err)
}

func (a *api) client(r *http.Request, c *Caller) (any, error) {
	return a.s.ClientDetails(c, r.PathValue("client"))
}

func (a *api) tenants(_ *http.Request, c *Caller) (any, error) {
	v, err := a.s.Tenants(c)
	return wrap("tenants", v, err)
}

func (a *api) tenant(r *http.Request, c *Caller) (any, error) {
	return a.s.TenantDetails(c, r.PathValue("tenant"))
}

func (a *api) tenantWorkshops(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.TenantWorkshops(r.Context(), c, r.PathValue("tenant"))
	return wrap("workshops", v, err)
}

func (a *api) clusters(_ *http.Request, c *Caller) (any, error) {
	v, err := a.s.Clusters(c)
	return wrap("clusters", v, err)
}

func (a *api) cluster(r *http.Request, c *Caller) (any, error) {
	return a.s.ClusterDetails(c, r.PathValue("cluster"))
}

func (a *api) clusterPortals(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.ClusterPortals(r.Context(), c, r.PathValue("cluster"))
	return wrap("portals", v, err)
}

func (a *api) clusterPortal(r *http.Request, c *Caller) (any, error) {
	return a.s.ClusterPortal(r.Context(), c, r.PathValue("cluster"), r.PathValue("portal"))
}

func (a *api) environments(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.Environments(r.Context(), c, r.PathValue("cluster"), r.PathValue("portal"))
	return wrap("environments", v, err)
}

func (a *api) environment(r *http.Request, c *Caller) (any, error) {
	return a.s.Environment(r.Context(), c, r.PathValue("cluster"), r.PathValue("portal"), r.PathValue("environment"))
}

// sessions serves an environment's sessions, and a user's sessions of it
// (the route with {user}).
func (a *api) sessions(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.Sessions(r.Context(), c, r.PathValue("cluster"), r.PathValue("portal"),
		r.PathValue("environment"), r.PathValue("user"))
	return wrap("sessions", v, err)
}

func (a *api) users(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.Users(r.Context(), c, r.PathValue("cluster"), r.PathValue("portal"), r.PathValue("environment"))
	return wrap("users", v, err)
}

func (a *api) portals(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.Portals(r.Context(), c)
	return wrap("portals", v, err)
}

func (a *api) workshops(r *http.Request, c *Caller) (any, error) {
	v, err := a.s.Workshops(r.Context(), c, r.URL.Query().Get("tenant"))
	return wrap("workshops", v, err)
}

func (a *api) requestWorkshop(r *http.Request, c *Caller) (any, error) {
	var req WorkshopRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return a.s.RequestWorkshop(r.Context(), c, req)
}

// wrap puts a list under its key, as Educates' answers have it.
func wrap[T any](key string, v []T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return map[string][]T{key: v}, nil
}
