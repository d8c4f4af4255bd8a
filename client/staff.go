package client

import (
	"context"
	"net/url"
	"time"
)

// The staff endpoints of Portico, under /portico/api/v1/: the client must
// be logged in as a staff account.

// StaffSession is a session as staff see it.
type StaffSession struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	User        string    `json:"user"` // empty: a reserved session
	Environment string    `json:"environment"`
	Workshop    string    `json:"workshop"`
	Created     time.Time `json:"created"`
	Started     time.Time `json:"started"`
	Expires     time.Time `json:"expires,omitzero"` // zero: never
	Countdown   int       `json:"countdown,omitempty"`
	Extendable  bool      `json:"extendable,omitempty"`
	URL         string    `json:"url,omitempty"` // from Session only
}

// Sessions lists the live sessions, newest first, those whose name,
// environment, workshop or owner contains search only (ignoring case).
func (c *Client) Sessions(ctx context.Context, search string) ([]StaffSession, error) {
	var q url.Values
	if search != "" {
		q = url.Values{"q": {search}}
	}
	var out struct {
		Sessions []StaffSession `json:"sessions"`
	}
	return out.Sessions, c.call(ctx, "GET", "/portico/api/v1/sessions/", q, nil, &out)
}

// Session returns one live session.
func (c *Client) Session(ctx context.Context, name string) (*StaffSession, error) {
	var out StaffSession
	return &out, c.call(ctx, "GET", "/portico/api/v1/sessions/"+url.PathEscape(name)+"/", nil, nil, &out)
}

// AllEnvironments lists the environments that are not stopped, with their
// sessions.
func (c *Client) AllEnvironments(ctx context.Context) ([]Environment, error) {
	var out struct {
		Environments []Environment `json:"environments"`
	}
	return out.Environments, c.call(ctx, "GET", "/portico/api/v1/environments/", nil, nil, &out)
}

// RefreshEnvironment replaces an environment by a fresh one of the same
// workshop, and returns the environments after it.
func (c *Client) RefreshEnvironment(ctx context.Context, name string) ([]Environment, error) {
	var out struct {
		Environments []Environment `json:"environments"`
	}
	return out.Environments, c.call(ctx, "POST", "/portico/api/v1/environments/"+url.PathEscape(name)+"/refresh/", nil, nil, &out)
}

// User is an account of the portal.
type User struct {
	Username string    `json:"username"`
	Email    string    `json:"email"`
	Role     string    `json:"role"`   // admin, robot, registered, anonymous
	Origin   string    `json:"origin"` // signup, anonymous, portal, client
	Created  time.Time `json:"created"`
	Sessions int       `json:"sessions"` // live sessions held
}

// Users lists the newest users, those whose name or email contains search
// only.
func (c *Client) Users(ctx context.Context, search string) ([]User, error) {
	var q url.Values
	if search != "" {
		q = url.Values{"q": {search}}
	}
	var out struct {
		Users []User `json:"users"`
	}
	return out.Users, c.call(ctx, "GET", "/portico/api/v1/users/", q, nil, &out)
}
