package local

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/runtime"
)

// Session storage. Each session's home is a filesystem of its own, of the
// size of the session's storage limit (Limits.Storage, else
// runtime.DefaultStorage): an ext4 image file, <Dir>/.storage/<session>.img,
// attached to a loop device and mounted on the home, nosuid and nodev, as
// soon as the home is created and before anything is written in it. A
// write beyond the limit fails with ENOSPC inside the session, and nothing
// the session writes reaches the disk the image lives on, which is the
// disk of the portal's database.
//
// The image is allocated in full when it is made (fallocate), not sparse:
// its space is then taken from the disk up front, so the sessions together
// can never take more than was free when they started. A sparse image
// would start faster but grow as its session writes, and sessions that all
// grow at once fill the disk: when that happens their own writes fail
// with EIO, not ENOSPC, and the database's writes fail too. Whether the
// disk can hold every sparse image is a sum to keep across portal replicas
// and against every other writer of the disk; a full allocation lets the
// kernel keep it. After allocating, the runtime checks that the disk still
// has storageHeadroom free for the database, else the start fails.
//
// Making a filesystem is mkfs.ext4's work, which costs an exec and 40 to
// 80 ms on a loaded machine, as much as the rest of a start. It runs once
// per size: the result is a template, <Dir>/.storage/.ext4-v1-<bytes>.img,
// sparse, whose metadata (0.4 MB for 64Mi, 0.7 MB for 1Gi, 4 MB for 10Gi)
// is copied into each new image of that size, in about a millisecond; the
// rest of a fresh image reads as zeros, as the template's holes do. The
// copies share the template's filesystem UUID, which nothing here relies
// on. Per start remain fallocate, the copy, a loop device and the mount:
// a few milliseconds (BenchmarkStorageStartStop).
// mkfs.ext4 runs with nodiscard (by default it punches holes in the whole
// file, which costs time on a template, and would undo the allocation of
// an image); with no journal, as a session's filesystem does not outlive
// a crash of the machine (its processes die; the next portal removes it);
// and lazy inode tables, which need no zeroing since they read as zeros
// (hence noinit_itable at mount: no kernel thread writes them).
//
// Mounts are the kernel's: they outlive a crash of the portal with the
// sessions, and a restarted portal finds them in place. Removing a session
// (remove, abandon) unmounts its home and deletes its image; the loop
// device detaches by itself when the last mount of the filesystem goes
// (autoclear), which may be a moment later if a sandbox's mount namespace
// is still being torn down.
//
// It needs CAP_SYS_ADMIN (loop devices, mount), /dev/loop-control,
// mkfs.ext4 and a data directory on a filesystem that can fallocate. New
// checks all of them once, by mounting a template read-only; without them
// it logs why, once, and sessions start with their home a plain directory
// on the data directory's disk. In the sandbox a session cannot unmount
// its home (it has no capability); an unsandboxed session runs as the
// portal's user, root here, and is held by nothing.
//
// The portal creates the home and then mounts on it; the root of the new
// filesystem gets the mode and owner the home had, and no lost+found.

const (
	// storageDir holds the images; its name is not a valid session name,
	// so List passes it by.
	storageDir = ".storage"
	// templateVersion changes with the options of mkfs.ext4, so that a
	// portal never reuses a template made another way.
	templateVersion = "ext4-v1"
	// minStorage is the smallest filesystem a session gets: a smaller
	// one hardly holds the host's own files.
	minStorage = 16 << 20
	// storageHeadroom is what a start leaves free on the data directory's
	// disk for the database and logs, or a tenth of the disk when that is
	// less.
	storageHeadroom = 1 << 30
	// maxUnmounts bounds the mounts stacked on one home that release
	// removes.
	maxUnmounts = 8
	// blockSize is the block size of the filesystems, whatever their
	// size (mkfs.ext4 picks 1024 below 512 MiB).
	blockSize = 4096
)

// mkfsArgs format a template; the image path follows.
var mkfsArgs = []string{"-q", "-F", "-b", strconv.Itoa(blockSize), "-m", "0", "-O", "^has_journal,^resize_inode",
	"-E", "nodiscard,lazy_itable_init=1"}

