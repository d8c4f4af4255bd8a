// Package osthread runs code on an operating-system thread of its own that
// ends with it. Some attributes belong to a thread, not to the process:
// its cgroups in cgroup v1, its capability bounding set, its network
// namespace; a child process inherits those of the thread that forks it.
// Changing them on a thread that the Go scheduler later hands to other
// goroutines would change those goroutines too.
package osthread

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Disposable runs f on a thread that ends when f returns: a goroutine that
// locks its thread and returns without unlocking it ends the thread. The
// main thread cannot end (and the v1 memory cgroup of a process is its
// main thread's): while a goroutine holds it, f runs on another thread.
func Disposable(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			errc <- f() // returns without unlocking: the thread ends
			return
		}
		defer runtime.UnlockOSThread()
		inner := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			inner <- f()
		}()
		errc <- <-inner
	}()
	return <-errc
}
