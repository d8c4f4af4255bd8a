package sessionhost

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/atomicfile"
	"github.com/portico-dev/portico/internal/runtime"
)

// host holds the state behind the HTTP endpoints of one session.
type host struct {
	cfg  Config
	home string
	keys keyPair
	info sessionInfo
	// tokenHash is the SHA-256 of the config password, so that comparing a
	// token takes the same time whatever its length; nil when the session
	// has no password, which closes the config endpoints and the dashboard.
	tokenHash []byte
	now       func() time.Time
	log       *slog.Logger
	// allocationWait bounds how long a terminal opened before the session
	// has an owner waits for one before its shell starts anyway.
	allocationWait time.Duration
	terminals      *terminals
	assets         *assets
	allocated      chan struct{} // closed once owner is set
	closing        chan struct{} // closed when the host stops
	closeOnce      sync.Once
	// networkUp reports whether the session's network (Config.Network)
	// is up.
	networkUp func() bool

	mu         sync.Mutex
	lastAccess time.Time
	lastView   time.Time
	owner      *runtime.Allocation
	env        map[string]string // /config/environment, the shells' environment
	variables  map[string]string // /config/variables, the instructions' variables
}

const defaultAllocationWait = 30 * time.Second

func newHost(cfg Config, home string, keys keyPair, now func() time.Time) *host {
	h := &host{
		cfg:  cfg,
		home: home,
		keys: keys,
		info: sessionInfo{
			cfg:              cfg,
			home:             home,
			username:         currentUser(),
			sshPublicKey:     strings.TrimSpace(string(keys.public)),
			servicesPassword: cfg.ServicesPassword,
		},
		now:            now,
		log:            slog.New(slog.DiscardHandler),
		allocationWait: defaultAllocationWait,
		allocated:      make(chan struct{}),
		networkUp:      hasDefaultRoute,
		closing:        make(chan struct{}),
		assets:         staticAssets,
	}
	h.terminals = newTerminals(h)
	if cfg.ConfigPassword != "" {
		sum := sha256.Sum256([]byte(cfg.ConfigPassword))
		h.tokenHash = sum[:]
	}
	if cfg.Owner != nil {
		owner := *cfg.Owner
		h.owner = &owner
		close(h.allocated)
	}
	h.env, h.variables = sessionValues(h.info, h.owner)
	// A fresh session counts as just used: the portal must not cull it as
	// orphaned before anyone had the time to open it.
	h.lastAccess = now()
	h.lastView = h.lastAccess
	return h
}

// values returns the current environment and variables of the session.
// The maps are replaced, never changed, so callers may read them unlocked.
func (h *host) values() (env, vars map[string]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.env, h.variables
}

// touch records an access of the person, such as typing in a terminal.
func (h *host) touch() {
	now := h.now()
	h.mu.Lock()
	h.lastAccess = now
	h.mu.Unlock()
}

// awaitAllocation waits until the session has an owner, at most
// allocationWait, or until ctx ends. It reports whether the session has
// an owner.
func (h *host) awaitAllocation(ctx context.Context) bool {
	select {
	case <-h.allocated:
		return true
	default:
	}
	t := time.NewTimer(h.allocationWait)
	defer t.Stop()
	select {
	case <-h.allocated:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-h.closing:
	}
	return false
}

// close ends the terminals and the websockets of the host.
func (h *host) close() {
	h.closeOnce.Do(func() { close(h.closing) })
	h.terminals.closeAll()
}

func (h *host) routes() http.Handler {
	mux := http.NewServeMux()
	// Reached by the runtime and the portal without the secret.
	mux.HandleFunc("/healthz", getOnly(h.healthz))
	mux.HandleFunc("/session/activity", getOnly(h.activity))
	// Educates' gateway serves /config/<type>; its docs say
	// /workshop/config/<type>. Clients use both. The token authorises.
	mux.HandleFunc("/config/{type...}", getOnly(h.config))
	mux.HandleFunc("/workshop/config/{type...}", getOnly(h.config))

	// Everything else is the person's, reached through the portal, which
	// adds the secret once it has checked who is asking.
	mux.HandleFunc("/session/poll", h.private(getOnly(h.poll)))
	mux.HandleFunc(allocatePath, h.private(postOnly(h.allocate)))
	mux.HandleFunc("/{$}", h.private(getOnly(h.dashboard)))
	mux.HandleFunc("/workshop/content/{path...}", h.private(getOnly(h.content)))
	mux.HandleFunc("/.portico/pages/{name...}", h.private(getOnly(h.pageJSON)))
	mux.HandleFunc("/static/{path...}", h.private(getOnly(h.static)))
	mux.HandleFunc("/terminal/{id}", h.private(getOnly(h.terminal)))
	mux.HandleFunc("/", h.private(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	}))
	return mux
}

// SecretHeader carries the session's config password on the requests the
// portal forwards for a person it has checked.
const SecretHeader = "X-Portico-Secret"

// BrowserWriteHeader marks a request that changes the session as the
// dashboard's own: the portal sends it to the host only when the page that
// asked was on the session's origin (see browserWrite).
const BrowserWriteHeader = "X-Portico-Browser"

// browserWrite refuses a write the portal did not check as the dashboard's.
func (h *host) browserWrite(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(BrowserWriteHeader) != "1" {
			writeError(w, http.StatusForbidden, "writes to a session come from its dashboard only")
			return
		}
		next(w, r)
	}
}

