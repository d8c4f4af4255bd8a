package local

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/portico-dev/portico/internal/runtime"
)

// Replicas of the portal on one machine share the sessions directory.
// Work on a session's home (a start, a stop) is claimed with an flock on a
// file of its own, so that two portals never work on one home at once:
// the kernel drops the claim of a portal that dies, and a portal that
// stalls keeps it until it resumes.

// locksDir holds the claim files; its name is not a valid session name,
// so List passes it by.
const locksDir = ".claims"

func (r *Runtime) lockPath(name string) string { return filepath.Join(r.dir, locksDir, name) }

// claim takes the session for this portal, or fails with runtime.ErrBusy
// at once when another portal holds it. release gives it back.
func (r *Runtime) claim(name string) (release func(), err error) {
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
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, runtime.ErrBusy
			}
			return nil, fmt.Errorf("claim %s: %w", name, err)
		}
		// A stop removes the file while it holds it: a claim on the old
		// file is no claim, try the new one.
		held, err1 := f.Stat()
		current, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, current) {
			return func() {
				// Unlocked before it is closed: a process forked meanwhile
				// has a copy of the descriptor until it runs its program,
				// which would hold the lock that long.
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close()
	}
	return nil, runtime.ErrBusy
}

// unclaim removes the claim file of a session that is gone, while its
// claim is held.
func (r *Runtime) unclaim(name string) {
	os.Remove(r.lockPath(name))
}
