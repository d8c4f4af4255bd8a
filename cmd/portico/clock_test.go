package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
)

func TestBrokerClockOffset(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(clockOffsetEnv, "")
	if c, err := machineClock(log); err != nil || c != broker.SystemClock {
		t.Errorf("without the variable: %v, %v", c, err)
	}
	t.Setenv(clockOffsetEnv, "-3m")
	c, err := machineClock(log)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.Now()); d > -3*time.Minute+time.Second || d < -3*time.Minute-time.Second {
		t.Errorf("clock shifted by %s, want -3m", d)
	}
	t.Setenv(clockOffsetEnv, "soon")
	if _, err := machineClock(log); err == nil || !strings.Contains(err.Error(), clockOffsetEnv) {
		t.Errorf("a bad offset: %v", err)
	}
}
