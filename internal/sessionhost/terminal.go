package sessionhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
)

// A terminal is a login shell on a PTY, named by an id ("1", "2", ...) and
// reached over a websocket at /terminal/<id>. It outlives its websockets:
// a browser that loses its connection reconnects to the same shell and
// gets the recent output replayed, from a bounded scrollback buffer.
//
// The protocol on the websocket: binary messages are terminal data both
// ways (keystrokes in, output out). Text messages are JSON control
// messages: from the browser {"type":"resize","cols":80,"rows":24}; from
// the host {"type":"status","text":"..."}. The host closes the websocket
// with statusShellExited when the shell ends; the next connection starts a
// new shell.

const (
	// maxTerminals bounds the shells of a session.
	maxTerminals = 8
	// scrollbackBytes is how much recent output a reconnecting browser gets.
	scrollbackBytes = 256 << 10
	// subscriberBuffer is how many output chunks a slow connection may lag
	// behind before it is dropped (it reconnects and gets the scrollback).
	subscriberBuffer = 256
	// statusShellExited closes the websocket of a terminal whose shell ended.
	statusShellExited websocket.StatusCode = 4000
	pingInterval                           = 30 * time.Second
	writeTimeout                           = 10 * time.Second
	maxControlMessage                      = 64 << 10
)

// validTerminalID accepts short ids of letters, digits, - and _.
func validTerminalID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// terminals are the shells of one session.
type terminals struct {
	h      *host
	mu     sync.Mutex
	byID   map[string]*terminal
	closed bool
}

func newTerminals(h *host) *terminals {
	return &terminals{h: h, byID: make(map[string]*terminal)}
}

var errTooManyTerminals = fmt.Errorf("at most %d terminals per session", maxTerminals)

// get returns the live terminal id, starting its shell if needed.
func (ts *terminals) get(id string) (*terminal, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return nil, errors.New("the session is stopping")
	}
	if t := ts.byID[id]; t != nil {
		select {
		case <-t.done:
		default:
			return t, nil
		}
	}
	live := 0
	for _, t := range ts.byID {
		select {
		case <-t.done:
		default:
			live++
		}
	}
	if live >= maxTerminals {
		return nil, errTooManyTerminals
	}
	t, err := ts.start(id)
	if err != nil {
		return nil, err
	}
	ts.byID[id] = t
	return t, nil
}

// start starts the login shell of a terminal in the home, with the
// session's environment as it is now.
func (ts *terminals) start(id string) (*terminal, error) {
	h := ts.h
	env, _ := h.values()
	shell, args := loginShell()
	cmd := exec.Command(shell, args...)
	cmd.Dir = h.home
	cmd.Env = environ(env, append([]string{"TERM=xterm-256color", "COLORTERM=truecolor"}, inheritedEnv()...)...)
	f, err := startInPTY(cmd, h.cfg.WorkshopUser)
	if err != nil {
		return nil, fmt.Errorf("start shell: %w", err)
	}
	t := &terminal{
		id:     id,
		cmd:    cmd,
		pty:    f,
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		subs:   make(map[*subscriber]struct{}),
	}
	h.log.Info("terminal started", "terminal", id, "pid", cmd.Process.Pid)
	go t.readLoop()
	go func() {
		err := cmd.Wait()
		close(t.exited)
		h.log.Info("terminal shell exited", "terminal", id, "status", err)
		// Let the reader drain what the shell wrote last, then stop it even
		// if a background job still holds the PTY.
		select {
		case <-t.done:
		case <-time.After(200 * time.Millisecond):
			t.pty.Close()
		}
	}()
	return t, nil
}

// closeAll ends every shell: the session is stopping.
func (ts *terminals) closeAll() {
	ts.mu.Lock()
	ts.closed = true
	list := make([]*terminal, 0, len(ts.byID))
	for _, t := range ts.byID {
		list = append(list, t)
	}
	clear(ts.byID)
	ts.mu.Unlock()
	for _, t := range list {
		t.kill()
	}
}

// loginShell is bash -l when there is a bash, else sh -l.
func loginShell() (string, []string) {
	if p, err := exec.LookPath("bash"); err == nil {
		return p, []string{"-l"}
	}
	return "/bin/sh", []string{"-l"}
}

// terminal is one shell and the connections watching it.
type terminal struct {
	id     string
	cmd    *exec.Cmd
	pty    *os.File
	exited chan struct{} // closed when the shell exited
	done   chan struct{} // closed when the PTY gives no more output

	mu         sync.Mutex
	scrollback []byte
	subs       map[*subscriber]struct{}
}

// subscriber is one connection's view of the output.
type subscriber struct {
	ch      chan []byte
	dropped chan struct{} // closed when the connection lagged too far
}

func (t *terminal) readLoop() {
	defer close(t.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := t.pty.Read(buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			t.mu.Lock()
			t.scrollback = appendBounded(t.scrollback, chunk, scrollbackBytes)
			for s := range t.subs {
				select {
				case s.ch <- chunk:
				default:
					close(s.dropped)
					delete(t.subs, s)
				}
			}
			t.mu.Unlock()
		}
		if err != nil {
			return // EIO once the shell and its jobs closed the PTY
		}
	}
}

// appendBounded appends chunk to b, keeping the last limit bytes, and
// reallocates only when b grows past twice the limit.
func appendBounded(b, chunk []byte, limit int) []byte {
	b = append(b, chunk...)
	if len(b) > 2*limit {
		b = append([]byte(nil), b[len(b)-limit:]...)
	}
	return b
}

