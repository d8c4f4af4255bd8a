package web

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/secret"
)

const (
	csrfCookie  = "portico_csrf"
	csrfField   = "csrf_token"
	flashCookie = "portico_flash"
	// maxForm bounds a form body: the largest form is registration.
	maxForm = 16 << 10
)

// headers sets what every page sends: a strict Content-Security-Policy
// (scripts, styles and frames from the portal only; no inline script), no
// caching of pages that show a person's data, and no sniffing.
func (p *Pages) headers(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", p.csp())
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "same-origin")
		hdr.Set("Cache-Control", "no-store")
		h(w, r)
	}
}

func (p *Pages) csp() string {
	ancestors := "'self'"
	for _, a := range p.broker.Portal().FrameAncestors {
		ancestors += " " + a
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; " +
		"connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors " + ancestors
}

// framed reports whether other sites may frame the portal: its cookies
// must then be SameSite=None to reach it inside their pages.
func (p *Pages) framed() bool { return len(p.broker.Portal().FrameAncestors) > 0 }

// setCookie sets one of the portal's cookies: HttpOnly, SameSite=Lax, or
// SameSite=None and Secure when the portal is framed by other sites
// (theme.frame.ancestors), Secure whenever the portal is on https.
func (p *Pages) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(p.broker.URL(), "https:")}
	if p.framed() {
		c.SameSite, c.Secure = http.SameSiteNoneMode, true
	}
	switch {
	case ttl > 0:
		c.MaxAge = int(ttl.Seconds())
	case ttl < 0:
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// csrfToken returns the browser's CSRF token, giving it one when it has
// none. Forms carry it back in a hidden field; a page of another site can
// neither read the cookie nor guess it (double-submit cookie).
func (p *Pages) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	v := secret.Token()
	p.setCookie(w, csrfCookie, v, 0)
	return v
}

// form checks a POST before its handler runs: a bounded, well-formed body,
// a request from this site (Fetch metadata and Origin, as
// http.CrossOriginProtection checks them) and the CSRF token of the
// browser.
func (p *Pages) form(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			p.fail(w, r, httpapi.Errorf(http.StatusBadRequest, "Malformed form"))
			return
		}
		if err := p.origin.Check(r); err != nil {
			p.fail(w, r, httpapi.Errorf(http.StatusForbidden, "Cross-site form refused"))
			return
		}
		c, err := r.Cookie(csrfCookie)
		token := r.PostForm.Get(csrfField)
		if err != nil || token == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(token)) != 1 {
			p.fail(w, r, httpapi.Errorf(http.StatusForbidden, "CSRF token missing or incorrect; reload the page and try again"))
			return
		}
		h(w, r)
	}
}

// flash leaves a short message for the next page this browser shows.
func (p *Pages) flash(w http.ResponseWriter, message string) {
	p.setCookie(w, flashCookie, url.QueryEscape(message), time.Minute)
}

func (p *Pages) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	p.setCookie(w, flashCookie, "", -1)
	msg, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return msg
}
