package local

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/osthread"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/untrusted"
)

// Sessions get one cgroup each in every hierarchy where the portal may
// create cgroups: <the portal's own cgroup>/portico/<session>-<hash of its
// home>. The hash keeps apart two portals (or two test packages) that
// share a cgroup and name sessions alike. Nesting under the portal's own
// cgroup keeps sessions inside whatever limits the portal itself runs
// under.
//
// The host enters its cgroups before its first instruction, so nothing a
// session runs escapes them: see startIn. Limits are written before the
// host starts; a session cannot change them, as /sys is read-only in the
// sandbox.
const cgroupParent = "portico"

// portalCgroup is the leaf the portal moves into, in the v2 hierarchy,
// so that its own cgroup may enable controllers for the cgroups of its
// sessions (see delegateV2):
//
//	<the portal's own cgroup>/portico-portal   the portal (and what shared its cgroup)
//	<the portal's own cgroup>/portico/<session>-<hash>
const portalCgroup = "portico-portal"

// cgroupFix is what to do when sessions cannot get the limit controllers.
const cgroupFix = "run the portal as root, or under systemd with Delegate=yes " +
	"(a service, or from a shell: systemd-run [--user] --scope -p Delegate=yes portico serve ...)"

// cgroupsFile lists the cgroup directories of a session, one a line. The
// runtime writes it before creating them, so that a Stop after a crash of
// the portal finds them; it is read-only inside the sandbox, and checked
// when read (see sessionCgroupsOf) because an unsandboxed session can
// write it.
const cgroupsFile = sessionhost.StateDir + "/cgroups"

// maxCgroupsFile bounds what is read of a cgroupsFile: a few paths.
const maxCgroupsFile = 16 << 10

// hostTasks is added to Limits.Processes for the sandbox (two bwrap
// processes) and the session host, whose threads the kernel counts as
// tasks too.
const hostTasks = 16

// cgroupSet is what New found about the cgroup hierarchies of this machine.
type cgroupSet struct {
	// v1 maps a controller (memory, pids, cpu, freezer) to the portal's own
	// cgroup in its v1 hierarchy, where the portal may create cgroups.
	v1 map[string]string
	// v2 is the portal's own cgroup in the v2 hierarchy, "" when the portal
	// may not create cgroups there. Once the portal has moved into its
	// portalCgroup leaf, v2 is still the cgroup the leaf is in.
	v2 string
	// v2ctl are the controllers (memory, pids, cpu) that sessions get in
	// the v2 hierarchy: those no v1 hierarchy provides, which v2 has
	// enabled for its children.
	v2ctl []string
	// mounts are the mount points of every cgroup hierarchy.
	mounts []string
	// moved is how many processes the portal moved out of v2 into its
	// portalCgroup leaf, itself included (see delegateV2).
	moved int
	// problem says which limit controllers sessions do not get, why, and
	// what to do; nil when they get memory, pids and cpu.
	problem error
}

// limitControllers are the controllers that limit sessions; freezer only
// helps to kill them.
var limitControllers = []string{"memory", "pids", "cpu"}

