package sessionhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// termClient is a test's view of a terminal websocket.
type termClient struct {
	t      *testing.T
	conn   *websocket.Conn
	output bytes.Buffer
	status []string
}

func dialTerminal(t *testing.T, srv *httptest.Server, id string, header http.Header) (*termClient, error) {
	t.Helper()
	if header == nil {
		header = http.Header{}
	}
	if header.Get("X-Portico-Secret") == "" {
		header.Set("X-Portico-Secret", testConfig.ConfigPassword)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/terminal/"+id, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp != nil {
			return nil, &dialError{resp.StatusCode, err}
		}
		return nil, err
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &termClient{t: t, conn: conn}, nil
}

type dialError struct {
	status int
	err    error
}

func (e *dialError) Error() string { return e.err.Error() }

func mustDial(t *testing.T, srv *httptest.Server, id string) *termClient {
	t.Helper()
	c, err := dialTerminal(t, srv, id, nil)
	if err != nil {
		t.Fatalf("dial terminal %s: %v", id, err)
	}
	return c
}

func (c *termClient) send(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageBinary, []byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

func (c *termClient) control(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("control: %v", err)
	}
}

// expect reads output until re matches what arrived since the last match,
// and returns the submatches.
func (c *termClient) expect(re *regexp.Regexp) []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 15*time.Second)
	defer cancel()
	for {
		if m := re.FindSubmatchIndex(c.output.Bytes()); m != nil {
			var subs []string
			for i := 0; i < len(m); i += 2 {
				subs = append(subs, string(c.output.Bytes()[m[i]:m[i+1]]))
			}
			c.output.Next(m[1])
			return subs
		}
		typ, data, err := c.conn.Read(ctx)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v; got %q", re, err, c.output.String())
		}
		if typ == websocket.MessageText {
			var m controlMessage
			json.Unmarshal(data, &m)
			c.status = append(c.status, m.Text)
			continue
		}
		c.output.Write(data)
	}
}

// closeStatus reads until the host closes the connection and returns the
// close status.
func (c *termClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := c.conn.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func newTerminalServer(t *testing.T, cfg Config) (*host, *httptest.Server) {
	t.Helper()
	h, _ := newTestHost(t, cfg)
	srv := httptest.NewServer(h.routes())
	t.Cleanup(func() {
		h.close()
		srv.Close()
	})
	return h, srv
}

var (
	hiLine   = outputLine(`hi`)
	sizeLine = outputLine(`30 100`)
	pidA     = outputLine(`pid-a=([0-9]+)`)
	pidB     = outputLine(`pid-b=([0-9]+)`)
	pidC     = outputLine(`pid-c=([0-9]+)`)
)

// outputLine matches a line of output, not the echo of the command that
// printed it: it starts the line (after the \r that ends bash's bracketed
// paste mode, or a newline).
func outputLine(re string) *regexp.Regexp {
	return regexp.MustCompile(`[\r\n]` + re + `\r\n`)
}

func TestTerminal(t *testing.T) {
	h, srv := newTerminalServer(t, testConfig)

	// A terminal opened before the allocation waits for it, so that the
	// first shell has the owner's parameters.
	c := mustDial(t, srv, "1")
	time.Sleep(50 * time.Millisecond)
	rec := private(t, h.routes(), "POST", "/.portico/allocate",
		`{"user": {"username": "alice", "first_name": "Alice"}, "params": [{"name": "GREETING", "value": "hi"}]}`)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("allocate: %d %s", rec.Code, rec.Body)
	}
	c.send("echo $GREETING\r")
	c.expect(hiLine)
	if len(c.status) == 0 {
		t.Error("no status message while waiting for the allocation")
	}
	c.send("echo \"$OWNER_FIRST_NAME in $PWD as $SESSION_NAME, $TERM\"\r")
	c.expect(outputLine(`Alice in ` + regexp.QuoteMeta(h.home) + ` as portal-w01-s001, xterm-256color`))

	// Resize.
	c.control(map[string]any{"type": "resize", "cols": 100, "rows": 30})
	c.send("stty size\r")
	c.expect(sizeLine)

	// The shell outlives a dropped websocket, and the output is replayed.
	c.send("echo pid-a=$$\r")
	pid := c.expect(pidA)[1]
	c.conn.CloseNow()
	c = mustDial(t, srv, "1")
	c.expect(pidA) // replayed
	c.send("echo pid-b=$$\r")
	if again := c.expect(pidB)[1]; again != pid {
		t.Errorf("shell pid %s after reconnecting, was %s", again, pid)
	}

	// Another terminal is another shell.
	c2 := mustDial(t, srv, "2")
	c2.send("echo pid-c=$$\r")
	if other := c2.expect(pidC)[1]; other == pid {
		t.Errorf("terminal 2 runs the shell of terminal 1 (%s)", pid)
	}

	// Two connections to one terminal both see its output.
	c1b := mustDial(t, srv, "1")
	c.send("echo both-$((6*7))\r")
	both := outputLine(`both-42`)
	c.expect(both)
	c1b.expect(both)

	// Typing is activity.
	h.mu.Lock()
	h.lastAccess = time.Time{}
	h.mu.Unlock()
	c.send("\r")
	time.Sleep(50 * time.Millisecond)
	h.mu.Lock()
	touched := !h.lastAccess.IsZero()
	h.mu.Unlock()
	if !touched {
		t.Error("input did not count as activity")
	}

	// A shell that ends closes its websockets; the next connection starts
	// a new shell.
	c2.send("exit\r")
	if status := c2.closeStatus(); status != statusShellExited {
		t.Errorf("close status %d after exit, want %d", status, statusShellExited)
	}
	c2 = mustDial(t, srv, "2")
	c2.send("echo pid-c=$$\r")
	c2.expect(pidC)

	// Stopping the host ends the shells and closes the websockets.
	h.close()
	if status := c.closeStatus(); status != websocket.StatusGoingAway && status != statusShellExited {
		t.Errorf("close status %d when the host stops", status)
	}
	c, err := dialTerminal(t, srv, "1", nil)
	if err != nil {
		t.Fatalf("dial a stopping host: %v", err)
	}
	if status := c.closeStatus(); status != websocket.StatusTryAgainLater {
		t.Errorf("close status %d of a terminal opened as the host stops", status)
	}
}

