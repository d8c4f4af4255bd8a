package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/store"
)

// activate is GET /workshops/session/<name>/activate/?token=: it logs the
// browser in as the session's owner and sends it to the session page
// (spec §7.10).
func (p *Pages) activate(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		p.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Malformed query string"))
		return
	}
	// A wrong token costs a write transaction: guesses are limited.
	if err := p.guess(r, "activation link"); err != nil {
		p.fail(w, r, err)
		return
	}
	s, owner, err := p.broker.Activate(r.Context(), r.PathValue("name"), q.Get("token"))
	if broker.KindOf(err) != broker.Invalid {
		p.rightGuess(r, "activation link")
	}
	if errors.Is(err, broker.ErrEnded) {
		http.Redirect(w, r, withNotification(p.indexFor(s, owner), endedNotification(s)), http.StatusFound)
		return
	}
	if err == nil {
		err = p.startBrowser(w, r, owner)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/workshops/session/"+s.Name+"/", http.StatusFound)
}

// ownSession loads the session of the page for its owner (spec §7.7,
// §7.8). Anyone else, and a session that has ended, is sent away with a
// notification; ok is false when the response has been written.
func (p *Pages) ownSession(w http.ResponseWriter, r *http.Request) (store.User, broker.SessionView, bool) {
	u, ok := p.requireLogin(w, r, "/")
	if !ok {
		return u, broker.SessionView{}, false
	}
	v, err := p.broker.Session(r.Context(), u, r.PathValue("name"))
	switch {
	// Staff too must own it. Unlike Educates, a session that is stopping
	// counts as ended: its page would only show it going away.
	case err == nil && v.Session.Owner == u.ID && v.Session.State != store.Stopping:
		return u, v, true
	case err != nil && broker.KindOf(err) == 0:
		p.fail(w, r, err)
		return u, v, false
	}
	// Unlike Educates, which said session-invalid unless the session had
	// an index URL, the owner of an ended session is told it ended.
	if ended, ok := p.broker.Ended(r.Context(), u, r.PathValue("name")); ok {
		http.Redirect(w, r, withNotification(p.indexFor(ended, u), endedNotification(ended)), http.StatusFound)
		return u, v, false
	}
	http.Redirect(w, r, withNotification(p.fallback(u), "session-invalid"), http.StatusFound)
	return u, v, false
}

type sessionData struct {
	Session  store.Session
	Workshop string
	// Overdue is how long the session may take to start before the page
	// gives up (spec §11.3); Waited is how long it has been starting.
	Overdue, Waited time.Duration
	Restart         string
}

// session is the page of a session (spec §7.7, §11.3): a cover with
// progress while the session starts, then the dashboard on the session's
// own origin (see open).
func (p *Pages) session(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.ownSession(w, r)
	if !ok {
		return
	}
	if v.Session.Address != "" {
		http.Redirect(w, r, "/workshops/session/"+v.Session.Name+"/open/", http.StatusFound)
		return
	}
	env := v.Environment
	data := sessionData{Session: v.Session, Workshop: env.Workshop.Title,
		Overdue: env.Overdue, Waited: max(0, p.clock.Now().Sub(v.Session.Started)),
		Restart: "/workshops/session/" + v.Session.Name + "/delete/?notification=startup-timeout"}
	if data.Workshop == "" {
		data.Workshop = env.Key
	}
	p.render(w, r, http.StatusOK, "session.html", data.Workshop, data)
}

// deleteLink is GET /workshops/session/<name>/delete/ (spec §7.8): the
// dashboard's finish button and the startup timeout end the session
// through it. A link from another site, even a sibling one, gets a
// question instead of ending the session (CSRF); API clients send no Fetch
// metadata and end it, as in Educates.
func (p *Pages) deleteLink(w http.ResponseWriter, r *http.Request) {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		if _, v, ok := p.ownSession(w, r); ok {
			p.render(w, r, http.StatusOK, "delete.html", "End session",
				struct {
					Session      store.Session
					Notification string
				}{v.Session, r.URL.Query().Get("notification")})
		}
		return
	}
	p.endSession(w, r, r.URL.Query().Get("notification"))
}

func (p *Pages) deleteConfirmed(w http.ResponseWriter, r *http.Request) {
	p.endSession(w, r, r.PostForm.Get("notification"))
}

// endSession ends the viewer's session and sends them to its index URL,
// else the fallback, with the notification (session-deleted by default).
func (p *Pages) endSession(w http.ResponseWriter, r *http.Request, notification string) {
	u, v, ok := p.ownSession(w, r)
	if !ok {
		return
	}
	if _, err := p.broker.Terminate(r.Context(), u, v.Session.Name); err != nil {
		p.fail(w, r, err)
		return
	}
	if notification == "" {
		notification = "session-deleted"
	}
	http.Redirect(w, r, withNotification(p.indexFor(v.Session, u), notification), http.StatusFound)
}

// endedNotification is what the owner of an ended session is told:
// session-deleted, or startup-timeout when it never started (the portal
// gave up on its host after a few tries: Educates left such a session
// STARTING for ever, and only the page's overdue timer ended it).
func endedNotification(s store.Session) string {
	if s.Failure != "" && s.Attempts > 0 {
		return "startup-timeout"
	}
	return "session-deleted"
}

// indexFor is where a person goes after a session: its index URL (which
// a robot or a start link supplied, trusted as Educates trusts it), else
// the fallback.
func (p *Pages) indexFor(s store.Session, u store.User) string {
	if s.IndexURL != "" {
		return s.IndexURL
	}
	return p.fallback(u)
}

// theme serves the portal's theme stylesheet (spec §11.1's path).
func (p *Pages) theme(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write([]byte(p.broker.Portal().ThemeCSS))
}
