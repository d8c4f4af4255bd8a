// Package web serves the portal's own pages for people: activation of a
// session handed out through the REST API, the session page, and ending a
// session from the browser (spec §7.7, §7.8, §7.10).
package web

import (
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/store"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed static
var static embed.FS

var pages = template.Must(template.ParseFS(templates, "templates/*.html"))

// Pages serves the portal's pages.
type Pages struct {
	broker *broker.Broker
	auth   *auth.Service
	log    *slog.Logger
}

// Register adds the pages to mux.
func Register(mux *http.ServeMux, b *broker.Broker, a *auth.Service, log *slog.Logger) {
	p := &Pages{broker: b, auth: a, log: log}
	for path, h := range map[string]http.HandlerFunc{
		"/workshops/session/{name}/activate/": p.activate,
		"/workshops/session/{name}/delete/":   p.delete,
		"/workshops/session/{name}/":          p.session,
	} {
		mux.HandleFunc("GET "+path+"{$}", h)
		mux.HandleFunc("GET "+strings.TrimSuffix(path, "/"), h)
	}
	mux.Handle("GET /static/", http.FileServerFS(static))
	mux.HandleFunc("/sessions/{name}/{rest...}", p.proxy)
}

func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(w, r, p.log, err)
}

// activate is GET /workshops/session/<name>/activate/?token=: it logs the
// browser in as the session's owner and sends it to the session page.
func (p *Pages) activate(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		p.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Malformed query string"))
		return
	}
	s, owner, err := p.broker.Activate(r.Context(), r.PathValue("name"), q.Get("token"))
	if errors.Is(err, broker.ErrEnded) {
		http.Redirect(w, r, withNotification(p.indexFor(s), "session-deleted"), http.StatusFound)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if err := p.login(w, r, owner); err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/workshops/session/"+s.Name+"/", http.StatusFound)
}

// viewer returns the user the browser is logged in as; ok is false when
// it is not logged in.
func (p *Pages) viewer(r *http.Request) (store.User, bool, error) {
	c, err := r.Cookie(auth.CookieName)
	if err != nil {
		return store.User{}, false, nil
	}
	u, err := p.auth.Browser(r.Context(), c.Value)
	if errors.Is(err, auth.ErrUnauthenticated) {
		return u, false, nil
	}
	return u, err == nil, err
}

// ownSession loads the session of the page for its owner. Anyone else,
// and a session that has ended, is sent away with a notification; ok is
// false when the response has been written.
func (p *Pages) ownSession(w http.ResponseWriter, r *http.Request) (broker.SessionView, bool) {
	u, loggedIn, err := p.viewer(r)
	if err != nil {
		p.fail(w, r, err)
		return broker.SessionView{}, false
	}
	if !loggedIn {
		http.Redirect(w, r, "/?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return broker.SessionView{}, false
	}
	v, err := p.broker.Session(r.Context(), u, r.PathValue("name"))
	switch {
	case err == nil && v.Session.Owner == u.ID: // staff too must own it (spec §7.7)
		return v, true
	case err != nil && broker.KindOf(err) == 0:
		p.fail(w, r, err)
		return v, false
	}
	if ended, ok := p.broker.Ended(r.Context(), u, r.PathValue("name")); ok && ended.IndexURL != "" {
		http.Redirect(w, r, withNotification(ended.IndexURL, "session-deleted"), http.StatusFound)
		return v, false
	}
	http.Redirect(w, r, withNotification(p.fallback(), "session-invalid"), http.StatusFound)
	return v, false
}

// session is the page of a session (spec §7.7).
func (p *Pages) session(w http.ResponseWriter, r *http.Request) {
	v, ok := p.ownSession(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-src 'self'; frame-ancestors 'self'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := pages.ExecuteTemplate(w, "session.html", map[string]any{
		"Title":    p.broker.Portal().Title,
		"Session":  v.Session,
		"Workshop": v.Environment.Workshop,
		// The dashboard is framed once the host serves; until then a
		// cover that refreshes itself.
		"Ready": v.Session.Address != "",
	})
	if err != nil {
		p.log.Error("render session page", "err", err)
	}
}

// delete ends the session from the browser and sends the person to the
// session's index URL (spec §7.8).
func (p *Pages) delete(w http.ResponseWriter, r *http.Request) {
	v, ok := p.ownSession(w, r)
	if !ok {
		return
	}
	u, _, _ := p.viewer(r)
	if _, err := p.broker.Terminate(r.Context(), u, v.Session.Name); err != nil {
		p.fail(w, r, err)
		return
	}
	notification := r.URL.Query().Get("notification")
	if notification == "" {
		notification = "session-deleted"
	}
	http.Redirect(w, r, withNotification(p.indexFor(v.Session), notification), http.StatusFound)
}

// indexFor is where a person goes after a session: its index URL (which
// the robot supplied and Portico trusts, as Educates does), else the
// fallback.
func (p *Pages) indexFor(s store.Session) string {
	if s.IndexURL != "" {
		return s.IndexURL
	}
	return p.fallback()
}

// fallback is the portal index for people, else the catalog.
func (p *Pages) fallback() string {
	if idx := p.broker.Portal().Index; idx != "" {
		return idx
	}
	return "/workshops/catalog/"
}

// withNotification sets the notification query parameter of a URL, keeping
// the others (spec §6.10).
func withNotification(target, notification string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set("notification", notification)
	u.RawQuery = q.Encode()
	return u.String()
}

func (p *Pages) login(w http.ResponseWriter, r *http.Request, u store.User) error {
	value, err := p.auth.StartBrowser(r.Context(), u)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: auth.CookieName, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(p.broker.URL(), "https:")})
	return nil
}
