// Package httpapi serves the Educates training portal REST API: handlers
// decode the request, call the broker or the auth service, and encode the
// answer. Errors become status codes in one place, writeError.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/ratelimit"
	"github.com/portico-dev/portico/internal/store"
)

// Clock tells the time.
type Clock interface{ Now() time.Time }

// Requests to the token endpoints per client address: 20 at once, then
// two a second. Front ends ask for a token now and then; each request
// costs a bcrypt check of the client's secret.
const tokenBurst, tokenRate = 20, 2

// API is the REST API of one portal.
type API struct {
	broker  *broker.Broker
	auth    *auth.Service
	clock   Clock
	log     *slog.Logger
	limiter *ratelimit.Limiter
	mux     *http.ServeMux
	// registered lists the routes, for Routes.
	registered []Route
}

// Route is an endpoint of the API: a path pattern of net/http, with its
// trailing slash where it has one, and the methods it takes.
type Route struct {
	Path    string
	Methods []string
}

// Routes lists the endpoints of the API, for the tests that hold the
// OpenAPI document to them.
func Routes() []Route {
	a := &API{mux: http.NewServeMux()}
	a.routes()
	return a.registered
}

// Register adds the routes of the API to mux, with a JSON 404 for every
// path no other route of mux takes.
func Register(mux *http.ServeMux, b *broker.Broker, a *auth.Service, clock Clock, log *slog.Logger) {
	api := &API{broker: b, auth: a, clock: clock, log: log, limiter: ratelimit.New(clock, tokenBurst, tokenRate), mux: mux}
	api.routes()
}

// handler is what every endpoint is: it returns a value to encode as JSON
// with 200, or an error.
type handler func(w http.ResponseWriter, r *http.Request) (any, error)

// route registers h at path with and without its trailing slash (Educates
// answered the slash-less spelling with a redirect that clients follow),
// or at path alone when it has none, for the given methods, HEAD only
// where it is listed. Other methods get 405 with Allow.
func (a *API) route(path string, h handler, methods ...string) {
	hf := func(w http.ResponseWriter, r *http.Request) {
		defer a.recoverPanic(w, r)
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			corsPreflight(w, methods)
			return
		}
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", strings.Join(methods, ", "))
			a.writeError(w, r, errorf(http.StatusMethodNotAllowed, "Method %s not allowed", r.Method))
			return
		}
		if !utf8.ValidString(r.PathValue("name")) {
			a.writeError(w, r, badRequest("The name in the path is not valid UTF-8"))
			return
		}
		v, err := h(w, r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if v != nil {
			writeJSON(w, http.StatusOK, v)
		}
	}
	a.registered = append(a.registered, Route{path, methods})
	if !strings.HasSuffix(path, "/") {
		a.mux.HandleFunc(path, hf)
		return
	}
	a.mux.HandleFunc(path+"{$}", hf)
	a.mux.HandleFunc(strings.TrimSuffix(path, "/"), hf)
}

// recoverPanic answers a handler's panic, a bug, with the API's JSON 500
// and logs it with its stack, rather than letting net/http cut the
// connection without an answer. http.ErrAbortHandler is net/http's own
// way to cut a connection: it goes on.
func (a *API) recoverPanic(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	a.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "Internal error"})
}

// corsPreflight answers a preflight as Educates' django-cors-headers did,
// allowing its default request headers.
func corsPreflight(w http.ResponseWriter, methods []string) {
	w.Header().Set("Access-Control-Allow-Methods", strings.Join(append(methods, http.MethodOptions), ", "))
	w.Header().Set("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, User-Agent, X-CSRFToken, X-Requested-With")
	w.Header().Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusOK)
}

// statusError is an error of the transport itself (a method, a body that
// is too large), with its status.
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string { return e.reason }

func errorf(status int, format string, args ...any) error {
	return &statusError{status, fmt.Sprintf(format, args...)}
}

// badRequest is the error for malformed input.
func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	WriteError(w, r, a.log, err)
}

// Errorf returns an error that WriteError answers with status.
func Errorf(status int, format string, args ...any) error { return errorf(status, format, args...) }