// loopControl is the loop control device; tests point it elsewhere.
var loopControl = "/dev/loop-control"

// storage makes and removes the filesystems of session homes.
type storage struct {
	sessions string // the runtime's Dir, parent of the homes
	dir      string // <Dir>/.storage
	mkfs     string // path of mkfs.ext4
	// off says why limits are not enforced; "" when they are.
	off string
	// mu serialises the making of templates in this process.
	mu sync.Mutex
	// taking is held while a start checks the disk and takes its share,
	// so that starts at once cannot together take the room they each saw.
	taking sync.Mutex
}

// newStorage checks that sessions under dir can get filesystems of their
// own, logging once why not when they cannot, and removes the images of
// sessions that are gone.
func newStorage(dir string, log *slog.Logger) *storage {
	s := &storage{sessions: dir, dir: filepath.Join(dir, storageDir)}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		s.off = err.Error()
	} else {
		s.sweep(log)
		s.off = s.probe()
	}
	if s.off != "" {
		log.Warn("session storage limits are not enforced: a session may fill the disk of the data directory", "reason", s.off)
	} else {
		log.Info("session storage limits by loop-mounted ext4 images", "images", s.dir)
	}
	return s
}

// probe returns why sessions cannot get filesystems here, or "": it
// allocates a file, makes the template of the default size and mounts it,
// read-only.
func (s *storage) probe() string {
	mkfs, err := lookSbin("mkfs.ext4")
	if err != nil {
		return "mkfs.ext4 not found (apt-get install e2fsprogs)"
	}
	s.mkfs = mkfs
	haveDevice(loopControl, "loop")
	if err := unix.Access(loopControl, unix.R_OK|unix.W_OK); err != nil {
		return fmt.Sprintf("no loop devices: %s: %v (needs root and the loop module)", loopControl, err)
	}
	if err := canAllocate(s.dir); err != nil {
		return fmt.Sprintf("the disk of %s cannot allocate files in advance: %v", s.dir, err)
	}
	tmpl, err := s.template(storageSize(0))
	if err != nil {
		return err.Error()
	}
	f, err := os.Open(tmpl)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	mnt, err := os.MkdirTemp(s.dir, ".probe-")
	if err != nil {
		return err.Error()
	}
	defer os.Remove(mnt)
	dev, loop, err := attachLoop(f, tmpl, true)
	if err != nil {
		return err.Error()
	}
	defer loop.Close()
	if err := unix.Mount(dev, mnt, "ext4", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Sprintf("cannot mount a loop device (needs CAP_SYS_ADMIN): mount %s: %v", dev, err)
	}
	if err := unix.Unmount(mnt, unix.UMOUNT_NOFOLLOW); err != nil {
		unix.Unmount(mnt, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	}
	return ""
}

// sweep removes what sessions that are gone left in the storage
// directory: images whose home is gone (a home is made before its image
// and removed after it), and templates half made by a portal that died.
func (s *storage) sweep(log *slog.Logger) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if session, ok := strings.CutSuffix(name, ".img"); ok && validName(session) {
			if _, err := os.Lstat(filepath.Join(s.sessions, session)); errors.Is(err, fs.ErrNotExist) {
				if os.Remove(filepath.Join(s.dir, name)) == nil {
					log.Info("removed the storage of a session that is gone", "session", session)
				}
			}
			continue
		}
		// Temporary templates (see template), probe files and mount points
		// (see probe) of more than an hour: a portal that is still making
		// one is done within seconds.
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Hour {
			continue
		}
		if p := filepath.Join(s.dir, name); strings.Contains(name, ".tmp-") {
			os.Remove(p)
		} else if strings.HasPrefix(name, ".probe-") {
			if mountPoint(p) {
				unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			}
			os.Remove(p)
		}
	}
}

// enforced reports whether sessions get filesystems of their own.
func (s *storage) enforced() bool { return s.off == "" }

// image is the image file of the session at home.
func (s *storage) image(home string) string {
	return filepath.Join(s.dir, filepath.Base(home)+".img")
}

