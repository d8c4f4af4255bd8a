package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
)

// FuzzPages sends any path, query and form to the pages, logged in as an
// attendee: no answer may be a 5xx, and nothing may panic.
func FuzzPages(f *testing.F) {
	for _, seed := range [][3]string{
		{"/workshops/environment/portal-w01/", "index_url=%zz", ""},
		{"/accounts/register/", "", "username=a&password1=b"},
		{"/admin/sessions/portal-w01-s001/extend/", "", "minutes=10"},
		{"/workshops/session/portal-w01-s001/delete/", "notification=%00", ""},
		{"/workshops/access/", "redirect_url=//x&password=y", "password=z"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	p := startWith(f, config.Entry{}, nil)
	alice := signUp(f, p, "alice")
	cookies := alice.HTTP.Jar.Cookies(mustURL(p.Server.URL))
	f.Fuzz(func(t *testing.T, path, query, body string) {
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "/sessions/") {
			return // the proxy forwards to session hosts: not a page
		}
		for _, method := range []string{"GET", "POST"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.Method = method
			req.URL.Path, req.URL.RawQuery = path, query
			req.Body = http.NoBody
			if method == "POST" {
				req = httptest.NewRequest("POST", "/", strings.NewReader(body+"&csrf_token="+cookieValue(cookies, "portico_csrf")))
				req.URL.Path, req.URL.RawQuery = path, query
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			for _, c := range cookies {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			p.Server.Config.Handler.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %s?%s %q: %d %s", method, path, query, body, rec.Code, rec.Body)
			}
		}
	})
}

func cookieValue(cookies []*http.Cookie, name string) string {
	for _, c := range cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
