package e2e

// Issue 18, acceptance 2: a front end that speaks only the API of
// Educates' lookup service requests a session through `portico lookup`,
// in front of a real `portico serve`, and the browser lands in the
// session's dashboard.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lookupService is a `portico lookup` process of a test.
type lookupService struct {
	url     string
	logPath string
}

// startLookup runs `portico lookup` on config, with env (KEY=VALUE) added
// to its environment, and waits until it answers; cleanup stops it.
func startLookup(t *testing.T, config string, env ...string) *lookupService {
	t.Helper()
	requireBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "lookup.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	l := &lookupService{url: "http://" + addr, logPath: filepath.Join(dir, "lookup.log")}
	logf, err := os.Create(l.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(binary, "lookup", "--config", file, "--listen", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(l.logPath)
			t.Logf("output of portico lookup:\n%s", out)
		}
	})
	if msg := eventually(settle, func() string {
		select {
		case <-exited:
			return "portico lookup exited"
		default:
		}
		resp, err := http.Post(l.url+"/login", "application/json", strings.NewReader("{}"))
		if err != nil {
			return err.Error()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			return resp.Status
		}
		return ""
	}); msg != "" {
		t.Fatalf("portico lookup not ready: %s", msg)
	}
	return l
}

// frontEndPage is a custom front end written against the lookup API
// alone: it logs in, lists the tenant's workshops, and on a click requests
// a session and sends the browser to its activation URL. (A real front end
// keeps the client's password on its server; here the page holds it, as
// the test serves both.)
const frontEndPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Front end</title></head>
<body>
<h1>Our workshops</h1>
<ul id="workshops"></ul>
<p id="status">loading</p>
<script>
const client = {username: %s, password: %s};
const tenant = %s, user = %s;
async function call(method, path, token, body) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch(path, {method, headers, body: body && JSON.stringify(body)});
  const data = await resp.json();
  if (!resp.ok) throw new Error(method + " " + path + ": " + resp.status + " " + data.error);
  return data;
}
(async () => {
  try {
    const login = await call("POST", "/login", null, client);
    const token = login.access_token;
    const list = await call("GET", "/api/v1/workshops?tenant=" + encodeURIComponent(tenant), token);
    for (const w of list.workshops) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.textContent = w.title;
      button.dataset.workshop = w.name;
      button.onclick = async () => {
        document.getElementById("status").textContent = "requesting";
        const session = await call("POST", "/api/v1/workshops", token, {tenantName: tenant, workshopName: w.name,
          clientUserId: user, clientIndexUrl: location.origin + "/", clientActionId: "e2e"});
        location.href = session.sessionActivationUrl;
      };
      li.appendChild(button);
      document.getElementById("workshops").appendChild(li);
    }
    document.getElementById("status").textContent = "ready";
  } catch (e) {
    document.getElementById("status").textContent = "error: " + e.message;
  }
})();
</script>
</body></html>`

// TestLookupFrontEnd: the front end lists the workshop through the lookup
// service, requests it for its user alice, and the browser follows the
// activation URL into the session's dashboard.
func TestLookupFrontEnd(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	// The robot's password comes from the environment, as a secret should.
	l := startLookup(t, fmt.Sprintf(`
clients:
- name: front-end
  password: front-end-password
  roles: [tenant]
  tenants: [tenant-1]
tenants:
- name: tenant-1
  clusters:
    nameSelector: {matchNames: [local]}
clusters:
- name: local
  portals:
  - name: %s
    url: %s
    credentials:
      clientId: %s
      clientSecret: %s
      username: %q
      password: {env: E2E_LOOKUP_ROBOT_PASSWORD}
`, portalName, p.url, clientID, clientSecret, robotUser), "E2E_LOOKUP_ROBOT_PASSWORD="+robotPass)

	// The front end's server: the page, and the lookup API passed through
	// on the same origin, as a front end's backend does.
	target, err := url.Parse(l.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	page := fmt.Sprintf(frontEndPage, jsString("front-end"), jsString("front-end-password"), jsString("tenant-1"), jsString("alice"))
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	alice := newChromium(t).person("alice", p)
	alice.open(front.URL + "/")
	alice.waitUntil(settle, "the front end lists the workshop", `(() => {
		const s = document.getElementById("status").textContent;
		if (s !== "ready") return s;
		const b = document.querySelector("button[data-workshop=lab-e2e]");
		if (!b) return "no button for lab-e2e";
		return b.textContent === "End-to-end lab" ? "" : "button " + b.textContent;
	})()`)
	alice.click("button[data-workshop=lab-e2e]")

	// The lookup service asked the portal for a session of alice; the
	// browser follows its activation URL into the dashboard.
	var session string
	if msg := eventually(settle, func() string {
		sessions, err := p.api(robotUser, robotPass).UserSessions(context.Background(), "alice")
		if err != nil {
			return err.Error()
		}
		if len(sessions) != 1 {
			return fmt.Sprintf("alice has %d sessions", len(sessions))
		}
		session = sessions[0].Name
		return ""
	}); msg != "" {
		t.Fatalf("no session for alice: %s", msg)
	}
	alice.waitDashboard(session)
	if !strings.HasPrefix(session, envName+"-s") {
		t.Errorf("session %q is not of %s", session, envName)
	}
	alice.screenshot("lookup-front-end-dashboard")
}
