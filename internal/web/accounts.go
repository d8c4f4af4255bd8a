package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/ratelimit"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
)

const accessCookie = "portico_access"

const tooMany = "Too many attempts. Wait a minute, then try again."

// Guessing is limited by failed attempts: per username for passwords, so
// that behind an ingress (one address for everyone) one person's typos
// lock out nobody else, and per address for the event's access code.
// Sign-ups, which make accounts, count every attempt per address, within
// a limit a room full of people behind one address stays under.

// blocked reports whether key has no attempts left; the answer must then
// say so.
func (p *Pages) blocked(w http.ResponseWriter, key string) bool {
	if !p.logins.Blocked(key) {
		return false
	}
	w.Header().Set("Retry-After", "10")
	return true
}

func passwordKey(username string) string { return "password:" + username }

func codeKey(r *http.Request) string { return "code:" + ratelimit.ClientIP(r) }

// index is / (spec §3.3): the access code first, then login or an
// anonymous account, then the catalog.
func (p *Pages) index(w http.ResponseWriter, r *http.Request) {
	portal := p.broker.Portal()
	if !p.accessAllowed(r) {
		http.Redirect(w, r, "/workshops/access/?redirect_url=%2F", http.StatusFound)
		return
	}
	_, loggedIn, err := p.viewer(r)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	next := localPath(r.URL.Query().Get("next"), "")
	switch {
	case !loggedIn && p.anonymousMode():
		http.Redirect(w, r, "/accounts/create/", http.StatusFound)
	// A page that sent a visitor here with next= needs a login, even
	// when the catalog is public (else: back to that page, for ever).
	case !loggedIn && (portal.CatalogVisibility != "public" || next != ""):
		target := "/accounts/login/"
		if next != "" {
			target += "?next=" + url.QueryEscape(next)
		}
		http.Redirect(w, r, target, http.StatusFound)
	case next != "":
		http.Redirect(w, r, next, http.StatusFound)
	default:
		http.Redirect(w, r, "/workshops/catalog/", http.StatusFound)
	}
}

func (p *Pages) anonymousMode() bool {
	reg := p.broker.Portal().Registration
	return reg.Enabled && reg.Type == "anonymous"
}

func (p *Pages) registrationOpen() bool {
	reg := p.broker.Portal().Registration
	return reg.Enabled && reg.Type == "one-step"
}

type loginData struct {
	Next, Username, Error string
	Register              bool
}

// SignUp is the link to the sign-up form, which leads where the login
// would have.
func (d loginData) SignUp() string {
	if d.Next == "" {
		return "/accounts/register/"
	}
	return "/accounts/register/?next=" + url.QueryEscape(d.Next)
}

func (p *Pages) loginForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "login.html", "Log in",
		loginData{Next: localPath(r.URL.Query().Get("next"), ""), Register: p.registrationOpen()})
}

// login checks a username and password, at most a few times a minute per
// client address.
func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	data := loginData{Next: localPath(r.PostForm.Get("next"), ""), Username: r.PostForm.Get("username"),
		Register: p.registrationOpen()}
	if p.blocked(w, passwordKey(data.Username)) {
		data.Error = tooMany
		p.render(w, r, http.StatusTooManyRequests, "login.html", "Log in", data)
		return
	}
	u, err := p.auth.Password(r.Context(), data.Username, r.PostForm.Get("password"))
	var oauth *auth.Error
	if errors.As(err, &oauth) {
		p.logins.Spend(passwordKey(data.Username))
		data.Error = "That username and password do not match an account."
		p.render(w, r, http.StatusUnauthorized, "login.html", "Log in", data)
		return
	}
	p.loggedIn(w, r, u, err, localPath(data.Next, "/"))
}

// loggedIn logs the browser in as u, whom err did not keep from logging
// in, and sends it to target.
func (p *Pages) loggedIn(w http.ResponseWriter, r *http.Request, u store.User, err error, target string) {
	if err == nil {
		err = p.startBrowser(w, r, u)
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// logoutForm asks before logging out: logging out changes state, so it
// takes a POST, which a link on another site cannot make.
func (p *Pages) logoutForm(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "logout.html", "Log out", nil)
}

func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(auth.CookieName); err == nil {
		if err := p.auth.EndBrowser(r.Context(), c.Value); err != nil {
			p.fail(w, r, err)
			return
		}
	}
	p.setCookie(w, auth.CookieName, "", -1)
	http.Redirect(w, r, "/", http.StatusFound)
}

type registerData struct {
	Username, Email string
	Errors          auth.Invalid
	MinPassword     int
	// Next is where the person goes once signed up: a page of the portal
	// that sent them to log in, else the catalog.
	Next string
}

func (p *Pages) registerForm(w http.ResponseWriter, r *http.Request) {
	if !p.registrationOpen() {
		http.Redirect(w, r, "/accounts/register/closed/", http.StatusFound)
		return
	}
	if p.gated(w, r, store.User{}) {
		return
	}
	p.render(w, r, http.StatusOK, "register.html", "Sign up", registerData{MinPassword: auth.MinPassword,
		Next: localPath(r.URL.Query().Get("next"), "")})
}