// storageSize is the size of the filesystem of a session whose limit is
// limit: the default for none, never less than minStorage, in whole
// blocks.
func storageSize(limit int64) int64 {
	if limit <= 0 {
		limit = runtime.DefaultStorage
	}
	limit = max(limit, minStorage)
	if limit > math.MaxInt64-blockSize {
		return limit // beyond any disk: fallocate fails
	}
	return (limit + blockSize - 1) / blockSize * blockSize
}

// mount gives the home, just created and empty, a filesystem of its own
// of the session's limit. It does nothing when limits are not enforced.
// On failure it leaves no image and no mount.
func (s *storage) mount(home string, limit int64) (err error) {
	if !s.enforced() {
		return nil
	}
	size := storageSize(limit)
	tmpl, err := s.template(size)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(home)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", home)
	}

	image := s.image(home)
	// The home is new, so an image of that name is what a start that died
	// before its home was removed left.
	os.Remove(image)
	f, err := os.OpenFile(image, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	defer func() {
		if err != nil {
			os.Remove(image)
		}
	}()
	if err := s.allocate(f, size); err != nil {
		return err
	}
	if err := copyTemplate(f, tmpl); err != nil {
		return fmt.Errorf("copy %s: %w", tmpl, err)
	}
	dev, loop, err := attachLoop(f, image, false)
	if err != nil {
		return err
	}
	defer loop.Close() // the mount holds the device from here; autoclear detaches it after
	if err := unix.Mount(dev, home, "ext4", unix.MS_NOSUID|unix.MS_NODEV, "noinit_itable"); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, home, err)
	}
	defer func() {
		if err != nil {
			unix.Unmount(home, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
	}()
	// The root of the filesystem replaces the home: same owner and mode.
	if err := os.Remove(filepath.Join(home, "lost+found")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Lchown(home, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(home, fi.Mode().Perm())
}

// release unmounts the filesystem of the session at home, whose processes
// are gone, and deletes its image. It does the same whether or not limits
// are enforced now: an earlier run of the portal may have enforced them.
func (s *storage) release(home string) error {
	for range maxUnmounts {
		if !mountPoint(home) {
			break
		}
		err := unix.Unmount(home, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EBUSY) {
			// Something outside the session still has a file open there
			// (the session's processes are dead): detach the filesystem
			// from the home now, the kernel frees it after.
			err = unix.Unmount(home, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", home, err)
		}
	}
	if mountPoint(home) {
		return fmt.Errorf("unmount %s: still a mount point after %d unmounts", home, maxUnmounts)
	}
	if err := os.Remove(s.image(home)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// mountPoint reports whether something is mounted on dir: whether it is on
// another device than its parent. The filesystems of homes always are.
func mountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev != parent.Dev
}

// allocate gives f size bytes of the disk of the images, when that leaves
// the disk storageHeadroom free, or a tenth of its size when that is
// less. It checks first: what a start takes and gives back can still fail
// the database's writes in the meantime.
func (s *storage) allocate(f *os.File, size int64) error {
	s.taking.Lock()
	defer s.taking.Unlock()
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return err
	}
	bsize := uint64(st.Bsize)
	free, total := st.Bavail*bsize, st.Blocks*bsize
	want := min(uint64(storageHeadroom), total/10)
	if uint64(size) > free {
		return fmt.Errorf("no room for %s of session storage on the disk of %s: %s free", quantity(size), s.dir, quantity(int64(free)))
	}
	if free-uint64(size) < want {
		return fmt.Errorf("no room for session storage: the disk of %s would have %s free, less than the %s kept for the database",
			s.dir, quantity(int64(free-uint64(size))), quantity(int64(want)))
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("no room for %s of session storage on the disk of %s: %w", quantity(size), s.dir, err)
		}
		return fmt.Errorf("allocate %s: %w", f.Name(), err)
	}
	return nil
}

// canAllocate checks that files in dir can be allocated (fallocate):
// not every filesystem can.
func canAllocate(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return unix.Fallocate(int(f.Fd()), 0, 0, blockSize)
}

// template returns the path of the template of size, making it if needed.
func (s *storage) template(size int64) (string, error) {
	base := filepath.Join(s.dir, "."+templateVersion+"-"+strconv.FormatInt(size, 10))
	path := base + ".img"
	s.mu.Lock()
	defer s.mu.Unlock()
	if isExt4(path) {
		return path, nil
	}
	// Made under a temporary name and renamed, so that a template is whole
	// or absent, whatever other portals on this directory do.
	tmp := base + ".tmp-" + randomHex()
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		return "", fmt.Errorf("session storage template: %w", err)
	}
	if out, err := exec.Command(s.mkfs, append(mkfsArgs, tmp)...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4 of %s: %v: %s", quantity(size), err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("session storage template: %w", err)
	}
	return path, nil
}

// isExt4 reports whether the file at path starts like an ext4 filesystem:
// the magic number of its superblock.
func isExt4(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+0x38); err != nil {
		return false
	}
	return binary.LittleEndian.Uint16(magic[:]) == 0xEF53
}

// copyTemplate copies the data of the template at path, its holes left
// out, into the image dst, which reads as zeros and is as large.
func copyTemplate(dst *os.File, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	fd := int(src.Fd())
	buf := make([]byte, 256<<10)
	for off := int64(0); ; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(io.NewOffsetWriter(dst, data), io.NewSectionReader(src, data, hole-data), buf); err != nil {
			return err
		}
		off = hole
	}
}

