package e2e

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// verifyWebhook checks a delivery as a receiver would, from the Standard
// Webhooks specification alone: the secret is the base64 after "whsec_";
// the signed content is "<webhook-id>.<webhook-timestamp>.<body>";
// webhook-signature is a space-separated list of "v1,<base64
// HMAC-SHA256>", one of which must match; the timestamp is within five
// minutes of now.
func verifyWebhook(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" {
		return fmt.Errorf("webhook-id %q, webhook-timestamp %q", id, ts)
	}
	if skew := time.Since(time.Unix(sec, 0)).Abs(); skew > 5*time.Minute {
		return fmt.Errorf("timestamp %s off", skew)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, b64, ok := strings.Cut(sig, ","); ok && v == "v1" {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("no signature matches: %q", h.Get("webhook-signature"))
}

// hookReceiver refuses the first attempts at every delivery (and all of
// them while down), and counts what it acknowledged by webhook-id.
type hookReceiver struct {
	t      *testing.T
	secret string
	refuse int // first attempts of each delivery answered 503

	mu        sync.Mutex
	down      bool
	attempts  map[string]int
	acks      map[string]int
	names     map[string]string // event name by webhook-id
	sessions  map[string]string // session by webhook-id
	bodies    map[string]string
	whileDown map[string]bool // ids first tried while down
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := verifyWebhook(r.secret, req.Header, body); err != nil {
		r.t.Errorf("delivery with a bad signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var msg struct {
		Event struct {
			Name    string `json:"name"`
			Session string `json:"session"`
		} `json:"event"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		r.t.Errorf("delivery not JSON: %q", body)
	}
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.bodies[id]; ok && prev != string(body) {
		r.t.Errorf("%s changed between attempts:\n%s\n%s", id, prev, body)
	}
	r.bodies[id], r.names[id], r.sessions[id] = string(body), msg.Event.Name, msg.Event.Session
	r.attempts[id]++
	if r.down {
		if r.attempts[id] == 1 {
			r.whileDown[id] = true
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.attempts[id] <= r.refuse {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	r.acks[id]++
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// acked reports whether the event of that name for that session has been
// acknowledged.
func (r *hookReceiver) acked(name, session string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.names {
		if n == name && r.sessions[id] == session && r.acks[id] > 0 {
			return true
		}
	}
	return false
}

// TestWebhooksDeliveredOnceAcrossRestart: a receiver that refuses the
// first attempts gets each event exactly once, under a stable webhook-id,
// signed; events made while it is down (and while the portal stops) are
// delivered once the portal is back.
func TestWebhooksDeliveredOnceAcrossRestart(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	rcv := &hookReceiver{t: t, secret: secret, refuse: 2, attempts: map[string]int{}, acks: map[string]int{},
		names: map[string]string{}, sessions: map[string]string{}, bodies: map[string]string{}, whileDown: map[string]bool{}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	p := newPortal(t, definitions(entry{Capacity: 4, Reserved: 1}),
		"--analytics-webhook", srv.URL+"/hooks?token=receiver-credential", "--webhook-retry", "100ms")
	p.env = []string{"PORTICO_WEBHOOK_SECRET=" + secret}
	p.start()
	p.waitReady()
	robot := p.robot()

	first := robot.request("hook-first", "")
	if msg := eventually(settle, func() string {
		if !rcv.acked("Session/Allocated", first.Name) || !rcv.acked("Session/Pending", first.Name) {
			return "allocation events of " + first.Name + " not acknowledged"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}

	// The receiver goes down; the portal goes on, and then stops (ending
	// its sessions, which makes more events).
	rcv.setDown(true)
	second := robot.request("hook-second", "")
	if msg := eventually(settle, func() string {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for id := range rcv.whileDown {
			if rcv.sessions[id] == second.Name && rcv.attempts[id] >= 2 {
				return ""
			}
		}
		return "no retries of " + second.Name + "'s events while the receiver is down"
	}); msg != "" {
		t.Fatal(msg)
	}
	p.stop()
	rcv.setDown(false)
	if rcv.acked("Session/Allocated", second.Name) {
		t.Fatal("delivered while the receiver was down")
	}

	p.restart()
	if msg := eventually(settle, func() string {
		for _, e := range []struct{ name, session string }{
			{"Session/Allocated", second.Name}, {"Session/Pending", second.Name},
			{"Session/Deleted", first.Name}, {"Session/Deleted", second.Name},
		} {
			if !rcv.acked(e.name, e.session) {
				return e.name + " of " + e.session + " not acknowledged after the restart"
			}
		}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for id := range rcv.attempts {
			if rcv.acks[id] == 0 {
				return fmt.Sprintf("%s (%s of %s) not acknowledged", id, rcv.names[id], rcv.sessions[id])
			}
		}
		return ""
	}); msg != "" {
		t.Fatalf("%s\n%s", msg, p.output())
	}
	// Room for a repeat to show itself, had there been one.
	time.Sleep(time.Second)
	p.stop()

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.whileDown) == 0 {
		t.Error("no delivery was tried while the receiver was down")
	}
	for id, n := range rcv.acks {
		if n != 1 {
			t.Errorf("%s (%s of %s) acknowledged %d times", id, rcv.names[id], rcv.sessions[id], n)
		}
		if rcv.attempts[id] < 3 {
			t.Errorf("%s acknowledged after %d attempts: the first two were refused", id, rcv.attempts[id])
		}
	}
	// Exactly once per event: no event delivered under two ids.
	seen := map[string]string{}
	for id, body := range rcv.bodies {
		if other, ok := seen[body]; ok {
			t.Errorf("one event under two webhook-ids %s and %s: %s", other, id, body)
		}
		seen[body] = id
	}
	if out := p.output(); strings.Contains(out, "receiver-credential") || !slices.ContainsFunc(strings.Split(out, "\n"),
		func(l string) bool { return strings.Contains(l, "will retry") }) {
		t.Errorf("the portal's log shows the webhook's credential, or no retry:\n%s", out)
	}
}
