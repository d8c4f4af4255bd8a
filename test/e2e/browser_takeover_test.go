package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// attackPage is what a compromised session host serves a visitor: it tries,
// with whatever the browser lends it, what took over an admin when
// sessions were served on the portal's origin (issue 13). %s are the
// portal's URL, the attacked (other) session and the page's own session.
const attackPage = `<!doctype html><title>working</title><pre id="results"></pre>
<iframe id="portal" style="width:10px;height:10px"></iframe>
<iframe name="sink" style="width:10px;height:10px"></iframe>
<script>
(async () => {
  const portal = %q, victim = %q, own = %q, out = {};
  const attempt = async (name, fn) => {
    try { out[name] = await fn(); } catch (e) { out[name] = "refused: " + e.name; }
  };
  // Read the admin pages with the admin's cookie.
  await attempt("read users", async () => {
    const r = await fetch(portal + "/admin/users/", {credentials: "include"});
    return "read " + r.status + ": " + (await r.text()).slice(0, 200);
  });
  // End another person's session through the REST API and the pages.
  await attempt("terminate by API", async () => {
    const r = await fetch(portal + "/workshops/session/" + victim + "/terminate/",
      {credentials: "include", headers: {"X-Portico-Browser": "1"}});
    return "read " + r.status;
  });
  await attempt("terminate blind", async () => {
    await fetch(portal + "/workshops/session/" + victim + "/terminate/", {credentials: "include", mode: "no-cors"});
    return "sent";
  });
  // A form post, as the page of another site would.
  const f = document.createElement("form");
  f.method = "post"; f.target = "sink";
  f.action = portal + "/admin/sessions/" + victim + "/terminate/";
  const tok = document.createElement("input");
  tok.name = "csrf_token"; tok.value = "x".repeat(43);
  f.appendChild(tok); document.body.appendChild(f); f.submit();
  // Read the portal in a frame.
  await attempt("frame portal", () => new Promise((resolve) => {
    const fr = document.getElementById("portal");
    fr.onload = () => {
      try { resolve("read: " + fr.contentDocument.body.innerHTML.slice(0, 200)); } catch (e) { resolve("refused: " + e.name); }
    };
    fr.src = portal + "/admin/users/";
    setTimeout(() => resolve("refused: no load"), 3000);
  }));
  // Act on its own session with the staff visitor's rights.
  await attempt("extend as staff", async () => {
    const r = await fetch("/workshops/session/" + own + "/extend/", {headers: {"X-Portico-Browser": "1"}});
    return "status " + r.status;
  });
  // The portal's cookies, had any come along.
  out["cookies"] = document.cookie;
  await new Promise((r) => setTimeout(r, 1500)); // the form post
  document.getElementById("results").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script>`

// TestBrowserSessionCannotTakeOverStaff: an admin opens a session whose
// host is compromised (a stand-in serves the attack page in its place).
// The page can neither read nor change anything of the portal, nor act on
// its own session with the admin's rights, and the host learns nothing of
// the admin's credentials.
func TestBrowserSessionCannotTakeOverStaff(t *testing.T) {
	requireChromium(t)
	defs := portaltest.Definitions(config.Entry{Capacity: 3, Reserved: 0, Initial: 0, Expires: time.Hour})
	pt := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
	robot := pt.Robot()
	var own, victim struct{ Name string }
	for user, out := range map[string]*struct{ Name string }{"mallory": &own, "bob": &victim} {
		if status := robot.Do("GET", "/workshops/environment/portal-w01/request/?index_url=/&user="+user, nil, out); status != 200 {
			t.Fatalf("request for %s: %d", user, status)
		}
	}
	pt.Settle()

	var (
		mu   sync.Mutex
		seen []http.Header
	)
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		// Cookies for the portal's names and for the parent domain.
		for _, c := range []string{"portico_csrf=evil; Path=/; Domain=localhost", "portico_session=evil; Path=/",
			"portico_visit=evil; Path=/"} {
			w.Header().Add("Set-Cookie", c)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, pt.Server.URL, victim.Name, own.Name)
	}))
	t.Cleanup(host.Close)
	if err := pt.Store.Update(t.Context(), func(tx store.Tx) error {
		s, err := tx.Session(own.Name)
		if err != nil {
			return err
		}
		s.Address = strings.TrimPrefix(host.URL, "http://")
		return tx.UpdateSession(&s)
	}); err != nil {
		t.Fatal(err)
	}
	expires := pt.Session(own.Name).Expires

	admin := newChromium(t).person("admin", &portal{t: t, url: pt.Server.URL})
	admin.open("/accounts/login/?next=/admin/")
	admin.loginHere(portaltest.AdminUser, portaltest.AdminPassword)
	admin.waitPath("/admin/")
	admin.open("/workshops/session/" + own.Name + "/open/")
	admin.waitUntil(2*settle, "the attack page to finish", `document.title === "done" ? "" : "title " + document.title + " at " + location.href`)
	if loc := admin.location(); !strings.HasPrefix(loc, pt.Broker.SessionURL(own.Name)+"/") {
		t.Fatalf("the admin is at %s, not on the session's origin", loc)
	}
	raw, err := evalJS[string](admin, `document.getElementById("results").textContent`)
	if err != nil {
		t.Fatal(err)
	}
	var results map[string]string
	if err := json.Unmarshal([]byte(raw), &results); err != nil {
		t.Fatalf("results %q: %v", raw, err)
	}
	t.Logf("what the page got: %s", raw)
	for _, attack := range []string{"read users", "terminate by API", "frame portal"} {
		if !strings.HasPrefix(results[attack], "refused") {
			t.Errorf("%s: %s", attack, results[attack])
		}
	}
	if results["extend as staff"] != "status 403" {
		t.Errorf("extend as staff: %s, want status 403", results["extend as staff"])
	}
	if c := results["cookies"]; strings.Contains(c, "portico") {
		t.Errorf("the page sees cookies %q", c)
	}
	if s := pt.Session(victim.Name); s.State == store.Stopping || s.State == store.Stopped {
		t.Errorf("the other person's session is %s", s.State)
	}
	if s := pt.Session(own.Name); !s.Expires.Equal(expires) {
		t.Errorf("the session extended itself with the admin's rights: %v, was %v", s.Expires, expires)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the stand-in host served nothing")
	}
	for _, h := range seen {
		for name := range h {
			if strings.HasPrefix(name, "X-Portico-") && name != "X-Portico-Secret" {
				t.Errorf("the host was told %s: %q", name, h.Get(name))
			}
		}
		if c := h.Get("Cookie"); strings.Contains(c, "portico") {
			t.Errorf("the host got the cookies %q", c)
		}
	}

	// The admin is still the admin on the portal, with the cookies the
	// portal set.
	admin.open("/admin/users/")
	admin.waitPath("/admin/users/")
	if n := admin.status("/admin/users/"); n != 200 {
		t.Errorf("the admin pages after the visit: %d", n)
	}
}
