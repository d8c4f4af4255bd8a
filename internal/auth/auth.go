// Package auth knows who is calling: the portal's users and their
// passwords, the OAuth2 clients, and the bearer tokens issued to them
// (spec §3.1). Tokens are random, stored by their hash only, and refresh
// tokens rotate on use.
package auth

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/ratelimit"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Lifetimes of Educates' OAuth provider.
const (
	AccessTTL  = 36000 * time.Second
	RefreshTTL = 30 * 24 * time.Hour
	// Scope is the only scope, and every token has it.
	Scope = "user:info"
)

// Error is an OAuth2 error response (RFC 6749 §5.2).
type Error struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

var (
	errInvalidClient = &Error{401, "invalid_client", "Client authentication failed."}
	errInvalidGrant  = &Error{400, "invalid_grant", "Invalid credentials given."}
	// ErrUnauthenticated: no valid bearer token.
	ErrUnauthenticated = errors.New("authentication credentials were not provided or are not valid")
)

// Clock tells the time.
type Clock interface{ Now() time.Time }

// Service authenticates users, clients and tokens.
type Service struct {
	store store.Store
	clock Clock
	// cost of bcrypt; tests lower it.
	cost int
	// passwords limits wrong passwords, for the web login and the
	// password grant alike.
	passwords *ratelimit.Passwords
	// hashing bounds the bcrypt work running at once to half the CPUs
	// (at least one): each check costs tens of milliseconds of CPU, and
	// a flood of wrong secrets from many addresses, each within its
	// limits, must leave the rest of the portal CPUs to run on.
	hashing chan struct{}
}

// New returns a Service on st.
func New(st store.Store, clock Clock) *Service {
	return &Service{store: st, clock: clock, cost: bcrypt.DefaultCost, passwords: ratelimit.NewPasswords(clock),
		hashing: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
}

// SetHashCost sets the bcrypt cost of new password hashes (tests use the
// minimum to stay fast).
func (s *Service) SetHashCost(cost int) { s.cost = cost }

// HashPassword hashes a password for storage.
func (s *Service) HashPassword(password string) (string, error) {
	s.hashing <- struct{}{}
	defer func() { <-s.hashing }()
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	return string(h), err
}

// matches reports whether secret is the one hash was made from, in its
// turn among the bcrypt work of the process.
func (s *Service) matches(ctx context.Context, hash []byte, secret string) (bool, error) {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-s.hashing }()
	return bcrypt.CompareHashAndPassword(hash, []byte(secret)) == nil, nil
}

// Generated holds the credentials Bootstrap made up because the
// definitions did not give them: shown once, in the start-up log.
type Generated struct {
	AdminPassword string
	RobotPassword string
	ClientID      string
	ClientSecret  string
}

// Bootstrap makes sure the admin and robot accounts and the robot's OAuth
// client exist. Credentials from the definitions win; missing ones are
// generated on the first start and kept in the database afterwards, so
// tokens and front-end configuration survive restarts.
func (s *Service) Bootstrap(ctx context.Context, p config.Portal) (Generated, error) {
	var gen Generated
	err := s.store.Update(ctx, func(tx store.Tx) error {
		gen = Generated{}
		var err error
		if _, gen.AdminPassword, err = s.ensureAccount(tx, p.Admin, store.RoleAdmin); err != nil {
			return err
		}
		robot, pw, err := s.ensureAccount(tx, p.Robot, store.RoleRobot)
		if err != nil {
			return err
		}
		gen.RobotPassword = pw
		gen.ClientID, gen.ClientSecret, err = s.ensureClient(tx, p.RobotClient, robot.ID)
		return err
	})
	return gen, err
}

