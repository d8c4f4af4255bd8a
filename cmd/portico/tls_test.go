package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/portico-dev/portico/internal/sessionorigin"
)

// writeCert writes a self-signed certificate for names, and its key, as PEM
// files into dir.
func writeCert(t *testing.T, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file+".tmp", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func leafName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// A renewed certificate is served without a restart; a broken one is
// logged and the previous one kept.
func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, "first.example")
	var logs strings.Builder
	c := &certFiles{cert: certFile, key: keyFile, log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := c.load(); err != nil {
		t.Fatal(err)
	}
	get := func() string {
		t.Helper()
		cert, err := c.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		return leafName(t, cert)
	}
	if got := get(); got != "first.example" {
		t.Fatalf("serving %s, want first.example", got)
	}
	writeCert(t, dir, "second.example")
	if got := get(); got != "second.example" {
		t.Errorf("after renewal serving %s, want second.example", got)
	}
	if err := os.WriteFile(certFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "second.example" {
		t.Errorf("after a broken renewal serving %s, want the previous second.example", got)
	}
	if !strings.Contains(logs.String(), "new certificate not loaded") {
		t.Errorf("broken renewal not logged: %q", logs.String())
	}
	// Throttled: a change is seen at most once per c.every.
	c.every = time.Hour
	writeCert(t, dir, "third.example")
	if got := get(); got != "second.example" {
		t.Errorf("within the interval serving %s, want second.example", got)
	}
}

func TestTLSFlagsCheck(t *testing.T) {
	ok := tlsFlags{acmeDirectory: autocert.DefaultACMEDirectory}
	for _, tc := range []struct {
		name string
		f    func(*tlsFlags)
		want string
	}{
		{"plain", func(*tlsFlags) {}, ""},
		{"files", func(f *tlsFlags) { f.certFile, f.keyFile = "c", "k" }, ""},
		{"acme", func(f *tlsFlags) { f.acmeDomain, f.acmeEmail = "portal.example.org", "ops@example.org" }, ""},
		{"redirect", func(f *tlsFlags) { f.certFile, f.keyFile, f.redirectListen = "c", "k", ":80" }, ""},
		{"cert alone", func(f *tlsFlags) { f.certFile = "c" }, "go together"},
		{"key alone", func(f *tlsFlags) { f.keyFile = "k" }, "go together"},
		{"both sources", func(f *tlsFlags) { f.certFile, f.keyFile, f.acmeDomain = "c", "k", "portal.example.org" }, "not both"},
		{"email without domain", func(f *tlsFlags) { f.acmeEmail = "ops@example.org" }, "need --acme-domain"},
		{"directory without domain", func(f *tlsFlags) { f.acmeDirectory = "https://acme.test/dir" }, "need --acme-domain"},
		{"redirect without TLS", func(f *tlsFlags) { f.redirectListen = ":80" }, "needs HTTPS"},
		{"domain without dot", func(f *tlsFlags) { f.acmeDomain = "portal" }, "have a dot"},
	} {
		f := ok
		tc.f(&f)
		err := f.check()
		var ue usageError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ue)):
			t.Errorf("%s: error %v, want a usage error containing %q", tc.name, err, tc.want)
		}
	}
}

// ACME certifies the portal's name and the origins of sessions that exist:
// anybody can make up a name under the session domain, and each would cost
// an issuance and count against the authority's rate limits.
func TestHostPolicy(t *testing.T) {
	origins, err := sessionorigin.New("https://portal.example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	exists := func(_ context.Context, name string) (bool, error) {
		if name == "broken" {
			return false, errors.New("database down")
		}
		return name == "portal-w01-s001", nil
	}
	policy := hostPolicy("portal.example.org.", origins, exists)
	for host, want := range map[string]bool{
		"portal.example.org":                      true,
		"Portal.Example.org":                      true,
		"portal-w01-s001.portal.example.org":      true,
		"portal-w01-s002.portal.example.org":      false,
		"broken.portal.example.org":               false,
		"a.portal-w01-s001.portal.example.org":    false,
		"example.org":                             false,
		"portal-w01-s001.portal.example.org.evil": false,
	} {
		if err := policy(context.Background(), host); (err == nil) != want {
			t.Errorf("policy(%s) = %v, want allowed %v", host, err, want)
		}
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	origins, err := sessionorigin.New("https://portal.example.org:8443", "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := redirectToHTTPS("https://portal.example.org:8443", origins, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, host, target, want string }{
		{"GET", "portal.example.org", "/workshops/catalog/?x=1", "https://portal.example.org:8443/workshops/catalog/?x=1"},
		{"GET", "portal.example.org:80", "/", "https://portal.example.org:8443/"},
		{"POST", "PORTAL.example.org", "/accounts/login/", "https://portal.example.org:8443/accounts/login/"},
		{"GET", "p-w01-s001.portal.example.org", "/terminal/", "https://p-w01-s001.portal.example.org:8443/terminal/"},
		{"GET", "evil.example", "/", ""},
		{"GET", "a.b.portal.example.org", "/", ""},
	} {
		r := httptest.NewRequest(tc.method, "http://"+tc.host+tc.target, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if tc.want == "" {
			if w.Code != http.StatusNotFound || !strings.HasPrefix(w.Body.String(), `{"error":`) {
				t.Errorf("%s %s: %d %q, want 404 with a JSON error", tc.method, tc.host, w.Code, w.Body.String())
			}
			continue
		}
		if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tc.want {
			t.Errorf("%s %s%s: %d to %q, want 308 to %s", tc.method, tc.host, tc.target, w.Code, w.Header().Get("Location"), tc.want)
		}
	}
}

func TestHSTS(t *testing.T) {
	w := httptest.NewRecorder()
	hsts(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if got := w.Header().Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security = %q", got)
	}
}

// The redirect answers any Host and path a client sends, and sends it only
// to the portal or a session's origin: never elsewhere (an open redirect).
func FuzzRedirectToHTTPS(f *testing.F) {
	origins, err := sessionorigin.New("https://portal.example.org", "")
	if err != nil {
		f.Fatal(err)
	}
	h, err := redirectToHTTPS("https://portal.example.org", origins, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][2]string{{"portal.example.org", "/"}, {"s1.portal.example.org:80", "/x?y"}, {"evil.example", "//evil.example/"},
		{"portal.example.org", "//evil.example/%2e%2e"}, {"a.b.portal.example.org", "/"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		r.URL.Path, r.URL.RawPath = path, ""
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusNotFound:
		case http.StatusPermanentRedirect:
			loc, err := url.Parse(w.Header().Get("Location"))
			if err != nil {
				t.Fatalf("Location %q: %v", w.Header().Get("Location"), err)
			}
			if _, ok := origins.Session(loc.Host); loc.Scheme != "https" || loc.Host != "portal.example.org" && !ok {
				t.Fatalf("Host %q, path %q redirected to %s", host, path, loc)
			}
		default:
			t.Fatalf("Host %q, path %q: %d", host, path, w.Code)
		}
	})
}
