package web

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/store"
)

// proxy forwards /sessions/<name>/<rest> to the session's host, found by
// the address stored with the session, so any replica serves any session.
// The config endpoints are open to whoever has the session's config
// password (the host checks it); everything else only to the session's
// owner and to staff, logged in with the portal's cookie.
//
// A browser only reads a session, websockets included; its host's one
// write, the allocation, is the portal's own (runtime.Allocate), so the
// proxy forwards neither writes nor .portico/allocate.
func (p *Pages) proxy(w http.ResponseWriter, r *http.Request) {
	name, rest := r.PathValue("name"), r.PathValue("rest")
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		p.fail(w, r, httpapi.Errorf(http.StatusMethodNotAllowed, "Sessions are read through the portal: %s is not allowed", r.Method))
		return
	case strings.HasPrefix(rest, ".portico/allocate"):
		p.fail(w, r, httpapi.Errorf(http.StatusNotFound, "Not found"))
		return
	}
	t, err := p.broker.Target(r.Context(), name)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	var viewer store.User
	if !isConfigPath(rest) {
		u, loggedIn, err := p.viewer(r)
		switch {
		case err != nil:
			p.fail(w, r, err)
			return
		case !loggedIn || u.ID != t.Owner && !u.Staff():
			p.fail(w, r, httpapi.Errorf(http.StatusForbidden, "This session belongs to someone else"))
			return
		case isUpgrade(r) && !sameOrigin(r):
			p.fail(w, r, httpapi.Errorf(http.StatusForbidden, "Cross-origin websocket refused"))
			return
		}
		viewer = u
	}
	p.broker.Deliver(r.Context(), t)
	prefix := "/sessions/" + name
	target := runtime.HostURL(t.Address)
	rp := &httputil.ReverseProxy{
		Transport: p.hosts,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = "/"+rest, ""
			pr.Out.Host = pr.In.Host
			// Nothing of the portal's own credentials reaches the session.
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Set("X-Forwarded-Prefix", prefix)
			if viewer.ID != 0 {
				pr.Out.Header.Set(sessionhost.SecretHeader, t.Secret)
				pr.Out.Header.Set("X-Portico-User", viewer.Username)
				pr.Out.Header.Set("X-Portico-Staff", strconv.FormatBool(viewer.Staff()))
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("session host unreachable", "session", name, "err", err)
			p.fail(w, r, httpapi.Errorf(http.StatusBadGateway, "The session is not answering"))
		},
	}
	rp.ServeHTTP(w, r)
}

// proxyResponseTimeout bounds the wait for a session host's answer to
// begin: a frozen host must not hold the portal's connections. What follows
// the headers (a websocket, a download) is the host's to end.
const proxyResponseTimeout = 30 * time.Second

func isConfigPath(rest string) bool {
	return strings.HasPrefix(rest, "config/") || strings.HasPrefix(rest, "workshop/config/")
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// sameOrigin checks the Origin of a websocket upgrade: browsers send it,
// and a page of another site must not open a terminal with the person's
// cookie.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
