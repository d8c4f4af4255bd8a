package untrusted

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inBothWays runs test with openat2, where the kernel has it, and with the
// walk that replaces it on older kernels.
func inBothWays(t *testing.T, test func(t *testing.T)) {
	t.Helper()
	saved := noOpenat2.Load()
	t.Cleanup(func() { noOpenat2.Store(saved) })
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			if !walk && !haveOpenat2() {
				t.Skip("no openat2 on this kernel")
			}
			noOpenat2.Store(walk)
			test(t)
		})
	}
}

func haveOpenat2() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
	}
	return err == nil
}

// promptly runs f, failing the test if it has not returned within a few
// seconds: a read that blocks on a FIFO would never return.
func promptly(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocks", what)
		return nil
	}
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

func TestReadFileRegular(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		path := write(t, filepath.Join(dir, "pid"), "1234 5678")
		for _, p := range []string{path, dir + "/./pid", dir + "//pid"} {
			b, err := ReadFile(p, 64)
			if err != nil || string(b) != "1234 5678" {
				t.Errorf("ReadFile(%s) = %q, %v", p, b, err)
			}
		}
		empty := write(t, filepath.Join(dir, "empty"), "")
		if b, err := ReadFile(empty, 0); err != nil || len(b) != 0 {
			t.Errorf("ReadFile(empty, 0) = %q, %v", b, err)
		}
		// Relative to the working directory.
		t.Chdir(dir)
		if b, err := ReadFile("pid", 64); err != nil || string(b) != "1234 5678" {
			t.Errorf("relative ReadFile = %q, %v", b, err)
		}
	})
}

func TestReadFileLimit(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		path := write(t, filepath.Join(t.TempDir(), "f"), "0123456789")
		if b, err := ReadFile(path, 10); err != nil || string(b) != "0123456789" {
			t.Errorf("at the limit: %q, %v", b, err)
		}
		b, err := ReadFile(path, 9)
		if !errors.Is(err, ErrTooLarge) || b != nil {
			t.Errorf("over the limit: %q, %v; want ErrTooLarge", b, err)
		}
		if _, err := ReadFile(path, -1); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

// A file that reports a size of 0 but holds more, as /proc files do (or
// one that grows while read), fails too, not truncated.
func TestReadFileLargerThanItsSize(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		path := "/proc/" + strconv.Itoa(os.Getpid()) + "/status"
		if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
			t.Skipf("%s: %v, not a file of size 0", path, err)
		}
		if _, err := ReadFile(path, 16); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFile = %v, want ErrTooLarge", err)
		}
	})
}

func TestSymlinksRefused(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		secret := write(t, filepath.Join(dir, "secret"), "not yours")
		home := filepath.Join(dir, "home")
		state := filepath.Join(home, ".portico")
		if err := os.MkdirAll(state, 0o700); err != nil {
			t.Fatal(err)
		}
		// Another session's state directory, holding a file of the expected name.
		other := filepath.Join(dir, "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(other, "host.log"), "another session's log")
		for _, l := range []struct{ link, target string }{
			{filepath.Join(state, "zero"), "/dev/zero"},
			{filepath.Join(state, "secret"), secret},
			{filepath.Join(state, "relative"), "../../secret"},
			{filepath.Join(state, "dangling"), filepath.Join(dir, "missing")},
			{filepath.Join(home, "linked"), other},    // a symlinked directory
			{filepath.Join(dir, "linked-home"), home}, // higher up
		} {
			if err := os.Symlink(l.target, l.link); err != nil {
				t.Fatal(err)
			}
		}
		before := openFDs(t)
		for _, path := range []string{
			filepath.Join(state, "zero"),
			filepath.Join(state, "secret"),
			filepath.Join(state, "relative"),
			filepath.Join(state, "dangling"),
			filepath.Join(home, "linked", "host.log"),
			filepath.Join(dir, "linked-home", ".portico", "pid"),
		} {
			err := promptly(t, path, func() error {
				_, err := ReadFile(path, 1<<20)
				return err
			})
			if !errors.Is(err, ErrSymlink) {
				t.Errorf("ReadFile(%s) = %v, want ErrSymlink", path, err)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != path {
				t.Errorf("error %v does not name %s", err, path)
			}
			if f, err := Open(path); !errors.Is(err, ErrSymlink) {
				f.Close()
				t.Errorf("Open(%s) = %v, want ErrSymlink", path, err)
			}
		}
		if after := openFDs(t); after != before {
			t.Errorf("%d open files before, %d after: refusals leak", before, after)
		}
	})
}

