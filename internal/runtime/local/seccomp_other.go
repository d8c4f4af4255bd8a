//go:build !amd64 && !arm64

package local

// No filter for this architecture: seccompProgram fails.
const (
	seccompArch = 0
	seccompX32  = 0
)

var seccompArchDenied []uint32
