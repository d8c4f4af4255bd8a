package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/runtime"
)

// storagePortalEnv makes the test binary a portal that starts the
// sessions named in it (comma-separated) with 64Mi of storage each, in
// the sessions directory storageDirEnv, prints "started" and waits to be
// killed.
const (
	storagePortalEnv = "PORTICO_TEST_STORAGE_PORTAL"
	storageDirEnv    = "PORTICO_TEST_STORAGE_DIR"
)

func init() {
	// Before TestMain, which runs the tests otherwise.
	if names := os.Getenv(storagePortalEnv); names != "" {
		if err := runStoragePortal(os.Getenv(storageDirEnv), strings.Split(names, ",")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		time.Sleep(time.Hour)
		os.Exit(0)
	}
}

func runStoragePortal(dir string, names []string) error {
	r, err := New(Options{Dir: dir, Command: []string{os.Args[0]}, Env: []string{sessionHostEnv + "=1", execEnv + "=1"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	for _, name := range names {
		spec := testSpec(name)
		spec.Limits.Storage = 64 << 20
		if _, err := r.Start(context.Background(), spec); err != nil {
			return err
		}
	}
	fmt.Println("started")
	return nil
}

// requireStorage skips the test unless sessions of r get filesystems of
// their own.
func requireStorage(t testing.TB, r *Runtime) {
	t.Helper()
	if !r.storage.enforced() {
		t.Skipf("session storage limits need root (CAP_SYS_ADMIN for mount), /dev/loop-control and mkfs.ext4 (e2fsprogs): %s", r.storage.off)
	}
}

// smallDisk returns a new directory on a filesystem of its own, of size
// bytes, standing for the disk of a portal's data directory: its free
// space changes with nothing but the test. It holds a database file.
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a test disk needs root (mount -o loop)")
	}
	mkfs, err := lookSbin("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not found (apt-get install e2fsprogs)")
	}
	mount := lookPath(t, "mount")
	// As the runtime does: a fresh machine (the VM) has no loop module yet.
	haveDevice(loopControl, "loop")
	base, err := os.MkdirTemp("/var/tmp", "portico-storage-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	image, dir := filepath.Join(base, "disk.img"), filepath.Join(base, "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v: %s", err, out)
	}
	if out, err := exec.Command(mount, "-o", "loop", image, dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a test disk (needs CAP_SYS_ADMIN and loop devices): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount the test disk: %v", err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "portico.db"), []byte("the portal's database"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// available is the free space of the filesystem of dir, as the portal
// sees it.
func available(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// mountOptions returns the options of the mount on dir, "" when nothing
// is mounted there.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	opts := ""
	for line := range bytes.Lines(b) {
		f := strings.Fields(string(line))
		if len(f) > 5 && f[4] == dir {
			opts = f[5] // the last mount on dir is the one seen
		}
	}
	return opts
}

// loopDevicesOf returns the loop devices attached to the file at path.
func loopDevicesOf(path string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)") == path {
			devs = append(devs, strings.Split(f, "/")[3])
		}
	}
	return devs
}

// assertStorageReleased fails unless the storage of the session at home
// is gone: no mount, no image, no loop device (which the kernel detaches
// a moment after the last mount goes).
func assertStorageReleased(t *testing.T, r *Runtime, home string) {
	t.Helper()
	image := r.storage.image(home)
	if opts := mountOptions(t, home); opts != "" {
		t.Errorf("%s still mounted (%s)", home, opts)
	}
	if _, err := os.Lstat(image); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image %s left: %v", image, err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(loopDevicesOf(image)) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("loop devices left on %s: %v", image, loopDevicesOf(image))
			break
		}
	}
}

