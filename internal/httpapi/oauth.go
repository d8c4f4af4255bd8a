package httpapi

import (
	"net/http"
	"net/url"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/ratelimit"
)

const maxForm = 64 << 10

// token is POST /oauth2/token/ (spec §3.1): the password, refresh_token and
// client_credentials grants, client credentials by HTTP Basic or in the
// body.
func (a *API) token(w http.ResponseWriter, r *http.Request) (any, error) {
	if !a.limiter.Allow(ratelimit.ClientIP(r)) {
		w.Header().Set("Retry-After", "1")
		return nil, errorf(http.StatusTooManyRequests, "Too many token requests; slow down")
	}
	cc, form, err := oauthRequest(w, r)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Pragma", "no-cache")
	// RFC 6749 §3.2: parameters must not be repeated; Educates' oauthlib
	// refused a repeated one rather than pick a value.
	for _, k := range []string{"grant_type", "username", "password", "refresh_token", "scope", "client_id", "client_secret"} {
		if len(r.PostForm[k]) > 1 {
			return nil, &auth.Error{Status: 400, Code: "invalid_request", Description: "Duplicate " + k + " parameter."}
		}
	}
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
		cc = auth.ClientCredentials{ID: formDecoded(id), Secret: formDecoded(sec)}
	}
	return cc, r.PostForm, nil
}

// formDecoded undoes the form encoding RFC 6749 §2.3.1 asks clients to
// apply to their id and secret inside HTTP Basic, as Educates' oauth
// toolkit did (unquote_plus): what does not decode is taken as it is.
func formDecoded(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}
