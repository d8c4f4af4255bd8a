// Package web serves the portal's own pages for people (spec §3, §7, §11):
// login and registration, the event access code, the catalog, the session
// page, and the administration pages for staff. Pages are html/template
// with one stylesheet and one script of our own, embedded in the binary.
package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/ratelimit"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/webhook"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed static
var static embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"minutes":   func(d time.Duration) int { return int(d.Minutes()) },
	"seconds":   func(d time.Duration) int { return int(d.Seconds()) },
	"timestamp": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"remaining": remaining,
	"imageURL":  imageURL,
	"guest":     guest,
	"origin":    webhook.Origin,
	"copyable": func(id, label, value string) struct{ ID, Label, Value string } {
		return struct{ ID, Label, Value string }{id, label, value}
	},
}).ParseFS(templates, "templates/*.html"))

// Pages serves the portal's pages.
type Pages struct {
	broker *broker.Broker
	auth   *auth.Service
	log    *slog.Logger
	origin *http.CrossOriginProtection
	clock  ratelimit.Clock
	// hosts reaches session hosts for the proxy.
	hosts http.RoundTripper
	// Limits per client address (accounts.go): failed guesses of
	// secrets, sign-ups, anonymous accounts.
	guesses, signups, anonymous *ratelimit.Limiter
}

// Handler adds the portal's pages to mux, beside its API, and returns the
// handler of everything the portal serves: its own origin by mux, and the
// origins of the sessions by their proxy.
func Handler(mux *http.ServeMux, b *broker.Broker, a *auth.Service, clock ratelimit.Clock, log *slog.Logger) http.Handler {
	p := &Pages{broker: b, auth: a, log: log, guesses: ratelimit.New(clock, guessBurst, guessRate),
		signups: ratelimit.New(clock, signupBurst, signupRate), anonymous: ratelimit.New(clock, anonymousBurst, anonymousRate),
		origin: http.NewCrossOriginProtection(), clock: clock,
		hosts: runtime.HostTransport(proxyResponseTimeout)}
	get := map[string]http.HandlerFunc{
		"/":                                     p.index,
		"/accounts/login/":                      p.loginForm,
		"/accounts/logout/":                     p.logoutForm,
		"/accounts/register/":                   p.registerForm,
		"/accounts/register/closed/":            p.registerClosed,
		"/accounts/register/complete/":          p.registerComplete,
		"/accounts/create/":                     p.createAnonymous,
		"/workshops/access/":                    p.accessForm,
		"/workshops/catalog/":                   p.catalog,
		"/workshops/environment/{name}/":        p.environment,
		"/workshops/environment/{name}/create/": p.createForEnvironment,
		"/workshops/session/{name}/":            p.session,
		"/workshops/session/{name}/activate/":   p.activate,
		"/workshops/session/{name}/open/":       p.open,
		"/workshops/session/{name}/ready/":      p.ready,
		"/workshops/session/{name}/delete/":     p.deleteLink,
		"/admin/":                               p.staff(p.adminOverview),
		"/admin/environments/":                  p.staff(p.adminEnvironments),
		"/admin/sessions/":                      p.staff(p.adminSessions),
		"/admin/users/":                         p.staff(p.adminUsers),
		"/admin/robot/":                         p.staff(p.adminRobot),
		"/admin/webhooks/":                      p.staff(p.adminWebhooks),
	}
	post := map[string]http.HandlerFunc{
		"/accounts/login/":                    p.login,
		"/accounts/logout/":                   p.logout,
		"/accounts/register/":                 p.register,
		"/workshops/access/":                  p.access,
		"/workshops/session/{name}/delete/":   p.deleteConfirmed,
		"/admin/environments/{name}/refresh/": p.staff(p.adminRefresh),
		"/admin/sessions/{name}/{action}/":    p.staff(p.adminSessionAction),
		"/admin/robot/":                       p.staff(p.adminRobotRotate),
	}
	allow := map[string][]string{}
	for path, h := range get {
		handle(mux, "GET", path, p.headers(h))
		allow[path] = append(allow[path], "GET", "HEAD")
	}
	for path, h := range post {
		handle(mux, "POST", path, p.headers(p.form(h)))
		allow[path] = append(allow[path], "POST")
	}
	// Other methods: 405 with the methods the page takes, as Django's
	// require_http_methods answered, rather than the REST API's 404.
	for path, methods := range allow {
		slices.Sort(methods)
		handle(mux, "", path, p.headers(p.notAllowed(strings.Join(methods, ", "))))
	}
	handle(mux, "GET", "/static/workshops/theme/training-portal.css", p.headers(p.theme))
	mux.Handle("GET /static/", cached(files(http.FileServerFS(static))))
	mux.HandleFunc("GET /sessions/{name}/{rest...}", p.legacySession)
	sessions := &sessionOrigin{Pages: p, portal: mux}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := b.Origins().Session(r.Host); ok {
			// The route of the request in logs and metrics, unless the
			// portal's mux takes it (and names its own).
			r.Pattern = SessionRoute
			sessions.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// SessionRoute is the route of requests to sessions' origins, which the
// portal proxies to their hosts.
const SessionRoute = "session"

// notAllowed answers a method a page does not take.
func (p *Pages) notAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		p.fail(w, r, httpapi.Errorf(http.StatusMethodNotAllowed, "Method %s not allowed", r.Method))
	}
}

