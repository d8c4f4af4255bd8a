package sessionhost

import (
	"context"
	"net/http"
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

// A host's answer is the session's to write: the client keeps nothing of
// it beyond a limit, repeats no status text of its own, and gives up with
// its context.
func TestClientBoundsHostileAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz": // endless
			for {
				if _, err := w.Write(make([]byte, 32<<10)); err != nil {
					return
				}
			}
		case "/session/activity": // a status line of a megabyte
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 500 " + strings.Repeat("x", 1<<20) + "\r\nContent-Length: 0\r\n\r\n")
			buf.Flush()
		case allocatePath: // never done
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := Client{HTTP: srv.Client()}
	ctx := context.Background()

	if err := c.Healthy(ctx, addr); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Healthy with an endless answer: %v", err)
	}
	if _, err := c.Activity(ctx, addr); err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "500 Internal Server Error") {
		t.Errorf("Activity with a huge status line: %.200v", err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := c.Allocate(short, addr, "secret", runtime.Allocation{}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Allocate of a host that never ends its answer: %v after %s", err, time.Since(start))
	}
}
