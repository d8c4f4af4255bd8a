package runtime

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A host on a Unix socket is reached through the URL HostURL makes, even
// at a path longer than a socket address holds, and never through the
// environment's proxy; a TCP address goes through the proxy it names.
func TestHostTransport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "host.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host "+r.URL.Path)
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "proxy "+r.URL.Host)
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)

	client := &http.Client{Transport: HostTransport(0)}
	get := func(addr string) string {
		resp, err := client.Get(HostURL(addr).JoinPath("/healthz").String())
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(UnixAddress(path)); got != "host /healthz" {
		t.Errorf("unix socket: %q", got)
	}
	if got := get("session-host.ns.svc:10080"); got != "proxy session-host.ns.svc:10080" {
		t.Errorf("service address: %q", got)
	}
	if _, err := DialHost(context.Background(), "tcp", "2f6574632f706173737764.unix.invalid:80"); err == nil {
		t.Error("dialled a path that is not a socket")
	}
}

// A frozen host (it accepts, then never answers) must not hold the
// portal's requests: the transport gives up on it after its response
// timeout, with an error the proxy answers 502.
func TestHostTransportGivesUpOnAFrozenHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/", nil)
	_, err = (&http.Client{Transport: HostTransport(200 * time.Millisecond)}).Do(req)
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("a frozen host: %v (context: %v), want the transport's response timeout", err, ctx.Err())
	}
}
