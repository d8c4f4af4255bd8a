package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestBrowserCrossSiteStartAsksFirst is issue 13's redirect finding in a
// real browser: a page of another site that sends a logged-in person to a
// start link with its own index_url started a session that ended on the
// attacker's page. Now the portal asks first, and the session it starts
// when asked keeps no index_url from elsewhere.
func TestBrowserCrossSiteStartAsksFirst(t *testing.T) {
	requireChromium(t)
	p := startPortal(t, definitions(entry{Capacity: 2, Reserved: 1}))
	waitReserve(t, p, 1)
	start := p.url + "/workshops/environment/" + envName + "/?index_url=" + url.QueryEscape("https://evil.example/")
	// localhost and 127.0.0.1 are different sites.
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Prizes</title><script>location.href = %s</script>`, jsString(start))
	}))
	t.Cleanup(attacker.Close)
	attackerURL := strings.Replace(attacker.URL, "127.0.0.1", "localhost", 1)

	person := newChromium(t).person("attendee", p)
	person.register("attendee")
	person.open(attackerURL)
	person.waitUntil(settle, "the question", `(() => {
		if (location.pathname !== "/workshops/environment/`+envName+`/") return "at " + location.href;
		const h = document.querySelector("h1");
		return h && h.textContent.includes("Start this workshop?") ? "" : "no question on " + location.href;
	})()`)
	resp, raw := p.robot().do("GET", "/workshops/user/attendee/sessions/", nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(raw), envName+"-s") {
		t.Fatalf("the attacker's link started a session: %d %s", resp.StatusCode, raw)
	}
	if html, _ := evalJS[string](person, `document.body.innerHTML`); strings.Contains(html, "evil.example") {
		t.Errorf("the question offers the attacker's index_url:\n%s", html)
	}

	person.click(`a.button.primary`)
	session := person.startedSession()
	person.waitDashboard(session)
	person.finish(session)
	person.waitPath("/workshops/catalog/")
	person.banner("session-deleted")
}
