package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundledExample runs the README's quick start: no definitions, so the
// bundled example, with the credentials the portal generated. A session
// of it must start and show its workshop, files included. (Its files live
// in the data dir, which the sandbox hides: every session failed to start
// until the sandbox let workshop files through.)
func TestBundledExample(t *testing.T) {
	p := startPortal(t, "")
	creds := map[string]string{}
	f, err := os.Open(filepath.Join(p.dataDir, "generated-credentials.env"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			creds[k] = v
		}
	}

	c := p.client()
	form := url.Values{"grant_type": {"password"}, "username": {creds["PORTICO_ROBOT_USERNAME"]},
		"password": {creds["PORTICO_ROBOT_PASSWORD"]}}
	req, _ := http.NewRequest("POST", p.url+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(creds["PORTICO_CLIENT_ID"], creds["PORTICO_CLIENT_SECRET"])
	resp, raw := c.send(req)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &tok) != nil {
		t.Fatalf("robot token with the generated credentials: %d %s", resp.StatusCode, raw)
	}
	c.bearer = tok.AccessToken

	resp, raw = c.do("GET", "/workshops/environment/portico-w01/request/?user=newcomer&index_url=https://example.com/", nil)
	var a allocation
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &a) != nil {
		t.Fatalf("request: %d %s", resp.StatusCode, raw)
	}
	browser := p.browser()
	browser.do("GET", a.URL, nil)
	origin := browser.enter(a.Name)
	if msg := eventually(settle, func() string {
		resp, raw := browser.do("GET", origin+"/", nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "Hello, terminal") {
			return "dashboard: " + resp.Status + " " + string(raw)
		}
		return ""
	}); msg != "" {
		t.Fatalf("%s\nportal log:\n%s", msg, p.output())
	}
	const want = "Hello from the exercises directory!"
	if out := terminalRun(t, browser, a.Name, "cat exercises/hello.txt", want); !strings.Contains(out, want) {
		t.Errorf("the example's file in the session's home: %q", out)
	}
}
