package web_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
)

// Tests of the limits that keep one client from locking others out or
// taking what is meant for everyone. Other client addresses come from
// portaltest.ClientFrom.

// send submits a form as post does and returns the whole response.
func send(t *testing.T, p *portaltest.Portal, c *portaltest.Client, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	if form.Get("csrf_token") == "" {
		form.Set("csrf_token", csrf(t, p, c))
	}
	resp, raw := c.Raw("POST", path, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Accept", "text/html")
	return resp, string(raw)
}

// wantRefused checks a 429 page with Retry-After that shows reason, and
// returns the wait in seconds.
func wantRefused(t *testing.T, what string, resp *http.Response, body, reason string) int {
	t.Helper()
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || err != nil || secs < 1 || !strings.Contains(body, reason) {
		t.Fatalf("%s: %d, Retry-After %q, want 429 with Retry-After and %q in\n%.2000s", what, resp.StatusCode,
			resp.Header.Get("Retry-After"), reason, body)
	}
	return secs
}

func loginForm(username, password string) url.Values {
	return url.Values{"username": {username}, "password": {password}}
}

// Ten wrong passwords for bob locked bob out from everywhere. They now
// make only the address they came from wait, and the form says so.
func TestWrongPasswordsForAnAccountKeepOutOnlyTheirAddress(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	signUp(t, p, "bob")
	guesser, bob := p.ClientFrom("127.0.0.2"), p.ClientFrom("127.0.0.3")
	for i := range 10 {
		if resp, body := send(t, p, guesser, "/accounts/login/", loginForm("bob", "guess")); resp.StatusCode != http.StatusUnauthorized &&
			resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("wrong password %d: %d %.500s", i+1, resp.StatusCode, body)
		}
	}
	if resp, body := send(t, p, bob, "/accounts/login/", loginForm("bob", "correct horse")); resp.StatusCode != http.StatusFound {
		t.Fatalf("bob's password from his own address after ten wrong ones from another: %d %.500s", resp.StatusCode, body)
	}
	resp, body := send(t, p, guesser, "/accounts/login/", loginForm("bob", "correct horse"))
	secs := wantRefused(t, "the right password from the guessing address", resp, body,
		"Too many wrong passwords for this account from your address")
	p.Clock.Advance(time.Duration(secs) * time.Second)
	if resp, body := send(t, p, guesser, "/accounts/login/", loginForm("bob", "correct horse")); resp.StatusCode != http.StatusFound {
		t.Fatalf("the right password after Retry-After: %d %.500s", resp.StatusCode, body)
	}
}

// An address that tries a few passwords on each of many accounts stays
// under every account's delays: the cap per address stops it.
func TestWrongPasswordsCappedPerAddressOverAllAccounts(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	var names []string
	for i := range 11 {
		names = append(names, "member"+string(rune('a'+i)))
		signUp(t, p, names[i])
	}
	guesser := p.ClientFrom("127.0.0.2")
	wrong := 0
	var resp *http.Response
	var body string
	for _, name := range names {
		for range 5 {
			if resp, body = send(t, p, guesser, "/accounts/login/", loginForm(name, "guess")); resp.StatusCode != http.StatusUnauthorized {
				break
			}
			wrong++
		}
		if resp.StatusCode != http.StatusUnauthorized {
			break
		}
	}
	if wrong != 50 {
		t.Fatalf("%d wrong passwords checked from one address, want the cap of 50 (then %d)", wrong, resp.StatusCode)
	}
	wantRefused(t, "over the cap", resp, body, "Too many wrong passwords from your address")
	other := p.ClientFrom("127.0.0.3")
	if resp, body := send(t, p, other, "/accounts/login/", loginForm(names[10], "guess")); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong password from another address: %d %.500s", resp.StatusCode, body)
	}
	if resp, body := send(t, p, other, "/accounts/login/", loginForm(portaltest.AdminUser, portaltest.AdminPassword)); resp.StatusCode != http.StatusFound {
		t.Fatalf("the admin from another address: %d %.500s", resp.StatusCode, body)
	}
}

// Sign-ups from one address stop at a limit a room stays under (a room of
// 50 at once passes: TestSignUpsOfARoomFromOneAddress); others still sign
// up.
func TestSignUpsCappedPerAddress(t *testing.T) {
	p := startWith(t, config.Entry{}, nil)
	flood := p.ClientFrom("127.0.0.2")
	tries := 0
	var resp *http.Response
	var body string
	for range 200 {
		// A refused form (the passwords differ) costs no hash: the test
		// stays fast, and the attempt counts all the same.
		resp, body = send(t, p, flood, "/accounts/register/", url.Values{"username": {"flood"},
			"email": {"flood@example.com"}, "password1": {"correct horse"}, "password2": {"correct house"}})
		if resp.StatusCode != http.StatusBadRequest {
			break
		}
		tries++
	}
	if tries != 120 {
		t.Fatalf("%d sign-ups from one address before the limit, want 120", tries)
	}
	wantRefused(t, "sign-up over the limit", resp, body, "Too many sign-ups from your address")
	signUpFrom := p.ClientFrom("127.0.0.3")
	if resp, body := send(t, p, signUpFrom, "/accounts/register/", url.Values{"username": {"carol"},
		"email": {"carol@example.com"}, "password1": {"correct horse"}, "password2": {"correct horse"}}); resp.StatusCode != http.StatusFound {
		t.Fatalf("a sign-up from another address: %d %.500s", resp.StatusCode, body)
	}
}

