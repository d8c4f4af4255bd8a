package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// serveWith runs the portal's server (newServer) on h with a short read
// timeout, and returns its address.
func serveWith(t *testing.T, h http.Handler, read time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(h, slog.New(slog.NewTextHandler(io.Discard, nil)), read)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// A client that sends a body a byte at a time (slow loris) is cut off:
// before, nothing bounded the body, and it held the connection for ever.
func TestSlowBodyTimesOut(t *testing.T) {
	readErr := make(chan error, 1)
	addr := serveWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		if err != nil {
			http.Error(w, "body too slow", http.StatusRequestTimeout)
		}
	}), 300*time.Millisecond)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /accounts/login/ HTTP/1.1\r\nHost: portal\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=")
	// Trickle a byte now and then, as a slow loris does, until the
	// server gives up or the test does.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	select {
	case err := <-readErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("the handler read the slow body: %v, want a timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a body trickling in is still being read after 30 s: no body timeout")
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the slow request: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("answer %s (close %v), want 408 and the connection closed", resp.Status, resp.Close)
	}
}

// Once its body has arrived a request may take as long as it needs (a
// long-poll), and a websocket lives on: the read deadline must not linger
// on the connection.
func TestReadTimeoutSparesLongRequestsAndWebsockets(t *testing.T) {
	const timeout = 200 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("POST /poll", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(5 * timeout):
			fmt.Fprintf(w, "answer to %s", body)
		case <-r.Context().Done():
			// The client is still there: only a lingering deadline
			// cancels the request.
		}
	})
	mux.HandleFunc("GET /terminal", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	addr := serveWith(t, mux, timeout)

	resp, err := http.Post("http://"+addr+"/poll", "text/plain", strings.NewReader("question"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "answer to question" {
		t.Errorf("a long-poll past the read timeout: %s %q", resp.Status, got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/terminal", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 3 {
		time.Sleep(2 * timeout)
		msg := fmt.Sprintf("keystroke %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("websocket after %d × the read timeout: %v", 2*(i+1), err)
		}
		if _, echo, err := c.Read(ctx); err != nil || string(echo) != msg {
			t.Fatalf("websocket after %d × the read timeout: %q, %v", 2*(i+1), echo, err)
		}
	}
}