// detectCgroups finds where this process may create cgroups, and enables
// the v2 controllers for sessions (see delegateV2). It never fails:
// sessions get what could be had, and problem says what could not.
func detectCgroups() *cgroupSet {
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return &cgroupSet{problem: fmt.Errorf("no cgroups: %w", err)}
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return &cgroupSet{problem: fmt.Errorf("no cgroups: %w", err)}
	}
	cs := parseCgroups(string(mountinfo), string(self), func(dir string) bool {
		return unix.Access(dir, unix.W_OK) == nil
	})
	var why error
	if cs.v2 != "" && !cloneIntoCgroup() {
		cs.v2 = "" // the host could not start in it: see startIn
		why = errors.New("sessions start in their v2 cgroup with CLONE_INTO_CGROUP, which needs Linux 5.7 or later")
	}
	if cs.v2 != "" {
		b, _ := os.ReadFile(filepath.Join(cs.v2, "cgroup.controllers"))
		offered := strings.Fields(string(b))
		var want, absent []string
		for _, c := range limitControllers {
			switch {
			case cs.v1[c] != "":
			case slices.Contains(offered, c):
				want = append(want, c)
			default:
				absent = append(absent, c)
			}
		}
		cs.v2ctl, cs.moved, why = delegateV2(kernelCgroups{}, cs.v2, want)
		if len(absent) > 0 {
			why = errors.Join(why, fmt.Errorf("%s offers no %s controller (its parent does not delegate it)", cs.v2, strings.Join(absent, ", ")))
		}
	}
	var missing []string
	for _, c := range limitControllers {
		if !cs.enabled(c) {
			missing = append(missing, c)
		}
	}
	switch {
	case len(missing) == 0:
	case len(cs.mounts) == 0:
		cs.problem = errors.New("no cgroup file system is mounted: mount cgroup2 on /sys/fs/cgroup (in a container: a cgroup namespace of its own, mounted read-write)")
	default:
		if why == nil {
			why = errors.New("the portal may not create cgroups in its own cgroups of the hierarchies that have them (see /proc/self/cgroup)")
		}
		cs.problem = fmt.Errorf("no %s cgroup controller for sessions: %w; %s", strings.Join(missing, ", "), why, cgroupFix)
	}
	return cs
}

// delegateV2 enables want, controllers of the v2 cgroup own (the portal's
// own), for the children of own: the cgroups of sessions. It returns those
// of want that own enables, how many processes it moved, and an error for
// the controllers it could not enable.
//
// The kernel refuses to enable a controller for the children of a cgroup
// that holds processes, except in the root cgroup ("no internal
// processes"), and own holds the portal at least. So the portal first
// moves out of own into a leaf of its own, portalCgroup, as systemd asks
// of a service with Delegate=yes ("move your main daemon process out of
// that cgroup, into a sub-cgroup", CGROUP_DELEGATION.md) and does itself
// as PID 1 (init.scope).
//
// It moves every process of own, not only its own, as Docker-in-Docker's
// entrypoint does (moby's hack/dind, into /init), because the kernel
// refuses while any is left: those are what was started with the portal,
// the shell and sudo of a login shell, the init of a container (tini),
// go test. They stay under own, so whatever limits, accounts, freezes or
// kills own (a systemd stop, the end of a login session) still covers
// them; only their cgroup path changes. Sessions stay nested under own,
// within the portal's own limits. The other way, a parent for sessions
// outside own, would take them out of those limits and out of the kill
// of the portal's unit, into a cgroup nobody delegated to the portal.
//
// A portal started again in the leaf (from the same shell, or by systemd
// with DelegateSubgroup=portico-portal) finds own enabled already: see
// parseCgroups.
func delegateV2(fsys cgroupFS, own string, want []string) (enabled []string, moved int, err error) {
	subtree := func() []string {
		b, _ := fsys.read(own, "cgroup.subtree_control")
		have := strings.Fields(b)
		return slices.DeleteFunc(slices.Clone(want), func(c string) bool { return !slices.Contains(have, c) })
	}
	enabled = subtree()
	if len(enabled) == len(want) {
		return enabled, 0, nil
	}
	var todo []string
	for _, c := range want {
		if !slices.Contains(enabled, c) {
			todo = append(todo, "+"+c)
		}
	}
	// Processes may be forked into own while the portal moves them: a
	// few rounds catch up with a shell that runs a command meanwhile.
	for try := 0; ; try++ {
		if err = fsys.write(own, "cgroup.subtree_control", strings.Join(todo, " ")); !errors.Is(err, unix.EBUSY) {
			break
		}
		if try == 5 {
			err = fmt.Errorf("%w: processes keep entering %s", err, own)
			break
		}
		n, merr := moveProcesses(fsys, own, filepath.Join(own, portalCgroup))
		moved += n
		if err = merr; err != nil {
			break
		}
	}
	if err != nil && !errors.Is(err, unix.EBUSY) && len(todo) > 1 {
		// One at a time, for those the kernel takes: cpu, for one, is
		// refused while a realtime process is inside.
		for _, c := range todo {
			fsys.write(own, "cgroup.subtree_control", c)
		}
	}
	enabled = subtree()
	if len(enabled) < len(want) {
		if err == nil {
			err = errors.New("not enabled")
		}
		missing := slices.DeleteFunc(slices.Clone(want), func(c string) bool { return slices.Contains(enabled, c) })
		return enabled, moved, fmt.Errorf("cannot enable %s in %s/cgroup.subtree_control: %w", strings.Join(missing, ", "), own, err)
	}
	return enabled, moved, nil
}