func TestOnlyRegularFiles(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(dir, "sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		before := openFDs(t)
		for path, want := range map[string]string{
			fifo:        "a FIFO",
			sock:        "a socket",
			dir:         "a directory",
			"/":         "a directory",
			"/dev/null": "a character device",
		} {
			err := promptly(t, path, func() error {
				_, err := ReadFile(path, 1<<20)
				return err
			})
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("ReadFile(%s) = %v, want ErrNotRegular", path, err)
				continue
			}
			if !bytes.Contains([]byte(err.Error()), []byte(want)) {
				t.Errorf("ReadFile(%s) = %v, does not say %q", path, err, want)
			}
		}
		if after := openFDs(t); after != before {
			t.Errorf("%d open files before, %d after: refusals leak", before, after)
		}
	})
}

func TestMissing(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "file"), "x")
		for _, path := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "missing", "pid"), ""} {
			if _, err := ReadFile(path, 10); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ReadFile(%q) = %v, want ErrNotExist", path, err)
			}
		}
		if _, err := ReadFile(filepath.Join(dir, "file", "pid"), 10); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("a file as a directory: %v, want ENOTDIR", err)
		}
	})
}

// A sparse file of 10 GB, which takes no room on disk, is refused at once,
// without reading it.
func TestHugeSparseFile(t *testing.T) {
	inBothWays(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "huge")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(10 << 30); err != nil {
			t.Skipf("no sparse file of 10 GB here: %v", err)
		}
		f.Close()
		var before, after goruntime.MemStats
		goruntime.ReadMemStats(&before)
		start := time.Now()
		err = promptly(t, path, func() error {
			_, err := ReadFile(path, 64<<10)
			return err
		})
		elapsed := time.Since(start)
		goruntime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("ReadFile = %v, want ErrTooLarge", err)
		}
		if elapsed > time.Second {
			t.Errorf("took %s", elapsed)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("allocated %d bytes to refuse it", grew)
		}

		// Open, for a reader of its tail, gives it; reading is the
		// caller's to bound.
		f, err = Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Seek(-4, io.SeekEnd); err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, make([]byte, 4)) {
			t.Errorf("tail = %q, %v", b, err)
		}
	})
}

// Open gives a file in blocking mode: a regular file never blocks, and the
// runtime's poller need not know it.
func TestOpenGivesBlockingFile(t *testing.T) {
	path := write(t, filepath.Join(t.TempDir(), "f"), "x")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("flags %#o, %v: still non-blocking", fl, err)
	}
	if f.Name() != path {
		t.Errorf("Name() = %q", f.Name())
	}
}

func FuzzReadFile(f *testing.F) {
	f.Add([]byte("1234 5678"), int64(64))
	f.Add([]byte(""), int64(0))
	f.Add([]byte("127.0.0.1:8080\n"), int64(3))
	path := filepath.Join(f.TempDir(), "f")
	f.Fuzz(func(t *testing.T, content []byte, limit int64) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := ReadFile(path, limit)
		switch {
		case limit < 0:
			if err == nil {
				t.Fatal("negative limit accepted")
			}
		case int64(len(content)) > limit:
			if !errors.Is(err, ErrTooLarge) || b != nil {
				t.Fatalf("%d bytes, limit %d: %q, %v", len(content), limit, b, err)
			}
		default:
			if err != nil || !bytes.Equal(b, content) {
				t.Fatalf("%d bytes, limit %d: %q, %v", len(content), limit, b, err)
			}
		}
	})
}
