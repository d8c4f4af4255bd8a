package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/portaltest"
	"github.com/portico-dev/portico/internal/runtime/runtimetest"
	"github.com/portico-dev/portico/internal/store"
)

// TestConcurrentRequests fires hundreds of simultaneous requests, from
// distinct and repeated users, at an environment with fewer places than
// demand: capacity is never exceeded, no session goes to two users, nobody
// gets two sessions, and every refusal is a 503.
func TestConcurrentRequests(t *testing.T) {
	const capacity = 7
	defs := portaltest.Definitions(config.Entry{Capacity: capacity, Reserved: 3, Initial: 3, Expires: time.Hour})
	p := portaltest.Start(t, defs, portaltest.Options{Runtime: runtimetest.New()})
	robot := p.Robot()

	const distinct, repeated, repeats = 150, 10, 10 // 250 requests
	var users []string
	for i := range distinct {
		users = append(users, fmt.Sprintf("user-%03d", i))
	}
	for i := range repeated {
		for range repeats {
			users = append(users, fmt.Sprintf("repeat-%d@example.com", i))
		}
	}

	type result struct {
		user, session string
		status        int
		body          string
	}
	results := make([]result, len(users))
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: len(users)}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, user := range users {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("GET", p.Server.URL+"/workshops/environment/portal-w01/request/?index_url=/&user="+user, nil)
			req.Header.Set("Authorization", "Bearer "+robot.Bearer)
			resp, err := client.Do(req)
			if err != nil {
				results[i] = result{user: user, body: err.Error()}
				return
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var a struct{ Name string }
			json.Unmarshal(raw, &a)
			results[i] = result{user, a.Name, resp.StatusCode, string(raw)}
		})
	}
	close(start)
	wg.Wait()
	p.Settle()

	owner := map[string]string{}   // session → user
	session := map[string]string{} // user → session
	granted := 0
	for _, r := range results {
		switch r.status {
		case 200:
			granted++
			if u, ok := owner[r.session]; ok && u != r.user {
				t.Errorf("session %s given to %s and %s", r.session, u, r.user)
			}
			if s, ok := session[r.user]; ok && s != r.session {
				t.Errorf("%s got two sessions: %s and %s", r.user, s, r.session)
			}
			owner[r.session], session[r.user] = r.user, r.session
		case 503:
			if r.body != "{\"error\":\"No session available\"}\n" {
				t.Errorf("refusal body %q", r.body)
			}
		default:
			t.Errorf("%s: status %d: %s", r.user, r.status, r.body)
		}
	}
	if len(owner) != capacity {
		t.Errorf("%d sessions handed out, want exactly the capacity %d", len(owner), capacity)
	}
	if live := p.Count("portal-w01", store.Live...); live > capacity {
		t.Errorf("%d live sessions, capacity %d", live, capacity)
	}
	for _, s := range p.Sessions() {
		if s.State != store.Stopped && s.Owner != 0 && session[s.OwnerName] != s.Name {
			t.Errorf("database has %s owned by %s, which no answer reported", s.Name, s.OwnerName)
		}
	}
	t.Logf("%d requests: %d granted (%d sessions), %d refused", len(results), granted, len(owner), len(results)-granted)
}
