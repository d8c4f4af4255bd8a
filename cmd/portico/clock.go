package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/dbclock"
	"github.com/portico-dev/portico/internal/store"
)

// clockOffsetEnv shifts the clock the broker of this process reads by a Go
// duration ("-3m", "90s"). It is for tests only, and so not in the usage: a
// harness gives one replica of several the clock of a machine whose time
// is off, without touching the machine's.
const clockOffsetEnv = "PORTICO_TEST_CLOCK_OFFSET"

type offsetClock time.Duration

func (c offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c)) }

// machineClock is the system clock, shifted when the environment asks.
func machineClock(log *slog.Logger) (broker.Clock, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return broker.SystemClock, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", clockOffsetEnv, err)
	}
	log.Warn("the machine's clock is shifted, for a test", "offset", d)
	return offsetClock(d), nil
}

// dbClockPeriod is how often a replica reads the database's time again:
// machine clocks drift by far less than a second in that time.
const dbClockPeriod = 10 * time.Second

// portalClock is the clock of the portal's times (deadlines, expiries): on
// a database several replicas share, that database's, read as they start
// and every dbClockPeriod; on SQLite, where the portal is one process,
// this machine's.
func portalClock(ctx context.Context, log *slog.Logger, db store.Store) (broker.Clock, error) {
	base, err := machineClock(log)
	if err != nil {
		return nil, err
	}
	shared, ok := db.(interface {
		Now(context.Context) (time.Time, error)
	})
	if !ok {
		return base, nil
	}
	c, err := dbclock.New(ctx, base, shared.Now, log)
	if err != nil {
		return nil, fmt.Errorf("reading the database's time: %w", err)
	}
	go c.Run(ctx, dbClockPeriod)
	return c, nil
}
