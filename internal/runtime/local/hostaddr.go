package local

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// The address a host publishes in its home is not trusted as it is: the
// host writes it, so its session can too (same user, same sandbox, and
// whatever the host can do, a process that can ptrace it can). Pointing it
// at another session's host, or at a server of its own, would make the
// portal send people there. The runtime accepts an address only once it
// checked that the host process itself holds a listening socket bound to
// it: a session cannot reach into the host of another, and no process of
// its own is the host.

// hostListens reports whether the session host holds a TCP socket
// listening on addr. Unsandboxed, the host is pid; in the sandbox, it is
// the process that bwrap, init, starts as pid 2 of the session's pid
// namespace (init being pid 1), which the runtime sees through the /proc
// that the sandbox mounts, which a session cannot replace (it may not
// mount).
func hostListens(pid, init int, addr netip.AddrPort) bool {
	fdDir := "/proc/" + strconv.Itoa(pid) + "/fd"
	if init > 0 {
		pid = init // in the host's network namespace, whatever bwrap's is
		fdDir = "/proc/" + strconv.Itoa(init) + "/root/proc/2/fd"
	}
	inodes := listeningInodes(pid, addr)
	if len(inodes) == 0 {
		return false
	}
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		link, err := os.Readlink(fdDir + "/" + e.Name())
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil && inodes[ino] {
				return true
			}
		}
	}
	return false
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

// listeningInodes returns the inodes of the TCP sockets listening on addr
// in the network namespace of pid.
func listeningInodes(pid int, addr netip.AddrPort) map[uint64]bool {
	var want []string
	a := addr.Addr().Unmap()
	if a.Is4() {
		want = append(want, procNetAddr(a, addr.Port()), procNetAddr(netip.AddrFrom16(a.As16()), addr.Port()))
	} else {
		want = append(want, procNetAddr(a, addr.Port()))
	}
	inodes := map[uint64]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/net/" + table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			const listen = "0A"
			if len(fields) < 10 || fields[3] != listen {
				continue
			}
			for _, w := range want {
				if fields[1] == w {
					if ino, err := strconv.ParseUint(fields[9], 10, 64); err == nil && ino != 0 {
						inodes[ino] = true
					}
				}
			}
		}
		f.Close()
	}
	return inodes
}

// procNetAddr spells an address and port as /proc/net/tcp does: each
// 32-bit word of the address as the machine stores it, in hexadecimal,
// then the port.
func procNetAddr(a netip.Addr, port uint16) string {
	var b strings.Builder
	raw := a.AsSlice()
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", port)
	return b.String()
}
