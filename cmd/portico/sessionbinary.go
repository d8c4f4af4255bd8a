package main

import (
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
)

// sessionBinary is the file name of the session host program
// (cmd/portico-session), which the portal looks for beside its own
// executable.
const sessionBinary = "portico-session"

// sessionBinaryPackage is what the session host program's build
// information names as its main package: a file of that name that is
// something else would fail every session start instead of the portal's.
const sessionBinaryPackage = "github.com/portico-dev/portico/cmd/" + sessionBinary

// sessionHostCommand returns the argv prefix of the local runtime's session
// hosts: the program at path when given, else portico-session beside exe,
// else exe itself as `portico sessionhost`. The last works wherever the
// portal does (go run builds the portal alone, in a directory of its own),
// but every session then pays for all the portal links, the Kubernetes
// client included, so the portal says so.
func sessionHostCommand(log *slog.Logger, exe, path string) ([]string, error) {
	if path != "" {
		abs, err := filepath.Abs(path)
		if err == nil {
			err = checkSessionBinary(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("--session-binary: %w", err)
		}
		return []string{abs}, nil
	}
	beside := filepath.Join(filepath.Dir(exe), sessionBinary)
	err := checkSessionBinary(beside)
	switch {
	case err == nil:
		return []string{beside}, nil
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("no "+sessionBinary+" beside the portal: each session runs the portal's own binary, "+
			"which uses about 3 times the memory; build ./cmd/"+sessionBinary+" into the portal's directory "+
			"or give --session-binary", "looked_for", beside)
		return []string{exe, "sessionhost"}, nil
	default:
		// Not a silent fallback: whoever put it there meant it to run.
		return nil, fmt.Errorf("%s beside the portal: %w (remove it, or give --session-binary)", sessionBinary, err)
	}
}

// checkSessionBinary makes sure path is a session host program built from
// the same revision as this portal, when both carry one: the session's
// files (session.json, the allocation file) are a contract between the
// two that changes from one revision to the next.
func checkSessionBinary(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if info.Path != sessionBinaryPackage {
		return fmt.Errorf("%s is %s, not %s", path, info.Path, sessionBinaryPackage)
	}
	if own, ok := debug.ReadBuildInfo(); ok {
		if err := sameRevision(own, info); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// sameRevision fails when the portal and the host both name the commit
// they were built from and the commits differ.
func sameRevision(portal, host *debug.BuildInfo) error {
	mine, theirs := revision(portal), revision(host)
	if mine != "" && theirs != "" && mine != theirs {
		return fmt.Errorf("built from revision %s, the portal from %s: build both from one tree", theirs, mine)
	}
	return nil
}

// revision is the commit a binary was built from, "" when it does not say.
func revision(info *debug.BuildInfo) string {
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
