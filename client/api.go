package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Portal is the portal as the catalog describes it.
type Portal struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
	UID        string            `json:"uid"`
	Generation int64             `json:"generation"`
	URL        string            `json:"url"`
	Sessions   struct {
		Maximum    int `json:"maximum"` // 0: no limit
		Registered int `json:"registered"`
		Anonymous  int `json:"anonymous"`
		Allocated  int `json:"allocated"`
	} `json:"sessions"`
}

// Workshop describes the workshop of an environment.
type Workshop struct {
	// Name is, in the catalog, the catalog name (an alias or the
	// workshop's name); in an environment's status, the workshop's name.
	Name        string            `json:"name"`
	ID          string            `json:"id,omitempty"`
	Resource    string            `json:"resource,omitempty"` // in the catalog: the workshop's name
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Vendor      string            `json:"vendor"`
	Authors     []string          `json:"authors"`
	Difficulty  string            `json:"difficulty"`
	Duration    string            `json:"duration"`
	Tags        []string          `json:"tags"`
	Labels      map[string]string `json:"labels"`
	Logo        string            `json:"logo"`
	URL         string            `json:"url"`
}

// Session is a session in the catalog, an environment's status or a
// user's list of sessions.
type Session struct {
	Name        string    `json:"name"`
	State       string    `json:"state,omitempty"` // STARTING, WAITING, RUNNING, STOPPING
	Namespace   string    `json:"namespace"`
	User        string    `json:"user,omitempty"`
	Workshop    string    `json:"workshop,omitempty"`    // in a user's sessions
	Environment string    `json:"environment,omitempty"` // in a user's sessions
	Started     time.Time `json:"started"`
	Expires     time.Time `json:"expires,omitzero"` // zero: never
	Countdown   int       `json:"countdown,omitempty"`
	Extendable  bool      `json:"extendable,omitempty"`
}

// Environment is a workshop environment with its counts.
type Environment struct {
	Name      string    `json:"name"`
	State     string    `json:"state"` // STARTING, RUNNING, STOPPING, STOPPED
	Workshop  Workshop  `json:"workshop"`
	Duration  int       `json:"duration"` // seconds
	Capacity  int       `json:"capacity"`
	Reserved  int       `json:"reserved"`
	Allocated int       `json:"allocated"`
	Available int       `json:"available"`
	Sessions  []Session `json:"sessions,omitempty"`
}

// Catalog is the answer of the catalog's environments.
type Catalog struct {
	Portal       Portal        `json:"portal"`
	Environments []Environment `json:"environments"`
}

// CatalogOptions filter the catalog.
type CatalogOptions struct {
	Names    []string          // workshop names
	Labels   map[string]string // labels the environments must have
	Sessions bool              // robots: list the allocated sessions
	States   []string          // robots: these states rather than RUNNING
}

// Environments lists the catalog's environments.
func (c *Client) Environments(ctx context.Context, opts CatalogOptions) (*Catalog, error) {
	q := url.Values{"name": opts.Names, "state": opts.States}
	for k, v := range opts.Labels {
		q.Set("labels["+k+"]", v)
	}
	if opts.Sessions {
		q.Set("sessions", "true")
	}
	var out Catalog
	return &out, c.call(ctx, "GET", "/workshops/catalog/environments/", q, nil, &out)
}

// CatalogWorkshop is a workshop of the catalog with its environment.
type CatalogWorkshop struct {
	Workshop
	Environment Environment `json:"environment"`
}

// WorkshopCatalog is the answer of the catalog's workshops.
type WorkshopCatalog struct {
	Portal    Portal            `json:"portal"`
	Workshops []CatalogWorkshop `json:"workshops"`
}

// Workshops lists the catalog's workshops.
func (c *Client) Workshops(ctx context.Context) (*WorkshopCatalog, error) {
	var out WorkshopCatalog
	return &out, c.call(ctx, "GET", "/workshops/catalog/workshops/", nil, nil, &out)
}

// EnvironmentStatus returns an environment's state and counts (robots),
// with its allocated sessions when sessions is set.
func (c *Client) EnvironmentStatus(ctx context.Context, name string, sessions bool) (*Environment, error) {
	var q url.Values
	if sessions {
		q = url.Values{"sessions": {"true"}}
	}
	var out Environment
	return &out, c.call(ctx, "GET", "/workshops/environment/"+url.PathEscape(name)+"/status/", q, nil, &out)
}