// moveProcesses moves every process of the cgroup from into to, a child
// it creates if needed, and returns how many it moved.
func moveProcesses(fsys cgroupFS, from, to string) (int, error) {
	if err := fsys.mkdir(to); err != nil && !errors.Is(err, fs.ErrExist) {
		return 0, err
	}
	procs, err := fsys.read(from, "cgroup.procs")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range strings.Fields(procs) {
		switch err := fsys.write(to, "cgroup.procs", p); {
		case err == nil:
			n++
		case errors.Is(err, unix.ESRCH): // it exited meanwhile
		default:
			return n, fmt.Errorf("move process %s into %s: %w", p, to, err)
		}
	}
	return n, nil
}

// cgroupFS is what delegateV2 does to cgroups: kernelCgroups, or a fake
// kernel in tests.
type cgroupFS interface {
	read(dir, file string) (string, error)
	write(dir, file, value string) error
	mkdir(dir string) error
}

// kernelCgroups is the cgroup file system of the kernel.
type kernelCgroups struct{}

func (kernelCgroups) read(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	return string(b), err
}

func (kernelCgroups) write(dir, file, value string) error { return writeCgroup(dir, file, value) }

func (kernelCgroups) mkdir(dir string) error { return os.Mkdir(dir, 0o755) }

// parseCgroups reads /proc/self/mountinfo and /proc/self/cgroup.
// writable reports whether a cgroup directory is one the portal may
// create cgroups in.
func parseCgroups(mountinfo, self string, writable func(dir string) bool) *cgroupSet {
	own := map[string]string{} // controller, or "" for v2 → the portal's cgroup path
	for line := range strings.Lines(self) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	cs := &cgroupSet{v1: map[string]string{}}
	for line := range strings.Lines(mountinfo) {
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		root, mountpoint := unescapeMount(f[3]), unescapeMount(f[4])
		// dir is the portal's cgroup for path, as seen at this mount.
		dir := func(path string) (string, bool) {
			rel, ok := strings.CutPrefix(path, root)
			if !ok || (rel != "" && rel[0] != '/' && root != "/") {
				return "", false
			}
			return filepath.Join(mountpoint, rel), true
		}
		switch g[0] {
		case "cgroup2":
			cs.mounts = append(cs.mounts, mountpoint)
			path, ok := own[""]
			if !ok || cs.v2 != "" {
				continue
			}
			if filepath.Base(path) == portalCgroup {
				// A portal that moved into its leaf (see delegateV2), or
				// was started there again: its cgroup is the leaf's
				// parent, where the cgroups of its sessions are.
				if d, ok := dir(filepath.Dir(path)); ok && writable(d) {
					cs.v2 = d
					continue
				}
			}
			if d, ok := dir(path); ok && writable(d) {
				cs.v2 = d
			}
		case "cgroup":
			cs.mounts = append(cs.mounts, mountpoint)
			for _, c := range strings.Split(g[2], ",") {
				if !slices.Contains(limitControllers, c) && c != "freezer" || cs.v1[c] != "" {
					continue
				}
				path, ok := own[c]
				if !ok {
					continue
				}
				if d, ok := dir(path); ok && writable(d) {
					cs.v1[c] = d
				}
			}
		}
	}
	return cs
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cloneIntoCgroup reports whether the kernel can start a process in a v2
// cgroup (CLONE_INTO_CGROUP, Linux 5.7).
func cloneIntoCgroup() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 5 || major == 5 && minor >= 7
}

// enabled reports whether sessions get a cgroup with controller.
func (cs *cgroupSet) enabled(controller string) bool {
	return cs != nil && (cs.v1[controller] != "" || slices.Contains(cs.v2ctl, controller))
}