func TestTerminalWithoutAllocation(t *testing.T) {
	h, srv := newTerminalServer(t, testConfig)
	h.allocationWait = 100 * time.Millisecond
	c := mustDial(t, srv, "1")
	c.send("echo $GREETING\r")
	c.expect(outputLine(`hello`)) // the workshop's value
}

// The runtime brings the session's network up once the host serves: a
// shell opened before it is up starts once it is, so that what it runs
// has the network.
func TestTerminalWaitsForTheNetwork(t *testing.T) {
	cfg := testConfig
	cfg.Network = true
	h, srv := newTerminalServer(t, cfg)
	h.allocationWait = 0
	var up atomic.Bool
	h.networkUp = up.Load
	c := mustDial(t, srv, "1")
	c.send("echo hi\r")
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		typ, data, err := c.conn.Read(ctx)
		if err != nil || typ != websocket.MessageText {
			t.Fatalf("message %q (%v) before a status about the network", data, err)
		}
		if strings.Contains(string(data), "network") {
			break
		}
	}
	h.terminals.mu.Lock()
	shells := len(h.terminals.byID)
	h.terminals.mu.Unlock()
	if shells != 0 {
		t.Fatalf("%d shells started before the network is up", shells)
	}
	up.Store(true)
	c.expect(hiLine)
}

func TestTerminalRefusals(t *testing.T) {
	_, srv := newTerminalServer(t, testConfig)
	for name, tc := range map[string]struct {
		id     string
		header http.Header
		status int
	}{
		"no secret":    {"1", http.Header{"X-Portico-Secret": {"wrong"}}, http.StatusForbidden},
		"other origin": {"1", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		"bad id":       {"a.b", nil, http.StatusNotFound},
	} {
		_, err := dialTerminal(t, srv, tc.id, tc.header)
		var de *dialError
		if !errors.As(err, &de) || de.status != tc.status {
			t.Errorf("%s: %v, want status %d", name, err, tc.status)
		}
	}
	// The origin of the host itself is fine.
	host := strings.TrimPrefix(srv.URL, "http://")
	if _, err := dialTerminal(t, srv, "1", http.Header{"Origin": {"http://" + host}}); err != nil {
		t.Errorf("same origin: %v", err)
	}
}

func TestTerminalLimit(t *testing.T) {
	h, srv := newTerminalServer(t, testConfig)
	h.allocationWait = 0
	for i := range maxTerminals {
		c := mustDial(t, srv, string(rune('a'+i)))
		c.send("echo ok\r")
		c.expect(outputLine(`ok`))
	}
	c := mustDial(t, srv, "z")
	if status := c.closeStatus(); status != websocket.StatusTryAgainLater {
		t.Errorf("terminal over the limit: close status %d", status)
	}
}

func TestAppendBounded(t *testing.T) {
	var b []byte
	for i := range 1000 {
		b = appendBounded(b, []byte{byte(i)}, 10)
		if len(b) > 20 {
			t.Fatalf("len %d", len(b))
		}
	}
	if tail := b[len(b)-10:]; tail[9] != byte(999%256) || tail[0] != byte(990%256) {
		t.Fatalf("tail %v", tail)
	}
}
