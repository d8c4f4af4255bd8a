// Package openapitest holds the API to its OpenAPI document in tests: a
// middleware checks every answer of the API's endpoints (status, content
// type, headers, body) against the document, so the document cannot drift
// from the code.
//
// The document is OpenAPI 3.1; kin-openapi validates its schemas with a
// JSON Schema 2020-12 validator (unevaluatedProperties, const and type
// null work). Requests are not validated: the tests send bad input on
// purpose, and the document describes what the API accepts, not what it
// refuses.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/portico-dev/portico/internal/httpapi"
)

// Validator checks exchanges with the API against an OpenAPI document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	// api matches the paths the API serves, with and without their
	// trailing slash, to tell its exchanges from those of the pages.
	api *http.ServeMux
}

// New loads and checks the OpenAPI document doc.
func New(doc []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := t.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	router, err := legacy.NewRouter(t)
	if err != nil {
		return nil, err
	}
	v := &Validator{doc: t, router: router, api: http.NewServeMux()}
	nothing := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, r := range httpapi.Routes() {
		v.api.Handle(r.Path, nothing)
		if strings.HasSuffix(r.Path, "/") {
			v.api.Handle(strings.TrimSuffix(r.Path, "/"), nothing)
		}
	}
	return v, nil
}

// Default is a Validator of the document the API serves; a document that
// does not load fails the test.
func Default(t testing.TB) *Validator {
	t.Helper()
	doc, err := httpapi.OpenAPI()
	if err == nil {
		var v *Validator
		if v, err = New(doc); err == nil {
			return v
		}
	}
	t.Fatalf("OpenAPI document: %v", err)
	return nil
}

// Doc is the document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Middleware serves next and fails t on every answer of an API endpoint
// that the document does not describe. Other paths (the portal's pages)
// pass through untouched.
func (v *Validator) Middleware(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := v.api.Handler(r); pattern == "" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		if err := v.Check(r, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("OpenAPI: %s %s answered %d %s: %v", r.Method, r.URL.RequestURI(), rec.Code, rec.Body.Bytes(), err)
		}
	})
}

// Transport sends requests with base and fails t on every answer of an
// API endpoint of the portal at host that the document does not describe,
// for tests that speak to a portal in another process. Requests to other
// hosts (sessions' origins) pass through untouched.
func (v *Validator) Transport(t testing.TB, host string, base http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err != nil || r.URL.Host != host {
			return resp, err
		}
		if _, pattern := v.api.Handler(r); pattern == "" {
			return resp, nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if err := v.Check(r, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("OpenAPI: %s %s answered %d %s: %v", r.Method, r.URL.RequestURI(), resp.StatusCode, body, err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Check returns why the answer (status, header, body) to r is not what the
// document describes, or nil. r's body is not read.
func (v *Validator) Check(r *http.Request, status int, header http.Header, body []byte) error {
	if r.Method == http.MethodOptions {
		// A CORS preflight, which the API answers on every endpoint and
		// which is not an operation.
		return nil
	}
	// Paths are documented with their trailing slash and answered
	// without it too.
	find := r.Clone(context.Background())
	find.Body = http.NoBody
	if !strings.HasSuffix(find.URL.Path, "/") && !strings.HasSuffix(find.URL.Path, ".json") {
		find.URL.Path += "/"
		find.URL.RawPath = ""
	}
	route, params, err := v.router.FindRoute(find)
	if err != nil && v.pathDocumented(find) {
		if status != http.StatusMethodNotAllowed || header.Get("Allow") == "" {
			return fmt.Errorf("method %s is not documented for this path, and the answer is not a 405 with Allow", r.Method)
		}
		if r.Method == http.MethodHead {
			return nil // an answer to HEAD has no body
		}
		return v.checkSchema("Error", header, body)
	}
	if err != nil {
		return fmt.Errorf("path not documented: %w", err)
	}
	if r.Method == http.MethodHead {
		// kin-openapi does not check answers to HEAD.
		if route.Operation.Responses.Status(status) == nil {
			return fmt.Errorf("status %d is not documented for HEAD", status)
		}
		return nil
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: find, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), input)
}

// pathDocumented reports whether r's path has an operation of any method
// in the document.
func (v *Validator) pathDocumented(r *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
		other := r.Clone(context.Background())
		other.Method = m
		if _, _, err := v.router.FindRoute(other); err == nil {
			return true
		}
	}
	return false
}

// checkSchema checks a JSON body against a schema of the document's
// components.
func (v *Validator) checkSchema(name string, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("content type %q, want application/json", ct)
	}
	ref := v.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("schema %s not in the document", name)
	}
	value, err := decodeJSON(body)
	if err != nil {
		return err
	}
	return ref.Value.VisitJSON(value, openapi3.EnableJSONSchema2020())
}

func decodeJSON(body []byte) (any, error) {
	var value any
	if err := json.Unmarshal(body, &value); err != nil {
		return nil, fmt.Errorf("body is not JSON: %w", err)
	}
	return value, nil
}