// ensureAccount returns the account, and the password when it generated
// one.
func (s *Service) ensureAccount(tx store.Tx, c config.Credentials, role store.Role) (store.User, string, error) {
	u, err := tx.User(c.Username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{Username: c.Username, Role: role, Origin: store.OriginPortal, Created: s.clock.Now()}
		password := c.Password
		if password == "" {
			password = secret.Alnum(32)
		}
		if u.PasswordHash, err = s.HashPassword(password); err != nil {
			return u, "", err
		}
		if err := tx.InsertUser(&u); err != nil {
			return u, "", err
		}
		if c.Password == "" {
			return u, password, nil
		}
		return u, "", nil
	case err != nil:
		return u, "", err
	case u.Role != role:
		return u, "", fmt.Errorf("account %q exists with role %s, cannot use it as %s", c.Username, u.Role, role)
	}
	if c.Password != "" && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(c.Password)) != nil {
		if u.PasswordHash, err = s.HashPassword(c.Password); err != nil {
			return u, "", err
		}
		return u, "", tx.UpdateUser(&u)
	}
	return u, "", nil
}

// ensureClient makes the robot's OAuth client match the definitions,
// generating what they leave out on the first start only. It returns the
// id and secret when it generated the secret, for the start-up log.
func (s *Service) ensureClient(tx store.Tx, c config.Client, robot int64) (string, string, error) {
	existing, err := tx.ClientOf(robot)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", "", err
	}
	id := cmp.Or(c.ID, existing.ID, secret.Alnum(32))
	if id == existing.ID && (c.Secret == "" ||
		bcrypt.CompareHashAndPassword([]byte(existing.SecretHash), []byte(c.Secret)) == nil) {
		return "", "", nil
	}
	sec := cmp.Or(c.Secret, secret.Alnum(32))
	hash, err := s.HashPassword(sec)
	if err != nil {
		return "", "", err
	}
	if existing.ID != "" && existing.ID != id {
		if err := tx.DeleteClient(existing.ID); err != nil {
			return "", "", err
		}
	}
	if err := tx.UpsertClient(store.Client{ID: id, SecretHash: hash, User: robot}); err != nil {
		return "", "", err
	}
	if c.Secret != "" {
		return "", "", nil
	}
	return id, sec, nil
}

// TokenResponse is the body of a successful token request.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// ClientCredentials authenticate an OAuth client.
type ClientCredentials struct {
	ID     string
	Secret string
}

// client checks a client's credentials outside any transaction: bcrypt
// takes tens of milliseconds, and a write transaction held that long
// stalls every other write (SQLite has one writer). Educates' robot
// client was public, so a missing secret was accepted; here the secret is
// always required. The caller's write transaction checks with unchanged
// that the client did not change meanwhile.
func (s *Service) client(ctx context.Context, cc ClientCredentials) (store.Client, error) {
	if cc.ID == "" || cc.Secret == "" {
		return store.Client{}, errInvalidClient
	}
	var c store.Client
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		c, err = tx.Client(cc.ID)
		return err
	})
	hash := []byte(c.SecretHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Spend the time a hash check takes, so timing does not tell
		// which client ids exist.
		c, hash = store.Client{}, dummyHash()
	case err != nil:
		return c, err
	}
	ok, err := s.matches(ctx, hash, cc.Secret)
	if err != nil {
		return c, err
	}
	if !ok || c.ID == "" {
		return c, errInvalidClient
	}
	return c, nil
}

// unchanged makes sure, inside a write transaction, that the client whose
// secret was checked before it began still has that secret: a rotation in
// between wins.
func unchanged(tx store.Tx, c store.Client) (store.Client, error) {
	now, err := tx.Client(c.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && now.SecretHash != c.SecretHash {
		return now, errInvalidClient
	}
	return now, err
}

// dummyHash is made on first use: at package init it cost every process of
// the binary, each session host included, 100 ms of CPU.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("portico"), bcrypt.DefaultCost)
	return h
})

