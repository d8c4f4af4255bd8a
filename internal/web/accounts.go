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

// Limits that keep one client from guessing or hoarding, each per client
// address (ratelimit.ClientIP; behind an ingress, --trusted-proxies makes
// that the attendee's own address). Wrong passwords are limited per
// account and address with growing delays, and per address over all
// accounts, by auth.Service, for the password grant too. The limits on
// accounts made let a room of 50 people behind one address through at
// once, and bound what one client can hold: anonymous accounts are also
// what anonymous sessions are made for (each holds at most the sessions a
// person may have), so their limit bounds those.
const (
	// Failed guesses of the event's access code and of activation links:
	// 10 at once, then one every 5 seconds.
	guessBurst, guessRate = 10, 1.0 / 5
	// Sign-ups: 120 at once (a room, with second tries of refused
	// forms), then one every 5 seconds.
	signupBurst, signupRate = 120, 1.0 / 5
	// Anonymous accounts: 60 at once, then one every 30 seconds.
	anonymousBurst, anonymousRate = 60, 1.0 / 30
)

// refusal answers err when it is a refusal of a limit: the status (429)
// and reason for the form page to show, Retry-After set; ok is false for
// any other error.
func (p *Pages) refusal(w http.ResponseWriter, r *http.Request, err error) (status int, reason string, ok bool) {
	var refused *ratelimit.Refused
	if !errors.As(err, &refused) {
		return 0, "", false
	}
	status, reason = httpapi.Status(w, r, p.log, err)
	return status, reason, true
}

// guess takes one of the client's guesses of kind of secret, or returns
// the refusal of a client that has used them up. A guess counts as wrong
// from the start, so that guesses sent at once are counted as they come,
// until rightGuess gives it back.
func (p *Pages) guess(r *http.Request, kind string) error {
	if d := p.guesses.Take(kind + ":" + ratelimit.ClientIP(r)); d > 0 {
		return ratelimit.Refuse(d, "Too many wrong "+kind+"s from your address")
	}
	return nil
}

// rightGuess gives back a guess of kind of secret that was right.
func (p *Pages) rightGuess(r *http.Request, kind string) {
	p.guesses.Refund(kind + ":" + ratelimit.ClientIP(r))
}

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

// login checks a username and password, within the limits of wrong
// passwords per account and client address.
func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	data := loginData{Next: localPath(r.PostForm.Get("next"), ""), Username: r.PostForm.Get("username"),
		Register: p.registrationOpen()}
	ctx := ratelimit.WithClient(r.Context(), ratelimit.ClientIP(r))
	u, err := p.auth.Password(ctx, data.Username, r.PostForm.Get("password"))
	if status, reason, ok := p.refusal(w, r, err); ok {
		data.Error = reason
		p.render(w, r, status, "login.html", "Log in", data)
		return
	}
	var oauth *auth.Error
	if errors.As(err, &oauth) {
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
	if d := p.signups.Take(ratelimit.ClientIP(r)); d > 0 {
		status, reason, _ := p.refusal(w, r, ratelimit.Refuse(d, "Too many sign-ups from your address"))
		data.Errors = auth.Invalid{"form": reason}
		p.render(w, r, status, "register.html", "Sign up", data)
		return
	}
	u, err := p.auth.Register(r.Context(), *p.broker.Portal(), in)
	if errors.As(err, &data.Errors) {
		p.render(w, r, http.StatusBadRequest, "register.html", "Sign up", data)
		return
	}
	if err == nil {
		p.log.Info("user signed up", "user", u.Username, "request_id", httpapi.RequestID(r.Context()))
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
// it, within the limit of anonymous accounts per client address; false
// when it failed and the response has been written.
func (p *Pages) loginAnonymous(w http.ResponseWriter, r *http.Request, username string) (store.User, bool) {
	if d := p.anonymous.Take(ratelimit.ClientIP(r)); d > 0 {
		p.fail(w, r, ratelimit.Refuse(d, "Too many anonymous accounts from your address"))
		return store.User{}, false
	}
	u, err := p.broker.NewAnonymous(r.Context(), username)
	if err == nil {
		p.log.Info("anonymous user created", "user", u.Username, "request_id", httpapi.RequestID(r.Context()))
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
	if status, reason, ok := p.refusal(w, r, p.guess(r, "access code")); ok {
		p.render(w, r, status, "access.html", "Access code", accessData{RedirectURL: target, Error: reason})
		return
	}
	switch {
	case want == "" || !hmac.Equal([]byte(code), []byte(want)):
		p.render(w, r, http.StatusOK, "access.html", "Access code",
			accessData{RedirectURL: target, Error: "That is not the access code of this event."})
	default:
		p.rightGuess(r, "access code")
		p.setCookie(w, accessCookie, p.accessProof(), 0)
		http.Redirect(w, r, target, http.StatusFound)
	}
}