// SessionRequest asks for a session for a user.
type SessionRequest struct {
	// User is the username; empty: a new user of the robot's client.
	User      string
	Email     string
	FirstName string
	LastName  string
	// IndexURL is where the browser goes when the session ends (required
	// unless the portal has an index).
	IndexURL     string
	AnalyticsURL string
	// Session names a session the user holds, to get it back.
	Session string
	// Timeout is how long the activation URL is good for (default: the
	// portal's, 60 s).
	Timeout time.Duration
	// Parameters become environment variables of the session.
	Parameters []Parameter
}

// Parameter is a request parameter of a session.
type Parameter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Allocation is a session given to a user.
type Allocation struct {
	Name        string `json:"name"`
	User        string `json:"user"`
	URL         string `json:"url"` // the activation path, relative to the portal
	Namespace   string `json:"namespace"`
	Workshop    string `json:"workshop"`
	Environment string `json:"environment"`
}

// RequestSession allocates a session of the environment (its name, or its
// workshop's catalog name) to a user (robots).
func (c *Client) RequestSession(ctx context.Context, environment string, r SessionRequest) (*Allocation, error) {
	q := url.Values{}
	for k, v := range map[string]string{"user": r.User, "email": r.Email, "first_name": r.FirstName,
		"last_name": r.LastName, "index_url": r.IndexURL, "analytics_url": r.AnalyticsURL, "session": r.Session} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if r.Timeout > 0 {
		q.Set("timeout", strconv.Itoa(int(r.Timeout.Seconds())))
	}
	var body any
	if len(r.Parameters) > 0 {
		body = struct {
			Parameters []Parameter `json:"parameters"`
		}{r.Parameters}
	}
	var out Allocation
	return &out, c.call(ctx, "POST", "/workshops/environment/"+url.PathEscape(environment)+"/request/", q, body, &out)
}

// ActivationURL is the absolute URL that activates an allocation in the
// user's browser.
func (c *Client) ActivationURL(a *Allocation) string {
	u, err := c.base.Parse(a.URL)
	if err != nil {
		return c.base.String() + a.URL
	}
	return u.String()
}

// Schedule is a session's state and times.
type Schedule struct {
	Status     string    `json:"status"` // STARTING, WAITING, RUNNING, STOPPING
	Started    time.Time `json:"started"`
	Expires    time.Time `json:"expires"` // zero: never
	Extended   bool      `json:"extended,omitempty"`
	Expiring   bool      `json:"expiring"`
	Countdown  int       `json:"countdown,omitempty"` // seconds left
	Extendable bool      `json:"extendable,omitempty"`
}

func sessionPath(name, endpoint string) string {
	return "/workshops/session/" + url.PathEscape(name) + "/" + endpoint + "/"
}

// SessionSchedule returns a session's state and times.
func (c *Client) SessionSchedule(ctx context.Context, name string) (*Schedule, error) {
	var out Schedule
	return &out, c.call(ctx, "GET", sessionPath(name, "schedule"), nil, nil, &out)
}

// ExtendSession extends a session when it is near its end; Extended tells
// whether time was added.
func (c *Client) ExtendSession(ctx context.Context, name string) (*Schedule, error) {
	var out Schedule
	return &out, c.call(ctx, "GET", sessionPath(name, "extend"), nil, nil, &out)
}

// Termination is the answer to ending a session.
type Termination struct {
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

// TerminateSession ends a session now.
func (c *Client) TerminateSession(ctx context.Context, name string) (*Termination, error) {
	var out Termination
	return &out, c.call(ctx, "GET", sessionPath(name, "terminate"), nil, nil, &out)
}

// SessionConfig is the URL of a session and the password of its config
// endpoints.
type SessionConfig struct {
	URL      string `json:"url"`
	Password string `json:"password"`
}

// SessionConfig returns a session's URL and config password.
func (c *Client) SessionConfig(ctx context.Context, name string) (*SessionConfig, error) {
	var out SessionConfig
	return &out, c.call(ctx, "GET", sessionPath(name, "config"), nil, nil, &out)
}

// UserSessions lists a user's live sessions (robots).
func (c *Client) UserSessions(ctx context.Context, user string) ([]Session, error) {
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	return out.Sessions, c.call(ctx, "GET", "/workshops/user/"+url.PathEscape(user)+"/sessions/", nil, nil, &out)
}