// Acceptance: a session with 64Mi of storage that writes 100 MB gets
// ENOSPC, and the disk of the data directory loses no more than the
// image's 64Mi, which it gets back when the session stops.
func TestStorageLimitsWrites(t *testing.T) {
	const limit = 64 << 20
	disk := smallDisk(t, 512<<20)
	for i, sandbox := range []bool{true, false} {
		t.Run(map[bool]string{true: "sandbox", false: "unsandboxed"}[sandbox], func(t *testing.T) {
			r := newRuntime(t, "", Options{Dir: filepath.Join(disk, fmt.Sprintf("sessions%d", i)), Env: []string{execEnv + "=1"}})
			requireStorage(t, r)
			if sandbox {
				requireSandbox(t, r)
			} else {
				r.bwrap, r.userns = "", false // as New leaves them without bubblewrap
			}
			free := available(t, disk)
			spec := testSpec(fmt.Sprintf("portal-w01-s30%d", i))
			spec.Limits.Storage = limit
			_, home := startSession(t, r, spec)

			// The home is the root of a filesystem of its own, as the
			// runtime made the home: 0700, the portal's or the workshop
			// user's (see identity.go), nothing in it but what the runtime
			// and host wrote.
			if opts := mountOptions(t, home); !strings.Contains(opts, "nosuid") || !strings.Contains(opts, "nodev") {
				t.Errorf("home mounted with %q, want nosuid and nodev", opts)
			}
			fi, err := os.Stat(home)
			if err != nil {
				t.Fatal(err)
			}
			owner := os.Geteuid()
			if ids, ok := idsOf(home); ok {
				owner = ids.host(workshopUID)
			}
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || int(st.Uid) != owner {
				t.Errorf("home %v owned by %d, want 0700 by %d", fi.Mode(), st.Uid, owner)
			}
			if _, err := os.Stat(filepath.Join(home, "lost+found")); err == nil {
				t.Error("lost+found in the home")
			}
			// The image takes its whole size on the disk from the start.
			var st unix.Stat_t
			if err := unix.Stat(r.storage.image(home), &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != limit || st.Blocks*512 < limit {
				t.Errorf("image of %d bytes, %d allocated; want %d, all allocated", st.Size, st.Blocks*512, limit)
			}

			// The script keeps what it says until it has left a few
			// megabytes free: its output file is in the full home too.
			out, rc := runInSession(t, home, `
said=$(dd if=/dev/zero of=big bs=1M count=100 2>&1; echo "dd $?"
fallocate -l 2G huge 2>&1; echo "fallocate $?"
echo "wrote $(wc -c < big)")
truncate -s 48M big
echo "$said"
`)
			var wrote int64
			if i := strings.Index(out, "wrote "); i >= 0 {
				fmt.Sscan(out[i+len("wrote "):], &wrote)
			}
			if rc != "0" || !strings.Contains(out, "No space left on device") || !strings.Contains(out, "dd 1") ||
				!strings.Contains(out, "fallocate 1") || wrote < limit/2 {
				t.Fatalf("writing 100 MB and allocating 2G with 64Mi of storage: %s\n%s", rc, out)
			}
			// The disk lost the image, and a template's few blocks, no more.
			const slack = 2 << 20
			if used := free - available(t, disk); used > limit+slack {
				t.Errorf("the data dir's disk lost %d bytes, more than the image's %d", used, limit)
			}

			if err := r.Stop(context.Background(), spec.Session); err != nil {
				t.Fatal(err)
			}
			assertStorageReleased(t, r, home)
			if _, err := os.Lstat(home); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("home left: %v", err)
			}
			for deadline := time.Now().Add(5 * time.Second); free-available(t, disk) > slack; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("the data dir's disk has %d bytes less than before the session", free-available(t, disk))
					break
				}
			}
		})
	}
}