// any reports whether sessions get cgroups at all.
func (cs *cgroupSet) any() bool { return cs != nil && (len(cs.v1) > 0 || cs.v2 != "") }

// String describes the cgroups sessions get, for the log.
func (cs *cgroupSet) String() string {
	if !cs.any() {
		return "none"
	}
	var parts []string
	for _, c := range []string{"memory", "pids", "cpu", "freezer"} {
		if cs.v1[c] != "" {
			parts = append(parts, c+" (v1)")
		}
	}
	if cs.v2 != "" {
		var ctl string
		if len(cs.v2ctl) > 0 {
			ctl = " " + strings.Join(cs.v2ctl, ",")
		}
		parts = append(parts, "v2"+ctl)
		if cs.moved > 0 {
			parts = append(parts, fmt.Sprintf("%d processes moved into %s", cs.moved, filepath.Join(cs.v2, portalCgroup)))
		}
	}
	return strings.Join(parts, ", ")
}

// cgroupName is the name of the cgroups of the session at home.
func cgroupName(home string) string {
	sum := sha256.Sum256([]byte(home))
	base := filepath.Base(home)
	if len(base) > 200 { // a cgroup name is a file name: 255 bytes at most
		base = base[:200]
	}
	return base + "-" + hex.EncodeToString(sum[:4])
}

// sessionCgroups are the cgroup directories of one session.
type sessionCgroups struct {
	dirs []string
}

// create makes the cgroups of the session at home, limited by lim, after
// listing them in the session's cgroupsFile. On error, the cgroups it
// returns are those to remove.
func (cs *cgroupSet) create(home string, lim runtime.Limits) (*sessionCgroups, error) {
	name := cgroupName(home)
	var parents []string
	for _, c := range []string{"memory", "pids", "cpu", "freezer"} {
		if d := cs.v1[c]; d != "" && !slices.Contains(parents, d) {
			parents = append(parents, d)
		}
	}
	if cs.v2 != "" {
		parents = append(parents, cs.v2)
	}
	s := &sessionCgroups{}
	for _, p := range parents {
		s.dirs = append(s.dirs, filepath.Join(p, cgroupParent, name))
	}
	if err := writeFileNew(filepath.Join(home, cgroupsFile), []byte(strings.Join(s.dirs, "\n")+"\n")); err != nil {
		return nil, err
	}
	for i, d := range s.dirs {
		if err := cs.mkdir(parents[i], d); err != nil {
			return s, err
		}
	}
	return s, s.limit(lim)
}

// writeFileNew creates path with data, readable by its owner only.
func writeFileNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// mkdir creates the session cgroup dir under the portal's cgroup parent,
// and the portico cgroup between them, which another runtime may remove
// when it empties it.
func (cs *cgroupSet) mkdir(parent, dir string) error {
	for try := 0; ; try++ {
		mid := filepath.Dir(dir)
		if err := os.Mkdir(mid, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if parent == cs.v2 && len(cs.v2ctl) > 0 {
			if err := enableControllers(parent, mid, cs.v2ctl); err != nil {
				return err
			}
		}
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil, errors.Is(err, fs.ErrExist):
			// An existing one is the remains of a session whose portal died
			// before its Stop finished: its processes are gone (a Start
			// clears them first).
			return nil
		case errors.Is(err, fs.ErrNotExist) && try < 3:
			// The portico cgroup was removed meanwhile.
		default:
			return err
		}
	}
}

// enableControllers makes the v2 controllers available to the cgroups of
// sessions, under the portal's own cgroup (enabled already by
// detectCgroups, unless someone undid it since) and the portico one,
// which never holds a process.
func enableControllers(own, mid string, controllers []string) error {
	var b strings.Builder
	for _, c := range controllers {
		b.WriteString(" +" + c)
	}
	for _, d := range []string{own, mid} {
		cur, _ := os.ReadFile(filepath.Join(d, "cgroup.subtree_control"))
		have := strings.Fields(string(cur))
		if !slices.ContainsFunc(controllers, func(c string) bool { return !slices.Contains(have, c) }) {
			continue
		}
		if err := writeCgroup(d, "cgroup.subtree_control", strings.TrimSpace(b.String())); err != nil {
			return fmt.Errorf("enable cgroup controllers%s: %w", b.String(), err)
		}
	}
	return nil
}

