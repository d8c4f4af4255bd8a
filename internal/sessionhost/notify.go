package sessionhost

import "os"

// Notes are what a starting host tells the runtime that started it, one
// byte each, on a pipe the runtime hands it (Options.Notify, --notify-fd).
// A note may be lost: the runtime reads them only while the host starts,
// and a portal restarted meanwhile does not read them at all. The host
// never waits for an answer on the pipe, only for what it asked for.
const (
	// NoteNetwork: the host is about to need the session's network, which
	// the runtime otherwise brings up once the host serves, so that the
	// network's start does not slow the host's.
	NoteNetwork byte = 'n'
	// NoteServing: the host published its address, and serves.
	NoteServing byte = 'r'
)

// notifier writes the notes of a host, each once; without a pipe, none.
type notifier struct {
	f    *os.File
	sent map[byte]bool
}

// note sends b unless it was sent. A runtime that stopped reading is no
// error.
func (n *notifier) note(b byte) {
	if n.f == nil || n.sent[b] {
		return
	}
	if n.sent == nil {
		n.sent = make(map[byte]bool)
	}
	n.sent[b] = true
	n.f.Write([]byte{b})
}