// register is the one-step registration of spec §3.2: on success the
// person is logged in and sent to the catalog, or, unlike Educates, to
// the page that asked them to log in.
func (p *Pages) register(w http.ResponseWriter, r *http.Request) {
	if !p.registrationOpen() {
		http.Redirect(w, r, "/accounts/register/closed/", http.StatusFound)
		return
	}
	if p.gated(w, r, store.User{}) {
		return
	}
	in := auth.Signup{Username: strings.TrimSpace(r.PostForm.Get("username")), Email: strings.TrimSpace(r.PostForm.Get("email")),
		Password: r.PostForm.Get("password1"), Confirm: r.PostForm.Get("password2")}
	data := registerData{Username: in.Username, Email: in.Email, MinPassword: auth.MinPassword,
		Next: localPath(r.PostForm.Get("next"), "")}
	if !p.signups.Allow(ratelimit.ClientIP(r)) {
		w.Header().Set("Retry-After", "10")
		data.Errors = auth.Invalid{"form": tooMany}
		p.render(w, r, http.StatusTooManyRequests, "register.html", "Sign up", data)
		return
	}
	u, err := p.auth.Register(r.Context(), in)
	if errors.As(err, &data.Errors) {
		p.render(w, r, http.StatusBadRequest, "register.html", "Sign up", data)
		return
	}
	p.loggedIn(w, r, u, err, localPath(data.Next, "/workshops/catalog/"))
}

func (p *Pages) registerClosed(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusOK, "message.html", "Registration closed",
		"This portal does not take new sign-ups. Ask the event's organisers for an account.")
}

// registerComplete is where Educates sent people after signing up; old
// links land on the catalog.
func (p *Pages) registerComplete(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/workshops/catalog/", http.StatusFound)
}

// createAnonymous is /accounts/create/ (spec §3.2): in anonymous mode, an
// account made up on the spot.
func (p *Pages) createAnonymous(w http.ResponseWriter, r *http.Request) {
	_, loggedIn, err := p.viewer(r)
	switch {
	case err != nil:
		p.fail(w, r, err)
	case loggedIn:
		http.Redirect(w, r, "/workshops/catalog/", http.StatusFound)
	case !p.anonymousMode():
		http.Redirect(w, r, "/accounts/login/", http.StatusFound)
	case p.gated(w, r, store.User{}):
	default:
		if _, ok := p.loginAnonymous(w, r, secret.UUID()); ok {
			http.Redirect(w, r, "/workshops/catalog/", http.StatusFound)
		}
	}
}

// loginAnonymous creates an anonymous user and logs the browser in as
// it; false when it failed and the response has been written.
func (p *Pages) loginAnonymous(w http.ResponseWriter, r *http.Request, username string) (store.User, bool) {
	u, err := p.broker.NewAnonymous(r.Context(), username)
	if err == nil {
		err = p.startBrowser(w, r, u)
	}
	if err != nil {
		p.fail(w, r, err)
		return u, false
	}
	return u, true
}

// accessAllowed reports whether the browser has entered the event access
// code (spec §3.4), or none is needed.
func (p *Pages) accessAllowed(r *http.Request) bool {
	if p.broker.Portal().Password == "" {
		return true
	}
	c, err := r.Cookie(accessCookie)
	return err == nil && hmac.Equal([]byte(c.Value), []byte(p.accessProof()))
}

// gated sends a browser that has not given the event's access code to
// the access page, which leads back to the page it asked for; it reports
// whether it did. Educates asked for the code on / and the catalog only
// (spec §3.4, §14.2 #14), so that anyone could sign up or start a workshop
// by going to those pages directly: Portico asks on every page that gives
// a person an account or a session. Staff need no code.
func (p *Pages) gated(w http.ResponseWriter, r *http.Request, u store.User) bool {
	if u.Staff() || p.accessAllowed(r) {
		return false
	}
	back, status := r.URL.RequestURI(), http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		back, status = r.URL.Path, http.StatusSeeOther // the form again, not its answer
	}
	http.Redirect(w, r, "/workshops/access/?redirect_url="+url.QueryEscape(back), status)
	return true
}

// accessProof is the cookie value that shows the code was given: a MAC
// keyed by the code, so it changes with the code and cannot be made
// without it, on every replica alike.
func (p *Pages) accessProof() string {
	portal := p.broker.Portal()
	m := hmac.New(sha256.New, []byte(portal.Password))
	m.Write([]byte("portico event access " + portal.Name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

type accessData struct {
	RedirectURL string
	Error       string
}

// accessForm is GET /workshops/access/: the form, or straight through
// when the code is in the query, as the educates CLI sends it. Unlike
// Educates, redirect_url must be a path of this portal.
func (p *Pages) accessForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("redirect_url") == "" {
		p.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Need redirect URL for access check"))
		return
	}
	target := localPath(q.Get("redirect_url"), "/")
	if code := q.Get("password"); code != "" {
		p.tryCode(w, r, code, target)
		return
	}
	p.render(w, r, http.StatusOK, "access.html", "Access code", accessData{RedirectURL: target})
}

func (p *Pages) access(w http.ResponseWriter, r *http.Request) {
	p.tryCode(w, r, r.PostForm.Get("password"), localPath(r.PostForm.Get("redirect_url"), "/"))
}

// tryCode lets the browser in to target when code is the event's access
// code, within the limit of failed guesses.
func (p *Pages) tryCode(w http.ResponseWriter, r *http.Request, code, target string) {
	want := p.broker.Portal().Password
	switch {
	case p.blocked(w, codeKey(r)):
		p.render(w, r, http.StatusTooManyRequests, "access.html", "Access code",
			accessData{RedirectURL: target, Error: tooMany})
	case want == "" || !hmac.Equal([]byte(code), []byte(want)):
		p.logins.Spend(codeKey(r))
		p.render(w, r, http.StatusOK, "access.html", "Access code",
			accessData{RedirectURL: target, Error: "That is not the access code of this event."})
	default:
		p.setCookie(w, accessCookie, p.accessProof(), 0)
		http.Redirect(w, r, target, http.StatusFound)
	}
}
