package local

import "golang.org/x/sys/unix"

// seccompArch is the AUDIT_ARCH of the calls of this binary's own ABI.
const seccompArch = unix.AUDIT_ARCH_X86_64

// seccompX32 is the bit that marks the calls of the x32 ABI.
const seccompX32 = 0x40000000

// seccompArchDenied are the system calls that fail with EPERM on this
// architecture only, beyond seccompDenied.
var seccompArchDenied = []uint32{
	// Loads another kernel, as kexec_load does.
	unix.SYS_KEXEC_FILE_LOAD,
	// Port I/O talks to the host's hardware directly.
	unix.SYS_IOPL, unix.SYS_IOPERM,
	// Obsolete: attack surface that no current program uses.
	unix.SYS_USELIB,
}
