package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// A session is served from an origin of its own, where the portal's cookie
// never goes. The portal lets a browser in there with a ticket: made on
// the portal's origin for a person it knows, good for one session, once,
// for a minute; taken on the session's origin for a cookie of that origin
// only (a visit). It is the code of an OAuth authorisation-code exchange,
// as Educates' session gateways do it with the portal, without the round
// trip through a separate server.

// VisitCookie is the cookie of a browser on a session's origin.
const VisitCookie = "portico_visit"

// TicketTTL is how long a ticket waits to be taken: the time of a redirect.
const TicketTTL = time.Minute

// Ticket makes a ticket that lets the browser logged in with the cookie
// value browser into session's origin. The visit shares the browser's
// grant: logging out of the portal ends it too.
func (s *Service) Ticket(ctx context.Context, browser, session string) (string, error) {
	value := secret.Token()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		k, err := tx.Token(secret.Hash(browser))
		if errors.Is(err, store.ErrNotFound) || err == nil &&
			(k.Kind != store.BrowserToken || k.Revoked || !s.clock.Now().Before(k.Expires)) {
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		return tx.InsertToken(store.Token{Hash: secret.Hash(value), Kind: store.TicketToken, Grant: k.Grant,
			User: k.User, Session: session, Expires: s.clock.Now().Add(TicketTTL)})
	})
	return value, err
}

// Enter takes a ticket for session and returns the value of the visit
// cookie that replaces it, and whom it lets in. A ticket of another
// session, an old one or one taken already lets nobody in.
func (s *Service) Enter(ctx context.Context, ticket, session string) (string, store.User, error) {
	var (
		value = secret.Token()
		u     store.User
	)
	err := s.store.Update(ctx, func(tx store.Tx) error {
		k, err := tx.TakeToken(secret.Hash(ticket))
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		if k.Kind != store.TicketToken || !s.clock.Now().Before(k.Expires) ||
			subtle.ConstantTimeCompare([]byte(k.Session), []byte(session)) != 1 {
			return ErrUnauthenticated
		}
		if u, err = tx.UserByID(k.User); err != nil {
			return err
		}
		return tx.InsertToken(store.Token{Hash: secret.Hash(value), Kind: store.VisitToken, Grant: k.Grant,
			User: u.ID, Session: session, Expires: s.clock.Now().Add(BrowserTTL)})
	})
	if errors.Is(err, store.ErrNotFound) {
		err = ErrUnauthenticated // the user went away meanwhile
	}
	return value, u, err
}

// Visitor returns whom a visit cookie of session's origin lets in.
func (s *Service) Visitor(ctx context.Context, value, session string) (store.User, error) {
	return s.lookup(ctx, value, store.VisitToken, session)
}
