package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/store"
)

// newLogger returns the portal's logger: text for people, JSON for log
// collectors, from level up.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
	return slog.New(h), nil
}

// serveMetrics serves h at /metrics on a listener of its own, without
// authentication: a port that only the monitoring network reaches, as
// Coder's --prometheus-address is.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	log.Info("metrics serving", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

// readiness is what /readyz checks: the database answers (its migrations
// were applied when it was opened, before anything is served) and the
// runtime is ready; a runtime with nothing outside the process to reach
// (local, noop) is ready once made.
func readiness(db store.Store, rt runtime.Runtime) []httpapi.Check {
	checks := []httpapi.Check{httpapi.DatabaseCheck(db)}
	if r, ok := rt.(interface{ Ready(context.Context) error }); ok {
		checks = append(checks, httpapi.Check{Name: "runtime", Run: r.Ready})
	}
	return checks
}
