package sessionhost

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/osthread"
)

// WorkshopUser is the identity the programs of a workshop (its shells, its
// setup scripts and all they start) run under when the runtime gives the
// host an identity of its own: the host keeps uid 0 of the session's user
// namespace, which no host uid that matters backs, and the workshop's
// programs get another, so that they cannot signal, trace or read the
// memory of the host that serves their session to the portal.
type WorkshopUser struct {
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Name string `json:"name"`
}

// refuseInspection makes the host non-dumpable: its /proc files (memory,
// file descriptors, environment) then belong to root of its user
// namespace, and no process of the session may trace it or take its
// descriptors with pidfd_getfd, whatever its uid.
func refuseInspection() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// start starts cmd as the workshop user, with an empty capability bounding
// set, so that nothing the workshop runs can ever hold a capability, even
// through a file capability. The bounding set belongs to a thread and a
// child inherits the forking thread's: the fork happens on a thread that
// drops its bounding set first and ends with the start (see osthread).
// Without a workshop user, cmd starts as it is.
func (u *WorkshopUser) start(cmd *exec.Cmd) error {
	if u == nil {
		return cmd.Start()
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
	cmd.Env = u.environ(cmd.Env)
	return osthread.Disposable(func() error {
		if err := dropBoundingSet(); err != nil {
			return err
		}
		return cmd.Start()
	})
}

// environ sets USER and LOGNAME of env to the workshop user's name.
func (u *WorkshopUser) environ(env []string) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "USER=") && !strings.HasPrefix(kv, "LOGNAME=") {
			out = append(out, kv)
		}
	}
	return append(out, "USER="+u.Name, "LOGNAME="+u.Name)
}

// dropBoundingSet empties the capability bounding set of this thread.
func dropBoundingSet() error {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return nil
}

// handOver gives the workshop user everything in home but the host's state
// directory: the host unpacks the workshop's files and makes its SSH keys
// as itself, and the workshop must own them to change them.
func (u *WorkshopUser) handOver(home string) error {
	if u == nil {
		return nil
	}
	return filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == filepath.Join(home, StateDir) {
			return filepath.SkipDir
		}
		return os.Lchown(path, u.UID, u.GID)
	})
}