// A session gets the default storage when its workshop sets none.
func TestStorageDefault(t *testing.T) {
	r := newRuntime(t, "", Options{Dir: filepath.Join(dataDir(t), "sessions")})
	requireStorage(t, r)
	_, home := startSession(t, r, testSpec("portal-w01-s310"))
	if fi, err := os.Stat(r.storage.image(home)); err != nil || fi.Size() != runtime.DefaultStorage {
		t.Fatalf("image %v, %v; want %d bytes", fi, err, runtime.DefaultStorage)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(home, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(st.Blocks) * st.Bsize; size > runtime.DefaultStorage || size < runtime.DefaultStorage*9/10 {
		t.Errorf("home filesystem of %d bytes, want about %d", size, runtime.DefaultStorage)
	}
}

// A session's storage is released while other sessions run, whose
// sandboxes got a copy of its mount when the portal's mounts propagate
// (a shared root, as under systemd: run the tests under
// "unshare -m --propagation shared" to see it).
func TestStorageReleasedWhileOthersRun(t *testing.T) {
	r := newRuntime(t, "", Options{Dir: filepath.Join(dataDir(t), "sessions")})
	requireStorage(t, r)
	requireSandbox(t, r)
	spec := testSpec("portal-w01-s315")
	spec.Limits.Storage = 64 << 20
	startSession(t, r, spec)
	spec = testSpec("portal-w01-s316")
	spec.Limits.Storage = 64 << 20
	_, home := startSession(t, r, spec)
	if err := r.Stop(context.Background(), spec.Session); err != nil {
		t.Fatal(err)
	}
	assertStorageReleased(t, r, home)
}

// A start whose storage the disk cannot hold, or which would leave too
// little for the database, fails and leaves nothing.
func TestStorageTooLargeForTheDisk(t *testing.T) {
	disk := smallDisk(t, 256<<20)
	r := newRuntime(t, "", Options{Dir: filepath.Join(disk, "sessions")})
	requireStorage(t, r)
	free := available(t, disk)
	for _, tt := range []struct {
		storage int64
		want    string
	}{
		{1 << 30, "no room for 1Gi of session storage"},
		// Fits, but leaves less than a tenth of the disk free.
		{free - 16<<20, "kept for the database"},
	} {
		spec := testSpec("portal-w01-s320")
		spec.Limits.Storage = tt.storage
		_, err := r.Start(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("start with %d bytes of storage on a disk of 256Mi: %v; want an error with %q", tt.storage, err, tt.want)
			r.Stop(context.Background(), spec.Session)
		}
		home := filepath.Join(r.dir, spec.Session)
		if _, err := os.Lstat(home); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("home left: %v", err)
		}
		assertStorageReleased(t, r, home)
		if lost := free - available(t, disk); lost > 1<<20 {
			t.Errorf("the disk lost %d bytes", lost)
		}
	}
}

// Starts at once share the disk as starts one after the other would:
// they cannot together take it all (which would fail the database's
// writes beside them), nor fail each other when some would fit.
func TestStorageOfStartsAtOnce(t *testing.T) {
	disk := smallDisk(t, 256<<20)
	r := newRuntime(t, "", Options{Dir: filepath.Join(disk, "sessions")})
	requireStorage(t, r)
	// Two fit on the disk, but only one above the headroom kept for the
	// database (a tenth of the disk).
	free := available(t, disk)
	size := (free - 10<<20) / 2
	// What the database beside them would have seen: the least free space
	// while the starts ran.
	low := free
	watched := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
				low = min(low, available(t, disk))
			}
		}
	}()
	var started atomic.Int32
	var wg sync.WaitGroup
	begin := make(chan struct{})
	for i := range 8 {
		spec := testSpec(fmt.Sprintf("portal-w01-s%d", 340+i))
		spec.Limits.Storage = size
		stopOnCleanup(t, r, spec.Session)
		wg.Go(func() {
			<-begin
			if _, err := r.Start(context.Background(), spec); err == nil {
				started.Add(1)
			} else if !strings.Contains(err.Error(), "no room") {
				t.Errorf("start of %s: %v, want no room", spec.Session, err)
			}
		})
	}
	close(begin)
	wg.Wait()
	close(stop)
	<-watched
	// The one session took its size; starts that did not fit took nothing,
	// not even for a moment (the templates and homes take a few MiB).
	if low < free-size-8<<20 {
		t.Errorf("the disk fell to %d bytes free while sessions started: %d free, one session of %d", low, free, size)
	}
	if n := started.Load(); n != 1 {
		t.Fatalf("%d of 8 starts at once of %d bytes each on a disk with %d free; want the one that fits", n, size, free)
	}
}

