package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// fakeHost stands in for a session host and records what reaches it.
type fakeHost struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, r.Clone(r.Context()))
		h.mu.Unlock()
		w.Write([]byte("host:" + r.URL.Path))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *fakeHost) last() *http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return nil
	}
	return h.seen[len(h.seen)-1]
}

func TestProxyToSessionHost(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	_, bobsActivation := request(t, p, "bob", "/")
	host := newFakeHost(t)
	// Point alice's session at the fake host.
	if err := p.Store.Update(t.Context(), func(tx store.Tx) error {
		s, err := tx.Session(name)
		if err != nil {
			return err
		}
		s.Address = strings.TrimPrefix(host.URL, "http://")
		return tx.UpdateSession(&s)
	}); err != nil {
		t.Fatal(err)
	}
	password := p.ConfigPassword(name)

	alice := p.Client()
	alice.Raw("GET", activation, nil)
	bob := p.Client()
	bob.Raw("GET", bobsActivation, nil)

	if p.Session(name).Delivered {
		t.Fatal("delivered before any reconciler pass: the test would prove nothing")
	}
	resp, raw := alice.Raw("GET", "/sessions/"+name+"/workshop/content/01?x=1", nil)
	if resp.StatusCode != 200 || string(raw) != "host:/workshop/content/01" {
		t.Fatalf("owner through the proxy: %d %q", resp.StatusCode, raw)
	}
	got := host.last()
	for h, want := range map[string]string{
		"X-Portico-Secret":   password,
		"X-Portico-User":     "alice",
		"X-Portico-Staff":    "false",
		"X-Forwarded-Prefix": "/sessions/" + name,
		"Cookie":             "",
	} {
		if got.Header.Get(h) != want {
			t.Errorf("host got %s %q, want %q", h, got.Header.Get(h), want)
		}
	}
	if got.URL.RawQuery != "x=1" {
		t.Errorf("query %q lost", got.URL.RawQuery)
	}
	// The host knew its owner before the request reached it.
	if a, ok := p.Runtime.(*runtimetest.Runtime).Allocation(name); !ok || a.User.Username != "alice" || !p.Session(name).Delivered {
		t.Errorf("owner not delivered before forwarding: %+v %v", a, ok)
	}

	n := len(host.seen)
	for _, c := range []struct {
		name string
		do   func() (*http.Response, []byte)
	}{
		{"bob", func() (*http.Response, []byte) { return bob.Raw("GET", "/sessions/"+name+"/", nil) }},
		{"nobody", func() (*http.Response, []byte) { return p.Client().Raw("GET", "/sessions/"+name+"/", nil) }},
		{"foreign websocket", func() (*http.Response, []byte) {
			return alice.Raw("GET", "/sessions/"+name+"/terminal/1", nil,
				"Connection", "Upgrade", "Upgrade", "websocket", "Origin", "https://evil.test")
		}},
	} {
		resp, raw := c.do()
		if resp.StatusCode != 403 || !strings.Contains(string(raw), `"error"`) {
			t.Errorf("%s: %d %s, want 403", c.name, resp.StatusCode, raw)
		}
	}
	if len(host.seen) != n {
		t.Fatal("a refused request reached the host")
	}

	// The config endpoints need no login: the host checks their token, and
	// the portal does not hand over the secret.
	resp, _ = p.Client().Raw("GET", "/sessions/"+name+"/config/environment?token=abc", nil)
	if resp.StatusCode != 200 || host.last().Header.Get("X-Portico-Secret") != "" || host.last().URL.Path != "/config/environment" {
		t.Errorf("config through the proxy: %d, secret %q", resp.StatusCode, host.last().Header.Get("X-Portico-Secret"))
	}

	resp, raw = alice.Raw("GET", "/sessions/nope-s001/", nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown session: %d %s", resp.StatusCode, raw)
	}
}
