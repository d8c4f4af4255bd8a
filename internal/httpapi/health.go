package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/store"
)

// checkTimeout bounds each readiness check: a probe that hangs is a
// failed probe, and the kubelet's own timeout is 1 s by default.
const checkTimeout = 900 * time.Millisecond

// Check is one condition of readiness: Run returns nil when it holds.
type Check struct {
	Name string
	Run  func(context.Context) error
}

// DatabaseCheck is ready when a read transaction on s succeeds. The
// store's Open has applied the migrations before anything is served, so
// reading the schema's tables also tells that they are in place.
func DatabaseCheck(s store.Store) Check {
	return Check{Name: "database", Run: func(ctx context.Context) error {
		return s.View(ctx, func(tx store.Tx) error {
			_, err := tx.NextDeadline()
			return err
		})
	}}
}

// RegisterHealth serves /healthz, which answers while the process serves
// at all, and /readyz, which answers 200 when every check passes and 503
// when one does not, naming it. Details of a failure go to the log, not to
// the caller: the probes are as public as the portal.
func RegisterHealth(mux *http.ServeMux, log *slog.Logger, checks ...Check) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		results := make(map[string]string, len(checks))
		var (
			mu     sync.Mutex
			wg     sync.WaitGroup
			failed string
		)
		for _, c := range checks {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
				defer cancel()
				err := c.Run(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					results[c.Name] = "ok"
					return
				}
				log.Warn("not ready", "check", c.Name, "err", err)
				results[c.Name] = "failed"
				if failed == "" || c.Name < failed {
					failed = c.Name
				}
			})
		}
		wg.Wait()
		if failed != "" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready",
				"error": "Not ready: " + failed + " check failed", "checks": results})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": results})
	})
}

// MetricsHandler serves h, the Prometheus metrics, to staff and the
// portal's robot clients on the portal's own listener: a bearer token of
// the admin or robot account (Prometheus fetches one itself with its
// oauth2 client_credentials settings). The counts of sessions and
// environments are the operator's business, not the attendees'.
func MetricsHandler(a *auth.Service, log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			WriteError(w, r, log, auth.ErrUnauthenticated)
			return
		}
		u, err := a.Bearer(r.Context(), token)
		if err == nil && u.Role != store.RoleAdmin && u.Role != store.RoleRobot {
			err = errorf(http.StatusForbidden, "Metrics are for the portal's staff and robot clients")
		}
		if err != nil {
			WriteError(w, r, log, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}
