package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

// notifications are the banners the catalog shows, by the value of its
// notification parameter (spec §6.10, §11.2).
var notifications = map[string]struct{ Level, Text string }{
	"session-deleted":     {"success", "Your workshop session has ended."},
	"session-unavailable": {"warning", "No session is available for that workshop right now. Try again in a little while."},
	"session-invalid":     {"danger", "That workshop session does not exist or is not yours."},
	"workshop-invalid":    {"danger", "That workshop does not exist."},
	"startup-timeout":     {"danger", "The workshop session did not start. Try starting it again."},
}

type card struct {
	Environment string
	Workshop    config.Workshop
	// State is "session" (the viewer has one there), "available", "full"
	// (the workshop's capacity or the portal maximum is taken) or "limit"
	// (the viewer has as many sessions as a person may).
	State   string
	Session string // the viewer's session there, if any
	Limit   int    // of sessions per person, when State is "limit"
}

type catalogData struct {
	Cards  []card
	Banner *struct{ Notification, Level, Text string }
}

// catalog is /workshops/catalog/ (spec §7.1, §3.5): the access code, then
// login when the catalog is private, then the portal index for
// non-staff when one is set.
func (p *Pages) catalog(w http.ResponseWriter, r *http.Request) {
	portal := p.broker.Portal()
	if !p.accessAllowed(r) {
		http.Redirect(w, r, "/workshops/access/?redirect_url=%2Fworkshops%2Fcatalog%2F", http.StatusFound)
		return
	}
	u, loggedIn, err := p.viewer(r)
	switch {
	case err != nil:
		p.fail(w, r, err)
		return
	case !loggedIn && portal.CatalogVisibility != "public":
		http.Redirect(w, r, "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F", http.StatusFound)
		return
	case portal.Index != "" && !u.Staff():
		http.Redirect(w, r, portal.Index, http.StatusFound)
		return
	}
	// Starting environments are listed too: a request starts them.
	pv, envs, err := p.broker.Catalog(r.Context(), broker.CatalogQuery{
		States: []store.EnvState{store.EnvStarting, store.EnvRunning}})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	// The viewer's sessions, by environment, and by workshop for those in
	// an environment a refresh replaced: they go on there, out of the
	// catalog, and their card must lead back to them, not to a second one.
	held, heldByKey := map[int64]string{}, map[string]string{}
	if loggedIn {
		own, err := p.broker.OwnSessions(r.Context(), u)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		for _, v := range own {
			held[v.Session.EnvID] = v.Session.Name
			if v.Environment != nil {
				heldByKey[v.Environment.Key] = v.Session.Name
			}
		}
	}
	slices.SortFunc(envs, func(a, b broker.EnvironmentView) int { return a.Environment.Position - b.Environment.Position })
	// Unlike Educates, whose light ignored them, the portal maximum and
	// the sessions a person may have count: a start would only come back
	// with session-unavailable.
	limit := p.broker.SessionLimit(u)
	portalFull := pv.Maximum > 0 && pv.Allocated >= pv.Maximum
	var data catalogData
	for _, v := range envs {
		c := card{Environment: v.Environment.Name, Workshop: v.Environment.Workshop, State: "full",
			Session: held[v.Environment.ID]}
		if c.Session == "" {
			c.Session = heldByKey[v.Environment.Key]
		}
		switch {
		case c.Session != "":
			c.State = "session"
		case loggedIn && limit > 0 && len(held) >= limit:
			c.State, c.Limit = "limit", limit
		case v.Environment.Capacity-v.Allocated > 0 && !portalFull:
			c.State = "available"
		}
		data.Cards = append(data.Cards, c)
	}
	if n := r.URL.Query().Get("notification"); n != "" {
		if b, ok := notifications[n]; ok {
			data.Banner = &struct{ Notification, Level, Text string }{n, b.Level, b.Text}
		}
	}
	p.render(w, r, http.StatusOK, "catalog.html", "Workshops", data)
}

// environment is /workshops/environment/<name>/ (spec §7.5): a session
// for the logged-in person, or back where they came from with the reason.
func (p *Pages) environment(w http.ResponseWriter, r *http.Request) {
	// The access code first, as on the index: the login page it would
	// otherwise lead to is no use to someone who has yet to sign up.
	u, loggedIn, err := p.viewer(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	switch {
	case p.gated(w, r, u):
		return
	case !loggedIn && p.anonymousMode():
		// Unlike Educates, which asked for a login nobody in anonymous
		// mode can give: an account on the spot, as the start link makes.
		http.Redirect(w, r, "/workshops/environment/"+url.PathEscape(r.PathValue("name"))+"/create/?index_url="+
			url.QueryEscape(strings.TrimSpace(r.URL.Query().Get("index_url"))), http.StatusFound)
		return
	case !loggedIn:
		p.requireLogin(w, r, "/accounts/login/")
		return
	}
	// The index_url is trusted as Educates trusts it: front ends link
	// people here with their own page to come back to.
	indexURL := strings.TrimSpace(r.URL.Query().Get("index_url"))
	if err := httpapi.CheckURL("index_url", indexURL); err != nil {
		p.fail(w, r, err)
		return
	}
	back := indexURL
	if back == "" {
		back = p.fallback(u)
	}
	s, err := p.broker.Allocate(r.Context(), u, r.PathValue("name"), indexURL)
	switch broker.KindOf(err) {
	case 0:
		if err != nil {
			p.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/workshops/session/"+s.Name+"/", http.StatusFound)
	case broker.NotFound:
		http.Redirect(w, r, withNotification(back, "workshop-invalid"), http.StatusFound)
	default:
		http.Redirect(w, r, withNotification(back, "session-unavailable"), http.StatusFound)
	}
}

// createForEnvironment is /workshops/environment/<name>/create/ (spec
// §7.6): the external start link of anonymous mode.
func (p *Pages) createForEnvironment(w http.ResponseWriter, r *http.Request) {
	indexURL := strings.TrimSpace(r.URL.Query().Get("index_url"))
	if err := httpapi.CheckURL("index_url", indexURL); err != nil {
		p.fail(w, r, err)
		return
	}
	target := "/workshops/environment/" + url.PathEscape(r.PathValue("name")) + "/?index_url=" + url.QueryEscape(indexURL)
	_, loggedIn, err := p.viewer(r)
	switch {
	case err != nil:
		p.fail(w, r, err)
	case loggedIn:
		http.Redirect(w, r, target, http.StatusFound)
	case !p.anonymousMode():
		// Unlike Educates, the target survives the login.
		http.Redirect(w, r, "/accounts/login/?next="+url.QueryEscape(target), http.StatusFound)
	case p.gated(w, r, store.User{}):
	default:
		if p.loginAnonymous(w, r, "anon@educates:"+secret.UUID()) {
			http.Redirect(w, r, target, http.StatusFound)
		}
	}
}
