package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLockDataDir takes the data directory as portals on SQLite (alone)
// and replicas on PostgreSQL (shared) would, in one process: flocks of two
// opens of the file exclude each other as those of two processes do.
func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	pid := "pid " + strconv.Itoa(os.Getpid())

	release, err := lockDataDir(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, lockFile))
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want this process's PID", b, err)
	}
	for _, tc := range []struct {
		alone bool
		want  []string
	}{
		{true, []string{pid, "another --data-dir", "--database postgres://"}},
		{false, []string{pid, "another --data-dir", "SQLite"}},
	} {
		if _, err := lockDataDir(dir, tc.alone); err == nil {
			t.Errorf("alone=%v: second lock taken while a SQLite portal holds the directory", tc.alone)
		} else {
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("alone=%v: %q lacks %q", tc.alone, err, w)
				}
			}
		}
	}
	release()
	if b, _ := os.ReadFile(filepath.Join(dir, lockFile)); len(b) != 0 {
		t.Errorf("released lock file still holds %q", b)
	}

	// Replicas share it; a SQLite portal is refused while any holds it.
	var replicas []func()
	for range 2 {
		r, err := lockDataDir(dir, false)
		if err != nil {
			t.Fatalf("a replica refused beside another: %v", err)
		}
		replicas = append(replicas, r)
	}
	if _, err := lockDataDir(dir, true); err == nil {
		t.Error("a SQLite portal took the directory of replicas")
	} else if !strings.Contains(err.Error(), "replicas on PostgreSQL") || !strings.Contains(err.Error(), "another --data-dir") {
		t.Errorf("refusal beside replicas: %q", err)
	}
	replicas[0]()
	if _, err := lockDataDir(dir, true); err == nil {
		t.Error("a SQLite portal took the directory while a replica holds it")
	}
	replicas[1]()
	release, err = lockDataDir(dir, true)
	if err != nil {
		t.Fatalf("directory not free once every replica let go: %v", err)
	}
	release()
}
