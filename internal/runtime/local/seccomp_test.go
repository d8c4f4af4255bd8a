package local

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSeccompProgramShape(t *testing.T) {
	prog := seccompTestProgram(t)
	if len(prog) == 0 || len(prog)%8 != 0 || len(prog)/8 > unix.BPF_MAXINSNS {
		t.Fatalf("%d bytes: want a whole number of instructions, at most %d", len(prog), unix.BPF_MAXINSNS)
	}
	if last := binary.NativeEndian.Uint16(prog[len(prog)-8:]); last != unix.BPF_RET|unix.BPF_K {
		t.Fatalf("last instruction %#x, want a return", last)
	}
}

// The decisions of the filter, run on seccomp_data by an interpreter of
// the few instructions it uses: what the kernel would return.
func TestSeccompDecisions(t *testing.T) {
	prog := seccompTestProgram(t)
	eperm := uint32(unix.SECCOMP_RET_ERRNO | unix.EPERM)
	for _, nr := range slices.Concat(seccompDenied, seccompArchDenied) {
		if got := runSeccomp(t, prog, seccompArch, nr, 0); got != eperm {
			t.Errorf("call %d: %#x, want EPERM", nr, got)
		}
	}
	for _, c := range []struct {
		what string
		arch uint32
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"getpid", seccompArch, unix.SYS_GETPID, 0, unix.SECCOMP_RET_ALLOW},
		{"a call of another ABI", unix.AUDIT_ARCH_I386, unix.SYS_GETPID, 0, unix.SECCOMP_RET_KILL_PROCESS},
		{"clone3", seccompArch, unix.SYS_CLONE3, 0, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{"fork", seccompArch, unix.SYS_CLONE, uint64(unix.SIGCHLD), unix.SECCOMP_RET_ALLOW},
		{"a thread", seccompArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM, unix.SECCOMP_RET_ALLOW},
		{"clone with high bits the kernel ignores", seccompArch, unix.SYS_CLONE, 1<<40 | uint64(unix.SIGCHLD), unix.SECCOMP_RET_ALLOW},
		{"clone into a new user namespace", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWUSER | uint64(unix.SIGCHLD), eperm},
		{"clone into a new network namespace", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWNET, eperm},
		{"clone into a new cgroup namespace", seccompArch, unix.SYS_CLONE, unix.CLONE_NEWCGROUP, eperm},
		{"personality(PER_LINUX)", seccompArch, unix.SYS_PERSONALITY, 0, unix.SECCOMP_RET_ALLOW},
		{"personality query", seccompArch, unix.SYS_PERSONALITY, 0xffffffff, unix.SECCOMP_RET_ALLOW},
		{"personality(UNAME26|PER_LINUX32)", seccompArch, unix.SYS_PERSONALITY, 0x20008, unix.SECCOMP_RET_ALLOW},
		{"personality(ADDR_NO_RANDOMIZE)", seccompArch, unix.SYS_PERSONALITY, addrNoRandomize, eperm},
		{"personality(READ_IMPLIES_EXEC)", seccompArch, unix.SYS_PERSONALITY, readImpliesExec, eperm},
	} {
		if got := runSeccomp(t, prog, c.arch, c.nr, c.arg0); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.what, got, c.want)
		}
	}
	if seccompX32 != 0 {
		if got := runSeccomp(t, prog, seccompArch, seccompX32|unix.SYS_GETPID, 0); got != eperm {
			t.Errorf("x32 getpid: %#x, want EPERM", got)
		}
	}
}

// Personalities the filter denies.
const (
	addrNoRandomize = 0x0040000
	readImpliesExec = 0x0400000
)