// limit writes lim into the session's cgroups; a zero limit removes one,
// for a cgroup left by a previous session.
func (s *sessionCgroups) limit(lim runtime.Limits) error {
	mem, memOff := strconv.FormatInt(lim.Memory, 10), lim.Memory <= 0
	pids := "max"
	if lim.Processes > 0 {
		pids = strconv.Itoa(lim.Processes + hostTasks)
	}
	const period = 100_000 // µs, the kernel's default
	quota := "-1"
	if lim.CPUMilli > 0 {
		quota = strconv.Itoa(max(lim.CPUMilli*period/1000, 1000)) // the kernel refuses less than 1 ms
	}
	for _, d := range s.dirs {
		var err error
		switch {
		case exists(d, "memory.limit_in_bytes"): // v1
			v := mem
			if memOff {
				v = "-1"
			}
			// memsw (memory and swap) must stay at least memory.limit_in_bytes:
			// the order that works depends on the values, so try both.
			memsw := exists(d, "memory.memsw.limit_in_bytes")
			err = writeCgroup(d, "memory.limit_in_bytes", v)
			if memsw {
				err2 := writeCgroup(d, "memory.memsw.limit_in_bytes", v)
				if err != nil {
					err = writeCgroup(d, "memory.limit_in_bytes", v)
				}
				err = errors.Join(err, err2)
			}
		case exists(d, "memory.max"): // v2
			v, swap := mem, "0"
			if memOff {
				v, swap = "max", "max"
			}
			err = writeCgroup(d, "memory.max", v)
			if exists(d, "memory.swap.max") {
				err = errors.Join(err, writeCgroup(d, "memory.swap.max", swap))
			}
		}
		if err == nil && exists(d, "pids.max") {
			err = writeCgroup(d, "pids.max", pids)
		}
		if err == nil && exists(d, "cpu.cfs_quota_us") { // v1
			err = errors.Join(writeCgroup(d, "cpu.cfs_period_us", strconv.Itoa(period)), writeCgroup(d, "cpu.cfs_quota_us", quota))
		}
		if err == nil && exists(d, "cpu.max") { // v2
			v := quota + " " + strconv.Itoa(period)
			if quota == "-1" {
				v = "max " + strconv.Itoa(period)
			}
			err = writeCgroup(d, "cpu.max", v)
		}
		if err != nil {
			return fmt.Errorf("limit cgroup %s: %w", d, err)
		}
	}
	return nil
}

func exists(dir, file string) bool {
	_, err := os.Stat(filepath.Join(dir, file))
	return err == nil
}

// writeCgroup writes value to a control file of the cgroup dir.
func writeCgroup(dir, file, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	return errors.Join(err, f.Close())
}

// v2dir returns the session's cgroup in the v2 hierarchy, "" if none.
func (s *sessionCgroups) v2dir() string {
	for _, d := range s.dirs {
		if exists(d, "cgroup.controllers") {
			return d
		}
	}
	return ""
}

// startIn starts cmd with its first process already in the session's
// cgroups, so that nothing escapes them, however fast it forks.
//
// A v2 cgroup is entered with CLONE_INTO_CGROUP. v1 has no such thing, but
// a child starts in the v1 cgroups of the thread that forks it, and v1
// cgroups take single threads: a thread of the portal of its own (see
// osthread) joins the session's cgroups, forks the host, and ends.
func (s *sessionCgroups) startIn(cmd *exec.Cmd) error {
	return osthread.Disposable(func() error { return s.startOnThisThread(cmd) })
}

