package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/sessionhost"
)

// The sandbox. With bubblewrap (bwrap) installed, the session host runs in
// new user, mount, pid, ipc, uts, cgroup and network namespaces, and so
// does everything it starts, PTY shells included. Inside:
//
//   - identities are the session's own (see identity.go): the workshop's
//     programs run as uid 1001 of the session's user namespace, a host id
//     that nothing else has, the host as its uid 0; with the portal not
//     root, both are the portal's user, as bwrap alone can do;
//   - the filesystem is an allow-list: the system directories (/usr, /bin,
//     /sbin, /lib*), /etc less its secrets (etcSecrets), the paths of
//     Options.ReadOnly, read-only; the session's own home, read-write; a
//     private /tmp; a minimal /dev and a /proc of the session's processes.
//     Nothing else exists: not the portal's data dir, definitions or logs,
//     not /root, /home, /run, /var or /srv. Paths of Options.Hide are
//     masked even inside what is shown (the portal's definitions under
//     /etc). /etc/passwd, /etc/group, /etc/hosts and /etc/resolv.conf are
//     the session's own, made by the runtime;
//   - the home is a file system of its own (see storage.go); in it,
//     .portico (the host's state) is closed to the workshop's user, the
//     files the runtime writes and trusts there (session.json, pid, ids,
//     cgroups, host.log) are read-only, and .portico itself cannot be
//     renamed away, as mount points cannot;
//   - the host keeps only the capabilities of its user namespace it needs
//     to serve the workshop's user (hostCaps); the workshop's programs have
//     none and an empty bounding set (see sessionhost.WorkshopUser), and
//     no program gains any (bwrap sets no_new_privs); a seccomp filter
//     takes the system calls that reach beyond a sandbox (seccomp.go);
//   - the network is the session's own: loopback, and outbound access
//     through a user-mode stack that cannot reach the host's loopback (see
//     network.go). The portal reaches the host through a Unix socket in
//     .portico, which no other session can reach.
//
// Processes: bwrap (the runtime's child) starts another bwrap as pid 1 of
// the namespace, which starts the host as pid 2. The first bwrap exits when
// the host does; the pid 1 stays while any process of the session does
// (orphans are its children), and when it dies the kernel kills whatever
// is left in the namespace, daemons that called setsid or nohup included:
// Stop kills it. The session is not tied to the portal (no
// --die-with-parent): it survives a crash of the portal, whose next run
// adopts it.

// systemDirs are shown read-only in every sandbox: what programs need to
// run. Where one is a symlink on the host (merged /usr), it is the same
// symlink inside.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcSecrets are files and directories of /etc that sessions never see:
// password hashes, host keys, private keys of certificates. Globs are
// expanded when a session starts.
var etcSecrets = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/security/opasswd", "/etc/ssh/ssh_host_*_key", "/etc/ssl/private",
	"/etc/krb5.keytab", "/etc/sudoers", "/etc/sudoers.d",
}

// hostCaps are the capabilities the host keeps, in its user namespace
// only: to work in the home that belongs to the workshop's user and hand
// it what it unpacks there (DAC_OVERRIDE, FOWNER, CHOWN), to run the
// workshop's programs as that user with no capability (SETUID, SETGID,
// SETPCAP) and to end them (KILL). They reach what the sandbox shows the
// host: its home and /tmp writable, the system read-only, less the
// secrets it masks.
var hostCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL"}

// sandboxFDs are the descriptors through which the runtime talks to bwrap.
type sandboxFDs struct {
	info    int // bwrap writes the pid of the namespace's pid 1 there, as JSON
	block   int // bwrap waits for data there before it starts the host (0: none)
	seccomp int // the compiled seccomp filter (0: none)
	// userns, when not 0, makes bwrap make the session's user namespace,
	// and wait for data there once the runtime has written its id maps.
	userns int
}

