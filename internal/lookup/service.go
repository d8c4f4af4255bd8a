// Package lookup is Educates' lookup service in Portico: a REST API in
// front of several training portals, through which a custom front end
// logs in as a client, lists the workshops of a tenant and requests
// sessions, without knowing which portal serves them. Where Educates
// learns portals, environments and sessions by watching Kubernetes
// resources, this service asks each portal's REST API (the catalog, as
// the portal's robot) when a request needs them.
package lookup

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/ratelimit"
	"github.com/portico-dev/portico/internal/secret"
)

// Backend is a portal as the service sees it: its state and the request
// of a session.
type Backend interface {
	// State returns the portal, its environments and their sessions.
	State(ctx context.Context) (*PortalState, error)
	// Request allocates a session of an environment, or gives back the
	// user's session when r.Session names it.
	Request(ctx context.Context, environment string, r SessionRequest) (*Allocation, error)
}

// PortalState is a portal's state as the lookup service needs it.
type PortalState struct {
	UID          string
	Generation   int64
	Labels       map[string]string
	URL          string // the portal's public URL
	Capacity     int    // 0: no limit
	Allocated    int
	Environments []EnvironmentState
}

// EnvironmentState is a workshop environment of a portal.
type EnvironmentState struct {
	Name        string
	Workshop    string
	Title       string
	Description string
	Labels      map[string]string
	Capacity    int // 0: no limit
	Reserved    int
	Allocated   int
	Available   int
	Phase       string // Educates' phase: Starting, Running, Stopping, Stopped
	Sessions    []SessionState
}

// SessionState is a session of an environment.
type SessionState struct {
	Name  string
	Phase string // Educates' phase: Allocated, Available (a reserve), ...
	User  string
}

// SessionRequest is the request of a session on behalf of a front end's
// user.
type SessionRequest struct {
	User       string
	Session    string
	IndexURL   string
	Parameters []Parameter
}

// Parameter is a workshop parameter ("workshopParams").
type Parameter struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Allocation is a session handed to a user.
type Allocation struct {
	Session       string
	ActivationURL string
}

// Options wire a Service.
type Options struct {
	// Backend returns the backend of a configured portal.
	Backend func(PortalConfig) (Backend, error)
	// Now tells the time (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// PortalTimeout bounds each call to a portal (default 20 s).
	PortalTimeout time.Duration
}

// Service is the lookup service: its clients, tenants and portals.
type Service struct {
	key       []byte
	now       func() time.Time
	log       *slog.Logger
	timeout   time.Duration
	clients   []*account
	tenants   []Tenant
	clusters  []*cluster
	passwords *ratelimit.Passwords
}

type account struct {
	Client
	digest [32]byte // of the password, compared in constant time

	mu sync.Mutex
	// identity goes into the tokens the client gets; logging out changes
	// it, which revokes them all (Educates' revoke_tokens).
	identity string
}

type cluster struct {
	name    string
	labels  map[string]string
	portals []*portal
}

type portal struct {
	name    string
	cluster *cluster
	url     string
	labels  map[string]string // from the configuration, over the portal's own
	backend Backend
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }

// New returns the service that cfg describes.
func New(cfg *Config, opts Options) (*Service, error) {
	s := &Service{now: opts.Now, log: opts.Logger, timeout: cmp.Or(opts.PortalTimeout, 20*time.Second),
		tenants: cfg.Tenants}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.passwords = ratelimit.NewPasswords(clockFunc(s.now))
	// Tokens are signed with a key of this process only: a token never
	// outlives a logout that revoked it, at the price of a restart logging
	// every client out.
	s.key = make([]byte, 32)
	rand.Read(s.key)
	for _, c := range cfg.Clients {
		s.clients = append(s.clients, &account{Client: c, digest: sha256.Sum256([]byte(c.Password.Value)),
			identity: secret.UUID()})
	}
	for _, cc := range cfg.Clusters {
		cl := &cluster{name: cc.Name, labels: labelMap(cc.Labels)}
		for _, pc := range cc.Portals {
			b, err := opts.Backend(pc)
			if err != nil {
				return nil, err
			}
			cl.portals = append(cl.portals, &portal{name: pc.Name, cluster: cl, url: pc.URL,
				labels: labelMap(pc.Labels), backend: b})
		}
		s.clusters = append(s.clusters, cl)
	}
	return s, nil
}

// Caller is an authenticated client.
type Caller struct {
	client *account
}

// LoginAnswer is the answer to a login, as Educates gives it.
type LoginAnswer struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresAt   int64    `json:"expires_at"`
	Roles       []string `json:"roles"`
	Tenants     []string `json:"tenants"`
}

// Login checks a client's name and password, from address (for the limit
// of wrong passwords), and gives a token.
func (s *Service) Login(name, password, address string) (*LoginAnswer, error) {
	if err := s.passwords.Attempt(name, address); err != nil {
		return nil, err
	}
	c := s.client(name)
	digest := sha256.Sum256([]byte(password))
	// The digest of an unknown client is compared too, so that the time
	// taken does not tell which clients exist.
	want := [32]byte{}
	if c != nil {
		want = c.digest
	}
	if subtle.ConstantTimeCompare(digest[:], want[:]) != 1 || c == nil {
		return nil, errUnauthorized("Invalid username/password")
	}
	s.passwords.Succeeded(name, address)
	c.mu.Lock()
	identity := c.identity
	c.mu.Unlock()
	exp := s.now().Add(tokenLifetime).Unix()
	return &LoginAnswer{
		AccessToken: signToken(s.key, claims{Subject: c.Name, Identity: identity, Expires: exp}),
		TokenType:   "Bearer", ExpiresAt: exp,
		Roles: nonNil(c.Roles), Tenants: nonNil(c.Tenants),
	}, nil
}

// Authenticate returns the caller a token belongs to.
func (s *Service) Authenticate(token string) (*Caller, error) {
	cl, err := parseToken(s.key, token, s.now())
	if err != nil {
		return nil, err
	}
	c := s.client(cl.Subject)
	if c == nil {
		return nil, errUnauthorized("Client details not found")
	}
	c.mu.Lock()
	ok := subtle.ConstantTimeCompare([]byte(c.identity), []byte(cl.Identity)) == 1
	c.mu.Unlock()
	if !ok {
		return nil, errUnauthorized("Client identity does not match")
	}
	return &Caller{client: c}, nil
}

// Logout revokes every token of the caller's client.
func (s *Service) Logout(c *Caller) {
	c.client.mu.Lock()
	c.client.identity = secret.UUID()
	c.client.mu.Unlock()
}

func (s *Service) client(name string) *account {
	for _, c := range s.clients {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// roles returns the roles of the caller among accepted, or Forbidden.
func roles(c *Caller, accepted ...string) ([]string, error) {
	var matched []string
	for _, r := range accepted {
		if slices.Contains(c.client.Roles, r) {
			matched = append(matched, r)
		}
	}
	if len(matched) == 0 {
		return nil, errForbidden("Client access not permitted")
	}
	return matched, nil
}

func (c *account) allowedTenant(name string) bool { return matchAny(c.Tenants, name) }

func (s *Service) tenant(name string) *Tenant {
	for i := range s.tenants {
		if s.tenants[i].Name == name {
			return &s.tenants[i]
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
