// Package dbclock keeps a portal replica on its database's time.
//
// Replicas write times that other replicas compare with their own: the
// deadline of a session, the expiry of a token, when a reserve was last
// topped up. A replica whose machine clock is minutes off would expire
// sessions early, keep them late, or hand out tokens already dead. The
// database is the one clock all replicas share, so each reads it every
// few seconds and keeps the difference to its own: a machine whose clock
// is off still writes and compares the database's time.
package dbclock

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Warn is how far this machine's clock may be from the database's before
// the portal says so in its log.
const Warn = time.Second

// Base is the clock of this machine.
type Base interface{ Now() time.Time }

// Clock is Base shifted by its last measured difference to the database.
type Clock struct {
	base   Base
	source func(context.Context) (time.Time, error)
	log    *slog.Logger
	offset atomic.Int64 // time.Duration to add to base
}

// New measures the database's time once through source, so that nothing
// is written with this machine's time before: a failure is returned.
func New(ctx context.Context, base Base, source func(context.Context) (time.Time, error), log *slog.Logger) (*Clock, error) {
	c := &Clock{base: base, source: source, log: log}
	return c, c.Sync(ctx)
}

// Now is the database's time as last measured, advanced by this machine's
// clock since.
func (c *Clock) Now() time.Time {
	return c.base.Now().Add(time.Duration(c.offset.Load()))
}

// Offset is the difference last measured: the database's time minus this
// machine's.
func (c *Clock) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Sync measures the difference again. The database's answer is taken to
// be the time halfway through the round trip, so the error is at most half
// of it.
func (c *Clock) Sync(ctx context.Context) error {
	before := c.base.Now()
	t, err := c.source(ctx)
	if err != nil {
		return err
	}
	after := c.base.Now()
	offset := t.Sub(before.Add(after.Sub(before) / 2))
	old := time.Duration(c.offset.Swap(int64(offset)))
	if abs(offset) >= Warn && abs(offset-old) >= Warn {
		c.log.Warn("this machine's clock is off the database's: the portal keeps the database's time",
			"offset", offset.Round(time.Millisecond))
	}
	return nil
}

// Run measures the difference every period until ctx ends; while the
// database does not answer, the last difference stands.
func (c *Clock) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, period)
			if err := c.Sync(sctx); err != nil && ctx.Err() == nil {
				c.log.Debug("reading the database's time", "err", err)
			}
			cancel()
		}
	}
}

func abs(d time.Duration) time.Duration { return max(d, -d) }
