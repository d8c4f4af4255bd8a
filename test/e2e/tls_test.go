package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// writeServerCert writes a self-signed certificate named cn for 127.0.0.1,
// localhost and *.localhost (the sessions' origins), and its key, into dir
// (atomically: a portal may be reading them); it returns the certificate.
func writeServerCert(t *testing.T, dir, cn string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost", "*.localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	// The key first: a reader that sees the new certificate finds its key.
	for _, f := range []struct {
		path  string
		block *pem.Block
	}{{keyFile, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}}, {certFile, &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		if err := os.WriteFile(f.path+".tmp", pem.EncodeToMemory(f.block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".tmp", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, cert
}

// httpsClient trusts roots and dials addr whatever the URL's host, so that
// host names need no DNS.
func httpsClient(roots *x509.CertPool, addr string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true, // each request sees the certificate served now
		},
		CheckRedirect: noRedirect,
	}
}

// HTTPS with a certificate from files, through the real binary: API answers
// carry HSTS, a renewed certificate is served without a restart, and the
// redirect listener sends HTTP to HTTPS.
func TestTLSFromFiles(t *testing.T) {
	p := newPortal(t, definitions(entry{Capacity: 1, Reserved: 0}))
	certDir := t.TempDir()
	certFile, keyFile, cert := writeServerCert(t, certDir, "first")
	redirect := freeAddr(t)
	p.args = append(p.args, "--tls-cert", certFile, "--tls-key", keyFile, "--http-redirect-listen", redirect)
	p.url = "https://" + p.addr
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	p.httpClient = httpsClient(roots, p.addr)
	p.start()
	p.waitReady()
	if got := servingURL(p); got != p.url {
		t.Errorf("portal serving at %s, want %s", got, p.url)
	}
	if err := wantHTTPSAnswer(p.httpClient, p.url); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP on the HTTPS port is not served.
	if resp, _, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+p.addr+"/workshops/catalog/environments/"); err == nil && resp.StatusCode < 400 {
		t.Errorf("plain HTTP on the HTTPS port: %s", resp.Status)
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirect}
	_, port, _ := net.SplitHostPort(p.addr)
	wantRedirect(t, plain, "http://"+redirect+"/workshops/catalog/?a=b", "https://127.0.0.1:"+port+"/workshops/catalog/?a=b")

	// A renewal: the next connection gets the new certificate.
	_, _, renewed := writeServerCert(t, certDir, "second")
	roots.AddCert(renewed)
	if msg := eventually(settle, func() string {
		conn, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			return err.Error()
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
			return "still serving " + cn
		}
		return ""
	}); msg != "" {
		t.Errorf("renewed certificate not served: %s", msg)
	}
}

// pebbleDir is where scripts/pebble-test-binary puts Pebble, or "".
func pebbleDir() string {
	dir := os.Getenv("PORTICO_PEBBLE")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(cache, "portico", "pebble-v2.10.3")
	}
	if _, err := os.Stat(filepath.Join(dir, "pebble")); err != nil {
		return ""
	}
	return dir
}

// startProcess runs a helper program for the length of the test, its
// output in the test's log when it fails.
func startProcess(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("output of %s:\n%s", filepath.Base(name), b)
		}
	})
}

// Certificates from an ACME authority, through the real binary and Pebble:
// Pebble validates TLS-ALPN-01 challenges on the portal's own port (its DNS
// answers every name with 127.0.0.1), for the portal's name and for the
// origin of a session that exists, and refuses the name of one that does
// not.
func TestACMEWithPebble(t *testing.T) {
	requireBinary(t)
	dir := pebbleDir()
	if dir == "" {
		t.Skip("Pebble is not built: run scripts/pebble-test-binary (and export PORTICO_PEBBLE=<the directory it prints> if you set it elsewhere)")
	}
	p := newPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	_, portalPort, _ := net.SplitHostPort(p.addr)
	redirect := freeAddr(t)
	_, redirectPort, _ := net.SplitHostPort(redirect)
	dns, acmeAddr, mgmt := freeAddr(t), freeAddr(t), freeAddr(t)

	startProcess(t, nil, filepath.Join(dir, "pebble-challtestsrv"), "-dnsserver", dns, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", freeAddr(t))
	cfg, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": acmeAddr, "managementListenAddress": mgmt,
		"certificate": filepath.Join(dir, "certs", "localhost", "cert.pem"), "privateKey": filepath.Join(dir, "certs", "localhost", "key.pem"),
		// Where Pebble validates challenges: the portal's ports.
		"httpPort": atoi(t, redirectPort), "tlsPort": atoi(t, portalPort),
		"externalAccountBindingRequired": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"},
		filepath.Join(dir, "pebble"), "-config", cfgFile, "-dnsserver", dns, "-strict=false")

	// Pebble's API is served with its own test root; its issuing root is
	// made anew at each start and published on the management port.
	minica, err := os.ReadFile(filepath.Join(dir, "certs", "pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	apiRoots := x509.NewCertPool()
	apiRoots.AppendCertsFromPEM(minica)
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: apiRoots}}}
	var issuer []byte
	if msg := eventually(settle, func() string {
		resp, body, err := get(api, "https://"+mgmt+"/roots/0")
		if err != nil {
			return err.Error()
		}
		if resp.StatusCode != http.StatusOK {
			return resp.Status
		}
		issuer = []byte(body)
		return ""
	}); msg != "" {
		t.Fatalf("Pebble not up: %s", msg)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(issuer) {
		t.Fatalf("Pebble's root is not PEM: %q", issuer)
	}

	const domain = "portal.test"
	p.args = append(p.args, "--acme-domain", domain, "--acme-email", "ops@portal.test",
		"--acme-directory", "https://"+acmeAddr+"/dir", "--http-redirect-listen", redirect)
	p.env = []string{"SSL_CERT_FILE=" + filepath.Join(dir, "certs", "pebble.minica.pem")} // the portal trusts Pebble's API
	p.url = "https://" + domain + ":" + portalPort
	p.httpClient = httpsClient(roots, p.addr)
	p.start()
	p.waitReady() // its first request has the certificate issued
	if got := servingURL(p); got != p.url {
		t.Errorf("portal serving at %s, want %s", got, p.url)
	}
	if err := wantHTTPSAnswer(p.httpClient, p.url); err != nil {
		t.Fatal(err)
	}

	handshake := func(name string) (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", p.addr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	// The reserved session exists once the reconciler has made it.
	session := envName + "-s001." + domain
	if msg := eventually(settle, func() string {
		cert, err := handshake(session)
		if err != nil {
			return err.Error()
		}
		if err := cert.VerifyHostname(session); err != nil {
			return err.Error()
		}
		return ""
	}); msg != "" {
		t.Errorf("no certificate for the session origin %s: %s", session, msg)
	}
	for _, name := range []string{envName + "-s099." + domain, "elsewhere.test"} {
		if _, err := handshake(name); err == nil {
			t.Errorf("a certificate for %s, which is neither the portal nor a session", name)
		}
	}
	if m := mode(t, filepath.Join(p.dataDir, "acme")); m.Perm() != 0o700 {
		t.Errorf("ACME cache is %v, want 0700: it holds the account's and certificates' keys", m)
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirect, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, redirect)
		}}}
	wantRedirect(t, plain, "http://"+domain+"/x?y=z", p.url+"/x?y=z")
	wantRedirect(t, plain, "http://"+session+"/", "https://"+session+":"+portalPort+"/")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
