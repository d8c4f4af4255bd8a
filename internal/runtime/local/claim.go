package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/runtime"
)

// Replicas of the portal on one machine share the sessions directory.
// Work on a session's home (a start, a stop) is claimed with an flock on a
// file of its own, so that two portals never work on one home at once:
// the kernel drops the claim of a portal that dies.
//
// A portal that stalls (SIGSTOP, a long pause of the machine) keeps its
// flock as long as it stalls, so a claim also expires with its holder's
// lease. The claim file records the fencing token of the work that took it
// last (runtime.WithFence: the generation of the reconciler lease), and
// its holder touches the file every claimBeat while it holds it. Work with
// a newer token breaks a claim not touched for claimStale: the holder's
// lease is gone (its token is older) and it is not running. Breaking
// unlinks the file, so the stalled holder's flock is on a file that is no
// longer the claim; the breaker claims a new one. A holder checks that its
// file is still the claim before each step that changes the session
// (lost), and once it is not, it does nothing more to the session and
// fails with runtime.ErrFenced: the session is the new leader's, who
// adopts or clears what the stalled holder left. Work whose token is older
// than the one the file records is refused with runtime.ErrFenced.
//
// What this cannot stop: a holder that stalls again in the instant between
// its check and the step it checked for. The window is a few system calls
// wide, against the seconds a stall must last for its claim to be broken.

// locksDir holds the claim files; its name is not a valid session name,
// so List passes it by.
const locksDir = ".claims"

const (
	// claimBeat is how often a holder touches its claim file.
	claimBeat = time.Second
	// claimStale is how long a claim file goes untouched before work with
	// a newer token may break it: far beyond any pause of a running portal
	// (its heartbeat goroutine is late by that much only when the process
	// does not run at all).
	claimStale = 10 * time.Second
)

func (r *Runtime) lockPath(name string) string { return filepath.Join(r.dir, locksDir, name) }

// claim is this process's hold on a session.
type claim struct {
	f    *os.File
	path string
	stop chan struct{}
	done chan struct{}
}

// claim takes the session for the work of ctx (whose fencing token it
// records), or fails at once: with runtime.ErrFenced when newer work has
// had the session, with runtime.ErrBusy while another portal holds it.
// The claim is registered for lost until it is released.
func (r *Runtime) claim(ctx context.Context, name string) (*claim, error) {
	token := runtime.FenceOf(ctx)
	path := r.lockPath(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				f.Close()
				return nil, fmt.Errorf("claim %s: %w", name, err)
			}
			held, touched, err := readClaim(f)
			switch {
			case err != nil:
				f.Close()
				return nil, fmt.Errorf("claim %s: %w", name, err)
			case token != 0 && token < held:
				f.Close()
				return nil, runtime.ErrFenced
			case token > held && time.Since(touched) >= claimStale:
				r.log.Warn("breaking the claim of a stalled portal on a session", "session", name,
					"holder_token", held, "token", token, "untouched", time.Since(touched).Round(time.Second))
				breakClaim(f, path)
				f.Close()
				continue
			}
			f.Close()
			return nil, runtime.ErrBusy
		}
		// A stop removes the file while it holds it, and a breaker
		// unlinks it: a claim on the old file is no claim, try the new one.
		c := &claim{f: f, path: path}
		if c.lost() {
			c.unlock()
			continue
		}
		held, _, err := readClaim(f)
		if err == nil && token != 0 && token < held {
			err = runtime.ErrFenced
		}
		if err == nil && token > held {
			err = writeClaim(f, token)
		}
		if err == nil {
			// Touched now: a claim that was stale when taken is fresh.
			err = touch(f)
		}
		if err != nil {
			c.unlock()
			if !errors.Is(err, runtime.ErrFenced) {
				err = fmt.Errorf("claim %s: %w", name, err)
			}
			return nil, err
		}
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		go c.beat(r.claimBeat)
		r.mu.Lock()
		r.claims[name] = c
		r.mu.Unlock()
		return c, nil
	}
	return nil, runtime.ErrBusy
}

// release gives the claim of session name back.
func (r *Runtime) release(name string, c *claim) {
	r.mu.Lock()
	if r.claims[name] == c {
		delete(r.claims, name)
	}
	r.mu.Unlock()
	close(c.stop)
	<-c.done
	c.unlock()
}

// claimLost reports whether the claim this process holds on session name
// was broken by newer work.
func (r *Runtime) claimLost(name string) bool {
	r.mu.Lock()
	c := r.claims[name]
	r.mu.Unlock()
	return c != nil && c.lost()
}

// lost reports whether c's file is no longer the session's claim file.
func (c *claim) lost() bool {
	held, err1 := c.f.Stat()
	current, err2 := os.Stat(c.path)
	return err1 != nil || err2 != nil || !os.SameFile(held, current)
}

func (c *claim) unlock() {
	// Unlocked before it is closed: a process forked meanwhile has a copy
	// of the descriptor until it runs its program, which would hold the
	// lock that long.
	syscall.Flock(int(c.f.Fd()), syscall.LOCK_UN)
	c.f.Close()
}

// beat touches the claim file every interval until the claim is released.
func (c *claim) beat(interval time.Duration) {
	defer close(c.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			touch(c.f)
		}
	}
}

// readClaim returns the token a claim file records (0 for none) and when
// its holder last touched it.
func readClaim(f *os.File) (token int64, touched time.Time, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, time.Time{}, err
	}
	// A token is a few digits; anything longer is not the runtime's.
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	if n == 0 || n == len(buf) {
		return 0, fi.ModTime(), nil
	}
	token, err = strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
	if err != nil {
		return 0, fi.ModTime(), nil // a claim file from before tokens
	}
	return token, fi.ModTime(), nil
}

func writeClaim(f *os.File, token int64) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.FormatInt(token, 10)+"\n"), 0)
	return err
}

func touch(f *os.File) error {
	now := unix.NsecToTimeval(time.Now().UnixNano())
	return unix.Futimes(int(f.Fd()), []unix.Timeval{now, now})
}

// breakClaim unlinks the claim file f if it is still the one at path.
func breakClaim(f *os.File, path string) {
	held, err1 := f.Stat()
	current, err2 := os.Stat(path)
	if err1 == nil && err2 == nil && os.SameFile(held, current) {
		os.Remove(path)
	}
}

// unclaim removes the claim file of a session that is gone, while its
// claim is held.
func (r *Runtime) unclaim(name string) {
	os.Remove(r.lockPath(name))
}
