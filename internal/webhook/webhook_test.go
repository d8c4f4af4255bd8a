package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/secret"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openStore(t *testing.T) store.Store {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "portico.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func testSecret(t *testing.T) (string, Secret) {
	t.Helper()
	text := NewSecret()
	s, err := ParseSecret(text)
	if err != nil {
		t.Fatal(err)
	}
	return text, s
}

// verify checks a delivery as a receiver would, from the Standard Webhooks
// specification: the secret is the base64 after "whsec_"; the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>"; webhook-signature
// is a space-separated list of "v1,<base64 HMAC-SHA256>", any of which may
// match; the timestamp is within five minutes of now.
func verify(secretText string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secretText, "whsec_"))
	if err != nil {
		return false
	}
	id, ts := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("Webhook-Signature")) {
		version, b64, ok := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && version == "v1" && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// receiver is a webhook endpoint that fails the first attempts at each
// delivery, verifies signatures and keeps the deliveries it acknowledged,
// deduplicated by webhook-id as the specification tells receivers to.
type receiver struct {
	t      *testing.T
	secret string
	fail   int // attempts of each delivery answered 503

	mu       sync.Mutex
	attempts map[string]int              // by webhook-id
	acked    map[string][]map[string]any // bodies acknowledged, by webhook-id
	bodies   map[string]string           // the first body seen, by webhook-id
	paths    map[string]string
	bad      int // attempts with a bad signature
}

func newReceiver(t *testing.T, secret string, fail int) (*receiver, *httptest.Server) {
	r := &receiver{t: t, secret: secret, fail: fail, attempts: map[string]int{}, acked: map[string][]map[string]any{},
		bodies: map[string]string{}, paths: map[string]string{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !verify(r.secret, req.Header, body) {
		r.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("Webhook-Id")
	if first, ok := r.bodies[id]; ok && first != string(body) {
		r.t.Errorf("delivery %s changed its body between attempts:\n%s\n%s", id, first, body)
	}
	r.bodies[id] = string(body)
	r.attempts[id]++
	if r.attempts[id] <= r.fail {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var msg map[string]any
	if err := json.Unmarshal(body, &msg); err != nil {
		r.t.Errorf("body %q: %v", body, err)
	}
	r.acked[id] = append(r.acked[id], msg)
	r.paths[id] = req.URL.Path
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) ackedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// queue puts events into the outbox as the broker does: in a transaction,
// then Emit.
func queue(t *testing.T, st store.Store, s *Sender, events ...broker.Event) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx store.Tx) error { return s.Add(tx, events) }); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		s.Emit(e)
	}
}

func run(t *testing.T, s *Sender) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func deliveries(t *testing.T, st store.Store) []store.Webhook {
	t.Helper()
	var out []store.Webhook
	if err := st.View(context.Background(), func(tx store.Tx) (err error) {
		out, err = tx.Webhooks(100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sessionEvent(name string, n int) broker.Event {
	return broker.Event{Name: name, Time: time.Now(), User: "alice", Session: "p-w01-s" + strconv.Itoa(n),
		Environment: "p-w01", Workshop: "lab", Data: map[string]any{"n": n}}
}

// A receiver that fails the first attempts gets every event exactly once
// after deduplication, under one webhook-id, signed.
func TestDeliveredOnceThroughFailures(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, srv := newReceiver(t, text, 2)
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
	)
	s := New(Options{Store: st, Portal: Portal{Name: "p", URL: "http://portal"}, URL: srv.URL + "/hook", Secret: sec,
		Replica: "r1", Log: quiet, Backoff: 10 * time.Millisecond, Observe: func(a Attempt) {
			mu.Lock()
			outcomes[a.Outcome]++
			mu.Unlock()
		}})
	run(t, s)
	const n = 20
	for i := range n {
		queue(t, st, s, sessionEvent("Session/Started", i))
	}
	eventually(t, "every event acknowledged", func() bool { return rcv.ackedCount() == n })
	eventually(t, "every outcome recorded", func() bool {
		for _, w := range deliveries(t, st) {
			if w.State != store.WebhookDelivered {
				return false
			}
		}
		return true
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	seen := map[float64]bool{}
	for id, acks := range rcv.acked {
		if len(acks) != 1 {
			t.Errorf("%s acknowledged %d times", id, len(acks))
		}
		if rcv.attempts[id] != 3 {
			t.Errorf("%s: %d attempts, want 3 (two refused)", id, rcv.attempts[id])
		}
		seen[acks[0]["event"].(map[string]any)["data"].(map[string]any)["n"].(float64)] = true
	}
	if len(seen) != n || rcv.bad != 0 {
		t.Errorf("%d distinct events of %d acknowledged, %d bad signatures", len(seen), n, rcv.bad)
	}
	for _, w := range deliveries(t, st) {
		if w.Attempts != 3 || w.LastStatus != 204 || w.Done.IsZero() || rcv.acked[w.ID] == nil {
			t.Errorf("delivery log: %+v", w)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if outcomes["delivered"] != n || outcomes["retry"] != 2*n || outcomes["failed"] != 0 {
		t.Errorf("observed outcomes %v", outcomes)
	}
}

// Two replicas on one database share the outbox: each delivery is made
// once, by one of them.
func TestReplicasShareTheOutbox(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, srv := newReceiver(t, text, 0)
	var senders []*Sender
	for _, name := range []string{"r1", "r2", "r3"} {
		s := New(Options{Store: st, Portal: Portal{Name: "p"}, URL: srv.URL, Secret: sec, Replica: name, Log: quiet,
			Backoff: 10 * time.Millisecond})
		senders = append(senders, s)
		run(t, s)
	}
	const n = 60
	for i := range n {
		queue(t, st, senders[i%len(senders)], sessionEvent("Session/Created", i))
	}
	eventually(t, "every event acknowledged", func() bool { return rcv.ackedCount() == n })
	time.Sleep(50 * time.Millisecond) // room for a duplicate to show
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, k := range rcv.attempts {
		if k != 1 {
			t.Errorf("%s posted %d times", id, k)
		}
	}
}

// Payloads keep the shapes of Educates' analytics events (spec §10), and
// the session's own analytics URL gets the session's events.
func TestPayloadShapes(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, srv := newReceiver(t, text, 0)
	s := New(Options{Store: st, Portal: Portal{Name: "p", UID: "u", Generation: 2, URL: "http://portal"},
		URL: srv.URL + "/global", Secret: sec, Log: quiet, AllowPrivate: true})
	run(t, s)
	at := time.Date(2021, 3, 18, 2, 50, 40, 861392000, time.UTC)
	queue(t, st, s, broker.Event{Name: "Session/Started", Time: at, User: "alice", Session: "p-w01-s001",
		Environment: "p-w01", Workshop: "lab", Data: map[string]any{}, Webhook: srv.URL + "/session"},
		broker.Event{Name: "User/Create", Time: at, User: "bob", Data: map[string]any{"group": "anonymous"}},
		broker.Event{Name: "Session/Created", Time: at, Session: "p-w01-s002", Environment: "p-w01", Workshop: "lab",
			Data: map[string]any{}})
	eventually(t, "four deliveries", func() bool { return rcv.ackedCount() == 4 })

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	seen := map[string]map[string]any{}
	for id, acks := range rcv.acked {
		seen[rcv.paths[id]+" "+acks[0]["event"].(map[string]any)["name"].(string)] = acks[0]
	}
	for _, key := range []string{"/global Session/Started", "/session Session/Started", "/global User/Create", "/global Session/Created"} {
		if seen[key] == nil {
			t.Fatalf("no %s delivery in %v", key, seen)
		}
	}
	session := seen["/global Session/Started"]
	event := session["event"].(map[string]any)
	if !regexp.MustCompile(`^2021-03-18T02:50:40\.861392\+00:00$`).MatchString(event["timestamp"].(string)) ||
		event["user"] != "alice" || event["session"] != "p-w01-s001" || event["environment"] != "p-w01" || event["workshop"] != "lab" {
		t.Errorf("session event %v", event)
	}
	if portal := session["portal"].(map[string]any); portal["uid"] != "u" || portal["generation"] != 2.0 {
		t.Errorf("portal %v", portal)
	}
	// User events carry no uid or generation (spec §10).
	if portal := seen["/global User/Create"]["portal"].(map[string]any); portal["uid"] != nil || portal["generation"] != nil {
		t.Errorf("user event portal %v", portal)
	}
	// A reserved session has no user: null, as in Educates.
	if user, ok := seen["/global Session/Created"]["event"].(map[string]any)["user"]; !ok || user != nil {
		t.Errorf("reserved session's user %v (present %v), want null", user, ok)
	}
}

// A session's analytics URL is a client's: it may not reach the portal's
// own machine or network, however its name resolves. The operator's URL
// may.
func TestSessionURLsReachPublicAddressesOnly(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, srv := newReceiver(t, text, 0)
	s := New(Options{Store: st, Portal: Portal{Name: "p"}, URL: srv.URL + "/global", Secret: sec, Log: quiet})
	run(t, s)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	urls := []string{srv.URL + "/session", "http://localhost:" + strconv.Itoa(port) + "/session",
		"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/session"}
	for i, u := range urls {
		e := sessionEvent("Session/Started", i)
		e.Webhook = u
		queue(t, st, s, e)
	}
	eventually(t, "every delivery finished", func() bool {
		list := deliveries(t, st)
		for _, w := range list {
			if w.State == store.WebhookPending {
				return false
			}
		}
		return len(list) == 2*len(urls)
	})
	for _, w := range deliveries(t, st) {
		switch {
		case w.Guarded && (w.State != store.WebhookFailed || w.Attempts != 1 || !strings.Contains(w.LastError, "not allowed")):
			t.Errorf("session URL delivery %+v, want given up at once", w)
		case !w.Guarded && w.State != store.WebhookDelivered:
			t.Errorf("operator URL delivery %+v, want delivered", w)
		}
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for id, p := range rcv.paths {
		if p != "/global" {
			t.Errorf("%s reached %s", id, p)
		}
	}
}

func TestPublicAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700::1111": true, "1.1.1.1": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false,
		"255.255.255.255": false, "64:ff9b::7f00:1": false, "2002:7f00:1::": false, "fec0::1": false,
	} {
		if got := public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// A delivery that keeps failing is given up once it is older than MaxAge,
// and the log says why.
func TestGivenUpAfterMaxAge(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, srv := newReceiver(t, text, 1<<30)
	var failed sync.WaitGroup
	failed.Add(1)
	s := New(Options{Store: st, Portal: Portal{Name: "p"}, URL: srv.URL, Secret: sec, Log: quiet,
		Backoff: 5 * time.Millisecond, MaxAge: 100 * time.Millisecond, Observe: func(a Attempt) {
			if a.Outcome == "failed" {
				failed.Done()
			}
		}})
	run(t, s)
	queue(t, st, s, sessionEvent("Session/Started", 1))
	failed.Wait()
	list := deliveries(t, st)
	if len(list) != 1 {
		t.Fatalf("%d deliveries", len(list))
	}
	w := list[0]
	if w.State != store.WebhookFailed || w.Attempts < 1 || w.LastStatus != 503 ||
		w.LastError != "answered 503 Service Unavailable" || w.Done.Sub(w.Created) > 100*time.Millisecond+attemptTimeout {
		t.Errorf("given-up delivery %+v", w)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.attempts[w.ID] != w.Attempts {
		t.Errorf("receiver saw %d attempts, the log says %d", rcv.attempts[w.ID], w.Attempts)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A front end's analytics URL may carry its credential; a failed delivery
// is logged, and kept in the delivery log, without it.
func TestFailedDeliveryShowsNoCredential(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	st := openStore(t)
	_, sec := testSecret(t)
	var logs syncBuffer
	s := New(Options{Store: st, Portal: Portal{Name: "p"}, Secret: sec, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		AllowPrivate: true, Backoff: time.Hour})
	run(t, s)
	for i, u := range []string{"http://hub:hunter2@" + dead + "/events?token=s3cr3t-token",
		"http://" + dead + "/events?token=s3cr3t-token\x7f"} {
		e := sessionEvent("Session/Started", i)
		e.Webhook = u
		queue(t, st, s, e)
	}
	eventually(t, "both failures logged", func() bool { return strings.Count(logs.String(), "webhook delivery") >= 2 })
	var kept []string
	for _, w := range deliveries(t, st) {
		kept = append(kept, w.LastError)
	}
	all := logs.String() + strings.Join(kept, "\n")
	if strings.Contains(all, "hunter2") || strings.Contains(all, "s3cr3t-token") || !strings.Contains(logs.String(), "http://"+dead) {
		t.Errorf("the log of failed deliveries:\n%s", all)
	}
}

// An attempt cut short by shutdown is handed back untouched, so the next
// start delivers it at once.
func TestShutdownHandsDeliveriesBack(t *testing.T) {
	st := openStore(t)
	_, sec := testSecret(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	s := New(Options{Store: st, Portal: Portal{Name: "p"}, URL: srv.URL, Secret: sec, Replica: "r1", Log: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	queue(t, st, s, sessionEvent("Session/Started", 1))
	<-arrived
	cancel()
	<-done
	list := deliveries(t, st)
	if len(list) != 1 || list[0].State != store.WebhookPending || list[0].Attempts != 0 {
		t.Fatalf("after shutdown: %+v", list)
	}
	var got []store.Webhook
	if err := st.Update(context.Background(), func(tx store.Tx) (err error) {
		got, err = tx.ClaimWebhooks("r2", time.Now(), time.Minute, 5)
		return err
	}); err != nil || len(got) != 1 {
		t.Errorf("another replica claims %v, %v; want the delivery at once", got, err)
	}
}

func TestSecrets(t *testing.T) {
	text := NewSecret()
	s, err := ParseSecret(text)
	if err != nil || s.String() != text {
		t.Fatalf("ParseSecret(%q) = %v, %v", text, s, err)
	}
	for _, bad := range []string{"", "abc", "whsec_", "whsec_!!!", "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
	// The example of the Standard Webhooks specification.
	spec, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`)); got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Errorf("signature of the specification's example: %s", got)
	}
}

// The generated secret is made once, kept sealed, and read back alike by
// every replica; an operator's secret wins.
func TestLoadSecret(t *testing.T) {
	st := openStore(t)
	key, err := secret.ParseKey(secret.NewKey())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := LoadSecret(ctx, st, box, "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadSecret(ctx, st, box, "")
	if err != nil || again.String() != first.String() {
		t.Errorf("second load %v, %v; want the first secret", again, err)
	}
	var stored string
	st.Update(ctx, func(tx store.Tx) (err error) {
		stored, err = tx.InsertSetting(secretSetting, "x")
		return err
	})
	if strings.Contains(stored, strings.TrimPrefix(first.String(), "whsec_")) {
		t.Errorf("the secret is stored in clear: %s", stored)
	}
	given := NewSecret()
	if s, err := LoadSecret(ctx, st, box, given); err != nil || s.String() != given {
		t.Errorf("operator's secret: %v, %v", s, err)
	}
	if _, err := LoadSecret(ctx, st, box, "hunter2"); err == nil {
		t.Error("a malformed secret accepted")
	}
}

// A receiver that hangs holds up only its own deliveries: another's are
// made while its attempts still hang.
func TestSlowReceiverHoldsUpNoOther(t *testing.T) {
	st := openStore(t)
	text, sec := testSecret(t)
	rcv, fast := newReceiver(t, text, 0)
	var arrived atomic.Int32
	hanging := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-hanging:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hanging); slow.Close() })
	s := New(Options{Store: st, Portal: Portal{Name: "p"}, Secret: sec, Log: quiet, AllowPrivate: true})
	run(t, s)
	for i := range 3 {
		e := sessionEvent("Session/Started", i)
		e.Webhook = slow.URL
		queue(t, st, s, e)
	}
	eventually(t, "the slow receiver's attempts", func() bool { return arrived.Load() == 3 })
	e := sessionEvent("Session/Started", 99)
	e.Webhook = fast.URL
	queue(t, st, s, e)
	eventually(t, "the fast receiver's delivery", func() bool { return rcv.ackedCount() == 1 })
	for _, w := range deliveries(t, st) {
		if w.URL == slow.URL && w.Attempts != 0 {
			t.Errorf("the fast delivery waited for a slow attempt to end: %+v", w)
		}
	}
}