// Password checks a username and password, for the web login and the
// password grant alike, outside any transaction and within the limits of
// wrong passwords per account and client address (the client that ctx
// carries, ratelimit.WithClient): a *ratelimit.Refused when they are
// spent.
func (s *Service) Password(ctx context.Context, username, password string) (store.User, error) {
	var u store.User
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.User(username)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		u = store.User{}
	case err != nil:
		return u, err
	}
	// Failures count against the account itself, whatever spelling of
	// its name found it; names of nobody, by their case-folded spelling.
	account := "name:" + strings.ToLower(username)
	if u.ID != 0 {
		account = "id:" + strconv.FormatInt(u.ID, 10)
	}
	from := ratelimit.ClientOf(ctx)
	if err := s.passwords.Attempt(account, from); err != nil {
		return store.User{}, err
	}
	hash := []byte(u.PasswordHash)
	if u.ID == 0 || u.PasswordHash == "" {
		hash = dummyHash() // the same time, whether the account exists or not
	}
	ok, err := s.matches(ctx, hash, password)
	if err != nil {
		return store.User{}, err
	}
	if !ok || u.ID == 0 || u.PasswordHash == "" {
		return store.User{}, errInvalidGrant
	}
	s.passwords.Succeeded(account, from)
	return u, nil
}

// PasswordGrant is grant_type=password: any user with a password may log
// in; what they may do is decided per endpoint (spec §3.1).
func (s *Service) PasswordGrant(ctx context.Context, cc ClientCredentials, username, password string) (TokenResponse, error) {
	c, err := s.client(ctx, cc)
	if err != nil {
		return TokenResponse{}, err
	}
	u, err := s.Password(ctx, username, password)
	if err != nil {
		return TokenResponse{}, err
	}
	var out TokenResponse
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := unchanged(tx, c); err != nil {
			return err
		}
		// The password checked is still the account's: a change in
		// between wins.
		now, err := tx.UserByID(u.ID)
		if errors.Is(err, store.ErrNotFound) || err == nil && now.PasswordHash != u.PasswordHash {
			return errInvalidGrant
		}
		if err != nil {
			return err
		}
		out, err = s.issue(tx, c.ID, u.ID, true)
		return err
	})
	return out, err
}

// ClientCredentialsGrant is grant_type=client_credentials: the robot's
// client gets a token for the robot without a password (Educates #936). No
// refresh token is issued (RFC 6749 §4.4.3).
func (s *Service) ClientCredentialsGrant(ctx context.Context, cc ClientCredentials) (TokenResponse, error) {
	checked, err := s.client(ctx, cc)
	if err != nil {
		return TokenResponse{}, err
	}
	var out TokenResponse
	err = s.store.Update(ctx, func(tx store.Tx) error {
		c, err := unchanged(tx, checked)
		if err != nil {
			return err
		}
		if c.User == 0 {
			return &Error{400, "unauthorized_client", "The client is not allowed the client_credentials grant."}
		}
		out, err = s.issue(tx, c.ID, c.User, false)
		return err
	})
	return out, err
}

// RefreshGrant is grant_type=refresh_token. The refresh token is used up:
// its grant is revoked and a new pair issued.
func (s *Service) RefreshGrant(ctx context.Context, cc ClientCredentials, refresh string) (TokenResponse, error) {
	c, err := s.client(ctx, cc)
	if err != nil {
		return TokenResponse{}, err
	}
	var out TokenResponse
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := unchanged(tx, c); err != nil {
			return err
		}
		k, err := tx.Token(secret.Hash(refresh))
		if errors.Is(err, store.ErrNotFound) {
			return errInvalidGrant
		}
		if err != nil {
			return err
		}
		if k.Kind != store.RefreshToken || k.Revoked || k.Client != c.ID || !s.clock.Now().Before(k.Expires) {
			return errInvalidGrant
		}
		if err := tx.RevokeGrant(k.Grant); err != nil {
			return err
		}
		out, err = s.issue(tx, c.ID, k.User, true)
		return err
	})
	return out, err
}

