package local

import "golang.org/x/sys/unix"

// seccompArch is the AUDIT_ARCH of the calls of this binary's own ABI.
const seccompArch = unix.AUDIT_ARCH_AARCH64

// seccompX32 would be the bit that marks the calls of another ABI sharing
// seccompArch: arm64 has none.
const seccompX32 = 0

// seccompArchDenied are the system calls that fail with EPERM on this
// architecture only, beyond seccompDenied.
var seccompArchDenied = []uint32{
	// Loads another kernel, as kexec_load does.
	unix.SYS_KEXEC_FILE_LOAD,
}
