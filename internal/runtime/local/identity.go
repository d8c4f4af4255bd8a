package local

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/untrusted"
)

// Identities. A sandboxed session runs in a user namespace of its own. Its
// ids 1–65535 map onto a range of host ids that nothing else uses, one
// range per session: the workshop's programs run as workshopUID there, an
// id no host file and no other session has, with no capability. Its id 0
// is host root, so that bwrap, which assembles the sandbox as root of that
// namespace, reaches the session's home and the workshop's files wherever
// they are (under /root, or a test's private temporary directory); the
// session host stays uid 0 with only the few capabilities of that
// namespace it needs (hostCaps), which reach nothing but the sandbox: the
// mounts it sees are read-only but for the home, and the processes it
// sees are the session's. The workshop's programs cannot signal, trace or
// read the host: another uid, a non-dumpable host, no capability.
//
// Host files keep their owners; those the namespace does not map show as
// nobody inside, and are the session's as far as "others" may.
//
// Mapping ids needs CAP_SETUID and CAP_SETGID on the host (the portal runs
// as root); without them sessions run with the portal's own uid, as
// bubblewrap alone can do.

const (
	// idsBase is the first host id of the ranges of sessions: far above the
	// ids of users and system services, and apart from the low end of the
	// range where systemd-nspawn picks its containers' (0x80000 up).
	idsBase = 0x20000000
	// idsPerSession is the size of a session's range: the whole 16-bit id
	// space that programs and file systems expect.
	idsPerSession = 1 << 16
	// idSlots bounds the sessions on one machine: 8192 ranges up to
	// 0x40000000, well below the 32-bit limit.
	idSlots = 8192
	// workshopUID and workshopGID are the ids of the workshop's programs
	// inside the namespace: those of Educates' session user (eduk8s), which
	// workshop scripts written for Educates may expect.
	workshopUID, workshopGID = 1001, 1001
	workshopUser             = "eduk8s"
)

// idsDir holds one symlink per slot in use, named by the slot's number and
// pointing at the session name that holds it: creating a symlink is atomic
// and fails if the name exists, so replicas of the portal on one machine
// never hand out one slot twice. Its name is not a valid session name, so
// List passes it by.
const idsDir = ".ids"

// idsFile records the slot of a session in its state directory, which the
// sandbox makes read-only: written by the runtime, read when it is stopped.
const idsFile = sessionhost.StateDir + "/ids"

// idRange is the host ids of one session: base+n is n inside, for n > 0.
type idRange struct{ slot int }

func (ids idRange) base() int { return idsBase + ids.slot*idsPerSession }

// host returns the host id that id (> 0) of the session's namespace maps to.
func (ids idRange) host(id int) int { return ids.base() + id }

// writeMaps writes the uid and gid maps of the user namespace of pid, the
// session's: its id 0 is host root, the others the session's range.
func (ids idRange) writeMaps(pid int) error {
	m := fmt.Sprintf("0 0 1\n1 %d %d\n", ids.host(1), idsPerSession-1)
	for _, file := range []string{"uid_map", "gid_map"} {
		f, err := os.OpenFile("/proc/"+strconv.Itoa(pid)+"/"+file, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		// A map is written whole, in one write.
		_, err = f.Write([]byte(m))
		if err := errors.Join(err, f.Close()); err != nil {
			return err
		}
	}
	return nil
}

// allocateIDs takes a free slot for the session name, starting at a slot
// derived from the name so that concurrent allocations rarely contend.
func (r *Runtime) allocateIDs(name string) (idRange, error) {
	dir := filepath.Join(r.dir, idsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return idRange{}, err
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	start := int(h.Sum32() % idSlots)
	for i := range idSlots {
		slot := (start + i) % idSlots
		err := os.Symlink(name, filepath.Join(dir, strconv.Itoa(slot)))
		if err == nil {
			return idRange{slot}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return idRange{}, err
		}
	}
	return idRange{}, fmt.Errorf("all %d id ranges of sessions are in use", idSlots)
}

// releaseIDs frees the slot of the session name, if it holds one, once
// nothing of the session runs.
func (r *Runtime) releaseIDs(name string, ids idRange) {
	link := filepath.Join(r.dir, idsDir, strconv.Itoa(ids.slot))
	if target, err := os.Readlink(link); err == nil && target == name {
		os.Remove(link)
	}
}

// idsOf reads the slot that the session at home holds.
func idsOf(home string) (idRange, bool) {
	b, err := untrusted.ReadFile(filepath.Join(home, idsFile), 32)
	if err != nil {
		return idRange{}, false
	}
	slot, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || slot < 0 || slot >= idSlots {
		return idRange{}, false
	}
	return idRange{slot}, true
}

// releaseStaleIDs frees the slots of sessions that have no home any more:
// a portal killed between taking a slot and making the home, or while
// removing one.
func (r *Runtime) releaseStaleIDs() {
	dir := filepath.Join(r.dir, idsDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		name, err := os.Readlink(link)
		if err != nil || !validName(name) {
			continue
		}
		if _, err := os.Lstat(r.home(name)); errors.Is(err, fs.ErrNotExist) {
			os.Remove(link)
		}
	}
}
