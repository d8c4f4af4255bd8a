package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/broker"
)

func TestEventsReachBothWebhooks(t *testing.T) {
	got := make(chan map[string]any, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		body["path"] = r.URL.Path
		got <- body
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(ctx, Portal{Name: "p", UID: "u", Generation: 2, URL: "http://portal"}, srv.URL+"/global", slog.New(slog.NewTextHandler(io.Discard, nil)))

	at := time.Date(2021, 3, 18, 2, 50, 40, 861392000, time.UTC)
	s.Emit(broker.Event{Name: "Session/Started", Time: at, User: "alice", Session: "p-w01-s001",
		Environment: "p-w01", Workshop: "lab", Data: map[string]any{}, Webhook: srv.URL + "/session"})
	s.Emit(broker.Event{Name: "User/Create", Time: at, User: "bob", Data: map[string]any{"group": "anonymous"}})

	seen := map[string]map[string]any{}
	for range 3 {
		select {
		case b := <-got:
			event := b["event"].(map[string]any)
			seen[b["path"].(string)+" "+event["name"].(string)] = b
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d deliveries arrived: %v", len(seen), seen)
		}
	}
	for _, key := range []string{"/global Session/Started", "/session Session/Started", "/global User/Create"} {
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
// is logged without it.
func TestFailedDeliveryLogsNoCredential(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(ctx, Portal{Name: "p", URL: "http://portal"}, "", slog.New(slog.NewTextHandler(&logs, nil)))
	s.Emit(broker.Event{Name: "Session/Started", Time: time.Now(), Session: "p-w01-s001",
		Webhook: "http://hub:hunter2@" + dead + "/events?token=s3cr3t-token"})
	s.Emit(broker.Event{Name: "Session/Started", Time: time.Now(), Session: "p-w01-s001",
		Webhook: "http://" + dead + "/events?token=s3cr3t-token\x7f"})
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "analytics webhook") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no failure logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out := logs.String(); strings.Contains(out, "hunter2") || strings.Contains(out, "s3cr3t-token") || !strings.Contains(out, "http://"+dead) {
		t.Errorf("the log of failed deliveries:\n%s", out)
	}
}
