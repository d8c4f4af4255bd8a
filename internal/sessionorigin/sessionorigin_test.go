package sessionorigin

import "testing"

func TestOrigins(t *testing.T) {
	for _, tc := range []struct {
		portal, domain, url string
	}{
		{"http://127.0.0.1:8080", "", "http://p-w01-s001.localhost:8080"},
		{"http://[::1]:8080", "", "http://p-w01-s001.localhost:8080"},
		{"http://0.0.0.0:8080", "", "http://p-w01-s001.localhost:8080"},
		{"http://localhost:9000", "", "http://p-w01-s001.localhost:9000"},
		{"https://portal.example.com", "", "https://p-w01-s001.portal.example.com"},
		{"https://portal.example.com", "Sessions.Example.COM.", "https://p-w01-s001.sessions.example.com"},
		{"https://10.0.0.5:8443", "ws.example.com", "https://p-w01-s001.ws.example.com:8443"},
	} {
		o, err := New(tc.portal, tc.domain)
		if err != nil {
			t.Errorf("New(%s, %q): %v", tc.portal, tc.domain, err)
			continue
		}
		if got := o.URL("p-w01-s001"); got != tc.url {
			t.Errorf("New(%s, %q).URL = %s, want %s", tc.portal, tc.domain, got, tc.url)
		}
	}
	for _, tc := range []struct{ portal, domain string }{
		{"http://10.0.0.5:8080", ""}, // an address names no domain
		{"http://127.0.0.1:8080", "10.0.0.5"},
		{"http://127.0.0.1:8080", "bad_domain.example"},
		{"ftp://portal.example.com", ""},
		{"not a url", ""},
	} {
		if _, err := New(tc.portal, tc.domain); err == nil {
			t.Errorf("New(%s, %q): no error", tc.portal, tc.domain)
		}
	}
}

func TestSessionOfHost(t *testing.T) {
	o, err := New("http://127.0.0.1:8080", "")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"p-w01-s001.localhost:8080":  "p-w01-s001",
		"P-W01-S001.LOCALHOST:8080":  "p-w01-s001",
		"p-w01-s001.localhost.:8080": "p-w01-s001",
		"p-w01-s001.localhost":       "p-w01-s001", // behind a proxy that drops the port
		"p-w01-s001.localhost:9090":  "",           // another server's
		"localhost:8080":             "",           // the portal's own
		"127.0.0.1:8080":             "",
		"a.b.localhost:8080":         "", // one label only
		"-x.localhost:8080":          "",
		"p-w01-s001.localhostx:8080": "",
		"p-w01-s001.evil.test:8080":  "",
	} {
		got, ok := o.Session(host)
		if got != want || ok != (want != "") {
			t.Errorf("Session(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
	if !o.Same("http://p-w01-s001.localhost:8080", "p-w01-s001") || o.Same("https://p-w01-s001.localhost:8080", "p-w01-s001") {
		t.Error("Same does not compare scheme, host and port")
	}
}
