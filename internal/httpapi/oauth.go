package httpapi

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/auth"
)

const maxForm = 64 << 10

// token is POST /oauth2/token/ (spec §3.1): the password, refresh_token and
// client_credentials grants, client credentials by HTTP Basic or in the
// body.
func (a *API) token(w http.ResponseWriter, r *http.Request) (any, error) {
	if !a.limiter.allow(clientIP(r)) {
		w.Header().Set("Retry-After", "1")
		return nil, errorf(http.StatusTooManyRequests, "Too many token requests; slow down")
	}
	cc, form, err := oauthRequest(w, r)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Pragma", "no-cache")
	switch grant := form.Get("grant_type"); grant {
	case "password":
		return a.auth.PasswordGrant(r.Context(), cc, form.Get("username"), form.Get("password"))
	case "refresh_token":
		return a.auth.RefreshGrant(r.Context(), cc, form.Get("refresh_token"))
	case "client_credentials":
		return a.auth.ClientCredentialsGrant(r.Context(), cc)
	case "":
		return nil, &auth.Error{Status: 400, Code: "invalid_request", Description: "Missing grant_type parameter."}
	default:
		return nil, &auth.Error{Status: 400, Code: "unsupported_grant_type"}
	}
}

// revoke is POST /oauth2/revoke-token/ (RFC 7009): 200 with an empty body,
// also for unknown tokens.
func (a *API) revoke(w http.ResponseWriter, r *http.Request) (any, error) {
	cc, form, err := oauthRequest(w, r)
	if err != nil {
		return nil, err
	}
	if err := a.auth.Revoke(r.Context(), cc, form.Get("token")); err != nil {
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	return nil, nil
}

type formValues interface{ Get(string) string }

func oauthRequest(w http.ResponseWriter, r *http.Request) (auth.ClientCredentials, formValues, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return auth.ClientCredentials{}, nil, &auth.Error{Status: 400, Code: "invalid_request", Description: "Malformed form body."}
	}
	cc := auth.ClientCredentials{ID: r.PostForm.Get("client_id"), Secret: r.PostForm.Get("client_secret")}
	if id, sec, ok := r.BasicAuth(); ok {
		cc = auth.ClientCredentials{ID: id, Secret: sec}
	}
	return cc, r.PostForm, nil
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter is a token bucket per client address, for the token endpoint:
// password guessing costs time. It is per replica, which bounds the rate
// per replica; that is enough to make guessing impractical.
type limiter struct {
	mu      sync.Mutex
	clock   Clock
	burst   float64
	rate    float64 // tokens per second
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(clock Clock, burst, rate float64) *limiter {
	return &limiter{clock: clock, burst: burst, rate: rate, buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 10000 {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune forgets buckets that have refilled: they are the same as new ones.
func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
