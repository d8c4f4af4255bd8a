package broker

import (
	"context"
	"errors"

	"github.com/portico-dev/portico/internal/store"
)

// SessionExists reports whether a session of this name exists and has not
// ended: its origin is one the portal serves, so one it may obtain a
// certificate for. Anybody may ask, as anybody may open the host name.
func (b *Broker) SessionExists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := b.store.View(ctx, func(tx store.Tx) error {
		s, err := tx.Session(name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		ok = err == nil && s.State != store.Stopped
		return err
	})
	return ok, err
}