// WriteError writes err as JSON with the status Status gives it, for the
// API and the portal's pages alike.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var oauth *auth.Error
	if errors.As(err, &oauth) {
		writeJSON(w, oauth.Status, oauth)
		return
	}
	status, reason := Status(w, r, log, err)
	writeJSON(w, status, map[string]string{"error": reason})
}

// Status is the one place where errors become status codes and the
// reason shown to the caller. It logs what the caller cannot be told, and
// sets the headers that go with a status.
func Status(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) (int, string) {
	var (
		se      *statusError
		mbe     *http.MaxBytesError
		refused *ratelimit.Refused
	)
	switch {
	case errors.As(err, &se):
		return se.status, err.Error()
	case errors.As(err, &refused):
		w.Header().Set("Retry-After", strconv.Itoa(refused.Seconds()))
		return http.StatusTooManyRequests, refused.Reason
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "Request body too large"
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="portico"`)
		return http.StatusUnauthorized, err.Error()
	case broker.KindOf(err) != 0:
		return map[broker.Kind]int{
			broker.Invalid:      http.StatusBadRequest,
			broker.Unauthorized: http.StatusUnauthorized,
			broker.Forbidden:    http.StatusForbidden,
			broker.NotFound:     http.StatusNotFound,
			broker.Conflict:     http.StatusConflict,
			broker.Unavailable:  http.StatusServiceUnavailable,
		}[broker.KindOf(err)], err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "The session changed while this request ran; try again"
	case errors.Is(err, store.ErrUnavailable):
		log.Error("database unavailable", "path", r.URL.Path, "err", err)
		return http.StatusServiceUnavailable, "The portal database is unavailable; try again shortly"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "The request was cancelled or timed out"
	}
	log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
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

// caller authenticates the bearer token of a request, or takes the person
// a session's origin let in (AsCaller). The portal's login cookie
// authenticates no API call: the dashboard that calls the API for a
// person runs on the session's origin, with that origin's cookie.
func (a *API) caller(r *http.Request) (store.User, error) {
	if token, ok := bearer(r); ok {
		return a.auth.Bearer(r.Context(), token)
	}
	if u, ok := r.Context().Value(callerKey{}).(store.User); ok {
		return u, nil
	}
	return store.User{}, auth.ErrUnauthenticated
}

type callerKey struct{}

// AsCaller returns r acting for u, whom the caller authenticated by other
// means (the visit cookie of a session's origin). Only code can set it:
// nothing of a request does.
func AsCaller(r *http.Request, u store.User) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), callerKey{}, u))
}

// WriteJSON writes v as the JSON answer, as every endpoint does.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// robot authenticates the caller and requires the robot role.
func (a *API) robot(r *http.Request, reason string) (store.User, error) {
	u, err := a.caller(r)
	if err == nil && u.Role != store.RoleRobot {
		err = errorf(http.StatusForbidden, "%s", reason)
	}
	return u, err
}

// robotClient authenticates a robot's bearer token and returns the OAuth
// client it was issued to, whose accounts the robot may reuse. A browser
// cookie names no client, so it does not do.
func (a *API) robotClient(r *http.Request, reason string) (store.User, string, error) {
	token, ok := bearer(r)
	if !ok {
		_, err := a.caller(r)
		if err == nil {
			err = errorf(http.StatusForbidden, "%s", reason)
		}
		return store.User{}, "", err
	}
	u, client, err := a.auth.BearerClient(r.Context(), token)
	if err == nil && u.Role != store.RoleRobot {
		err = errorf(http.StatusForbidden, "%s", reason)
	}
	return u, client, err
}

// query parses the query string strictly: Educates answered 500 to what it
// could not parse, Portico answers 400.
func query(r *http.Request) (map[string][]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("Malformed query string: %v", err)
	}
	for k, vs := range q {
		for _, v := range vs {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, badRequest("Query parameter %q is not valid UTF-8", k)
			}
		}
	}
	return q, nil
}

// param is the value of the first of keys given a non-blank value,
// trimmed. A key given twice takes its last value, as Django's
// QueryDict.get gave it to Educates; later keys are legacy spellings that
// Educates read when the first was blank.
func param(q map[string][]string, keys ...string) string {
	for _, k := range keys {
		if vs := q[k]; len(vs) > 0 {
			if v := strings.TrimSpace(vs[len(vs)-1]); v != "" {
				return v
			}
		}
	}
	return ""
}
