package web

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/store"
)

// Each session is served from an origin of its own, <session>.<domain>
// (internal/sessionorigin), by the same portal process: what a session
// serves, which its attendee may control entirely, runs where the
// portal's cookies never go and its pages cannot be read. The portal's own
// origin serves no byte of a session.
//
// A browser gets in with a ticket (auth.Ticket): the portal's
// /workshops/session/<name>/open/ checks who is asking on its own origin
// and sends the browser to the session's /.portico/enter with one; that
// sets the session origin's own cookie, which the proxy below checks on
// every request and never forwards.

// enterPath takes a ticket on a session's origin.
const enterPath = "/.portico/enter"

// sessionOrigin serves the origins of the sessions.
type sessionOrigin struct {
	*Pages
	// portal serves the portal's own endpoints that a dashboard calls as
	// its visitor: the schedule and extend of its session.
	portal http.Handler
}

func (o *sessionOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, _ := o.broker.Origins().Session(r.Host)
	switch {
	case r.URL.Path == enterPath:
		o.enter(w, r, name)
		return
	case isConfigPath(strings.TrimPrefix(r.URL.Path, "/")):
		// The config password in the query authorises, at the host.
		o.forward(w, r, name, store.User{})
		return
	}
	u, err := o.visitor(r, name)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated) && isNavigation(r):
		// Through the portal, which knows the person, and back.
		http.Redirect(w, r, o.broker.URL()+"/workshops/session/"+name+"/open/?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	case broker.KindOf(err) == broker.NotFound && isNavigation(r):
		// Ended: the session's page on the portal says so and knows
		// where to go next.
		http.Redirect(w, r, o.broker.URL()+"/workshops/session/"+name+"/", http.StatusFound)
		return
	case err != nil:
		o.fail(w, r, err)
		return
	}
	actions := "/workshops/session/" + name + "/"
	switch rest, ok := strings.CutPrefix(r.URL.Path, actions); {
	case ok && (rest == "schedule/" || rest == "schedule" || rest == "extend/" || rest == "extend"):
		o.act(w, r, name, u)
	case ok && (rest == "delete/" || rest == "delete"):
		o.finish(w, r, name, u)
	default:
		o.forward(w, r, name, u)
	}
}

// fail answers an error as JSON: a session's origin shows no page of the
// portal's, whose styles and scripts would come from the session.
func (o *sessionOrigin) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(w, r, o.log, err)
}

// isNavigation tells a browser's page load from a script's request.
func isNavigation(r *http.Request) bool {
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" {
		return m == "navigate"
	}
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// visitor returns the person the visit cookie of the session's origin
// lets in: its owner, or staff.
func (o *sessionOrigin) visitor(r *http.Request, name string) (store.User, error) {
	c, err := r.Cookie(auth.VisitCookie)
	if err != nil {
		return store.User{}, auth.ErrUnauthenticated
	}
	u, err := o.auth.Visitor(r.Context(), c.Value, name)
	if err != nil {
		return u, err
	}
	t, err := o.broker.Target(r.Context(), name)
	switch {
	case err != nil:
		return u, err
	case u.ID != t.Owner && !u.Staff():
		// Staff once, and staff no more; or a session handed to someone
		// else since.
		return u, httpapi.Errorf(http.StatusForbidden, "This session belongs to someone else")
	}
	return u, nil
}

// enter is GET /.portico/enter?ticket=&next= on a session's origin.
func (o *sessionOrigin) enter(w http.ResponseWriter, r *http.Request, name string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || r.Method != http.MethodGet {
		o.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Malformed ticket"))
		return
	}
	value, _, err := o.auth.Enter(r.Context(), q.Get("ticket"), name)
	if errors.Is(err, auth.ErrUnauthenticated) {
		// An old ticket, or one taken already: a reload, a bookmark.
		// The portal makes a new one for whoever it may be.
		http.Redirect(w, r, o.broker.URL()+"/workshops/session/"+name+"/open/?next="+url.QueryEscape(localPath(q.Get("next"), "/")), http.StatusFound)
		return
	}
	if err != nil {
		o.fail(w, r, err)
		return
	}
	o.setCookie(w, auth.VisitCookie, value, auth.BrowserTTL)
	http.Redirect(w, r, localPath(q.Get("next"), "/"), http.StatusFound)
}

