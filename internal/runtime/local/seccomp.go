package local

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// The seccomp filter of a session, in the spirit of Docker's default
// profile: bwrap installs it (--seccomp) in the sandbox's pid 1 and in the
// command it starts, just before the exec, and every process they start
// inherits it. Beyond the capabilities bwrap drops, it closes the kernel
// interfaces a hostile attendee would reach for first, and that no
// exercise needs. Denied calls fail with EPERM, as they would without the
// capability, so that programs take the error path they already have.
//
// seccompArch, seccompX32 and seccompArchDenied are in seccomp_<arch>.go.

// seccompDenied are the system calls that fail with EPERM, on every
// supported architecture.
var seccompDenied = []uint32{
	// Kernel interfaces that are rich in exploitable bugs and that no exercise needs.
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	// The keyring is not namespaced: keys would be shared with the host and the other sessions.
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	// The sandbox is made of mounts: none may be added, moved or taken away.
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_MOUNT_SETATTR,
	// In a new user namespace a process has every capability again (clone too, below).
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	// They reach into another process's memory and files: the session host's, were a bug to let them past its uid.
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD, unix.SYS_KCMP,
	// A file handle opens a file by inode, past the mounts that hide it.
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	// These change the machine for everyone: its kernel, clock, swap, accounting, quotas, power.
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_REBOOT, // and kexec_file_load, in seccomp_<arch>.go
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL,
	// The kernel log and dcookies tell kernel addresses and the host's paths.
	unix.SYS_SYSLOG, unix.SYS_LOOKUP_DCOOKIE,
	// Obsolete: attack surface that no current program uses.
	unix.SYS_NFSSERVCTL,
}

// Personalities a session may set, as Docker allows: the others
// (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ...) weaken the
// defences that an exploit of the kernel or of a program must get past.
var seccompPersonalities = []uint32{
	0x0,        // PER_LINUX
	0x8,        // PER_LINUX32
	0x20000,    // UNAME26
	0x20008,    // UNAME26 | PER_LINUX32
	0xffffffff, // query only
}

// seccompNamespaces are the clone flags that make new namespaces: in a
// new user namespace a process has every capability again, and the
// others need one.
const seccompNamespaces = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// Offsets in struct seccomp_data. The flags of clone and the persona of
// personality are the low 32 bits of the first argument, all the kernel
// reads of them, and both supported architectures are little-endian.
const (
	seccompNr      = 0
	seccompArchOff = 4
	seccompArg0Low = 16
)

// seccompProgram returns the filter of a session as classic BPF for
// bwrap --seccomp: an array of struct sock_filter, native endian.
func seccompProgram() ([]byte, error) {
	if seccompArch == 0 {
		return nil, fmt.Errorf("seccomp: unsupported on %s", runtime.GOARCH)
	}
	var p bpfAssembler
	// Another ABI (int 0x80 on amd64, 32-bit arm on arm64) numbers its calls
	// differently, so the lists below would not match: the process dies.
	p.load(seccompArchOff)
	p.jumpIf(unix.BPF_JEQ, seccompArch, "", "kill")
	p.load(seccompNr)
	if seccompX32 != 0 {
		// The x32 ABI reaches the same kernel under numbers of its own.
		p.jumpIf(unix.BPF_JSET, seccompX32, "eperm", "")
	}
	for _, nr := range slices.Concat(seccompDenied, seccompArchDenied) {
		p.jumpIf(unix.BPF_JEQ, nr, "eperm", "")
	}
	// clone3 passes its flags in memory, which a filter cannot read: ENOSYS
	// makes glibc fall back to clone, whose flags it can (Docker does the
	// same). Go uses clone, except for CLONE_INTO_CGROUP.
	p.jumpIf(unix.BPF_JEQ, unix.SYS_CLONE3, "enosys", "")
	p.jumpIf(unix.BPF_JEQ, unix.SYS_CLONE, "clone", "")
	p.jumpIf(unix.BPF_JEQ, unix.SYS_PERSONALITY, "personality", "")
	p.ret(unix.SECCOMP_RET_ALLOW)

	p.label("clone")
	p.load(seccompArg0Low)
	p.jumpIf(unix.BPF_JSET, seccompNamespaces, "eperm", "allow")

	p.label("personality")
	p.load(seccompArg0Low)
	for _, v := range seccompPersonalities {
		p.jumpIf(unix.BPF_JEQ, v, "allow", "")
	}
	// Any other persona falls through to EPERM.
	p.label("eperm")
	p.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	p.label("allow")
	p.ret(unix.SECCOMP_RET_ALLOW)
	p.label("enosys")
	p.ret(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	p.label("kill")
	p.ret(unix.SECCOMP_RET_KILL_PROCESS)
	return p.assemble()
}

// bpfAssembler builds a classic BPF program whose jumps go forward to
// labels, "" being the next instruction.
type bpfAssembler struct {
	prog   []unix.SockFilter
	labels map[string]int
	jumps  []bpfJump
}

type bpfJump struct {
	at     int
	jt, jf string
}

func (a *bpfAssembler) load(offset uint32) {
	a.prog = append(a.prog, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offset})
}

func (a *bpfAssembler) ret(v uint32) {
	a.prog = append(a.prog, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: v})
}

func (a *bpfAssembler) jumpIf(cond uint16, k uint32, jt, jf string) {
	a.jumps = append(a.jumps, bpfJump{len(a.prog), jt, jf})
	a.prog = append(a.prog, unix.SockFilter{Code: unix.BPF_JMP | cond | unix.BPF_K, K: k})
}

func (a *bpfAssembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *bpfAssembler) assemble() ([]byte, error) {
	offset := func(from int, to string) (uint8, error) {
		if to == "" {
			return 0, nil
		}
		at, ok := a.labels[to]
		d := at - from - 1
		if !ok || d < 0 || d > 255 {
			return 0, fmt.Errorf("seccomp: no jump from %d to %q", from, to)
		}
		return uint8(d), nil
	}
	for _, j := range a.jumps {
		var err error
		ins := &a.prog[j.at]
		if ins.Jt, err = offset(j.at, j.jt); err != nil {
			return nil, err
		}
		if ins.Jf, err = offset(j.at, j.jf); err != nil {
			return nil, err
		}
	}
	if len(a.prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: %d instructions, more than %d", len(a.prog), unix.BPF_MAXINSNS)
	}
	b := make([]byte, 0, 8*len(a.prog))
	for _, ins := range a.prog {
		b = binary.NativeEndian.AppendUint16(b, ins.Code)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.NativeEndian.AppendUint32(b, ins.K)
	}
	return b, nil
}

// seccompFile returns a file holding prog, at its start, for bwrap to read
// (--seccomp reads to the end of the file).
func seccompFile(prog []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("portico-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	f := os.NewFile(uintptr(fd), "portico-seccomp")
	if _, err := f.Write(prog); err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	return f, nil
}
