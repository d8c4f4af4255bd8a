package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
// new mount, pid and ipc namespaces, and so does everything it starts, PTY
// shells included. Inside:
//
//   - the whole filesystem is read-only; /dev is a minimal one, /proc shows
//     the session's processes only, /tmp is private to the session;
//   - the directory holding Dir (the portal's data dir: its database and
//     every session home), and the paths of Options.Hide, are empty
//     read-only directories, with only the session's own home bound back
//     read-write: other homes are invisible;
//   - in the home, .portico (the host's state) stays writable for the host,
//     but the files the runtime writes and trusts (session.json, pid,
//     cgroups, host.log) are read-only, and .portico itself cannot be
//     renamed away, as mount points cannot. What the host writes there
//     (address, owner.json, ...) is no more trusted than the session: see
//     hostListens;
//   - every capability is dropped and no program gains one (bwrap sets
//     no_new_privs), so nothing can undo these mounts, even as root;
//   - the host's executable, when the sandbox hides where it lives (a test
//     binary in /tmp), and the local directories of the workshop's files
//     are bound back read-only;
//   - the network is the portal's: the host listens on 127.0.0.1 for the
//     portal to reach it, and a session reaches every port there too, other
//     sessions' hosts included, which must authenticate every request.
//
// The rest of the filesystem stays readable as the portal's user sees it:
// what else is secret (the portal's configuration, /root, /etc/shadow when
// the portal runs as root) belongs in Options.Hide.
//
// Processes: bwrap (the runtime's child) starts another bwrap as pid 1 of
// the namespace, which starts the host as pid 2. The first bwrap exits when
// the host does; the pid 1 stays while any process of the session does
// (orphans are its children), and when it dies the kernel kills whatever
// is left in the namespace, daemons that called setsid or nohup included:
// Stop kills it. The session is not tied to the portal (no
// --die-with-parent): it survives a crash of the portal, whose next run
// adopts it.

// sandboxArgs returns the bwrap arguments that confine the session at
// home, up to and including the "--" before the host's command. sources
// are directories the host reads the workshop's files from: they stay
// visible, read-only, unless they are in a hidden directory. bwrap writes
// the pid of the namespace's pid 1 (as this namespace sees it) as JSON to
// infoFD.
func (r *Runtime) sandboxArgs(home string, sources []string, infoFD int) []string {
	state := filepath.Join(home, sessionhost.StateDir)
	args := []string{
		"--unshare-pid", "--unshare-ipc",
		"--new-session", // no controlling terminal to push input into
		"--cap-drop", "ALL",
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/tmp",
	}
	// A source that holds a hidden directory is bound before the hidden
	// ones, which then cover it; any other source after them, so that
	// workshop files inside a hidden directory (the bundled example in
	// the data dir) stay visible, read-only.
	var late []string
	for _, src := range sources {
		if slices.ContainsFunc(append([]string{r.dir}, r.hide...), func(h string) bool { return within(h, src) }) {
			args = append(args, "--ro-bind-try", src, src)
		} else {
			late = append(late, src)
		}
	}
	var hidden []string
	for _, p := range r.hide {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			args = append(args, "--tmpfs", p)
			hidden = append(hidden, p)
		default:
			args = append(args, "--ro-bind", "/dev/null", p)
		}
	}
	for _, src := range late {
		args = append(args, "--ro-bind-try", src, src)
	}
	if r.exposeCommand {
		// The host's executable lives somewhere the sandbox hides (a test
		// binary in /tmp): bind it alone.
		args = append(args, "--ro-bind", r.command[0], r.command[0])
	}
	args = append(args, "--bind", home, home, "--bind", state, state)
	for _, f := range []string{sessionhost.ConfigFile, pidFile, logFile} {
		p := filepath.Join(home, f)
		args = append(args, "--ro-bind", p, p)
	}
	p := filepath.Join(home, cgroupsFile)
	args = append(args, "--ro-bind-try", p, p)
	for _, h := range hidden {
		args = append(args, "--remount-ro", h)
	}
	return append(args, "--chdir", home, "--info-fd", strconv.Itoa(infoFD), "--")
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
