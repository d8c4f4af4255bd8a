package httpapi

import (
	"context"
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
	ctx, cc, form, err := a.oauthRequest(w, r)
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
		return a.auth.PasswordGrant(ctx, cc, form.Get("username"), form.Get("password"))
	case "refresh_token":
		return a.auth.RefreshGrant(ctx, cc, form.Get("refresh_token"))
	case "client_credentials":
		return a.auth.ClientCredentialsGrant(ctx, cc)
	case "":
		return nil, &auth.Error{Status: 400, Code: "invalid_request", Description: "Missing grant_type parameter."}
	default:
		return nil, &auth.Error{Status: 400, Code: "unsupported_grant_type"}
	}
}

// revoke is POST /oauth2/revoke-token/ (RFC 7009): 200 with an empty body,
// also for unknown tokens.
func (a *API) revoke(w http.ResponseWriter, r *http.Request) (any, error) {
	ctx, cc, form, err := a.oauthRequest(w, r)
	if err != nil {
		return nil, err
	}
	if err := a.auth.Revoke(ctx, cc, form.Get("token")); err != nil {
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	return nil, nil
}

type formValues interface{ Get(string) string }

// oauthRequest reads the client credentials and the form of a request to
// a token endpoint, within the budget of such requests of the client's
// address: each checks a secret with bcrypt, which costs tens of
// milliseconds of CPU. The context it returns names the client for the
// limits of wrong passwords.
func (a *API) oauthRequest(w http.ResponseWriter, r *http.Request) (context.Context, auth.ClientCredentials, formValues, error) {
	client := ratelimit.ClientIP(r)
	if d := a.limiter.Take(client); d > 0 {
		return nil, auth.ClientCredentials{}, nil, ratelimit.Refuse(d, "Too many token requests from your address")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, auth.ClientCredentials{}, nil, &auth.Error{Status: 400, Code: "invalid_request", Description: "Malformed form body."}
	}
	cc := auth.ClientCredentials{ID: r.PostForm.Get("client_id"), Secret: r.PostForm.Get("client_secret")}
	if id, sec, ok := r.BasicAuth(); ok {
		cc = auth.ClientCredentials{ID: formDecoded(id), Secret: formDecoded(sec)}
	}
	return ratelimit.WithClient(r.Context(), client), cc, r.PostForm, nil
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
