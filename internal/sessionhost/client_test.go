package sessionhost

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
)

// The client runtimes use speaks the host's own handlers.
func TestClientAgainstTheHost(t *testing.T) {
	h, clock := newTestHost(t, testConfig)
	srv := httptest.NewServer(h.routes())
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := Client{HTTP: srv.Client()}
	ctx := context.Background()

	if err := c.Healthy(ctx, addr); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	clock.advance(90 * time.Second)
	act, err := c.Activity(ctx, addr)
	if err != nil || act.Idle != 90*time.Second || act.LastView != 90*time.Second {
		t.Fatalf("Activity = %+v, %v; want 90 s idle and unseen", act, err)
	}

	alice := runtime.Allocation{User: runtime.User{Username: "alice"}}
	if err := c.Allocate(ctx, addr, "wrong", alice); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Allocate with a wrong secret: %v, want 403", err)
	}
	if err := c.Allocate(ctx, addr, testConfig.ConfigPassword, alice); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	if err := c.Allocate(ctx, addr, testConfig.ConfigPassword, runtime.Allocation{User: runtime.User{Username: "bob"}}); err == nil {
		t.Error("a second owner was accepted")
	}
}

func TestSecondsClamped(t *testing.T) {
	for in, want := range map[float64]time.Duration{-1: 0, 0: 0, 1.5: 1500 * time.Millisecond, 1e300: 1<<63 - 1} {
		if got := seconds(in); got != want {
			t.Errorf("seconds(%v) = %v, want %v", in, got, want)
		}
	}
}
