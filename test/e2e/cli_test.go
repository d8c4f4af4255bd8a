package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// runBinary runs portico with args and env (KEY=VALUE, added to this
// process's) and returns its stdout, stderr and exit status. A `serve`
// that should refuse to start but starts is stopped after settle.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	requireBinary(t)
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(settle):
		cmd.Process.Kill()
		<-done
		t.Fatalf("portico %q still running after %s; stderr:\n%s", args, settle, errb.String())
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// The conventions every server in this field follows. Before: serve --help
// exited 1 and omitted two flags, help serve showed the generic usage,
// --version was an unknown command, and an extra argument was ignored.
func TestCLIConventions(t *testing.T) {
	help, stderr, code := runBinary(t, nil, "serve", "--help")
	if code != 0 || stderr != "" {
		t.Errorf("serve --help: exit status %d, stderr %q", code, stderr)
	}
	for _, flag := range []string{"--listen", "--url", "--session-domain", "--trusted-proxies", "--tls-cert", "--acme-domain", "--strict", "$PORTICO_DATABASE"} {
		if !strings.Contains(help, flag) {
			t.Errorf("serve --help lacks %s:\n%s", flag, help)
		}
	}
	if out, _, code := runBinary(t, nil, "help", "serve"); code != 0 || out != help {
		t.Errorf("help serve: exit status %d, output differs from serve --help:\n%s", code, out)
	}
	if out, _, code := runBinary(t, nil, "serve", "-h"); code != 0 || out != help {
		t.Errorf("serve -h: exit status %d, output differs from serve --help", code)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, stderr, code := runBinary(t, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "portico ") || !strings.Contains(out, "go: "+runtime.Version()) {
			t.Errorf("%v: exit status %d, stdout %q, stderr %q; want the build, by %s", args, code, out, stderr, runtime.Version())
		}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		stderr string
	}{
		{"extra argument", nil, []string{"serve", "--data-dir", dir, "extra-arg"}, `unexpected argument "extra-arg"`},
		{"unknown command", nil, []string{"server"}, `unknown command "server"`},
		{"unknown flag", nil, []string{"serve", "--listn", ":0"}, "-listn"},
		{"invalid environment value", []string{"PORTICO_STRICT=maybe"}, []string{"serve", "--data-dir", dir}, "$PORTICO_STRICT"},
		{"half the TLS flags", nil, []string{"serve", "--data-dir", dir, "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
	} {
		out, stderr, code := runBinary(t, tc.env, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.stderr) || out != "" {
			t.Errorf("%s: exit status %d, stdout %q, stderr %q; want 2 and %q", tc.name, code, out, stderr, tc.stderr)
		}
	}
}

// servingURL returns the url= of the portal's "portal serving" log line.
func servingURL(p *portal) string {
	m := regexp.MustCompile(`msg="portal serving" url=(\S+)`).FindStringSubmatch(p.output())
	if m == nil {
		return ""
	}
	return m[1]
}

// Every flag can come from PORTICO_<FLAG>; the command line wins.
func TestFlagsFromEnvironment(t *testing.T) {
	p := newPortal(t, definitions(entry{Capacity: 1, Reserved: 0}))
	public := "http://portal.localhost:" + strings.Split(p.addr, ":")[1]
	p.env = []string{"PORTICO_URL=" + public, "PORTICO_LISTEN=127.0.0.1:1"}
	p.start()
	p.waitReady() // on --listen p.addr, not the environment's port 1
	if got := servingURL(p); got != public {
		t.Errorf("portal serving at %q, want $PORTICO_URL %s", got, public)
	}
}

// A portal listening on every address hands out a URL another machine can
// open: this one's address (or name), never http://[::]:8080.
func TestWildcardListenGivesAPublicURL(t *testing.T) {
	for _, host := range []string{"[::]", "0.0.0.0"} {
		t.Run(host, func(t *testing.T) {
			p := newPortal(t, definitions(entry{Capacity: 1, Reserved: 0}))
			port := strings.Split(p.addr, ":")[1]
			p.args = append(p.args, "--listen", host+":"+port) // the last --listen wins
			p.start()
			p.waitReady()
			public := servingURL(p)
			u, err := url.Parse(public)
			if err != nil || u.Port() != port || strings.Contains(public, "[::]") || strings.Contains(public, "0.0.0.0") {
				t.Fatalf("portal serving at %q, want a host others can reach on port %s", public, port)
			}
			resp, err := http.Get(public + "/workshops/catalog/environments/")
			if err != nil {
				t.Fatalf("the logged URL does not answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET on the logged URL: %s, want 401", resp.Status)
			}
		})
	}
}

// Definitions that used to start a portal doing something else than they
// say are refused, with the field named.
func TestDoubtfulDefinitionsRefused(t *testing.T) {
	// Reserved 0: with a reserve, the capacity of 0 the misspelling leaves
	// is refused even without --strict.
	misspelled := strings.Replace(definitions(entry{Capacity: 2, Reserved: 0}), "      capacity: 2", "      capacty: 2", 1)
	for _, tc := range []struct {
		name, defs string
		env, args  []string
		want       []string
	}{
		{"misspelled field with --strict", misspelled, nil, []string{"--strict"},
			[]string{"--strict", "spec.workshops[0].capacty: not a field Portico uses; did you mean capacity?"}},
		{"misspelled field with PORTICO_STRICT", misspelled, []string{"PORTICO_STRICT=true"}, nil,
			[]string{"did you mean capacity?"}},
		{"reserve above capacity", strings.Replace(definitions(entry{Capacity: 10, Reserved: 1}), "reserved: 1", "reserved: 20", 1), nil, nil,
			[]string{"spec.workshops[0].reserved: 20 is more than the capacity, 10"}},
		{"misspelled capacity under a reserve", strings.Replace(definitions(entry{Capacity: 2, Reserved: 1}), "      capacity: 2", "      capacty: 2", 1), nil, nil,
			[]string{"spec.workshops[0].reserved: 1 is more than the capacity, 0", "did you mean capacity?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "portal.yaml"), []byte(tc.defs), 0o600); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"serve", "--config", dir, "--data-dir", filepath.Join(dir, "data"), "--listen", freeAddr(t)}, tc.args...)
			_, stderr, code := runBinary(t, tc.env, args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	// Without --strict, the misspelling is a warning that says what was meant.
	p := startPortal(t, misspelled)
	if !strings.Contains(p.output(), "spec.workshops[].capacty (did you mean capacity?)") {
		t.Errorf("no warning with the field meant:\n%s", p.output())
	}
}

// --config examples/portal.yaml (a file whose Workshop is beside it) says to
// pass the directory.
func TestConfigFileHintsAtItsDirectory(t *testing.T) {
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "portal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runBinary(t, nil, "serve", "--config", example, "--data-dir", t.TempDir(), "--listen", freeAddr(t))
	if want := "pass its directory, " + filepath.Dir(example); code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit status %d, stderr %q; want 1 and %q", code, stderr, want)
	}
}

// get fetches url with c and returns the response with its body read.
func get(c *http.Client, url string) (*http.Response, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	return resp, string(b), nil
}

// noRedirect makes a client return redirects instead of following them.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func wantRedirect(t *testing.T, c *http.Client, from, to string) {
	t.Helper()
	resp, body, err := get(c, from)
	if err != nil {
		t.Fatalf("GET %s: %v", from, err)
	}
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != to {
		t.Errorf("GET %s: %s to %q (%s), want 308 to %s", from, resp.Status, resp.Header.Get("Location"), body, to)
	}
}

var errNoHSTS = errors.New("no Strict-Transport-Security header")

// wantHTTPSAnswer checks that the portal answers an API request on HTTPS,
// with HSTS.
func wantHTTPSAnswer(c *http.Client, base string) error {
	resp, _, err := get(c, base+"/workshops/catalog/environments/")
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusUnauthorized:
		return fmt.Errorf("GET: %s, want 401", resp.Status)
	case !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age="):
		return errNoHSTS
	}
	return nil
}
