package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
)

// FuzzRequest sends arbitrary query strings and bodies to the request
// endpoint: no input may produce a 5xx, a panic or a non-JSON answer.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct{ query, body string }{
		{"index_url=https://hub.test/&user=alice", ""},
		{"index_url=/&user=bob&email=bob@example.com&first_name=Bob&last_name=B&timeout=0", `{"parameters": [{"name": "GREETING", "value": "hi"}]}`},
		{"index_url=/&timeout=abc", ""},
		{"index_url=/&session=portal-w01-s001&user=alice", ""},
		{"index_url=%zz", ""},
		{"redirect_url=/&firstname=x&lastname=y&analytics_url=http://a.test/", "{}"},
		{"index_url=/", `{"parameters": [1, null, {"name": ""}]}`},
		{"index_url=/", "\xff\xfe"},
		{"index_url=/&user=%C0%80", `[]`},
		{"index_url=/", `{"parameters": [{"name": "GREETING", "value": "` + strings.Repeat("x", 1000) + `"}]}`},
	} {
		f.Add(seed.query, []byte(seed.body))
	}
	defs := portaltest.Definitions(config.Entry{Capacity: 5, Reserved: 1, Initial: 1, Expires: time.Hour})
	p := portaltest.Start(f, defs, portaltest.Options{Runtime: runtimetest.New()})
	robot := p.Robot()
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) {
			// Not a request target: net/http answers it 400 itself
			// before any handler sees it.
			return
		}
		for _, method := range []string{"GET", "POST"} {
			req, err := http.NewRequest(method, p.Server.URL+"/workshops/environment/portal-w01/request/", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawQuery = query
			req.Header.Set("Authorization", "Bearer "+robot.Bearer)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The client refused to send it (e.g. a control character
				// in the query): nothing reached the server.
				return
			}
			var out map[string]any
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("%s ?%q body %q: status %d %v", method, query, body, resp.StatusCode, out)
			}
			if err != nil {
				t.Fatalf("%s ?%q body %q: status %d, body is not JSON: %v", method, query, body, resp.StatusCode, err)
			}
			if resp.StatusCode == 503 && out["error"] != "No session available" && out["error"] != "Cannot be reacquired" {
				t.Fatalf("503 for another reason than capacity: %v", out)
			}
		}
	})
}
