package httpapi_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/portaltest"
)

// tokenRequest posts form to a token endpoint with the robot's client
// credentials unless form names others.
func tokenRequest(c *portaltest.Client, path string, form url.Values) (*http.Response, []byte) {
	if form.Get("client_id") == "" {
		form.Set("client_id", portaltest.ClientID)
		form.Set("client_secret", portaltest.ClientSecret)
	}
	return c.Raw("POST", path, strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

func passwordGrant(c *portaltest.Client, username, password string) (*http.Response, []byte) {
	return tokenRequest(c, "/oauth2/token/", url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
}

// retryAfter checks a 429 with Retry-After and a JSON reason, and returns
// the wait and the reason.
func retryAfter(t *testing.T, resp *http.Response, raw []byte) (int, string) {
	t.Helper()
	reason := errorBody(t, resp.StatusCode, http.StatusTooManyRequests, raw)
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
	}
	return secs, reason
}

// Ten wrong passwords for an account from one address kept its owner out
// from everywhere (the admin could be kept locked out for good). The
// guessing address now waits, with a reason and Retry-After; the right
// password from another address goes through.
func TestWrongPasswordsForAnAccountKeepOutOnlyTheirAddress(t *testing.T) {
	p := newPortal(t)
	guesser, owner := p.ClientFrom("127.0.0.2"), p.ClientFrom("127.0.0.3")
	for i := range 10 {
		resp, raw := passwordGrant(guesser, portaltest.AdminUser, "guess")
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("wrong password %d: %d %s", i+1, resp.StatusCode, raw)
		}
	}
	if resp, raw := passwordGrant(owner, portaltest.AdminUser, portaltest.AdminPassword); resp.StatusCode != http.StatusOK {
		t.Fatalf("the right password from another address: %d %s", resp.StatusCode, raw)
	}
	resp, raw := passwordGrant(guesser, portaltest.AdminUser, portaltest.AdminPassword)
	secs, reason := retryAfter(t, resp, raw)
	if !strings.Contains(reason, "Too many wrong passwords for this account from your address") {
		t.Errorf("reason %q", reason)
	}
	p.Clock.Advance(time.Duration(secs) * time.Second)
	if resp, raw := passwordGrant(guesser, portaltest.AdminUser, portaltest.AdminPassword); resp.StatusCode != http.StatusOK {
		t.Fatalf("the right password after Retry-After: %d %s", resp.StatusCode, raw)
	}
}

// The revocation endpoint checks the client's secret with bcrypt like
// the token endpoint, and had no limit at all: both share one budget per
// address now.
func TestRevokeEndpointIsRateLimitedPerAddress(t *testing.T) {
	p := newPortal(t)
	flood, other := p.ClientFrom("127.0.0.2"), p.ClientFrom("127.0.0.3")
	wrong := func() url.Values {
		return url.Values{"token": {"x"}, "client_id": {portaltest.ClientID}, "client_secret": {"wrong"}}
	}
	limited := 0
	for range 40 {
		resp, raw := tokenRequest(flood, "/oauth2/revoke-token/", wrong())
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			retryAfter(t, resp, raw)
			limited++
		case http.StatusUnauthorized:
		default:
			t.Fatalf("revocation with a wrong secret: %d %s", resp.StatusCode, raw)
		}
	}
	// The clock stands still: after the burst every attempt is refused.
	if limited != 20 {
		t.Fatalf("%d of 40 revocations limited, want the 20 beyond the burst", limited)
	}
	resp, raw := tokenRequest(flood, "/oauth2/token/", url.Values{"grant_type": {"client_credentials"}})
	if _, reason := retryAfter(t, resp, raw); !strings.Contains(reason, "Too many token requests from your address") {
		t.Errorf("token request after a revocation flood: %q", reason)
	}
	if resp, raw := tokenRequest(other, "/oauth2/revoke-token/", wrong()); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revocation from another address: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := tokenRequest(other, "/oauth2/token/", url.Values{"grant_type": {"client_credentials"}}); resp.StatusCode != http.StatusOK {
		t.Errorf("token from another address: %d %s", resp.StatusCode, raw)
	}
}