// allocatePath is where the runtime gives a host its owner.
const allocatePath = "/.portico/allocate"

// activityReport is the answer of /session/activity, in seconds.
type activityReport struct {
	Idle     float64 `json:"idle-time"`
	LastView float64 `json:"last-view"`
}

// private refuses requests without the session's secret.
func (h *host) private(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.authorised(r.Header.Get(SecretHeader)) {
			writeError(w, http.StatusForbidden, "this session is reached through its training portal")
			return
		}
		next(w, r)
	}
}

// getOnly answers a JSON 405 for other methods; the mux's own 405 is text.
func getOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		next(w, r)
	}
}

// postOnly is getOnly for POST.
func postOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		next(w, r)
	}
}

// healthz is the readiness probe. Run serves only after setup, so serving
// means ready.
func (h *host) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// poll is the keep-alive of the portal's session page: every call is an
// access, and a view unless the page stayed hidden.
func (h *host) poll(w http.ResponseWriter, r *http.Request) {
	hidden := false
	if s := r.URL.Query().Get("hidden"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "hidden: must be true or false")
			return
		}
		hidden = b
	}
	now := h.now()
	h.mu.Lock()
	h.lastAccess = now
	if !hidden {
		h.lastView = now
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, struct{}{})
}

// maxAllocation bounds the body of an allocation.
const maxAllocation = 256 << 10

// allocate is POST /.portico/allocate: the portal tells a session started
// before anyone owned it who owns it now, with the request parameters.
// Repeating it is harmless; another owner is a conflict.
func (h *host) allocate(w http.ResponseWriter, r *http.Request) {
	var a runtime.Allocation
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAllocation))
	if err := dec.Decode(&a); err != nil {
		writeError(w, http.StatusBadRequest, "malformed allocation: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed allocation: trailing data")
		return
	}
	if err := validAllocation(a); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch err := h.setOwner(a); {
	case errors.Is(err, errOtherOwner):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

var errOtherOwner = errors.New("the session already has another owner")

// setOwner gives the session its owner and request parameters, however
// they arrive: POST /.portico/allocate or the allocation file. Repeating
// it is harmless; another owner is errOtherOwner.
func (h *host) setOwner(a runtime.Allocation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.owner != nil {
		if h.owner.User.Username != a.User.Username {
			return errOtherOwner
		}
		if h.owner.User == a.User && slices.Equal(h.owner.Params, a.Params) {
			return nil
		}
	}
	if err := saveOwner(h.home, a); err != nil {
		h.log.Error("cannot keep the allocation", "err", err)
		return errors.New("cannot keep the allocation")
	}
	first := h.owner == nil
	h.owner = &a
	h.env, h.variables = sessionValues(h.info, h.owner)
	if first {
		close(h.allocated)
		// The session is new to its owner: the orphaned rule counts from
		// now, not from when the reserve started.
		h.lastAccess = h.now()
		h.lastView = h.lastAccess
	}
	h.log.Info("session allocated", "user", a.User.Username, "params", len(a.Params))
	return nil
}

func validAllocation(a runtime.Allocation) error {
	if a.User.Username == "" {
		return errors.New("user.username: must not be empty")
	}
	for i, p := range a.Params {
		if p.Name == "" {
			return fmt.Errorf("params[%d].name: must not be empty", i)
		}
	}
	return nil
}

// saveOwner keeps the allocation in the home, so that a restarted host
// knows it.
func saveOwner(home string, a runtime.Allocation) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(home, StateDir), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(home, ownerFile), b, 0o600)
}

// loadOwner reads the allocation a previous run of the host received; nil
// when there was none.
func loadOwner(home string) (*runtime.Allocation, error) {
	b, err := os.ReadFile(filepath.Join(home, ownerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var a runtime.Allocation
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", ownerFile, err)
	}
	return &a, nil
}

func (h *host) activity(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	h.mu.Lock()
	idle, view := now.Sub(h.lastAccess), now.Sub(h.lastView)
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, activityReport{Idle: max(idle, 0).Seconds(), LastView: max(view, 0).Seconds()})
}

func (h *host) config(w http.ResponseWriter, r *http.Request) {
	if !h.authorised(r.URL.Query().Get("token")) {
		writeError(w, http.StatusForbidden, "missing or invalid token")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch typ := r.PathValue("type"); typ {
	case "environment":
		env, _ := h.values()
		writeJSON(w, http.StatusOK, env)
	case "variables":
		_, vars := h.values()
		writeJSON(w, http.StatusOK, vars)
	case "kubeconfig":
		b, err := os.ReadFile(filepath.Join(h.home, ".kube", "config"))
		if errors.Is(err, fs.ErrNotExist) {
			writeError(w, http.StatusNotFound, "no kubeconfig: this session runs without Kubernetes")
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, "cannot read kubeconfig")
			return
		}
		writeRaw(w, "application/yaml", b)
	case "id_rsa":
		writeRaw(w, "text/plain; charset=utf-8", h.keys.private)
	case "id_rsa.pub":
		writeRaw(w, "text/plain; charset=utf-8", h.keys.public)
	default:
		writeError(w, http.StatusNotFound, "unknown config type "+strconv.Quote(typ))
	}
}

func (h *host) authorised(token string) bool {
	if h.tokenHash == nil {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], h.tokenHash) == 1
}

func writeRaw(w http.ResponseWriter, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
