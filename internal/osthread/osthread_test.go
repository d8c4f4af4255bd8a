package osthread

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// f never runs on the main thread, and its thread is not reused: a
// thread it locks is gone when it returns.
func TestDisposable(t *testing.T) {
	runtime.LockOSThread() // the test's goroutine may be on the main thread: keep it there
	defer runtime.UnlockOSThread()
	seen := map[int]bool{}
	for range 20 {
		var tid int
		err := Disposable(func() error {
			tid = unix.Gettid()
			if tid == unix.Getpid() {
				return errors.New("ran on the main thread")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen[tid] {
			t.Fatalf("thread %d ran f twice: it was not disposed of", tid)
		}
		seen[tid] = true
	}
	want := errors.New("f's error")
	if err := Disposable(func() error { return want }); err != want {
		t.Errorf("Disposable returned %v, want f's error", err)
	}
}
