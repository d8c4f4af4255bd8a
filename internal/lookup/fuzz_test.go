package lookup

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// still is a portal that answers at once with one running environment and
// gives every request a session.
type still struct{}

func (still) State(context.Context) (*PortalState, error) {
	return &PortalState{UID: "u", URL: "https://portal.test", Environments: []EnvironmentState{{Name: "p-w01",
		Workshop: "lab", Title: "Lab", Phase: phaseRunning, Capacity: 2}}}, nil
}

func (still) Request(_ context.Context, env string, r SessionRequest) (*Allocation, error) {
	return &Allocation{Session: env + "-s001", ActivationURL: "https://portal.test/activate"}, nil
}

func fuzzService(t testing.TB) (http.Handler, string) {
	cfg, err := ParseConfig([]byte(`
clients: [{name: front, password: front-secret, roles: [tenant], tenants: [t1]}]
tenants: [{name: t1, portals: {}}]
clusters: [{name: c, portals: [{name: p, url: "http://p.test", credentials: {clientId: a, clientSecret: b}}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, Options{Backend: func(PortalConfig) (Backend, error) { return still{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	login, err := s.Login("front", "front-secret", "test")
	if err != nil {
		t.Fatal(err)
	}
	return Handler(s, nil), login.AccessToken
}

// Whatever a client sends to the routes that read a body or a token, the
// answer is JSON and never a 500.
func FuzzHandler(f *testing.F) {
	h, token := fuzzService(f)
	f.Add("/login", `{"username": "front", "password": "front-secret"}`, "")
	f.Add("/api/v1/workshops", `{"tenantName": "t1", "workshopName": "lab", "workshopParams": [{"name": "A", "value": "b"}]}`, token)
	f.Add("/api/v1/workshops", `{"tenantName": "t1", "workshopName": "lab", "workshopParams": [{"name": 1}]}`, token)
	f.Add("/auth/verify", "", token+"x")
	f.Add("/api/v1/workshops", "\xff\xfe", "a.b.c")
	f.Fuzz(func(t *testing.T, path, body, token string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(http.MethodPost, "http://lookup.test"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		// ServeMux sends unclean paths ("/a/../b") to their clean form.
		if w.Code == http.StatusTemporaryRedirect || w.Code == http.StatusMovedPermanently {
			return
		}
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %q %q: %d %s", path, body, w.Code, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("POST %q %q: %d with no JSON object: %q", path, body, w.Code, w.Body)
		}
	})
}

// The handler's answer to a request, without the network: a tenant client
// gets a session of the one portal's workshop.
func TestHandlerRequest(t *testing.T) {
	h, token := fuzzService(t)
	r := httptest.NewRequest("POST", "/api/v1/workshops",
		strings.NewReader(`{"tenantName": "t1", "workshopName": "lab", "clientUserId": "u1"}`))
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	want := `{"tenantName":"t1","clusterName":"c","portalName":"p","environmentName":"p-w01","sessionName":"p-w01-s001",` +
		`"clientUserId":"u1","sessionActivationUrl":"https://portal.test/activate"}`
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("%d %s\nwant %s", w.Code, w.Body, want)
	}
}

// Tokens: only the exact header this service writes, a valid signature
// and a future expiry pass.
func TestParseToken(t *testing.T) {
	key, other := []byte("k1"), []byte("k2")
	now := time.Unix(1000, 0)
	good := signToken(key, claims{Subject: "front", Identity: "i", Expires: 2000})
	if c, err := parseToken(key, good, now); err != nil || c.Subject != "front" {
		t.Fatalf("good token: %v %+v", err, c)
	}
	for name, tok := range map[string]string{
		"other key": signToken(other, claims{Subject: "front", Identity: "i", Expires: 2000}),
		"expired":   signToken(key, claims{Subject: "front", Identity: "i", Expires: 1000}),
		"no sub":    signToken(key, claims{Identity: "i", Expires: 2000}),
		"alg none":  "eyJhbGciOiJub25lIn0." + strings.Split(good, ".")[1] + ".",
		"two parts": strings.Join(strings.Split(good, ".")[:2], "."),
		"empty":     "",
	} {
		if _, err := parseToken(key, tok, now); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
