package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/store"
)

// The administration pages for staff (spec §11.4). Their tables refresh
// themselves in place (static/portal.js), so the numbers stay live
// without reloading the page.

// staff lets only staff through: others who are logged in get 403, and
// the rest are asked to log in.
func (p *Pages) staff(h func(http.ResponseWriter, *http.Request, store.User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := p.requireLogin(w, r, "/accounts/login/")
		if !ok {
			return
		}
		if !u.Staff() {
			p.fail(w, r, httpapi.Errorf(http.StatusForbidden, "Only staff may see the administration pages"))
			return
		}
		h(w, r, u)
	}
}

type overviewData struct {
	Portal       broker.PortalView
	Environments []broker.EnvironmentView
	Capacity     int
	Available    int
	Now          time.Time
}

// environments lists every environment that has not stopped, in catalog
// order, with the portal's totals.
func (p *Pages) environments(r *http.Request) (overviewData, error) {
	pv, envs, err := p.broker.Catalog(r.Context(), broker.CatalogQuery{
		States: []store.EnvState{store.EnvStarting, store.EnvRunning, store.EnvStopping}})
	slices.SortFunc(envs, func(a, b broker.EnvironmentView) int { return a.Environment.Position - b.Environment.Position })
	d := overviewData{Portal: pv, Environments: envs, Now: p.clock.Now()}
	for _, e := range envs {
		d.Capacity += e.Environment.Capacity
		d.Available += e.Available
	}
	return d, err
}

func (p *Pages) adminOverview(w http.ResponseWriter, r *http.Request, _ store.User) {
	d, err := p.environments(r)
	p.page(w, r, err, "admin-overview.html", "Overview", d)
}

func (p *Pages) adminEnvironments(w http.ResponseWriter, r *http.Request, _ store.User) {
	d, err := p.environments(r)
	p.page(w, r, err, "admin-environments.html", "Environments", d)
}

// adminRefresh replaces an environment with a fresh one: new sessions
// come from it while the old one drains (spec §5.6).
func (p *Pages) adminRefresh(w http.ResponseWriter, r *http.Request, u store.User) {
	name := r.PathValue("name")
	if err := p.broker.Replace(r.Context(), u, name); err != nil {
		p.fail(w, r, err)
		return
	}
	p.flash(w, "Environment "+name+" is being replaced; sessions in use keep running.")
	http.Redirect(w, r, "/admin/environments/", http.StatusSeeOther)
}

type sessionsData struct {
	Query    string
	Sessions []broker.SessionView
	Now      time.Time
}

func (p *Pages) adminSessions(w http.ResponseWriter, r *http.Request, u store.User) {
	q := r.URL.Query().Get("q")
	list, err := p.broker.Sessions(r.Context(), u, q)
	p.page(w, r, err, "admin-sessions.html", "Sessions", sessionsData{Query: q, Sessions: list, Now: p.clock.Now()})
}

// extensions are the staff's extend buttons, in minutes (spec §11.4).
var extensions = []int{10, 30, 60}

// adminSessionAction is POST /admin/sessions/<name>/<action>/: extend,
// expire or terminate.
func (p *Pages) adminSessionAction(w http.ResponseWriter, r *http.Request, u store.User) {
	name, action := r.PathValue("name"), r.PathValue("action")
	var (
		err  error
		done string
	)
	switch action {
	case "extend":
		minutes, _ := strconv.Atoi(r.PostForm.Get("minutes"))
		if !slices.Contains(extensions, minutes) {
			p.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Extend by 10, 30 or 60 minutes"))
			return
		}
		_, err = p.broker.ExtendBy(r.Context(), u, name, time.Duration(minutes)*time.Minute)
		done = fmt.Sprintf("Session %s extended by %d minutes.", name, minutes)
	case "expire":
		err = p.broker.Expire(r.Context(), u, name)
		done = "Session " + name + " expired: it ends in a moment."
	case "terminate":
		_, err = p.broker.Terminate(r.Context(), u, name)
		done = "Session " + name + " terminated."
	default:
		p.fail(w, r, httpapi.Errorf(http.StatusNotFound, "No such action: %s", action))
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.flash(w, done)
	back := "/admin/sessions/"
	if q := r.PostForm.Get("q"); q != "" {
		back += "?q=" + url.QueryEscape(q)
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

type usersData struct {
	Query string
	Users []broker.UserView
}

func (p *Pages) adminUsers(w http.ResponseWriter, r *http.Request, u store.User) {
	q := r.URL.Query().Get("q")
	list, err := p.broker.Users(r.Context(), u, q)
	p.page(w, r, err, "admin-users.html", "Users", usersData{Query: q, Users: list})
}

type robotData struct {
	URL         string
	Credentials auth.RobotCredentials
	// Configured: the definitions set the secrets, so they are shown
	// from there and cannot be rotated here (a reload would undo it).
	Configured bool
	Rotated    bool
}

func (p *Pages) robotData(r *http.Request) (robotData, error) {
	portal := p.broker.Portal()
	creds, err := p.auth.Robot(r.Context(), *portal)
	d := robotData{URL: p.broker.URL(), Credentials: creds,
		Configured: portal.Robot.Password != "" && portal.RobotClient.Secret != ""}
	if d.Configured {
		d.Credentials.Password, d.Credentials.ClientSecret = portal.Robot.Password, portal.RobotClient.Secret
	}
	return d, err
}

func (p *Pages) adminRobot(w http.ResponseWriter, r *http.Request, _ store.User) {
	d, err := p.robotData(r)
	p.page(w, r, err, "admin-robot.html", "Robot credentials", d)
}

// adminRobotRotate makes new robot secrets and shows them this once.
func (p *Pages) adminRobotRotate(w http.ResponseWriter, r *http.Request, _ store.User) {
	d, err := p.robotData(r)
	if err == nil && d.Configured {
		err = httpapi.Errorf(http.StatusConflict, "The definitions set these credentials: change them there")
	}
	if err == nil {
		d.Credentials, err = p.auth.RotateRobot(r.Context(), *p.broker.Portal())
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	d.Rotated = true
	p.render(w, r, http.StatusOK, "admin-robot.html", "Robot credentials", d)
}

// recentDeliveries is how many deliveries the delivery log shows.
const recentDeliveries = 200

// adminWebhooks is the delivery log: the latest deliveries, how each
// stands, and the secret receivers verify them with.
func (p *Pages) adminWebhooks(w http.ResponseWriter, r *http.Request, u store.User) {
	d, err := p.broker.Deliveries(r.Context(), u, recentDeliveries)
	p.page(w, r, err, "admin-webhooks.html", "Webhooks", d)
}