// Acceptance: the storage of sessions outlives a portal killed with
// SIGKILL, and the next portal removes it, whether the session kept
// running or died meanwhile.
func TestStoragePortalKilled(t *testing.T) {
	dir := filepath.Join(dataDir(t), "sessions")
	probe := newRuntime(t, "", Options{Dir: dir})
	requireStorage(t, probe)
	alive, dead := "portal-w01-s330", "portal-w01-s331"
	portal := exec.Command(os.Args[0])
	portal.Env = append(os.Environ(), storagePortalEnv+"="+alive+","+dead, storageDirEnv+"="+dir)
	portal.Stderr = os.Stderr
	stdout, err := portal.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := portal.Start(); err != nil {
		t.Fatal(err)
	}
	defer portal.Process.Kill()
	started := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		started <- line == "started\n"
	}()
	select {
	case ok := <-started:
		if !ok {
			portal.Wait()
			t.Fatal("the portal did not start its sessions")
		}
	case <-time.After(time.Minute):
		t.Fatal("the portal did not start its sessions within a minute")
	}
	if err := portal.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	portal.Wait()

	// One session dies while no portal runs.
	deadHome := filepath.Join(dir, dead)
	pid, init, err := readPIDs(deadHome)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	if init > 0 {
		syscall.Kill(init, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); isHost(pid, deadHome); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("host survived SIGKILL")
		}
	}

	r := newRuntime(t, "", Options{Dir: dir})
	ctx := context.Background()
	stopOnCleanup(t, r, alive)
	stopOnCleanup(t, r, dead)
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || !list[0].Ready || list[1].Failed == "" {
		t.Fatalf("List after the portal's restart = %+v, %v; want %s ready and %s failed", list, err, alive, dead)
	}
	aliveHome := filepath.Join(dir, alive)
	for _, home := range []string{aliveHome, deadHome} {
		if mountOptions(t, home) == "" {
			t.Fatalf("%s not mounted after the portal's death", home)
		}
	}
	if out, rc := runInSession(t, aliveHome, "out=$(dd if=/dev/zero of=big bs=1M count=100 2>&1); rc=$?; rm -f big; echo \"$out\"; exit $rc"); rc == "0" || !strings.Contains(out, "No space left on device") {
		t.Errorf("writing 100 MB after the portal's restart: %q\n%q", rc, out)
	}
	for _, home := range []string{aliveHome, deadHome} {
		if err := r.Stop(ctx, filepath.Base(home)); err != nil {
			t.Fatal(err)
		}
		assertStorageReleased(t, r, home)
	}
}

