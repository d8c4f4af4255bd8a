package sessionhost

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// host holds the state behind the HTTP endpoints of one session.
type host struct {
	home      string
	keys      keyPair
	env       map[string]string // /config/environment
	variables map[string]string // /config/variables
	// tokenHash is the SHA-256 of the config password, so that comparing a
	// token takes the same time whatever its length; nil when the session
	// has no password, which closes the config endpoints.
	tokenHash []byte
	now       func() time.Time

	mu         sync.Mutex
	lastAccess time.Time
	lastView   time.Time
}

func newHost(cfg Config, home string, keys keyPair, now func() time.Time) *host {
	h := &host{home: home, keys: keys, now: now}
	h.env, h.variables = sessionValues(cfg, home, currentUser(), strings.TrimSpace(string(keys.public)))
	if cfg.ConfigPassword != "" {
		sum := sha256.Sum256([]byte(cfg.ConfigPassword))
		h.tokenHash = sum[:]
	}
	// A fresh session counts as just used: the portal must not cull it as
	// orphaned before anyone had the time to open it.
	h.lastAccess = now()
	h.lastView = h.lastAccess
	return h
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return os.Getenv("USER")
}

// sessionValues returns the shell environment and the instruction variables
// of the session, with Educates' names so that existing workshop content
// renders unchanged.
func sessionValues(cfg Config, home, username, sshPublicKey string) (env, vars map[string]string) {
	protocol, hostname, domain, portSuffix := ingressOf(cfg.SessionURL, cfg.Session)
	vars = map[string]string{
		"session_name":        cfg.Session,
		"session_id":          cfg.ID,
		"session_namespace":   cfg.Session,
		"session_url":         cfg.SessionURL,
		"session_hostname":    hostname,
		"environment_name":    cfg.Environment,
		"workshop_namespace":  cfg.Environment,
		"workshop_name":       cfg.Workshop,
		"training_portal":     cfg.Portal,
		"portal_url":          cfg.PortalURL,
		"config_password":     cfg.ConfigPassword,
		"ssh_public_key":      sshPublicKey,
		"ingress_protocol":    protocol,
		"ingress_domain":      domain,
		"ingress_port_suffix": portSuffix,
	}
	env = map[string]string{
		"HOME":                home,
		"USER":                username,
		"PATH":                os.Getenv("PATH"),
		"SESSION_NAME":        cfg.Session,
		"SESSION_ID":          cfg.ID,
		"SESSION_NAMESPACE":   cfg.Session,
		"SESSION_URL":         cfg.SessionURL,
		"SESSION_HOSTNAME":    hostname,
		"ENVIRONMENT_NAME":    cfg.Environment,
		"WORKSHOP_NAMESPACE":  cfg.Environment,
		"WORKSHOP_NAME":       cfg.Workshop,
		"TRAINING_PORTAL":     cfg.Portal,
		"PORTAL_URL":          cfg.PortalURL,
		"CONFIG_PASSWORD":     cfg.ConfigPassword,
		"INGRESS_PROTOCOL":    protocol,
		"INGRESS_DOMAIN":      domain,
		"INGRESS_PORT_SUFFIX": portSuffix,
	}
	// The workshop's own variables come last and win, as in a shell profile.
	for _, v := range cfg.Env {
		env[v.Name] = v.Value
	}
	return env, vars
}

// ingressOf splits a session URL such as http://portal-w01-s001.example.com:8080
// into the parts Educates exposes as ingress_* variables. A URL that does
// not start with the session name yields an empty domain.
func ingressOf(sessionURL, session string) (protocol, hostname, domain, portSuffix string) {
	u, err := url.Parse(sessionURL)
	if err != nil || u.Host == "" {
		return "", "", "", ""
	}
	hostname = u.Hostname()
	if p := u.Port(); p != "" {
		portSuffix = ":" + p
	}
	domain, _ = strings.CutPrefix(hostname, session+".")
	if domain == hostname {
		domain = ""
	}
	return u.Scheme, hostname, domain, portSuffix
}

func (h *host) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", getOnly(h.healthz))
	mux.HandleFunc("/session/poll", getOnly(h.poll))
	mux.HandleFunc("/session/activity", getOnly(h.activity))
	// Educates' gateway serves /config/<type>; its docs say
	// /workshop/config/<type>. Clients use both.
	mux.HandleFunc("/config/{type}", getOnly(h.config))
	mux.HandleFunc("/workshop/config/{type}", getOnly(h.config))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return mux
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

func (h *host) activity(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	h.mu.Lock()
	idle, view := now.Sub(h.lastAccess), now.Sub(h.lastView)
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]float64{
		"idle-time": max(idle, 0).Seconds(),
		"last-view": max(view, 0).Seconds(),
	})
}

func (h *host) config(w http.ResponseWriter, r *http.Request) {
	if !h.authorised(r.URL.Query().Get("token")) {
		writeError(w, http.StatusForbidden, "missing or invalid token")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch typ := r.PathValue("type"); typ {
	case "environment":
		writeJSON(w, http.StatusOK, h.env)
	case "variables":
		writeJSON(w, http.StatusOK, h.variables)
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