// sandboxArgs returns the bwrap arguments that confine the session at
// home, up to and including the "--" before the host's command. sources
// are directories the host reads the workshop's files from: they stay
// visible, read-only, unless they are in a hidden directory.
func (r *Runtime) sandboxArgs(home string, sources []string, lim runtime.Limits, fds sandboxFDs) []string {
	state := filepath.Join(home, sessionhost.StateDir)
	args := []string{
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net",
		"--hostname", filepath.Base(home),
		"--new-session", // no controlling terminal to push input into
		"--cap-drop", "ALL",
	}
	if fds.userns > 0 {
		args = append(args, "--unshare-user", "--userns-block-fd", strconv.Itoa(fds.userns))
	}
	if r.userns {
		for _, c := range hostCaps {
			args = append(args, "--cap-add", c)
		}
	}
	args = append(args, "--dev", "/dev", "--proc", "/proc",
		"--perms", "01777", "--size", strconv.FormatInt(tmpSize(lim), 10), "--tmpfs", "/tmp")
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				args = append(args, "--symlink", target, d)
			}
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
		}
	}
	args = append(args, "--ro-bind", "/etc", "/etc")
	for _, p := range r.readOnly {
		args = append(args, "--ro-bind-try", p, p)
	}
	// A source that holds a hidden directory is bound before the masks,
	// which then cover that directory; any other source after them, so that
	// workshop files inside a hidden directory (the bundled example in the
	// data dir) stay visible, read-only.
	masked := r.masked()
	var late []string
	for _, src := range sources {
		if slices.ContainsFunc(masked, func(m string) bool { return within(m, src) }) {
			args = append(args, "--ro-bind-try", src, src)
		} else {
			late = append(late, src)
		}
	}
	var maskedDirs []string
	for _, p := range masked {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
		case fi.IsDir():
			args = append(args, "--tmpfs", p)
			maskedDirs = append(maskedDirs, p)
		default:
			args = append(args, "--ro-bind", "/dev/null", p)
		}
	}
	for _, src := range late {
		args = append(args, "--ro-bind-try", src, src)
	}
	// The host's executable, wherever it lives (a test binary in /tmp).
	args = append(args, "--ro-bind", r.command[0], r.command[0])
	// The directories above the home are made for the home's mount point,
	// open to the workshop's user whatever their modes on the host.
	for _, d := range ancestors(home) {
		args = append(args, "--perms", "0755", "--dir", d)
	}
	args = append(args, "--bind", home, home, "--bind", state, state)
	for _, f := range []string{sessionhost.ConfigFile, pidFile, logFile, idsFile} {
		p := filepath.Join(home, f)
		args = append(args, "--ro-bind-try", p, p)
	}
	p := filepath.Join(home, cgroupsFile)
	args = append(args, "--ro-bind-try", p, p)
	for _, f := range etcFiles {
		args = append(args, "--ro-bind-try", filepath.Join(home, etcDir, f), "/etc/"+f)
	}
	// Masked directories become read-only last: the home may be below one
	// (the data dir), and its mount point is made there.
	for _, d := range maskedDirs {
		args = append(args, "--remount-ro", d)
	}
	args = append(args, "--chdir", home, "--info-fd", strconv.Itoa(fds.info))
	if fds.block > 0 {
		args = append(args, "--block-fd", strconv.Itoa(fds.block))
	}
	if fds.seccomp > 0 {
		args = append(args, "--seccomp", strconv.Itoa(fds.seccomp))
	}
	return append(args, "--")
}

// masked lists what the sandbox covers among what it shows: the secrets
// of /etc and the paths of Options.Hide (with the portal's data dir).
func (r *Runtime) masked() []string {
	var out []string
	for _, p := range append(slices.Clone(etcSecrets), r.hide...) {
		if matches, err := filepath.Glob(p); err == nil && len(matches) > 0 {
			out = append(out, matches...)
		}
	}
	return out
}

// etcDir holds, in a session's state directory, the files of /etc that are
// the session's own (etcFiles): written by the runtime as the session
// starts, read-only inside.
const etcDir = sessionhost.StateDir + "/etc"

var etcFiles = []string{"passwd", "group", "hosts", "resolv.conf"}