// attach subscribes to the output and returns what the terminal showed
// recently, atomically: nothing is lost or repeated between the two.
func (t *terminal) attach() ([]byte, *subscriber) {
	s := &subscriber{ch: make(chan []byte, subscriberBuffer), dropped: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	replay := t.scrollback
	if len(replay) > scrollbackBytes {
		replay = replay[len(replay)-scrollbackBytes:]
	}
	t.subs[s] = struct{}{}
	return append([]byte(nil), replay...), s
}

func (t *terminal) detach(s *subscriber) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

func (t *terminal) write(p []byte) error {
	_, err := t.pty.Write(p)
	return err
}

func (t *terminal) resize(cols, rows int) error {
	return pty.Setsize(t.pty, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
}

// kill ends the shell and whatever runs in its session.
func (t *terminal) kill() {
	defer t.pty.Close()
	select {
	case <-t.exited:
		return // reaped: its pid may be another process's now
	default:
	}
	// The shell leads its own session and process group (pty.Start).
	pid := t.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGHUP)
	select {
	case <-t.exited:
	case <-time.After(time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// controlMessage is a text message on a terminal websocket.
type controlMessage struct {
	Type string `json:"type"`
	Cols int    `json:"cols,omitempty"`
	Rows int    `json:"rows,omitempty"`
	Data string `json:"data,omitempty"`
	Text string `json:"text,omitempty"`
}

// terminal is GET /terminal/<id>: the websocket of a terminal.
func (h *host) terminal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validTerminalID(id) {
		writeError(w, http.StatusNotFound, "no such terminal")
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, http.StatusBadRequest, "a terminal is reached with a websocket")
		return
	}
	if !sameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin websocket refused")
		return
	}
	conn, err := websocket.Accept(w, r, nil) // also checks the origin
	if err != nil {
		return // Accept answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxControlMessage)
	// The library drops a connection when the context of a read or write
	// ends: reads and writes have a context of their own, and a stopping
	// host (h.closing) closes its websockets with a close frame instead.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.touch()

	// The first shell of the session must have its owner's environment.
	select {
	case <-h.allocated:
	default:
		sendStatus(ctx, conn, "Preparing your session…")
		h.awaitAllocation(ctx)
	}
	// The runtime brings the network up as the host starts to serve: a
	// shell opened at once waits for it, so that what runs there has it.
	if h.cfg.Network && !h.networkUp() {
		sendStatus(ctx, conn, "Connecting your session to the network…")
		wait, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-h.closing:
				stop()
			case <-wait.Done():
			}
		}()
		err := h.awaitNetwork(wait)
		stop()
		if err != nil {
			h.log.Warn("terminal opens without the session's network", "terminal", id, "err", err)
		}
	}
	t, err := h.terminals.get(id)
	if err != nil {
		h.log.Warn("cannot open terminal", "terminal", id, "err", err)
		conn.Close(websocket.StatusTryAgainLater, truncate(err.Error(), 120))
		return
	}
	replay, sub := t.attach()
	defer t.detach(sub)
	if len(replay) > 0 {
		if err := writeWithTimeout(ctx, conn, websocket.MessageBinary, replay); err != nil {
			return
		}
	}

	readDone := make(chan error, 1)
	go func() { readDone <- h.readTerminal(ctx, conn, t) }()
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	for {
		select {
		case chunk := <-sub.ch:
			if err := writeWithTimeout(ctx, conn, websocket.MessageBinary, chunk); err != nil {
				return
			}
		case <-sub.dropped:
			conn.Close(websocket.StatusTryAgainLater, "connection too slow")
			return
		case <-t.done:
			for drained := false; !drained; {
				select {
				case chunk := <-sub.ch:
					if writeWithTimeout(ctx, conn, websocket.MessageBinary, chunk) != nil {
						return
					}
				default:
					drained = true
				}
			}
			conn.Close(statusShellExited, "the shell has ended")
			return
		case <-readDone:
			return
		case <-h.closing:
			conn.Close(websocket.StatusGoingAway, "the session is stopping")
			return
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, writeTimeout)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return
			}
		}
	}
}

// readTerminal forwards what the browser sends to the terminal.
func (h *host) readTerminal(ctx context.Context, conn *websocket.Conn, t *terminal) error {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageBinary {
			h.touch()
			if err := t.write(data); err != nil {
				return err
			}
			continue
		}
		var m controlMessage
		if err := json.Unmarshal(data, &m); err != nil {
			continue // not for us
		}
		switch m.Type {
		case "resize":
			if m.Cols > 0 && m.Rows > 0 && m.Cols <= 1000 && m.Rows <= 1000 {
				t.resize(m.Cols, m.Rows)
			}
		case "input":
			h.touch()
			if err := t.write([]byte(m.Data)); err != nil {
				return err
			}
		}
	}
}

func sendStatus(ctx context.Context, conn *websocket.Conn, text string) {
	b, _ := json.Marshal(controlMessage{Type: "status", Text: text})
	writeWithTimeout(ctx, conn, websocket.MessageText, b)
}

func writeWithTimeout(ctx context.Context, conn *websocket.Conn, typ websocket.MessageType, p []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return conn.Write(ctx, typ, p)
}

// sameOrigin accepts a websocket upgrade without an Origin (not a
// browser) or from a page of the host the request came through.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// startInPTY starts cmd as u on a new PTY, of which it is the session
// leader, and returns the PTY's controller. The terminal belongs to u, so
// that the shell's programs can open /dev/tty (pagers, password prompts).
func startInPTY(cmd *exec.Cmd, u *WorkshopUser) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer tty.Close() // the shell has its copies
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		ptmx.Close()
		return nil, err
	}
	if u != nil {
		if err := tty.Chown(u.UID, u.GID); err != nil {
			ptmx.Close()
			return nil, err
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
	if err := u.start(cmd); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}
