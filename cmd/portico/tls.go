package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/sessionorigin"
)

// tlsFlags are the settings of serve about HTTPS.
type tlsFlags struct {
	certFile, keyFile                    string
	acmeDomain, acmeEmail, acmeDirectory string
	redirectListen                       string
}

func (f tlsFlags) enabled() bool { return f.certFile != "" || f.acmeDomain != "" }

// check refuses settings that contradict each other.
func (f tlsFlags) check() error {
	switch {
	case (f.certFile == "") != (f.keyFile == ""):
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	case f.certFile != "" && f.acmeDomain != "":
		return usageError{errors.New("--tls-cert and --acme-domain: certificates come from files or from ACME, not both")}
	case f.acmeDomain == "" && (f.acmeEmail != "" || f.acmeDirectory != autocert.DefaultACMEDirectory):
		return usageError{errors.New("--acme-email and --acme-directory need --acme-domain")}
	case f.redirectListen != "" && !f.enabled():
		return usageError{errors.New("--http-redirect-listen needs HTTPS: --tls-cert and --tls-key, or --acme-domain")}
	case f.acmeDomain != "" && !strings.Contains(strings.Trim(f.acmeDomain, "."), "."):
		return usageError{fmt.Errorf("--acme-domain %q: ACME certifies public domain names, which have a dot", f.acmeDomain)}
	}
	return nil
}

// https is how the portal serves TLS: the configuration of its listener,
// and what its HTTP listener does besides redirecting (ACME's HTTP-01
// challenges).
type https struct {
	config    *tls.Config
	challenge func(fallback http.Handler) http.Handler
}

// newHTTPS loads the certificate files, or sets up ACME with its account
// and certificates cached in the data directory. exists tells whether a
// session of a name exists: ACME obtains certificates for the portal's host
// name and for the origins of existing sessions, and for no other name.
func newHTTPS(f tlsFlags, log *slog.Logger, dataDir string, origins sessionorigin.Origins,
	exists func(context.Context, string) (bool, error)) (*https, error) {
	// HTTP/1.1 only: the session proxy takes connections over (websockets
	// of terminals), which HTTP/2 does not allow.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	h := &https{config: cfg, challenge: func(fallback http.Handler) http.Handler { return fallback }}
	if f.certFile != "" {
		c := &certFiles{cert: f.certFile, key: f.keyFile, log: log, every: time.Second}
		if err := c.load(); err != nil {
			return nil, err
		}
		cfg.GetCertificate = c.get
		return h, nil
	}
	dir := filepath.Join(dataDir, "acme")
	// The cache holds the ACME account key and the certificates' keys.
	if err := privateDir(log, dir); err != nil {
		return nil, err
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(dir),
		HostPolicy: hostPolicy(f.acmeDomain, origins, exists),
		Email:      f.acmeEmail,
		Client:     &acme.Client{DirectoryURL: f.acmeDirectory},
	}
	cfg.GetCertificate = m.GetCertificate
	cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto) // TLS-ALPN-01 challenges
	h.challenge = m.HTTPHandler
	return h, nil
}

// hostPolicy allows the portal's host name and the origins of sessions that
// exist: a name anybody can make up (any <label>.<domain>) must not cost a
// certificate, nor the rate limits of the certificate authority.
func hostPolicy(portal string, origins sessionorigin.Origins, exists func(context.Context, string) (bool, error)) autocert.HostPolicy {
	portal = strings.TrimSuffix(portal, ".")
	return func(ctx context.Context, host string) error {
		if strings.EqualFold(host, portal) {
			return nil
		}
		if name, ok := origins.Session(host); ok {
			ok, err := exists(ctx, name)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
		return fmt.Errorf("no certificate for %q: neither the portal nor a session", host)
	}
}

// certFiles serves the certificate of a pair of PEM files, and loads it
// again when the files change (a renewal by certbot or cert-manager), at
// most once per every. A pair that does not load is logged and the
// previous certificate kept.
type certFiles struct {
	cert, key string
	log       *slog.Logger
	every     time.Duration

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string // the files' sizes and times when current was loaded
	checked time.Time
}

func (c *certFiles) load() error {
	stamp := c.stampNow()
	cert, err := tls.LoadX509KeyPair(c.cert, c.key)
	if err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	c.current, c.stamp = &cert, stamp
	return nil
}

func (c *certFiles) stampNow() string {
	var b strings.Builder
	for _, p := range []string{c.cert, c.key} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d %d;", fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= c.every {
		c.checked = time.Now()
		if c.stampNow() != c.stamp {
			if err := c.load(); err != nil {
				c.log.Error("new certificate not loaded; serving the previous one", "err", err)
				// Tried once per change, not once per handshake.
				c.stamp = c.stampNow()
			} else {
				c.log.Info("certificate reloaded", "file", c.cert)
			}
		}
	}
	return c.current, nil
}

// hsts tells browsers to reach the portal, and the sessions' origins under
// its name, on HTTPS only from now on.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// redirectToHTTPS sends requests for the portal's host and for sessions'
// origins to the same place on HTTPS. Other host names are refused: the
// portal answers for its own names only.
func redirectToHTTPS(portalURL string, origins sessionorigin.Origins, log *slog.Logger) (http.Handler, error) {
	u, err := parseHTTPURL(portalURL)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		var target string
		if strings.EqualFold(host, u.Hostname()) {
			target = u.Scheme + "://" + u.Host
		} else if name, ok := origins.Session(host); ok {
			target = origins.URL(name)
		} else {
			httpapi.WriteError(w, r, log, httpapi.Errorf(http.StatusNotFound, "this portal serves no host %q", r.Host))
			return
		}
		// 308 keeps the method and body, where 301 lets a client change
		// POST into GET.
		http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
	}), nil
}

// serveRedirect serves h (redirectToHTTPS, and ACME's HTTP-01 challenges)
// on addr until ctx ends. Without addr, a portal on port 443 redirects from
// port 80 of the same host when it can: what a browser opens for a name
// typed without a scheme.
func serveRedirect(ctx context.Context, log *slog.Logger, addr string, portal net.Addr, h http.Handler) error {
	auto := false
	if addr == "" {
		host, port, err := net.SplitHostPort(portal.String())
		if err != nil || port != "443" {
			return nil
		}
		addr, auto = net.JoinHostPort(host, "80"), true
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if auto {
			log.Warn("no redirect from HTTP to HTTPS", "err", err)
			return nil
		}
		return fmt.Errorf("--http-redirect-listen: %w", err)
	}
	srv := newServer(h, log, readTimeout)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	log.Info("redirecting HTTP to HTTPS", "listen", ln.Addr().String())
	return nil
}
