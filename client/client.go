// Package client is a Go client of the Portico training portal's REST API
// (the session management API of the Educates training portal, and
// Portico's staff endpoints under /portico/api/v1/).
//
// A Client logs in with the OAuth2 password grant (the robot's or a staff
// account's username and password, with the portal's robot client id and
// secret), or with the client_credentials grant when no username is given.
// It refreshes its token before it expires, and once more when the portal
// answers 401. Errors the portal answers are *Error values:
//
//	c, err := client.New(client.Config{URL: "https://portal.example.com",
//		ClientID: id, ClientSecret: secret, Username: "robot@educates", Password: pw})
//	a, err := c.RequestSession(ctx, "lab-markdown-sample", client.SessionRequest{
//		User: "alice", IndexURL: "https://hub.example.com/"})
//	if client.IsUnavailable(err) { ... no capacity left ... }
//	browser := c.ActivationURL(a)
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config says which portal to speak to and how to log in.
type Config struct {
	// URL is the portal's base URL, such as https://portal.example.com.
	URL string
	// ClientID and ClientSecret are the portal's robot OAuth client.
	ClientID, ClientSecret string
	// Username and Password log in with the password grant; without a
	// Username the client_credentials grant gives a token of the robot.
	Username, Password string
	// HTTPClient sends the requests (default: a client with a one minute
	// timeout). It should not follow redirects the API does not make.
	HTTPClient *http.Client
	// Now tells the time, to refresh the token before it expires
	// (default time.Now).
	Now func() time.Time
}

// Client speaks to one portal as one account. It is safe for concurrent
// use.
type Client struct {
	base *url.URL
	cfg  Config

	mu    sync.Mutex
	token Token
}

// Token is an OAuth2 token of the portal.
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Expiry is when the access token expires, by the client's clock.
	Expiry time.Time `json:"expiry"`
}

// refreshMargin is how long before its expiry a token is refreshed: a
// request sent just before would arrive with an expired token.
const refreshMargin = time.Minute

// maxAnswer bounds what the client reads of an answer.
const maxAnswer = 64 << 20

// New returns a client of the portal cfg names. It sends nothing until the
// first call.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("portal URL %q: want http:// or https:// and a host", cfg.URL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("the portal's robot client id and secret are needed")
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("a password is needed for %s", cfg.Username)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: time.Minute}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{base: u, cfg: cfg}, nil
}

// URL is the portal's base URL.
func (c *Client) URL() string { return c.base.String() }

// Error is an answer of the portal other than success.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Reason is the portal's explanation: the "error" of its JSON, or the
	// OAuth2 error_description.
	Reason string
	// Code is the OAuth2 error code (invalid_grant, ...) of the token
	// endpoints; empty elsewhere.
	Code string
	// RetryAfter is how long the portal asks to wait (429), else zero.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	reason := e.Reason
	if e.Code != "" {
		reason = strings.TrimSuffix(e.Code+": "+reason, ": ")
	}
	return fmt.Sprintf("portal answered %d %s: %s", e.Status, http.StatusText(e.Status), reason)
}

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// IsBadRequest reports whether the portal refused the request's input (400).
func IsBadRequest(err error) bool { return hasStatus(err, http.StatusBadRequest) }

// IsUnauthorized reports whether the credentials or token were refused (401).
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports whether the account may not do this (403).
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsNotFound reports whether the object does not exist (404).
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether the object changed meanwhile; try again (409).
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsUnavailable reports whether the portal has no capacity for the request
// or its database is unavailable: try again later (503).
func IsUnavailable(err error) bool { return hasStatus(err, http.StatusServiceUnavailable) }

// Token returns a valid access token, logging in or refreshing as needed.
func (c *Client) Token(ctx context.Context) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token.AccessToken != "" && c.cfg.Now().Add(refreshMargin).Before(c.token.Expiry) {
		return c.token, nil
	}
	return c.renewLocked(ctx, c.token.AccessToken)
}