// fresh forgets a client's cookies: the next request is a new visitor's.
func fresh(c *portaltest.Client) *portaltest.Client {
	c.HTTP.Jar, _ = cookiejar.New(nil)
	return c
}

// /accounts/create/ made 300 anonymous accounts in 4.6 s for one client
// that dropped its cookie each time.
func TestAnonymousAccountsCappedPerAddress(t *testing.T) {
	p := startWith(t, config.Entry{}, func(p *config.Portal) { p.Registration.Type = "anonymous" })
	flood := p.ClientFrom("127.0.0.2")
	made := 0
	var resp *http.Response
	var raw []byte
	for range 100 {
		resp, raw = fresh(flood).Raw("GET", "/accounts/create/", nil, "Accept", "text/html")
		if resp.StatusCode != http.StatusFound {
			break
		}
		made++
	}
	if made != 60 {
		t.Fatalf("%d anonymous accounts from one address, want 60", made)
	}
	wantRefused(t, "an anonymous account over the limit", resp, string(raw), "Too many anonymous accounts from your address")
	if resp, _ := p.ClientFrom("127.0.0.3").Raw("GET", "/accounts/create/", nil, "Accept", "text/html"); resp.StatusCode != http.StatusFound ||
		resp.Header.Get("Location") != "/workshops/catalog/" {
		t.Fatalf("an anonymous account from another address: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// One cookie-less client took every session of an anonymous workshop
// through its start link. It stops at the limit of anonymous accounts
// per address (each of which holds at most one session here), and the
// workshop keeps sessions for everyone else.
func TestAnonymousSessionsCappedPerAddress(t *testing.T) {
	p := startWith(t, config.Entry{Capacity: 100, Reserved: 1, Initial: 1},
		func(p *config.Portal) { p.Registration.Type = "anonymous" })
	link := "/workshops/environment/portal-w01/create/?index_url=" + url.QueryEscape("https://hub.example/")
	// start follows the start link as a browser does and returns the
	// session it ends at, or the answer that stopped it.
	start := func(c *portaltest.Client) (string, *http.Response, []byte) {
		t.Helper()
		path := link
		for range 5 {
			resp, raw := c.Raw("GET", path, nil, "Accept", "text/html")
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound {
				return "", resp, raw
			}
			if strings.HasPrefix(loc, "/workshops/session/") {
				return strings.Trim(strings.TrimPrefix(loc, "/workshops/session/"), "/"), resp, raw
			}
			path = loc
		}
		t.Fatalf("%s: more than 5 redirects", link)
		return "", nil, nil
	}
	flood := p.ClientFrom("127.0.0.2")
	sessions := 0
	var resp *http.Response
	var raw []byte
	for range 100 {
		var name string
		if name, resp, raw = start(fresh(flood)); name == "" {
			break
		}
		sessions++
	}
	if sessions != 60 || p.Count("portal-w01") < 60 {
		t.Fatalf("one address took %d sessions (%d in the workshop), want 60", sessions, p.Count("portal-w01"))
	}
	wantRefused(t, "a start over the limit", resp, string(raw), "Too many anonymous accounts from your address")
	if name, resp, raw := start(p.ClientFrom("127.0.0.3")); name == "" {
		t.Fatalf("a start from another address: %d %s %.500s", resp.StatusCode, resp.Header.Get("Location"), raw)
	}
}

// A wrong activation token costs a write transaction; guesses are limited
// per address like those of the access code.
func TestActivationGuessesLimitedPerAddress(t *testing.T) {
	p := newPortal(t)
	name, activation := request(t, p, "alice", "/")
	guesser := p.ClientFrom("127.0.0.2")
	wrong := "/workshops/session/" + name + "/activate/?token=guess"
	var resp *http.Response
	var raw []byte
	guesses := 0
	for range 30 {
		if resp, raw = guesser.Raw("GET", wrong, nil); resp.StatusCode != http.StatusBadRequest {
			break
		}
		guesses++
	}
	if guesses != 10 {
		t.Fatalf("%d wrong activation tokens checked from one address, want 10", guesses)
	}
	if reason := errorReason(t, resp, raw, http.StatusTooManyRequests); !strings.Contains(reason, "Too many wrong activation links from your address") ||
		resp.Header.Get("Retry-After") == "" {
		t.Errorf("refusal %q, Retry-After %q", reason, resp.Header.Get("Retry-After"))
	}
	if resp, _ := p.ClientFrom("127.0.0.3").Raw("GET", activation, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("the owner's activation from another address: %d", resp.StatusCode)
	}
}

// Guesses sent at once are counted as they come: no more than the limit
// are checked, however many arrive before the first is answered.
func TestParallelActivationGuessesCountedAsTheyCome(t *testing.T) {
	p := newPortal(t)
	name, _ := request(t, p, "alice", "/")
	guesser := p.ClientFrom("127.0.0.2")
	wrong := "/workshops/session/" + name + "/activate/?token=guess"
	var checked atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 40 {
		wg.Go(func() {
			<-start
			if resp, _ := guesser.Raw("GET", wrong, nil); resp.StatusCode == http.StatusBadRequest {
				checked.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := checked.Load(); n > 10 {
		t.Fatalf("%d of 40 parallel wrong activation tokens checked from one address, want at most 10", n)
	}
}