func (s *Service) issue(tx store.Tx, client string, user int64, refresh bool) (TokenResponse, error) {
	now := s.clock.Now()
	grant := secret.Alnum(24)
	out := TokenResponse{AccessToken: secret.Token(), ExpiresIn: int(AccessTTL.Seconds()), TokenType: "Bearer", Scope: Scope}
	err := tx.InsertToken(store.Token{Hash: secret.Hash(out.AccessToken), Kind: store.AccessToken, Grant: grant,
		User: user, Client: client, Expires: now.Add(AccessTTL)})
	if err != nil || !refresh {
		return out, err
	}
	out.RefreshToken = secret.Token()
	return out, tx.InsertToken(store.Token{Hash: secret.Hash(out.RefreshToken), Kind: store.RefreshToken, Grant: grant,
		User: user, Client: client, Expires: now.Add(RefreshTTL)})
}

// Revoke revokes a token and the others of its grant (RFC 7009). Unknown
// tokens are not an error.
func (s *Service) Revoke(ctx context.Context, cc ClientCredentials, token string) error {
	c, err := s.client(ctx, cc)
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := unchanged(tx, c); err != nil {
			return err
		}
		k, err := tx.Token(secret.Hash(token))
		if errors.Is(err, store.ErrNotFound) || err == nil && (k.Client != c.ID || k.Kind == store.ActivationToken) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.RevokeGrant(k.Grant)
	})
}

// Bearer returns the user an access token belongs to.
func (s *Service) Bearer(ctx context.Context, token string) (store.User, error) {
	return s.lookup(ctx, token, store.AccessToken, "")
}

// BearerClient returns the user an access token belongs to and the OAuth
// client it was issued to: accounts a robot makes belong to its client.
func (s *Service) BearerClient(ctx context.Context, token string) (store.User, string, error) {
	u, k, err := s.live(ctx, token, store.AccessToken, "")
	return u, k.Client, err
}

// lookup returns the user of a live token of kind, issued for session
// ("" but for visits).
func (s *Service) lookup(ctx context.Context, token string, kind store.TokenKind, session string) (store.User, error) {
	u, _, err := s.live(ctx, token, kind, session)
	return u, err
}

// live returns a live token of kind, issued for session, and its user.
func (s *Service) live(ctx context.Context, token string, kind store.TokenKind, session string) (store.User, store.Token, error) {
	var (
		u store.User
		k store.Token
	)
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		k, err = tx.Token(secret.Hash(token))
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		if k.Kind != kind || k.Revoked || !s.clock.Now().Before(k.Expires) ||
			subtle.ConstantTimeCompare([]byte(k.Session), []byte(session)) != 1 {
			return ErrUnauthenticated
		}
		u, err = tx.UserByID(k.User)
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnauthenticated
		}
		return err
	})
	return u, k, err
}

// CookieName is the cookie of a logged-in browser.
const CookieName = "portico_session"

// BrowserTTL is how long a browser stays logged in.
const BrowserTTL = 12 * time.Hour

// StartBrowser logs a browser in as u and returns the cookie value.
func (s *Service) StartBrowser(ctx context.Context, u store.User) (string, error) {
	value := secret.Token()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return tx.InsertToken(store.Token{Hash: secret.Hash(value), Kind: store.BrowserToken,
			Grant: secret.Alnum(24), User: u.ID, Expires: s.clock.Now().Add(BrowserTTL)})
	})
	return value, err
}

// Browser returns the user a browser cookie belongs to.
func (s *Service) Browser(ctx context.Context, value string) (store.User, error) {
	return s.lookup(ctx, value, store.BrowserToken, "")
}

// EndBrowser logs a browser out.
func (s *Service) EndBrowser(ctx context.Context, value string) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		k, err := tx.Token(secret.Hash(value))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.RevokeGrant(k.Grant)
	})
}
