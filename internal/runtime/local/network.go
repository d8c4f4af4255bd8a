package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portico-dev/portico/internal/osthread"
)

// The network. A sandboxed session has a network namespace of its own
// (bwrap --unshare-net): its loopback is the session's, so nothing there
// reaches the host's loopback services, its abstract Unix sockets, the
// portal's port or another session, and a port a workshop binds is bound
// in the session only. The portal reaches the host through a Unix socket
// in the session's state directory.
//
// Workshops still need the internet (git, package managers): slirp4netns, a
// user-mode TCP/IP stack, is attached to the namespace as the session
// starts. It makes the session's outbound connections as ordinary sockets
// of the host, with its gateway's route to the host's loopback disabled
// (--disable-host-loopback), in a sandbox and under a seccomp filter of its
// own. It is not in the session's namespaces (a session cannot signal it)
// and carries the session's marker, so that Stop ends it with the session.
//
// What slirp4netns reaches is what any client of the host's network
// reaches: the host's other addresses included. Services that must stay
// private listen on loopback.

// tunDevice is what slirp4netns makes the session's interface with.
const tunDevice = "/dev/net/tun"

// haveDevice reports whether the device node at path is there, loading
// module when it is not: hosts whose /dev has the node before the module
// is loaded load it when the node is opened, but minimal machines (a
// small VM, a container) have neither until someone loads it.
func haveDevice(path, module string) bool {
	if _, err := os.Stat(path); err == nil {
		return true
	}
	if modprobe, err := lookSbin("modprobe"); err == nil {
		exec.Command(modprobe, module).Run()
	}
	_, err := os.Stat(path)
	return err == nil
}

// slirpNameserver is the address of slirp4netns's DNS forwarder in the
// session's network (the default 10.0.2.0/24).
const slirpNameserver = "10.0.2.3"

// slirpReadyTimeout bounds the wait for slirp4netns to configure the
// session's network.
const slirpReadyTimeout = 10 * time.Second

// attachNetwork starts slirp4netns on the network namespace of pid (the
// sandbox's pid 1) and waits until it has configured the namespace's
// interface. Its output goes to log.
func (r *Runtime) attachNetwork(home string, pid int, log *os.File) error {
	// bwrap brings the namespace's loopback up as it starts; two
	// configurations at once fail with netlink errors, so slirp4netns waits.
	deadline := time.Now().Add(slirpReadyTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		up, err := loopbackUp(pid)
		if err != nil {
			return fmt.Errorf("session network: %w", err)
		}
		if up {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the sandbox did not set its loopback up in time")
		}
		time.Sleep(delay)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ready.Close()
	cmd := exec.Command(r.slirp, "--configure", "--mtu=65520", "--disable-host-loopback",
		"--enable-sandbox", "--enable-seccomp", "--ready-fd=3", strconv.Itoa(pid), "tap0")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", string(marker(home))}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{readyW}
	// Apart from the portal's signals; it outlives a crash of the portal as
	// the session does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start slirp4netns: %w", err)
	}
	go cmd.Wait() // reaped here while this portal lives; the session's Stop kills it
	ready.SetReadDeadline(time.Now().Add(slirpReadyTimeout))
	b := make([]byte, 1)
	if _, err := ready.Read(b); err != nil {
		cmd.Process.Kill()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("slirp4netns did not configure the session's network in time")
		}
		return errors.New("slirp4netns exited before configuring the session's network")
	}
	return nil
}

// loopbackUp reports whether the loopback interface of the network
// namespace of pid is up. It asks from a thread that joins the namespace
// and ends with the question: a thread's network namespace is its own.
func loopbackUp(pid int) (bool, error) {
	ns, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(ns)
	var up bool
	err = osthread.Disposable(func() error {
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			return err
		}
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		up = ifr.Uint16()&unix.IFF_UP != 0
		return nil
	})
	return up, err
}
