package broker

import (
	"context"
	"errors"
	"fmt"

	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// Config passwords (the session host trusts whoever knows its session's)
// are kept sealed in the database, under a key the database does not hold:
// a stolen copy of the database, or a reader of its backups, does not get
// into the sessions. They are opened only where they are used: to start a
// host, to tell it its owner, to forward a request to it, and for the
// session's config endpoint.

// newPassword makes up the config password of a new session, sealed for
// storage.
func (b *Broker) newPassword(session string) string {
	return b.secrets.Seal(secret.Alnum(32), session)
}

// configPassword opens the stored config password of s. Rows written
// before passwords were sealed (or by an older replica during an upgrade)
// hold them in clear text, which is returned as it is.
func (b *Broker) configPassword(s store.Session) (string, error) {
	pw, err := b.secrets.Open(s.Password, s.Name)
	if err != nil {
		return "", fmt.Errorf("config password of session %s: %w", s.Name, err)
	}
	return pw, nil
}

// SealPasswords seals the config passwords still stored in clear text,
// the upgrade of a database from before sealing, and refuses to go on when
// a live session's password was sealed with another key: a replica given
// another key than the others could start, reach and serve none of their
// sessions. Portals run it at start, before serving.
func (b *Broker) SealPasswords(ctx context.Context) error {
	const attempts = 5
	var err error
	for range attempts {
		// A replica's reconciler may update a row meanwhile: the
		// optimistic update then fails and the pass runs again.
		err = b.store.Update(ctx, func(tx store.Tx) error {
			list, err := tx.FindSessions(store.SessionQuery{})
			if err != nil {
				return err
			}
			for _, s := range list {
				if id, sealed := secret.Sealed(s.Password); sealed {
					if id != b.secrets.ID() && s.State != store.Stopped {
						return fmt.Errorf("the config password of session %s was sealed with secret key %s, but this portal has key %s: "+
							"give every replica of a database the same key (--secret-key-file or PORTICO_SECRET_KEY)", s.Name, id, b.secrets.ID())
					}
					continue
				}
				s.Password = b.secrets.Seal(s.Password, s.Name)
				if err := tx.UpdateSession(&s); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return err
}