// writeEtc writes the session's own files of /etc: its users (the host as
// root, the workshop's user, nobody), its host name, and the resolver of
// its network (the user-mode stack's, or none).
func writeEtc(home string, nameserver string) error {
	dir := filepath.Join(home, etcDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	name := filepath.Base(home)
	files := map[string]string{
		"passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\n%s:x:%d:%d:Workshop user:%s:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			workshopUser, workshopUID, workshopGID, home),
		"group": fmt.Sprintf("root:x:0:\n%s:x:%d:\nnogroup:x:65534:\n", workshopUser, workshopGID),
		"hosts": fmt.Sprintf("127.0.0.1\tlocalhost %[1]s\n::1\tlocalhost ip6-localhost ip6-loopback %[1]s\n", name),
	}
	if nameserver != "" {
		files["resolv.conf"] = "nameserver " + nameserver + "\n"
	} else {
		files["resolv.conf"] = "# no network beyond the session\n"
	}
	for _, f := range etcFiles {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(files[f]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// workshopSources returns the local directories that the workshop files
// of spec come from (spec.workshop.files[].directory.path, relative to the
// workshop's directory).
func workshopSources(spec runtime.Spec) []string {
	var dirs []string
	for _, item := range spec.WorkshopFiles {
		d, _ := item["directory"].(map[string]any)
		p, _ := d["path"].(string)
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			if spec.WorkshopDir == "" {
				continue
			}
			p = filepath.Join(spec.WorkshopDir, p)
		}
		if p = filepath.Clean(p); p != "/" {
			dirs = append(dirs, p)
		}
	}
	return dirs
}

// hiddenPaths returns what sessions must not see: the directory holding
// dir (the portal's data dir), or dir itself when that is /, and extra.
func hiddenPaths(dir string, extra []string) ([]string, error) {
	paths := []string{filepath.Dir(dir)}
	if paths[0] == "/" {
		paths[0] = dir
	}
	for _, p := range extra {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("hidden path %q is not absolute", p)
		}
		p = filepath.Clean(p)
		if p == "/" {
			return nil, errors.New("cannot hide /")
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// sandboxInfoTimeout bounds the wait for bwrap to report its namespace.
const sandboxInfoTimeout = 10 * time.Second

// readSandboxInfo reads the pid that bwrap reports on its info fd. It
// fails if bwrap exits first.
func readSandboxInfo(f *os.File) (int, error) {
	f.SetReadDeadline(time.Now().Add(sandboxInfoTimeout))
	var info struct {
		ChildPID int `json:"child-pid"`
	}
	if err := json.NewDecoder(f).Decode(&info); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("bwrap exited before setting the sandbox up")
		}
		return 0, fmt.Errorf("bwrap info: %w", err)
	}
	if info.ChildPID <= 0 {
		return 0, errors.New("bwrap info: no child pid")
	}
	return info.ChildPID, nil
}

// rlimitArgs returns the prlimit(1) command that applies, to the host and
// every process of the session, the limits that no cgroup enforces. Only
// memory has an rlimit of some use: RLIMIT_DATA, which bounds each process
// alone (not the session), and which a Go host needs about 128 MiB of. Not
// RLIMIT_AS: a Go program reserves more than a gigabyte of address space
// at start. Processes have no equivalent (RLIMIT_NPROC counts every
// process of the user, and nothing for root), CPU neither (RLIMIT_CPU
// kills after a total of CPU seconds).
func (r *Runtime) rlimitArgs(lim runtime.Limits) []string {
	if lim.Memory <= 0 || r.cgroups.enabled("memory") || r.prlimit == "" {
		return nil
	}
	return []string{r.prlimit, "--data=" + strconv.FormatInt(lim.Memory, 10), "--"}
}

// unenforced lists the limits of lim that this runtime cannot apply.
func (r *Runtime) unenforced(lim runtime.Limits) []string {
	var out []string
	if lim.Memory > 0 && !r.cgroups.enabled("memory") {
		if r.prlimit == "" {
			out = append(out, "memory")
		}
	}
	if lim.Processes > 0 && !r.cgroups.enabled("pids") {
		out = append(out, "processes")
	}
	if lim.CPUMilli > 0 && !r.cgroups.enabled("cpu") {
		out = append(out, "cpu")
	}
	return out
}

// absolutePaths cleans paths, which must be absolute.
func absolutePaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%q is not absolute", p)
		}
		out = append(out, filepath.Clean(p))
	}
	return out, nil
}

// isSandboxInit reports whether pid is the pid 1 of the sandbox of the
// session at home.
func isSandboxInit(pid int, home string) bool {
	return pid > 0 && isHost(pid, home) && isNamespaceInit(pid)
}

// isNamespaceInit reports whether pid is the first process of a pid
// namespace below this one, as bwrap is in the sandbox.
func isNamespaceInit(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok {
			f := bytes.Fields(rest)
			return len(f) >= 2 && string(f[len(f)-1]) == "1"
		}
	}
	return false
}

// ancestors returns the directories above path, from the top down, less /.
func ancestors(path string) []string {
	var out []string
	for d := filepath.Dir(path); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append(out, d)
	}
	slices.Reverse(out)
	return out
}

// tmpSize is the size of a session's /tmp, a file system in memory whose
// pages count against the session's memory: a quarter of its memory limit,
// so that filling /tmp ends with ENOSPC rather than with the kernel killing
// the session's processes (its host among them) for memory it cannot
// reclaim; defaultTmpSize without a limit.
func tmpSize(lim runtime.Limits) int64 {
	if lim.Memory > 0 {
		return max(lim.Memory/4, 1<<20)
	}
	return defaultTmpSize
}

const defaultTmpSize = 512 << 20
