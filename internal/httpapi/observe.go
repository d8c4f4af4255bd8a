package httpapi

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/secret"
)

// RequestIDHeader carries a request's ID: from a proxy in front of the
// portal, in the portal's answer, and on to the session host.
const RequestIDHeader = "X-Request-Id"

// RequestObserver is told of every request answered, for the metrics.
type RequestObserver interface {
	Request(route, method string, code int, took time.Duration)
}

type requestIDKey struct{}

// RequestID is the ID of the request ctx belongs to, "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// wellFormedID reports whether an incoming request ID may be kept: it
// goes into logs and headers, so it is short and of a few safe bytes
// (UUIDs, hex and base64url IDs of proxies all are). Anything else is
// replaced, not cleaned: a cleaned ID would no longer match the proxy's.
func wellFormedID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// quietRoutes are logged at Debug: probes and scrapes come every few
// seconds and would bury the requests of people.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Observe gives every request an ID (the incoming X-Request-Id when it is
// well formed, else a new one), answers with it, and logs and observes the
// request once it is answered: method, route, status, duration and ID.
// The route is the pattern of h's ServeMux that took the request (which
// sets Request.Pattern), never the path, whose values are the caller's;
// requests no pattern took are "unmatched".
func Observe(h http.Handler, log *slog.Logger, obs RequestObserver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !wellFormedID(id) {
			id = secret.Alnum(20)
		}
		w.Header().Set(RequestIDHeader, id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			v := recover()
			status := rec.status
			if v != nil && status == 0 {
				status = http.StatusInternalServerError
			}
			if status == 0 {
				status = http.StatusOK // the handler wrote nothing
			}
			took := time.Since(began)
			route := routeOf(r.Pattern)
			level := slog.LevelInfo
			if quietRoutes[route] {
				level = slog.LevelDebug
			}
			log.LogAttrs(r.Context(), level, "request", slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Duration("duration", took), slog.String("request_id", id),
				slog.String("client", clientOf(r)))
			if obs != nil {
				obs.Request(route, r.Method, status, took)
			}
			if v != nil {
				panic(v)
			}
		}()
		h.ServeHTTP(rec, r)
	})
}

// routeOf is the path part of a ServeMux pattern ("GET /x/{name}/{$}"
// gives "/x/{name}/{$}"): the method is a label of its own.
func routeOf(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

func clientOf(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// statusRecorder notes the status a handler answers with. It passes
// flushes and hijacks (the terminal's websocket through the session
// proxy) on to the connection.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 || s.status < 200 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Flush() {
	http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}
