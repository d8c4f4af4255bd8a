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

	"github.com/portico-dev/portico/internal/store/postgres/pgtest"
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

	mu   sync.Mutex
	down bool
	// hang holds every attempt until its sender goes away.
	hang      bool
	attempts  map[string]int
	acks      map[string]int
	names     map[string]string // event name by webhook-id
	sessions  map[string]string // session by webhook-id
	bodies    map[string]string
	whileDown map[string]bool // ids first tried while down
	hung      map[string]bool // ids of attempts held while hanging
}

func newHookReceiver(t *testing.T, secret string, refuse int) *hookReceiver {
	return &hookReceiver{t: t, secret: secret, refuse: refuse, attempts: map[string]int{}, acks: map[string]int{},
		names: map[string]string{}, sessions: map[string]string{}, bodies: map[string]string{},
		whileDown: map[string]bool{}, hung: map[string]bool{}}
}

func newWebhookSecret() string {
	key := make([]byte, 32)
	rand.Read(key)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// checkOnce fails the test unless every delivery tried was acknowledged
// exactly once, and no event came under two webhook-ids.
func (r *hookReceiver) checkOnce(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.attempts {
		if n := r.acks[id]; n != 1 {
			t.Errorf("%s (%s of %s) acknowledged %d times", id, r.names[id], r.sessions[id], n)
		}
	}
	seen := map[string]string{}
	for id, body := range r.bodies {
		if other, ok := seen[body]; ok {
			t.Errorf("one event under two webhook-ids %s and %s: %s", other, id, body)
		}
		seen[body] = id
	}
}

// allAcked complains of the first delivery tried and not acknowledged.
func (r *hookReceiver) allAcked() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.attempts {
		if r.acks[id] == 0 {
			return fmt.Sprintf("%s (%s of %s) not acknowledged", id, r.names[id], r.sessions[id])
		}
	}
	return ""
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
	if r.hang {
		r.hung[id] = true
		r.mu.Unlock()
		<-req.Context().Done()
		r.mu.Lock()
		return
	}
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
	secret := newWebhookSecret()
	rcv := newHookReceiver(t, secret, 2)
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
		return rcv.allAcked()
	}); msg != "" {
		t.Fatalf("%s\n%s", msg, p.output())
	}
	// Room for a repeat to show itself, had there been one.
	time.Sleep(time.Second)
	p.stop()

	rcv.checkOnce(t)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.whileDown) == 0 {
		t.Error("no delivery was tried while the receiver was down")
	}
	for id := range rcv.acks {
		if rcv.attempts[id] < 3 {
			t.Errorf("%s acknowledged after %d attempts: the first two were refused", id, rcv.attempts[id])
		}
	}
	if out := p.output(); strings.Contains(out, "receiver-credential") || !slices.ContainsFunc(strings.Split(out, "\n"),
		func(l string) bool { return strings.Contains(l, "will retry") }) {
		t.Errorf("the portal's log shows the webhook's credential, or no retry:\n%s", out)
	}
}

// TestWebhooksAcrossReplicas: replicas on one PostgreSQL share the
// outbox, each delivery made by one of them; what a replica had claimed
// when it was killed is delivered by another once the claim expires.
func TestWebhooksAcrossReplicas(t *testing.T) {
	requireBinary(t)
	pg := pgtest.Start(t)
	secret := newWebhookSecret()
	t.Setenv("PORTICO_WEBHOOK_SECRET", secret) // inherited by the replicas
	rcv := newHookReceiver(t, secret, 1)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	ps := startReplicas(t, definitions(entry{Capacity: 12, Reserved: 1}), pg.DSN, 2,
		"--analytics-webhook", srv.URL, "--webhook-retry", "100ms")
	a, b := ps[0], ps[1]
	robotA := a.robot()
	robotB := b.as(robotA.bearer)
	var sessions []string
	for i := range 6 {
		c := robotA
		if i%2 == 1 {
			c = robotB
		}
		sessions = append(sessions, c.request(fmt.Sprintf("replica-hook-%d", i), "").Name)
	}
	if msg := eventually(startBound, func() string {
		for _, s := range sessions {
			if !rcv.acked("Session/Allocated", s) {
				return "Session/Allocated of " + s + " not acknowledged"
			}
		}
		return rcv.allAcked()
	}); msg != "" {
		t.Fatal(msg)
	}

	// B stops; A claims the next events and hangs on the receiver when it
	// is killed.
	b.stop()
	rcv.mu.Lock()
	rcv.hang = true
	rcv.mu.Unlock()
	late := robotA.request("replica-hook-late", "").Name
	if msg := eventually(settle, func() string {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		if len(rcv.hung) == 0 {
			return "A holds no delivery"
		}
		return ""
	}); msg != "" {
		t.Fatal(msg)
	}
	a.kill9()
	rcv.mu.Lock()
	rcv.hang = false
	rcv.mu.Unlock()
	b.restart()
	// The claim lasts a minute: B takes the rows over after it.
	if msg := eventually(2*time.Minute+startBound, func() string {
		if !rcv.acked("Session/Allocated", late) {
			return "Session/Allocated of " + late + " not acknowledged"
		}
		rcv.mu.Lock()
		for id := range rcv.hung {
			if rcv.acks[id] == 0 {
				rcv.mu.Unlock()
				return id + ", claimed by the killed replica, not acknowledged"
			}
		}
		rcv.mu.Unlock()
		return rcv.allAcked()
	}); msg != "" {
		t.Fatalf("%s\n%s", msg, b.output())
	}
	time.Sleep(time.Second)
	rcv.checkOnce(t)
}