// act hands the schedule and extend of the session to the portal's API as
// the visitor. Only the owner acts: a page the session serves to staff
// must not act with staff's rights.
func (o *sessionOrigin) act(w http.ResponseWriter, r *http.Request, name string, u store.User) {
	owner := false
	if t, err := o.broker.Target(r.Context(), name); err == nil {
		owner = t.Owner == u.ID
	}
	switch {
	case r.Header.Get("X-Portico-Browser") == "":
		// Which a page of another site cannot add: a link elsewhere
		// does not extend the session.
		o.fail(w, r, httpapi.Errorf(http.StatusForbidden, "The dashboard's own calls only"))
		return
	case !owner && !strings.Contains(r.URL.Path, "/schedule"):
		o.fail(w, r, httpapi.Errorf(http.StatusForbidden, "Only the owner of this session acts on it from here"))
		return
	}
	o.portal.ServeHTTP(w, httpapi.AsCaller(r, u))
}

// finish is the dashboard's finish button: it ends the session and sends
// the browser where the session came from. A link from elsewhere does not
// end it.
func (o *sessionOrigin) finish(w http.ResponseWriter, r *http.Request, name string, u store.User) {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		o.fail(w, r, httpapi.Errorf(http.StatusForbidden, "A session is finished from its own page"))
		return
	}
	v, err := o.broker.Session(r.Context(), u, name)
	if err == nil && v.Session.Owner != u.ID {
		err = httpapi.Errorf(http.StatusForbidden, "Only the owner of this session finishes it")
	}
	if err == nil {
		_, err = o.broker.Terminate(r.Context(), u, name)
	}
	if err != nil {
		o.fail(w, r, err)
		return
	}
	notification := r.URL.Query().Get("notification")
	if notification == "" {
		notification = "session-deleted"
	}
	http.Redirect(w, r, o.absolute(withNotification(o.indexFor(v.Session, u), notification)), http.StatusFound)
}

// absolute makes a path of the portal a URL: from a session's origin, a
// path is the session's.
func (o *sessionOrigin) absolute(target string) string {
	if strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "//") {
		return o.broker.URL() + target
	}
	return target
}

// forward proxies a request to the session's host, found by the address
// stored with the session, so any replica serves any session. viewer is
// the person checked by the visit cookie, or nobody for the config
// endpoints, which the host authorises itself.
//
// A browser reads a session, websockets included, and writes to it only
// from the dashboard's own scripts (saving a file in the editor, an
// upload, an examiner's test): a write must come from a page of the
// session's origin, say so with a header no other origin can send
// without a CORS preflight (which nothing here grants), and be a visitor's.
// The host's own write, the allocation, is the portal's (runtime.Allocate),
// so .portico/ is never forwarded.
func (o *sessionOrigin) forward(w http.ResponseWriter, r *http.Request, name string, viewer store.User) {
	write := false
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		if err := o.checkWrite(r, name, viewer); err != nil {
			o.fail(w, r, err)
			return
		}
		write = true
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE")
		o.fail(w, r, httpapi.Errorf(http.StatusMethodNotAllowed, "%s is not allowed on a session", r.Method))
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/.portico/"):
		o.fail(w, r, httpapi.Errorf(http.StatusNotFound, "Not found"))
		return
	case isUpgrade(r) && r.Header.Get("Origin") != "" && !o.broker.Origins().Same(r.Header.Get("Origin"), name):
		// Scheme, host and port: a page of any other origin, the
		// portal's and other sessions' among them, must not open a
		// terminal with the person's cookie.
		o.fail(w, r, httpapi.Errorf(http.StatusForbidden, "Cross-origin websocket refused"))
		return
	}
	t, err := o.broker.Target(r.Context(), name)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	o.broker.Deliver(r.Context(), t)
	target := runtime.HostURL(t.Address)
	rp := &httputil.ReverseProxy{
		Transport: o.hosts,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			for h := range pr.Out.Header {
				if strings.HasPrefix(h, "X-Portico-") {
					delete(pr.Out.Header, h) // only the portal says these
				}
			}
			withoutCookie(pr.Out.Header, auth.VisitCookie)
			// The host's logs then name the request the portal's do.
			pr.Out.Header.Del(httpapi.RequestIDHeader)
			if id := httpapi.RequestID(pr.In.Context()); id != "" {
				pr.Out.Header.Set(httpapi.RequestIDHeader, id)
			}
			if viewer.ID != 0 {
				pr.Out.Header.Set(sessionhost.SecretHeader, t.Secret)
			}
			if write {
				pr.Out.Header.Set(sessionhost.BrowserWriteHeader, "1")
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			dropPortalCookies(resp.Header)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			o.log.Warn("session host unreachable", "session", name, "err", err)
			o.fail(w, r, httpapi.Errorf(http.StatusBadGateway, "The session is not answering"))
		},
	}
	rp.ServeHTTP(w, r)
}

