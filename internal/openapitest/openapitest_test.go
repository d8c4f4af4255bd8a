package openapitest_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/openapitest"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
)

// Every route the API serves is in the document with its methods, and the
// document has no operation that the API does not serve.
func TestDocumentCoversEveryRoute(t *testing.T) {
	doc := openapitest.Default(t).Doc()
	served := map[string]bool{}
	for _, r := range httpapi.Routes() {
		item := doc.Paths.Value(r.Path)
		if item == nil {
			t.Errorf("route %s is not in the OpenAPI document", r.Path)
			continue
		}
		for _, m := range r.Methods {
			served[m+" "+r.Path] = true
			if item.GetOperation(m) == nil {
				t.Errorf("%s %s is not in the OpenAPI document", m, r.Path)
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			if !served[m+" "+path] {
				t.Errorf("the OpenAPI document has %s %s, which the API does not serve", m, path)
			}
		}
	}
}

// The document the portal serves is the one the tests hold it to.
func TestServedDocument(t *testing.T) {
	p := newPortal(t)
	resp, raw := p.Client().Raw("GET", "/openapi.json", nil)
	want, _ := httpapi.OpenAPI()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(raw) != string(want) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(raw))
	}
	var doc struct{ OpenAPI string }
	if err := json.Unmarshal(raw, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("served document is not OpenAPI 3.1: %q %v", doc.OpenAPI, err)
	}
}

func newPortal(t *testing.T) *portaltest.Portal {
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 1, Initial: 1, Expires: time.Hour})
	return portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
}

// recorder is a testing.TB that keeps the errors reported to it.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// A document that is wrong about a real answer fails the test that got
// the answer: a field the document does not know, a field of another
// type, a status it does not list, another content type, and a route it
// does not have.
func TestWrongDocumentRejectsRealAnswers(t *testing.T) {
	right, err := httpapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	// at walks the document down keys.
	at := func(doc map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			doc = doc[k].(map[string]any)
		}
		return doc
	}
	cases := []struct {
		name        string
		mutate      func(doc map[string]any)
		method, url string
		robot       bool
	}{
		{"undocumented field", func(doc map[string]any) {
			delete(at(doc, "components", "schemas", "Token", "properties"), "expires_in")
		}, "POST", "/oauth2/token/", false},
		{"undocumented field under allOf (unevaluatedProperties of 3.1)", func(doc map[string]any) {
			delete(at(doc, "components", "schemas", "Workshop", "properties"), "vendor")
		}, "GET", "/workshops/catalog/workshops/", true},
		{"field of another type", func(doc map[string]any) {
			at(doc, "components", "schemas", "Portal", "properties", "sessions", "properties", "maximum")["type"] = "string"
		}, "GET", "/workshops/catalog/environments/", true},
		{"undocumented status", func(doc map[string]any) {
			delete(at(doc, "paths", "/workshops/catalog/workshops/", "get", "responses"), "401")
		}, "GET", "/workshops/catalog/workshops/", false},
		{"other content type", func(doc map[string]any) {
			content := at(doc, "paths", "/oauth2/token/", "post", "responses", "200", "content")
			content["text/plain"] = content["application/json"]
			delete(content, "application/json")
		}, "POST", "/oauth2/token/", false},
		{"undocumented route", func(doc map[string]any) {
			delete(at(doc, "paths"), "/portico/api/v1/users/")
		}, "GET", "/portico/api/v1/users/", false},
	}
	p := newPortal(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc map[string]any
			if err := json.Unmarshal(right, &doc); err != nil {
				t.Fatal(err)
			}
			tc.mutate(doc)
			wrong, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			v, err := openapitest.New(wrong)
			if err != nil {
				t.Fatal(err)
			}
			// The right document takes the same answer.
			good := openapitest.Default(t)
			for _, c := range []struct {
				v    *openapitest.Validator
				fail bool
			}{{good, false}, {v, true}} {
				rec := &recorder{TB: t}
				h := c.v.Middleware(rec, p.Server.Config.Handler)
				req := httptest.NewRequest(tc.method, tc.url, nil)
				if tc.method == "POST" {
					req = httptest.NewRequest(tc.method, tc.url, strings.NewReader("grant_type=client_credentials"))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(portaltest.ClientID, portaltest.ClientSecret)
				}
				if tc.robot {
					req.Header.Set("Authorization", "Bearer "+p.Robot().Bearer)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if got := len(rec.errs) > 0; got != c.fail {
					t.Errorf("document wrong: %v; answer %d %s rejected: %v %q", c.fail, w.Code, w.Body, got, rec.errs)
				}
			}
		})
	}
}