func (s *sessionCgroups) startOnThisThread(cmd *exec.Cmd) error {
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		return errors.New("internal error: would move the main thread into a session cgroup")
	}
	v2 := s.v2dir()
	for _, d := range s.dirs {
		if d == v2 {
			continue
		}
		if err := writeCgroup(d, "tasks", strconv.Itoa(tid)); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	if v2 != "" {
		fd, err := unix.Open(v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open cgroup %s: %w", v2, err)
		}
		defer unix.Close(fd)
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	return cmd.Start()
}

// sessionCgroupsOf reads the cgroupsFile of home, keeping only the
// directories that can be the session's: a session cgroup of this home,
// under the portico cgroup of a cgroup hierarchy. Nil when there are none.
func sessionCgroupsOf(home string, mounts []string) *sessionCgroups {
	b, err := untrusted.ReadFile(filepath.Join(home, cgroupsFile), maxCgroupsFile)
	if err != nil {
		return nil
	}
	name := cgroupName(home)
	s := &sessionCgroups{}
	for line := range strings.Lines(string(b)) {
		d := strings.TrimSpace(line)
		if d == "" || !filepath.IsAbs(d) || filepath.Clean(d) != d ||
			filepath.Base(d) != name || filepath.Base(filepath.Dir(d)) != cgroupParent {
			continue
		}
		if slices.ContainsFunc(mounts, func(m string) bool { return strings.HasPrefix(d, m+"/") }) {
			s.dirs = append(s.dirs, d)
		}
	}
	if len(s.dirs) == 0 {
		return nil
	}
	return s
}

// procs returns the processes in the session's cgroups, never the portal
// itself: while one of its threads is in a session's v1 cgroups to fork the
// host (startIn), cgroup.procs lists the portal too.
func (s *sessionCgroups) procs() []int {
	if s == nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, d := range s.dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if pid, err := strconv.Atoi(sc.Text()); err == nil && pid != self && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// kill sends SIGKILL to every process of the session's cgroups: at once
// with cgroup.kill (v2, Linux 5.14); else frozen first when there is a v1
// freezer, so that none forks meanwhile; else one by one.
func (s *sessionCgroups) kill() {
	if s == nil {
		return
	}
	for _, d := range s.dirs {
		if exists(d, "cgroup.kill") && writeCgroup(d, "cgroup.kill", "1") == nil {
			return
		}
	}
	var freezer string
	for _, d := range s.dirs {
		if exists(d, "freezer.state") {
			freezer = d
		}
	}
	if freezer != "" && writeCgroup(freezer, "freezer.state", "FROZEN") == nil {
		defer writeCgroup(freezer, "freezer.state", "THAWED") // the signals land as they thaw
		for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if b, _ := os.ReadFile(filepath.Join(freezer, "freezer.state")); strings.TrimSpace(string(b)) == "FROZEN" {
				break
			}
		}
	}
	for _, p := range s.procs() {
		unix.Kill(p, unix.SIGKILL)
	}
}

// remove deletes the session's cgroups, which must have no process left,
// and the portico cgroups when they are empty.
func (s *sessionCgroups) remove() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, d := range s.dirs {
		// A process leaves its cgroups a moment after it dies.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			err := unix.Rmdir(d)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				break
			}
		}
		unix.Rmdir(filepath.Dir(d)) // fails while other sessions use it
	}
	return errors.Join(errs...)
}

// staleCgroupAge is how long a session cgroup stays empty before any
// runtime may remove it. A session's cgroup is empty only between its
// creation and the start of its host, a moment, or once all its
// processes died, when its Stop (which ignores a missing cgroup) is due.
const staleCgroupAge = time.Minute

// removeStale removes the session cgroups that have been empty for a while
// under the portico cgroups: those of sessions whose processes were killed
// without a Stop (a portal killed, its sessions killed by hand). It
// returns how many it removed.
func (cs *cgroupSet) removeStale() int {
	if !cs.any() {
		return 0
	}
	parents := slices.Collect(maps.Values(cs.v1))
	if cs.v2 != "" {
		parents = append(parents, cs.v2)
	}
	n := 0
	for _, p := range parents {
		mid := filepath.Join(p, cgroupParent)
		entries, err := os.ReadDir(mid)
		if err != nil {
			continue
		}
		for _, e := range entries {
			d := filepath.Join(mid, e.Name())
			fi, err := e.Info()
			if !e.IsDir() || err != nil || time.Since(fi.ModTime()) < staleCgroupAge {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil && len(bytes.TrimSpace(b)) == 0 && unix.Rmdir(d) == nil {
				n++
			}
		}
		unix.Rmdir(mid) // fails while sessions use it
	}
	return n
}
