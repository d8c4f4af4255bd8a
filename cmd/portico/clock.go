package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/portico-dev/portico/internal/broker"
)

// clockOffsetEnv shifts the clock the broker of this process reads by a Go
// duration ("-3m", "90s"). It is for tests only, and so not in the usage: a
// harness gives one replica of several the clock of a machine whose time
// is off, without touching the machine's.
const clockOffsetEnv = "PORTICO_TEST_CLOCK_OFFSET"

type offsetClock time.Duration

func (c offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c)) }

// brokerClock is the system clock, shifted when the environment asks.
func brokerClock(log *slog.Logger) (broker.Clock, error) {
	v := os.Getenv(clockOffsetEnv)
	if v == "" {
		return broker.SystemClock, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", clockOffsetEnv, err)
	}
	log.Warn("the broker's clock is shifted, for a test", "offset", d)
	return offsetClock(d), nil
}