// checkWrite refuses a write that is not the dashboard's own.
func (o *sessionOrigin) checkWrite(r *http.Request, name string, viewer store.User) error {
	switch {
	case viewer.ID == 0:
		return httpapi.Errorf(http.StatusMethodNotAllowed, "%s is not allowed here", r.Method)
	case r.Header.Get(sessionhost.BrowserWriteHeader) != "1":
		return httpapi.Errorf(http.StatusForbidden, "Writes to a session come from its dashboard only")
	case !o.broker.Origins().Same(r.Header.Get("Origin"), name):
		return httpapi.Errorf(http.StatusForbidden, "Cross-origin write refused")
	case r.Header.Get("Sec-Fetch-Site") != "" && r.Header.Get("Sec-Fetch-Site") != "same-origin":
		return httpapi.Errorf(http.StatusForbidden, "Cross-site write refused")
	}
	return nil
}

// withoutCookie removes the cookie name from a request's Cookie headers,
// keeping the others (a workshop's own web applications set theirs).
func withoutCookie(h http.Header, name string) {
	var kept []string
	for _, line := range h.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			if n, _, _ := strings.Cut(strings.TrimSpace(c), "="); n != name && strings.TrimSpace(c) != "" {
				kept = append(kept, strings.TrimSpace(c))
			}
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h.Set("Cookie", strings.Join(kept, "; "))
	}
}

// dropPortalCookies removes from a session's answer every cookie it may
// not set: one with the portal's names, which would shadow the visit
// cookie, and one for a parent domain, which would reach the portal's
// origin (or other sessions') when sessions are under the portal's host.
func dropPortalCookies(h http.Header) {
	lines := h.Values("Set-Cookie")
	h.Del("Set-Cookie")
	for _, line := range lines {
		c, err := http.ParseSetCookie(line)
		if err != nil || c.Domain != "" || isPortalCookie(c.Name) {
			continue
		}
		h.Add("Set-Cookie", line)
	}
}

func isPortalCookie(name string) bool {
	name = strings.ToLower(name)
	for _, prefix := range []string{"__host-", "__secure-"} {
		name = strings.TrimPrefix(name, prefix)
	}
	return strings.HasPrefix(name, "portico")
}

// legacySession answers /sessions/<name>/<rest> on the portal's origin,
// where sessions were once served: a redirect to the session's origin, so
// that links and config URLs of before still work.
func (p *Pages) legacySession(w http.ResponseWriter, r *http.Request) {
	u := p.broker.SessionURL(r.PathValue("name")) + "/" + r.PathValue("rest")
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, u, http.StatusPermanentRedirect)
}

// open is GET /workshops/session/<name>/open/?next=: the way into a
// session's origin for its owner and for staff, with a ticket.
func (p *Pages) open(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	u, ok := p.requireLogin(w, r, "/accounts/login/")
	if !ok {
		return
	}
	t, err := p.broker.Target(r.Context(), name)
	switch {
	case err == nil && u.ID != t.Owner && !u.Staff():
		err = httpapi.Errorf(http.StatusForbidden, "This session belongs to someone else")
	case broker.KindOf(err) == broker.NotFound || broker.KindOf(err) == broker.Unavailable:
		// Ended, or still starting: the session's page says which.
		http.Redirect(w, r, "/workshops/session/"+name+"/", http.StatusFound)
		return
	}
	var ticket string
	if err == nil {
		c, _ := r.Cookie(auth.CookieName) // requireLogin found it
		ticket, err = p.auth.Ticket(r.Context(), c.Value, name)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	next := localPath(r.URL.Query().Get("next"), "/")
	http.Redirect(w, r, p.broker.SessionURL(name)+enterPath+"?"+url.Values{"ticket": {ticket}, "next": {next}}.Encode(), http.StatusFound)
}

// ready is GET /workshops/session/<name>/ready/, which the session page
// polls while the session starts.
func (p *Pages) ready(w http.ResponseWriter, r *http.Request) {
	u, ok, err := p.viewer(r)
	if err == nil && !ok {
		err = auth.ErrUnauthenticated
	}
	var v broker.SessionView
	if err == nil {
		v, err = p.broker.Session(r.Context(), u, r.PathValue("name"))
	}
	if err == nil && (v.Session.Owner != u.ID || v.Session.State == store.Stopping) {
		err = httpapi.Errorf(http.StatusNotFound, "No such session")
	}
	if err != nil {
		httpapi.WriteError(w, r, p.log, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, struct {
		Ready bool `json:"ready"`
	}{v.Session.Address != ""})
}