// Login logs in anew, dropping the token the client had.
func (c *Client) Login(ctx context.Context) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = Token{}
	return c.renewLocked(ctx, "")
}

// renew replaces the access token stale, unless another call did already.
func (c *Client) renew(ctx context.Context, stale string) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token.AccessToken != "" && c.token.AccessToken != stale {
		return c.token, nil
	}
	return c.renewLocked(ctx, stale)
}

// renewLocked refreshes the token, or logs in when there is no refresh
// token or the portal refuses it (it expired, or was used already).
func (c *Client) renewLocked(ctx context.Context, stale string) (Token, error) {
	if c.token.AccessToken == stale && c.token.RefreshToken != "" {
		t, err := c.grant(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.token.RefreshToken}})
		if err == nil {
			c.token = t
			return t, nil
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != "invalid_grant" {
			return Token{}, err
		}
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.cfg.Username != "" {
		form = url.Values{"grant_type": {"password"}, "username": {c.cfg.Username}, "password": {c.cfg.Password}}
	}
	t, err := c.grant(ctx, form)
	if err != nil {
		c.token = Token{}
		return Token{}, err
	}
	c.token = t
	return t, nil
}

// grant asks the token endpoint for a token.
func (c *Client) grant(ctx context.Context, form url.Values) (Token, error) {
	var t Token
	sent := c.cfg.Now()
	if err := c.oauth(ctx, "/oauth2/token/", form, &t); err != nil {
		return Token{}, err
	}
	if t.AccessToken == "" {
		return Token{}, errors.New("the portal's token answer has no access_token")
	}
	t.Expiry = sent.Add(time.Duration(t.ExpiresIn) * time.Second)
	return t, nil
}

// Revoke revokes a token of the client's OAuth client (RFC 7009); the
// portal answers alike whether it knew the token or not.
func (c *Client) Revoke(ctx context.Context, token string) error {
	return c.oauth(ctx, "/oauth2/revoke-token/", url.Values{"token": {token}}, nil)
}

// Logout revokes the client's tokens.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	t := c.token
	c.token = Token{}
	c.mu.Unlock()
	for _, tok := range []string{t.AccessToken, t.RefreshToken} {
		if tok != "" {
			if err := c.Revoke(ctx, tok); err != nil {
				return err
			}
		}
	}
	return nil
}

// oauth posts form to a token endpoint, the client authenticated by HTTP
// Basic with its id and secret form-encoded (RFC 6749 §2.3.1).
func (c *Client) oauth(ctx context.Context, path string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	return c.send(req, out)
}

// call sends an API request with the client's token and decodes the JSON
// answer into out. A 401 renews the token and tries once more: the token
// may have been revoked or have expired by the portal's clock.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	target := c.base.String() + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	tok, err := c.Token(ctx)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		err = c.send(req, out)
		if try > 0 || !IsUnauthorized(err) {
			return err
		}
		if tok, err = c.renew(ctx, tok.AccessToken); err != nil {
			return err
		}
	}
}

// send sends req and decodes a successful JSON answer into out (when not
// nil), or returns the portal's error.
func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, raw)
	}
	if out == nil {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("%s %s: answer of type %q, not JSON", req.Method, req.URL.Path, resp.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// answerError reads the portal's error: {"error": reason}, or an OAuth2
// {"error": code, "error_description": reason}.
func answerError(resp *http.Response, raw []byte) error {
	e := &Error{Status: resp.StatusCode}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Reason = body.Error
		if strings.HasPrefix(resp.Request.URL.Path, "/oauth2/") {
			e.Code, e.Reason = body.Error, body.Description
		}
	} else {
		e.Reason = strings.TrimSpace(string(raw))
		if len(e.Reason) > 200 {
			e.Reason = strings.ToValidUTF8(e.Reason[:200], "") + "…"
		}
	}
	if s, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil && s > 0 {
		e.RetryAfter = s
	}
	return e
}