// runSeccomp returns what prog returns for a call nr of arch whose first
// argument is arg0.
func runSeccomp(t *testing.T, prog []byte, arch, nr uint32, arg0 uint64) uint32 {
	t.Helper()
	data := make([]byte, 64) // struct seccomp_data
	binary.NativeEndian.PutUint32(data[seccompNr:], nr)
	binary.NativeEndian.PutUint32(data[seccompArchOff:], arch)
	binary.NativeEndian.PutUint64(data[seccompArg0Low:], arg0)
	var a uint32
	for pc := 0; pc < len(prog)/8; pc++ {
		ins := prog[8*pc:]
		code, jt, jf, k := binary.NativeEndian.Uint16(ins), int(ins[2]), int(ins[3]), binary.NativeEndian.Uint32(ins[4:])
		switch code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.NativeEndian.Uint32(data[k:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += jf
			if a == k {
				pc += jt - jf
			}
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += jf
			if a&k != 0 {
				pc += jt - jf
			}
		case unix.BPF_RET | unix.BPF_K:
			return k
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, code)
		}
	}
	t.Fatal("the program ends without returning")
	return 0
}

// seccompProbeEnv makes TestSeccompProbe, in the test binary that a test
// runs in the sandbox, make system calls: "calls" the ones the filter
// stops, printing "<name> <errno>" for each (0 when the call succeeds);
// "exec" a fork and exec, printing the child's output.
const seccompProbeEnv = "PORTICO_SECCOMP_PROBE"

type seccompProbe struct {
	name string
	want unix.Errno
	call func() unix.Errno
}

// seccompProbes returns the calls of the probe, and what the filter makes
// them return. Their arguments are harmless should the filter let them
// through.
func seccompProbes() []seccompProbe {
	probes := []seccompProbe{
		{"keyctl", unix.EPERM, seccompCall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, ^uintptr(2) /* KEY_SPEC_SESSION_KEYRING */, 0)},
		{"bpf", unix.EPERM, seccompCall(unix.SYS_BPF, unix.BPF_MAP_CREATE, 0, 0)},
		{"perf_event_open", unix.EPERM, seccompCall(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0)},
		{"userfaultfd", unix.EPERM, seccompCall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC)},
		{"pidfd_getfd", unix.EPERM, seccompCall(unix.SYS_PIDFD_GETFD, ^uintptr(0), 0, 0)},
		{"ptrace", unix.EPERM, seccompCall(unix.SYS_PTRACE, unix.PTRACE_CONT, 0, 0, 0)},
		{"process_vm_readv", unix.EPERM, seccompCall(unix.SYS_PROCESS_VM_READV, 0, 0, 0, 0, 0, 0)},
		{"unshare", unix.EPERM, seccompCall(unix.SYS_UNSHARE, 0)},
		{"setns", unix.EPERM, seccompCall(unix.SYS_SETNS, ^uintptr(0), 0)},
		{"open_by_handle_at", unix.EPERM, seccompCall(unix.SYS_OPEN_BY_HANDLE_AT, ^uintptr(0), 0, 0)},
		{"mount", unix.EPERM, func() unix.Errno { return seccompErrno(unix.Mount("none", "/nonexistent", "tmpfs", 0, "")) }},
		{"io_uring_setup", unix.EPERM, seccompCall(unix.SYS_IO_URING_SETUP, 0, 0)},
		{"personality(ADDR_NO_RANDOMIZE)", unix.EPERM, seccompCall(unix.SYS_PERSONALITY, addrNoRandomize)},
		{"personality query", 0, seccompCall(unix.SYS_PERSONALITY, 0xffffffff)},
		{"clone3", unix.ENOSYS, seccompCall(unix.SYS_CLONE3, 0, 0)},
		{"clone(CLONE_NEWUSER)", unix.EPERM, seccompStart(unix.CLONE_NEWUSER)},
		{"clone(CLONE_NEWNS)", unix.EPERM, seccompStart(unix.CLONE_NEWNS)},
		{"clone(CLONE_NEWNET)", unix.EPERM, seccompStart(unix.CLONE_NEWNET)},
		{"getpid", 0, seccompCall(unix.SYS_GETPID)},
	}
	if seccompX32 != 0 {
		probes = append(probes, seccompProbe{"x32 getpid", unix.EPERM, seccompCall(seccompX32 | unix.SYS_GETPID)})
	}
	return probes
}