// handle registers path with and without its trailing slash, as Django's
// APPEND_SLASH made both work for Educates' front ends; method "" is any
// method.
func handle(mux *http.ServeMux, method, path string, h http.HandlerFunc) {
	if method != "" {
		method += " "
	}
	switch {
	case path == "/":
		mux.HandleFunc(method+"/{$}", h)
		return
	case !strings.HasSuffix(path, "/"):
		mux.HandleFunc(method+path, h)
		return
	}
	mux.HandleFunc(method+path+"{$}", h)
	mux.HandleFunc(method+strings.TrimSuffix(path, "/"), h)
}

// files serves the embedded static files one by one: a directory is not
// listed.
func files(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// cached lets browsers keep the static files for a while: they change
// only with the binary.
func cached(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Title  string // of the page
	Portal string // title of the portal
	User   *store.User
	CSRF   string
	Theme  bool
	Flash  string
	Class  string // of the body
	Data   any
}

// render writes a page with status.
func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	v := view{Title: title, Portal: p.broker.Portal().Title, CSRF: p.csrfToken(w, r),
		Theme: p.broker.Portal().ThemeCSS != "", Flash: p.takeFlash(w, r), Class: strings.TrimSuffix(name, ".html"),
		Data: data}
	if u, ok, _ := p.viewer(r); ok {
		v.User = &u
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		p.log.Error("render page", "page", name, "err", err)
	}
}

// page renders a page with its data, or the error that kept it from being
// read.
func (p *Pages) page(w http.ResponseWriter, r *http.Request, err error, name, title string, data any) {
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, name, title, data)
}

// fail answers an error: an HTML page for a browser, else the JSON of the
// REST API. httpapi.Status decides the status and the words.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		httpapi.WriteError(w, r, p.log, err)
		return
	}
	status, reason := httpapi.Status(w, r, p.log, err)
	p.render(w, r, status, "error.html", http.StatusText(status), reason)
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

// requireLogin returns the logged-in user, or sends the browser to
// loginURL with the page as next; ok is false when the response has been
// written.
func (p *Pages) requireLogin(w http.ResponseWriter, r *http.Request, loginURL string) (store.User, bool) {
	u, ok, err := p.viewer(r)
	switch {
	case err != nil:
		p.fail(w, r, err)
	case !ok:
		http.Redirect(w, r, loginURL+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
	}
	return u, ok && err == nil
}

// startBrowser logs the browser in as u, with a new CSRF token: one that
// someone planted before the login (a shared computer, a page that set
// it) is worth nothing after.
func (p *Pages) startBrowser(w http.ResponseWriter, r *http.Request, u store.User) error {
	value, err := p.auth.StartBrowser(r.Context(), u)
	if err != nil {
		return err
	}
	p.setCookie(w, auth.CookieName, value, auth.BrowserTTL)
	p.setCookie(w, csrfCookie, secret.Token(), 0)
	return nil
}

// fallback is where a person goes when there is nowhere better: the
// portal index for non-staff, else the catalog (spec §6.10).
func (p *Pages) fallback(u store.User) string {
	if idx := p.broker.Portal().Index; idx != "" && !u.Staff() {
		return idx
	}
	return "/workshops/catalog/"
}

// withParam sets one query parameter of a URL, keeping the others (spec
// §6.10); a URL that does not parse is returned as it is.
func withParam(target, name, value string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func withNotification(target, notification string) string {
	return withParam(target, "notification", notification)
}

// localPath returns next when it is a path on this site, else fallback:
// next= and redirect_url= must not send people elsewhere.
func localPath(next, fallback string) string {
	// A backslash anywhere: http.Redirect cleans "/./\x" into "/\x", which
	// browsers read as "//x".
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsRune(next, '\\') {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.ContainsAny(next, "\r\n\t") {
		return fallback
	}
	return next
}

// remaining formats the time left until t as H:MM:SS or M:SS.
func remaining(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := max(0, t.Sub(now).Round(time.Second))
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}

// guest reports whether u is an account made up on the spot, whose name
// (a UUID, or anon@educates:<UUID>) says nothing to a person. Anonymous
// users a front end named through the REST API keep their names.
func guest(u *store.User) bool {
	return u != nil && u.Role == store.RoleAnonymous && generatedName.MatchString(u.Username)
}

var generatedName = regexp.MustCompile(`^(anon@educates:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// imageURL lets a workshop logo through when it is an image the page may
// show: a data: URL of an image, or an https URL.
func imageURL(s string) template.URL {
	if strings.HasPrefix(s, "data:image/") || strings.HasPrefix(s, "https://") {
		return template.URL(s)
	}
	return ""
}
