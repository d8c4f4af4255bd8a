package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The network. A sandboxed session has a network namespace of its own
// (bwrap --unshare-net): its loopback is the session's, so nothing there
// reaches the host's loopback services, its abstract Unix sockets, the
// portal's port or another session, and a port a workshop binds is bound
// in the session only. The portal reaches the host through a Unix socket
// in the session's state directory.
//
// Workshops still need the internet (git, package managers): slirp4netns, a
// user-mode TCP/IP stack, makes the session's outbound connections as
// ordinary sockets of the host, with its gateway's route to the host's
// loopback disabled (--disable-host-loopback), in a sandbox and under a
// seccomp filter of its own. It is not in the session's namespaces (a
// session cannot signal it) and carries the session's marker, so that Stop
// ends it with the session.
//
// It is attached to the namespace once the host serves, so that its start
// (a process of its own, which took the CPU the starting host needed: 20
// to 35 ms of a start on a loaded 2-core machine) does not slow the
// host's; or sooner, when the starting host asks for it
// (sessionhost.NoteNetwork) to fetch files or run setup scripts. The
// host's terminals wait for it.
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
// interface. Its output, and why it failed, go to the host's log. bwrap
// brought the namespace's loopback up before it started the host (two
// configurations at once would fail with netlink errors): the runtime
// attaches the network once the host asks for it or serves.
func (r *Runtime) attachNetwork(home string, pid int) (err error) {
	log, err := os.OpenFile(filepath.Join(home, logFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer log.Close()
	defer func() {
		if err != nil {
			fmt.Fprintf(log, "portico: %v\n", err)
		}
	}()
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

// netAttach is the attach of one session's network, which begins once:
// when the starting host asks for the network, or when it serves.
type netAttach struct {
	attach func()
	done   chan struct{} // closed when an attach that began is over

	mu    sync.Mutex
	state int // one of the states below
}

const (
	attachWaiting = iota
	attachBegun
	attachCalledOff
)

func newNetAttach(attach func()) *netAttach {
	return &netAttach{attach: attach, done: make(chan struct{})}
}

// begin starts the attach, unless it began or was called off.
func (a *netAttach) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state != attachWaiting {
		return
	}
	a.state = attachBegun
	go func() {
		defer close(a.done)
		a.attach()
	}()
}

// callOff keeps the attach from beginning, and waits for one that began:
// slirp4netns then runs, and a Stop that looks for the session's processes
// finds it.
func (a *netAttach) callOff() {
	a.mu.Lock()
	begun := a.state == attachBegun
	a.state = attachCalledOff
	a.mu.Unlock()
	if begun {
		<-a.done
	}
}

// beginNetwork begins the attach of the network of session name, if this
// runtime spawned its host and has not begun it.
func (r *Runtime) beginNetwork(name string) {
	r.mu.Lock()
	a := r.networks[name]
	r.mu.Unlock()
	if a != nil {
		a.begin()
	}
}

// callOffNetwork keeps the network of session name from being attached
// from now on, and waits for an attach in flight.
func (r *Runtime) callOffNetwork(name string) {
	r.mu.Lock()
	a := r.networks[name]
	delete(r.networks, name)
	r.mu.Unlock()
	if a != nil {
		a.callOff()
	}
}

// maxNotes bounds what is read of a host's notes: it sends each once.
const maxNotes = 16

// readNotes calls on with each note that a starting host writes to f (see
// sessionhost.NoteNetwork), until f is closed.
func readNotes(f *os.File, on func(note byte)) {
	go func() {
		b := make([]byte, maxNotes)
		for n := 0; n < len(b); {
			k, err := f.Read(b[n:])
			for _, note := range b[n : n+k] {
				on(note)
			}
			n += k
			if err != nil {
				return
			}
		}
	}()
}
