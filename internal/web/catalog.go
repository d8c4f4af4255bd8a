package web

import (
	"cmp"
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
	indexURL := strings.TrimSpace(r.URL.Query().Get("index_url"))
	switch {
	case p.gated(w, r, u):
		return
	case !loggedIn && p.anonymousMode():
		// Unlike Educates, which asked for a login nobody in anonymous
		// mode can give: an account on the spot, as the start link makes.
		http.Redirect(w, r, "/workshops/environment/"+url.PathEscape(r.PathValue("name"))+"/create/?index_url="+
			url.QueryEscape(indexURL), http.StatusFound)
		return
	case !loggedIn:
		p.requireLogin(w, r, "/accounts/login/")
		return
	}
	if err := httpapi.CheckURL("index_url", indexURL); err != nil {
		p.fail(w, r, err)
		return
	}
	if crossSite(r) {
		p.confirmStart(w, r, r.PathValue("name"), p.allowedIndex(indexURL))
		return
	}
	p.start(w, r, u, r.PathValue("name"), p.allowedIndex(indexURL))
}

// start allocates a session of the environment to u and sends the
// browser to it, or back to indexURL (else the fallback) with the reason
// there is none.
func (p *Pages) start(w http.ResponseWriter, r *http.Request, u store.User, environment, indexURL string) {
	back := indexURL
	if back == "" {
		back = p.fallback(u)
	}
	s, err := p.broker.Allocate(r.Context(), u, environment, indexURL)
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

// crossSite reports whether the browser says the request comes from
// another site's page, a sibling site included (sessions are served from
// siblings of the portal). A link typed or bookmarked ("none"), the
// portal's own pages, and clients that send no Fetch metadata are not.
func crossSite(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	return site == "cross-site" || site == "same-site"
}

// confirmStart answers a start link that another site made a logged-in
// person follow: it asks before starting, since the link could be
// anyone's (CSRF). The button leads to the same start link from the
// portal's own page, which starts the session.
func (p *Pages) confirmStart(w http.ResponseWriter, r *http.Request, environment, indexURL string) {
	data := struct{ Workshop, Start, Back string }{Workshop: environment, Back: indexURL,
		Start: "/workshops/environment/" + url.PathEscape(environment) + "/?index_url=" + url.QueryEscape(indexURL)}
	_, envs, err := p.broker.Catalog(r.Context(), broker.CatalogQuery{
		States: []store.EnvState{store.EnvStarting, store.EnvRunning}})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	for _, v := range envs {
		if v.Environment.Name == environment {
			data.Workshop = cmp.Or(v.Environment.Workshop.Title, v.Environment.Key)
		}
	}
	p.render(w, r, http.StatusOK, "start.html", "Start workshop", data)
}

// allowedIndex returns the index_url of a start link when the portal may
// send people there: a page of the portal, or a URL on the portal's own
// origin, the origin of its index (spec.portal.index) or one of
// spec.portal.indexOrigins. Anyone can make a start link, so any other
// index_url is dropped ("") and people go back to the fallback instead of
// a site of the link maker's choosing. A robot's index_url (the REST API)
// is the front end's own and is not checked.
func (p *Pages) allowedIndex(indexURL string) string {
	if indexURL == "" || localPath(indexURL, "") == indexURL {
		return indexURL
	}
	origin, ok := config.Origin(indexURL)
	if !ok {
		return ""
	}
	portal := p.broker.Portal()
	own, _ := config.Origin(p.broker.URL())
	index, _ := config.Origin(portal.Index)
	if origin == own || origin == index || slices.Contains(portal.IndexOrigins, origin) {
		return indexURL
	}
	return ""
}

// createForEnvironment is /workshops/environment/<name>/create/ (spec
// §7.6): the external start link of anonymous mode.
func (p *Pages) createForEnvironment(w http.ResponseWriter, r *http.Request) {
	indexURL := strings.TrimSpace(r.URL.Query().Get("index_url"))
	if err := httpapi.CheckURL("index_url", indexURL); err != nil {
		p.fail(w, r, err)
		return
	}
	indexURL = p.allowedIndex(indexURL)
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
		// The account is new, made by this very link, so there is
		// nobody a link from another site could act for: the session
		// starts at once, without the question of environment.
		if u, ok := p.loginAnonymous(w, r, "anon@educates:"+secret.UUID()); ok {
			p.start(w, r, u, r.PathValue("name"), indexURL)
		}
	}
}
