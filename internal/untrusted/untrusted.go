// Package untrusted reads files that someone else controls: those of a
// session home, which the session's programs may replace with anything.
// A name the portal expects to be a small file may be a symlink to
// /dev/zero (endless) or to somebody else's file, a FIFO that nobody
// writes (an open that blocks forever), a sparse file of terabytes, or a
// file that grows while it is read.
//
// So the files are opened without following any symlink, without waiting
// on anything, and refused unless they are regular files; ReadFile reads
// at most a limit and fails beyond it rather than truncate.
package untrusted

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var (
	// ErrSymlink is wrapped by the error of an open whose path holds a
	// symbolic link, in any of its components.
	ErrSymlink = errors.New("symbolic link on the path, not followed")
	// ErrNotRegular is wrapped by the error of an open that found
	// something else than a regular file: a FIFO, a socket, a device, a
	// directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is wrapped by the error of a ReadFile of a file larger
	// than its limit.
	ErrTooLarge = errors.New("file too large")
)

// flags open the last component of a path:
//   - O_NOFOLLOW: a symlink there fails with ELOOP (those before it are
//     refused by the way the path is resolved, see open);
//   - O_NONBLOCK: the open of a FIFO returns at once instead of waiting
//     for a writer, and so does the open of a file under a lease, instead
//     of waiting for the lease holder (up to lease-break-time, 45 s);
//   - O_NOCTTY: a terminal never becomes the portal's controlling one;
//   - O_CLOEXEC: the sessions the portal starts do not inherit the file.
//
// Whatever was opened is checked with fstat before anything is read. A
// device is refused only after its open, which runs its driver; sessions
// cannot make device nodes (mknod takes CAP_MKNOD, which none holds), nor
// reach one through a symlink.
const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// Open opens the regular file at path for reading, refusing symlinks in
// every component of path and anything but a regular file, without
// blocking. The returned file is in blocking mode, as a regular file
// never blocks; the caller bounds what it reads, and closes it.
//
// Callers pass paths without symlinks: the local runtime resolves its
// sessions directory once, when it starts, so that a symlink met below it
// can only be the work of a session. Refusing the last one only
// (O_NOFOLLOW) would not do: a session that replaces a directory on the
// path (its .portico) with a symlink would redirect the portal to any file
// of that name elsewhere, such as the host.log of another session, shown
// in an error message.
func Open(path string) (*os.File, error) {
	fd, err := open(path)
	if errors.Is(err, unix.ENXIO) {
		// What the open of a socket says; Lstat only to say it plainly.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().Type() == fs.ModeSocket {
			err = fmt.Errorf("%w: a socket", ErrNotRegular)
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, kind(st.Mode))}
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// ReadFile returns the content of the regular file at path, opened as
// Open does, if it holds at most limit bytes; it fails with ErrTooLarge
// when the file is larger, or grows larger while read, after reading no
// more than limit+1 bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	if limit < 0 {
		return nil, fmt.Errorf("read %s: negative limit %d", path, limit)
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	tooLarge := &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
	if fi.Size() > limit {
		return nil, tooLarge // at once, whatever the size
	}
	// The size is only a hint: the file may grow meanwhile.
	b, err := io.ReadAll(io.LimitReader(f, min(limit, math.MaxInt64-1)+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge
	}
	return b, nil
}

// noOpenat2 is set once openat2 turned out to be missing (Linux before
// 5.6).
var noOpenat2 atomic.Bool

// open opens path with flags, refusing a symlink in any component. The
// kernel does that in one call where it has openat2 with
// RESOLVE_NO_SYMLINKS (Linux 5.6); elsewhere walk opens one component at a
// time, which is as safe, only slower.
func open(path string) (int, error) {
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_NO_SYMLINKS}
		fd, err := retry(func() (int, error) { return unix.Openat2(unix.AT_FDCWD, path, &how) })
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			noOpenat2.Store(true)
		case errors.Is(err, unix.EPERM):
			// A seccomp filter of an older container runtime refuses
			// system calls it does not know with EPERM: walk tells.
		case errors.Is(err, unix.ELOOP):
			return -1, ErrSymlink // what RESOLVE_NO_SYMLINKS says
		default:
			return -1, err
		}
	}
	return walk(path)
}

// walk opens path one component at a time, each relative to the
// directory opened before it, so that a directory replaced by a symlink
// meanwhile is never followed: the directories with O_PATH|O_NOFOLLOW,
// the last component with flags.
func walk(path string) (int, error) {
	if path == "" {
		return -1, unix.ENOENT
	}
	path = filepath.Clean(path)
	dir := unix.AT_FDCWD
	if filepath.IsAbs(path) {
		fd, err := retry(func() (int, error) { return unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) })
		if err != nil {
			return -1, err
		}
		dir = fd
	}
	closeDir := func() {
		if dir != unix.AT_FDCWD {
			unix.Close(dir)
		}
	}
	defer closeDir()
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	last := parts[len(parts)-1]
	if last == "" {
		last = "." // path is "/"
	}
	for _, name := range parts[:len(parts)-1] {
		fd, err := retry(func() (int, error) {
			return unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err != nil {
			return -1, symlinkError(dir, name, err)
		}
		closeDir()
		dir = fd
	}
	fd, err := retry(func() (int, error) { return unix.Openat(dir, last, flags, 0) })
	if err != nil {
		return -1, symlinkError(dir, last, err)
	}
	return fd, nil
}

// symlinkError returns ErrSymlink if name in dir is a symlink, which made
// the open that failed with err fail; else err.
func symlinkError(dir int, name string, err error) error {
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return ErrSymlink
	}
	return err
}

// retry calls open until it is not interrupted by a signal.
func retry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// kind names the type of file of mode, for errors.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFLNK:
		return "a symbolic link"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}