// attachLoop attaches f, the file at path, to a free loop device, which
// detaches by itself once nothing holds it open (autoclear): the caller
// mounts it, then closes loop.
//
// The device reads and writes the file through the page cache, as
// losetup's does by default, so a session's file data may be cached twice
// (in its filesystem and in the image), reclaimably. Direct I/O would
// avoid that, but made starts measurably slower on a loaded machine: the
// mount then waits for the copy of the template to reach the disk, and
// reads the filesystem's metadata from the disk rather than from the cache.
func attachLoop(f *os.File, path string, readOnly bool) (dev string, loop *os.File, err error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("no loop devices: %w", err)
	}
	defer ctl.Close()
	flags := uint32(unix.LO_FLAGS_AUTOCLEAR)
	if readOnly {
		flags |= unix.LO_FLAGS_READ_ONLY
	}
	// Other programs take loop devices too: a free one may be taken
	// between finding and configuring it.
	for range 16 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("find a free loop device: %w", err)
		}
		dev = "/dev/loop" + strconv.Itoa(n)
		loop, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return "", nil, fmt.Errorf("loop device: %w", err)
		}
		err = configureLoop(loop, f, path, flags)
		if errors.Is(err, unix.EBUSY) {
			loop.Close()
			continue
		}
		if err != nil {
			loop.Close()
			return "", nil, fmt.Errorf("attach %s to %s: %w", path, dev, err)
		}
		return dev, loop, nil
	}
	return "", nil, errors.New("no free loop device: every one found was taken at once")
}

// configureLoop attaches f to the loop device loop with flags.
func configureLoop(loop, f *os.File, path string, flags uint32) error {
	info := unix.LoopInfo64{Flags: flags}
	copy(info.File_name[:len(info.File_name)-1], path)
	err := unix.IoctlLoopConfigure(int(loop.Fd()), &unix.LoopConfig{Fd: uint32(f.Fd()), Info: info})
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	// Before Linux 5.8, in two steps.
	if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(int(loop.Fd()), &info); err != nil {
		unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// lookSbin looks for a program in PATH, then in the sbin directories a
// PATH without them misses.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func randomHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// quantity writes n bytes as a Kubernetes quantity, in the largest binary
// unit that keeps it whole (64Mi, 1536Ki), else in Mi with a fraction.
func quantity(n int64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	i := 0
	for m := n; m != 0 && m%1024 == 0 && i < len(units)-1; m /= 1024 {
		i++
	}
	if i < 2 && n >= 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "Mi"
	}
	return strconv.FormatInt(n>>(10*i), 10) + units[i]
}
