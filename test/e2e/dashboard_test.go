package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// dashboardDefinitions is a workshop with one instructions page that uses
// data variables in both Educates spellings.
func dashboardDefinitions() string {
	return strings.Replace(definitions(entry{Capacity: 4, Reserved: 1}), `  session:
    env:`, `  workshop:
    files:
      - inline:
          paths:
            workshop/content/01-hello.md: |
              ---
              title: Hello
              ---
              This is {{< param session_name >}} of {{ workshop_name }}, greeting {{ GREETING }}.

              `+"```execute"+`
              echo $GREETING
              `+"```"+`
  session:
    env:`, 1)
}

// browser is a client with a cookie jar, as a person's browser is.
func (p *portal) browser() *client {
	c := p.client()
	jar, _ := cookiejar.New(nil)
	c.http.Jar = jar
	return c
}

// TestDashboardAndTerminal is issue 3's first acceptance item with the real
// binary: a session requested with a parameter, activated in a browser,
// its dashboard and instructions with the variables filled in, and a
// terminal in which `echo $GREETING` prints the parameter; and the second:
// another user's browser gets nowhere near it.
func TestDashboardAndTerminal(t *testing.T) {
	p := startPortal(t, dashboardDefinitions())
	robot := p.robot()
	if msg := eventually(settle, func() string {
		if env := robot.status(); env.Available != 1 {
			return "reserve not ready: " + env.String()
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	resp, raw := robot.do("POST", requestPath("alice", ""), strings.NewReader(`{"parameters": [{"name": "GREETING", "value": "Hi from alice"}]}`),
		"Content-Type", "application/json")
	if resp.StatusCode != 200 {
		t.Fatalf("request: %d %s", resp.StatusCode, raw)
	}
	a := decodeAllocation(t, raw)
	alice := p.browser()
	if resp, _ := alice.do("GET", a.URL, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("activation: %d", resp.StatusCode)
	}
	if resp, raw := alice.do("GET", "/workshops/session/"+a.Name+"/", nil); resp.StatusCode != http.StatusFound ||
		resp.Header.Get("Location") != "/workshops/session/"+a.Name+"/open/" {
		t.Fatalf("session page: %d %s", resp.StatusCode, raw)
	}
	origin := alice.enter(a.Name)
	dashboard := origin + "/"
	if resp, raw := alice.do("GET", dashboard, nil); resp.StatusCode != 200 || !strings.Contains(string(raw), "End-to-end lab") {
		t.Fatalf("dashboard: %d %s", resp.StatusCode, raw)
	}
	page := dashboard + "workshop/content/01-hello/"
	resp, raw = alice.do("GET", page, nil)
	want := "This is " + a.Name + " of lab-e2e, greeting Hi from alice."
	if resp.StatusCode != 200 || !strings.Contains(string(raw), want) {
		t.Fatalf("instructions page: %d, want %q in %s", resp.StatusCode, want, raw)
	}

	out := terminalRun(t, alice, a.Name, "echo \"[$GREETING]\"", "[Hi from alice]")
	if !strings.Contains(out, "[Hi from alice]") {
		t.Fatalf("terminal printed %q, want the parameter", out)
	}

	// Bob, with a session of his own, cannot reach alice's.
	b := robot.request("bob", "")
	bob := p.browser()
	bob.do("GET", b.URL, nil)
	if resp, raw := bob.do("GET", "/workshops/session/"+a.Name+"/open/", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob asks to be let into alice's session: %d %s, want 403", resp.StatusCode, raw)
	}
	for _, path := range []string{dashboard, page, dashboard + "terminal/1", dashboard + "workshop/content/01-hello.md"} {
		if resp, raw := bob.do("GET", path, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("bob at %s: %d %s, want 401", path, resp.StatusCode, raw)
		}
	}
	if resp, _ := bob.do("GET", "/workshops/session/"+a.Name+"/", nil); resp.StatusCode != http.StatusFound ||
		!strings.Contains(resp.Header.Get("Location"), "notification=session-invalid") {
		t.Errorf("bob at alice's session page: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	header := cookieHeader(t, origin, bob)
	header.Set("Origin", origin)
	if conn, resp, err := websocket.Dial(ctx, strings.Replace(dashboard, "http", "ws", 1)+"terminal/1",
		&websocket.DialOptions{HTTPHeader: header, HTTPClient: &http.Client{Transport: bob.http.Transport}}); err == nil {
		conn.CloseNow()
		t.Error("bob opened a terminal of alice's session")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bob's websocket: %v", err)
	}
}

// terminalRun opens terminal 1 of a session on its origin with the
// browser's cookie there (see enter), types command and returns what the
// terminal printed until want appeared or the time ran out.
func terminalRun(t *testing.T, browser *client, session, command, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	origin := sessionURL(browser.base, session)
	header := cookieHeader(t, origin, browser)
	header.Set("Origin", origin)
	conn, _, err := websocket.Dial(ctx, strings.Replace(origin, "http", "ws", 1)+"/terminal/1",
		&websocket.DialOptions{HTTPHeader: header, HTTPClient: &http.Client{Transport: browser.http.Transport}})
	if err != nil {
		t.Fatalf("terminal websocket: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageBinary, []byte(command+"\n")); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			break
		}
		if typ == websocket.MessageBinary {
			out.Write(data)
		}
	}
	return out.String()
}

func cookieHeader(t *testing.T, origin string, browser *client) http.Header {
	t.Helper()
	u, err := url.Parse(origin)
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{}
	for _, c := range browser.http.Jar.Cookies(u) {
		header.Add("Cookie", c.Name+"="+c.Value)
	}
	return header
}

func decodeAllocation(t *testing.T, raw []byte) allocation {
	t.Helper()
	var a allocation
	if err := json.Unmarshal(raw, &a); err != nil || a.Name == "" {
		t.Fatalf("allocation %s: %v", raw, err)
	}
	return a
}