// Without loop devices (or root, or mkfs.ext4), the runtime says once, as
// it starts, that storage limits are not enforced and why; sessions start
// with a plain home.
func TestStorageNotEnforced(t *testing.T) {
	saved := loopControl
	loopControl = filepath.Join(t.TempDir(), "no-loop-control")
	t.Cleanup(func() { loopControl = saved })
	var logs bytes.Buffer
	r, err := New(Options{Dir: t.TempDir(), Command: []string{os.Args[0]}, Env: []string{sessionHostEnv + "=1"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec("portal-w01-s340")
	spec.Limits.Storage = 64 << 20
	_, home := startSession(t, r, spec)
	if mountOptions(t, home) != "" {
		t.Error("home mounted")
	}
	if _, err := os.Lstat(r.storage.image(home)); err == nil {
		t.Error("image made")
	}
	if err := r.Stop(context.Background(), spec.Session); err != nil {
		t.Fatal(err)
	}
	warnings := strings.Count(logs.String(), "session storage limits are not enforced")
	// The reason is the missing loop control device, or mkfs.ext4 when
	// that is missing too.
	if reason := logs.String(); warnings != 1 || !strings.Contains(reason, "no-loop-control") && !strings.Contains(reason, "mkfs.ext4") {
		t.Errorf("%d warnings, want one naming the loop control device; log:\n%s", warnings, logs.String())
	}
}

// The images of sessions whose home is gone are removed when a portal
// starts; those of sessions that remain are left to Stop.
func TestStorageSweep(t *testing.T) {
	dir := t.TempDir()
	images := filepath.Join(dir, storageDir)
	if err := os.MkdirAll(filepath.Join(dir, "portal-w01-s351"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(images, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"portal-w01-s350.img", "portal-w01-s351.img"} {
		if err := os.WriteFile(filepath.Join(images, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newRuntime(t, dir, Options{})
	if _, err := os.Lstat(filepath.Join(images, "portal-w01-s350.img")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image of a session without home left: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(images, "portal-w01-s351.img")); err != nil {
		t.Errorf("image of a session with a home removed: %v", err)
	}
}

// A home's filesystem, a copy of a template, is sound once used: e2fsck
// finds nothing to fix.
func TestStorageFilesystemSound(t *testing.T) {
	r := newRuntime(t, t.TempDir(), Options{})
	requireStorage(t, r)
	e2fsck, err := lookSbin("e2fsck")
	if err != nil {
		t.Skip("e2fsck not found (apt-get install e2fsprogs)")
	}
	home := filepath.Join(r.dir, "portal-w01-s360")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.storage.mount(home, 64<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.storage.release(home) })
	for i := range 200 {
		d := filepath.Join(home, fmt.Sprint("d", i%7))
		os.MkdirAll(d, 0o700)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprint("f", i)), bytes.Repeat([]byte{byte(i)}, i*1000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(filepath.Join(home, "d3"))
	if err := unix.Unmount(home, 0); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(e2fsck, "-fn", r.storage.image(home)).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
}

func TestStorageSize(t *testing.T) {
	for _, tt := range []struct{ limit, want int64 }{
		{0, runtime.DefaultStorage},
		{-1, runtime.DefaultStorage},
		{1, minStorage},
		{64 << 20, 64 << 20},
		{5_000_000_000, 5_000_003_584}, // 5G, in whole blocks of 4096
	} {
		if got := storageSize(tt.limit); got != tt.want {
			t.Errorf("storageSize(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
	for n, want := range map[int64]string{64 << 20: "64Mi", 1 << 30: "1Gi", 1536: "1536", 26843545: "25.6Mi", 3 << 10: "3Ki"} {
		if got := quantity(n); got != want {
			t.Errorf("quantity(%d) = %q, want %q", n, got, want)
		}
	}
}

// BenchmarkStorageStartStop measures what storage adds to a session's
// start-to-ready time and to its stop. Each iteration starts and stops a
// session without storage limits and one with, in turn first, so that both
// see the same load on a shared machine; the figures are medians, and
// their ratio.
//
//	go test ./internal/runtime/local -run '^$' -bench StorageStartStop -benchtime 30x
func BenchmarkStorageStartStop(b *testing.B) {
	for _, size := range []int64{1 << 30, 5 << 30, 10 << 30} {
		b.Run(quantity(size), func(b *testing.B) {
			dir := b.TempDir()
			off := newRuntime(b, "", Options{Dir: filepath.Join(dir, "off")})
			off.storage.off = "benchmark"
			on := newRuntime(b, "", Options{Dir: filepath.Join(dir, "on")})
			requireStorage(b, on)
			ctx := context.Background()
			var ready, stop [2][]time.Duration
			for i := 0; b.Loop(); i++ {
				for k := range 2 {
					j := (i + k) % 2
					r := []*Runtime{off, on}[j]
					spec := testSpec(fmt.Sprintf("bench-s%d", i))
					spec.Limits.Storage = size
					t0 := time.Now()
					if _, err := r.Start(ctx, spec); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if err := r.Stop(ctx, spec.Session); err != nil {
						b.Fatal(err)
					}
					ready[j] = append(ready[j], t1.Sub(t0))
					stop[j] = append(stop[j], time.Since(t1))
				}
			}
			median := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)/2].Microseconds()) / 1000
			}
			readyOff, readyOn := median(ready[0]), median(ready[1])
			b.ReportMetric(readyOff, "ms-ready-off")
			b.ReportMetric(readyOn, "ms-ready-on")
			b.ReportMetric(readyOn/readyOff, "ready-on/off")
			b.ReportMetric(median(stop[0]), "ms-stop-off")
			b.ReportMetric(median(stop[1]), "ms-stop-on")
		})
	}
}

// BenchmarkStorageMount measures the mechanism alone: a home's filesystem
// made and mounted, then unmounted and deleted, per size; and mkfs.ext4
// making a template, which happens once per size.
//
//	go test ./internal/runtime/local -run '^$' -bench StorageMount -benchtime 20x
func BenchmarkStorageMount(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "sessions")
	r := newRuntime(b, dir, Options{})
	requireStorage(b, r)
	for _, size := range []int64{1 << 30, 5 << 30, 10 << 30} {
		b.Run("template/"+quantity(size), func(b *testing.B) {
			for b.Loop() {
				os.Remove(filepath.Join(r.storage.dir, "."+templateVersion+"-"+fmt.Sprint(size)+".img"))
				if _, err := r.storage.template(size); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("mount/"+quantity(size), func(b *testing.B) {
			home := filepath.Join(dir, "bench-s1")
			var mount, release time.Duration
			for b.Loop() {
				if err := os.Mkdir(home, 0o700); err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if err := r.storage.mount(home, size); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := r.storage.release(home); err != nil {
					b.Fatal(err)
				}
				mount += t1.Sub(t0)
				release += time.Since(t1)
				if err := os.Remove(home); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(mount.Microseconds())/float64(b.N)/1000, "ms-mount/op")
			b.ReportMetric(float64(release.Microseconds())/float64(b.N)/1000, "ms-release/op")
		})
	}
}