// seccompCall returns a system call nr with args.
func seccompCall(nr uintptr, args ...uintptr) func() unix.Errno {
	return func() unix.Errno {
		var a [6]uintptr
		copy(a[:], args)
		_, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
		return errno
	}
}

// seccompStart returns a call that starts true in new namespaces, with clone.
func seccompStart(namespaces uintptr) func() unix.Errno {
	return func() unix.Errno {
		cmd := exec.Command("true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: namespaces}
		return seccompErrno(cmd.Run())
	}
}

// seccompErrno returns the errno of err, EINVAL if it has none: a failure no
// probe expects.
func seccompErrno(err error) unix.Errno {
	var errno unix.Errno
	if err != nil && !errors.As(err, &errno) {
		return unix.EINVAL
	}
	return errno
}

// TestSeccompProbe is the probe that TestSeccompInSandbox runs.
func TestSeccompProbe(t *testing.T) {
	switch os.Getenv(seccompProbeEnv) {
	case "":
		t.Skip("the probe that TestSeccompInSandbox runs in the sandbox")
	case "calls":
		for _, p := range seccompProbes() {
			fmt.Printf("%s %d\n", p.name, p.call())
		}
	case "exec":
		out, err := exec.Command("sh", "-c", "echo forked").CombinedOutput()
		fmt.Printf("%s%v\n", out, err)
	}
	os.Exit(0)
}

// Acceptance: in bwrap with the filter, whatever a session runs cannot
// make namespaces, mount, nor make the calls denied, while shells, common
// commands, threads and Go programs that start others work.
func TestSeccompInSandbox(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed: apt-get install -y bubblewrap")
	}
	prog := seccompTestProgram(t)
	run := func(t *testing.T, env string, args ...string) (string, error) {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = w.Write(prog) // far less than a pipe holds
		w.Close()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bwrap, append([]string{
			"--unshare-pid", "--die-with-parent",
			"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			"--seccomp", "3", "--",
		}, args...)...)
		cmd.ExtraFiles = []*os.File{r}
		if env != "" {
			cmd.Env = append(os.Environ(), env)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	for _, args := range [][]string{
		{"unshare", "-U", "true"},
		{"unshare", "-m", "true"},
		{"unshare", "-n", "true"},
		{"mount", "-t", "tmpfs", "none", "/tmp"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := run(t, "", args...)
			// util-linux's mount says EPERM its own way.
			if err == nil || !strings.Contains(out, "Operation not permitted") && !strings.Contains(out, "permission denied") {
				t.Errorf("%v, want EPERM: %s", err, out)
			}
		})
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sh", "-c", "echo ok"}, "ok\n"},
		{[]string{"ls", "-d", "/usr"}, "/usr\n"},
		// glibc starts threads with clone3, then with clone on ENOSYS.
		{[]string{"python3", "-c", "import threading; t = threading.Thread(target=print, args=['thread']); t.start(); t.join()"}, "thread\n"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			lookPath(t, c.args[0])
			if out, err := run(t, "", c.args...); err != nil || out != c.want {
				t.Errorf("%v: %q, want %q", err, out, c.want)
			}
		})
	}
	t.Run("go exec", func(t *testing.T) {
		out, err := run(t, seccompProbeEnv+"=exec", os.Args[0], "-test.run=^TestSeccompProbe$")
		if err != nil || out != "forked\n<nil>\n" {
			t.Errorf("%v: %q", err, out)
		}
	})
	t.Run("calls", func(t *testing.T) {
		out, err := run(t, seccompProbeEnv+"=calls", os.Args[0], "-test.run=^TestSeccompProbe$")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Logf("in the sandbox:\n%s", out)
		for _, p := range seccompProbes() {
			if want := fmt.Sprintf("\n%s %d\n", p.name, p.want); !strings.Contains("\n"+out, want) {
				t.Errorf("%s: want %v (%d)", p.name, p.want, p.want)
			}
		}
	})
}

func seccompTestProgram(t *testing.T) []byte {
	t.Helper()
	prog, err := seccompProgram()
	if err != nil {
		t.Skip(err)
	}
	return prog
}
