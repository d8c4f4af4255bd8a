package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/config"
)

// Tests of the gaps an audit of the pages against issue 4 and the spec
// found, each shown failing before its fix.

// A page asked for with a method it does not take answers 405 with the
// methods it does take (spec §1.3: require_http_methods), not the 404 of
// the REST API's catch-all.
func TestPagesAnswerOddMethodsWith405(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	alice := signUp(t, p, "alice")
	for path, allow := range map[string]string{
		"/":                                   "GET, HEAD",
		"/accounts/login/":                    "GET, HEAD, POST",
		"/accounts/login":                     "GET, HEAD, POST",
		"/accounts/create/":                   "GET, HEAD",
		"/workshops/catalog/":                 "GET, HEAD",
		"/workshops/environment/portal-w01/":  "GET, HEAD",
		"/workshops/session/portal-w01-s001/": "GET, HEAD",
		"/workshops/session/portal-w01-s001/delete/": "GET, HEAD, POST",
		"/admin/sessions/":                           "GET, HEAD",
		"/admin/sessions/portal-w01-s001/extend/":    "POST",
		"/admin/robot/":                              "GET, HEAD, POST",
	} {
		for _, method := range []string{"PUT", "DELETE", "PATCH", "OPTIONS"} {
			resp, raw := alice.Raw(method, path, strings.NewReader("x=1"), "Accept", "text/html")
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
				t.Errorf("%s %s: %d, Allow %q, want 405 with Allow %q (%.100s)", method, path, resp.StatusCode, resp.Header.Get("Allow"), allow, raw)
			}
		}
	}
	// The REST API keeps its own answers.
	if resp, _ := alice.Raw("PUT", "/workshops/catalog/environments/", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT on the REST catalog: %d", resp.StatusCode)
	}
	if resp, _ := alice.Raw("PUT", "/no/such/page/", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("PUT on no page: %d", resp.StatusCode)
	}
}

// The embedded static files are served one by one: no directory listing.
func TestNoListingOfStaticFiles(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	if resp, raw := p.Client().Raw("GET", "/static/", nil); resp.StatusCode != http.StatusNotFound || strings.Contains(string(raw), "portal.css") {
		t.Errorf("GET /static/: %d %.200s", resp.StatusCode, raw)
	}
	if resp, _ := p.Client().Raw("GET", "/static/portal.css", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the stylesheet: %d", resp.StatusCode)
	}
}
