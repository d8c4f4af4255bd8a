package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// buildSessionBinary builds cmd/portico-session into dir.
func buildSessionBinary(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH, and this test builds cmd/portico-session with it: install Go and put it on PATH")
	}
	bin := filepath.Join(dir, sessionBinary)
	if out, err := exec.Command("go", "build", "-o", bin, "../"+sessionBinary).CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", sessionBinary, err, out)
	}
	return bin
}

func TestSessionHostCommand(t *testing.T) {
	dir := t.TempDir()
	bin := buildSessionBinary(t, dir)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))

	// Beside the portal: used, and nothing said.
	exe := filepath.Join(dir, "portico")
	cmd, err := sessionHostCommand(log, exe, "")
	if err != nil || !slices.Equal(cmd, []string{bin}) || logged.Len() > 0 {
		t.Errorf("beside the portal: %q, %v; logged %q", cmd, err, logged.String())
	}

	// Missing (go run): the portal itself, and a warning that says how
	// to do better.
	alone := filepath.Join(t.TempDir(), "portico")
	cmd, err = sessionHostCommand(log, alone, "")
	if err != nil || !slices.Equal(cmd, []string{alone, "sessionhost"}) || !strings.Contains(logged.String(), "--session-binary") {
		t.Errorf("none beside the portal: %q, %v; logged %q", cmd, err, logged.String())
	}

	// --session-binary wins over the one beside the portal, and a
	// relative path is made absolute: hosts start in their homes.
	other := t.TempDir()
	copyFile(t, bin, filepath.Join(other, "host"))
	t.Chdir(other)
	cmd, err = sessionHostCommand(log, exe, "host")
	if err != nil || !slices.Equal(cmd, []string{filepath.Join(other, "host")}) {
		t.Errorf("--session-binary host: %q, %v", cmd, err)
	}
}

// What would fail every session start fails the portal's instead, naming
// the file: a missing --session-binary, one that is no session host (the
// portal itself, say), one that cannot run.
func TestSessionHostCommandRefuses(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	exe := filepath.Join(t.TempDir(), "portico")
	notExecutable := filepath.Join(t.TempDir(), sessionBinary)
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), sessionBinary)
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(t.TempDir(), "nothing"), "no such file"},
		{"directory", t.TempDir(), "not an executable file"},
		{"not executable", notExecutable, "not an executable file"},
		{"not a Go program", script, "Go build info"},
		{"another Go program", self, "not " + sessionBinaryPackage},
	} {
		if cmd, err := sessionHostCommand(log, exe, tc.path); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--session-binary") {
			t.Errorf("%s: %q, %v; want an error saying %q", tc.name, cmd, err, tc.want)
		}
	}
	// Beside the portal, a wrong file is refused too, not passed over.
	copyFile(t, self, filepath.Join(filepath.Dir(exe), sessionBinary))
	if cmd, err := sessionHostCommand(log, exe, ""); err == nil || !strings.Contains(err.Error(), sessionBinaryPackage) {
		t.Errorf("another program beside the portal: %q, %v", cmd, err)
	}
}

func TestSameRevision(t *testing.T) {
	info := func(settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{}
		for i := 0; i < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	a := info("vcs.revision", "aaaa", "vcs.modified", "false")
	b := info("vcs.revision", "bbbb")
	unstamped := info("GOOS", "linux")
	for _, tc := range []struct {
		name         string
		portal, host *debug.BuildInfo
		wantMismatch bool
	}{
		{"same", a, info("vcs.revision", "aaaa"), false},
		{"different", a, b, true},
		{"portal unstamped", unstamped, b, false},
		{"host unstamped", a, unstamped, false},
	} {
		err := sameRevision(tc.portal, tc.host)
		if (err != nil) != tc.wantMismatch || err != nil && !strings.Contains(err.Error(), "build both from one tree") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
