package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/secret"
)

func TestRedactedArgs(t *testing.T) {
	in := []string{"portico", "serve",
		"--database", "postgres://portico:hunter2@db:5432/portico?sslmode=disable",
		"--database=postgresql://portico:hunter2@db/portico",
		"-database=postgres://portico@db/portico?password=hunter2&sslmode=require",
		"--analytics-webhook", "https://hooks.example/in?token=hunter2",
		"--url", "https://portal.example", "--data-dir", "/srv/portico"}
	out := redactedArgs(in)
	if strings.Contains(strings.Join(out, " "), "hunter2") {
		t.Errorf("redacted args still hold the password: %q", out)
	}
	for i, keep := range map[int]string{
		3: "postgres://portico:xxxxx@db:5432/portico?sslmode=disable",
		4: "--database=postgresql://portico:xxxxx@db/portico",
		9: "https://portal.example", 11: "/srv/portico",
	} {
		if out[i] != keep {
			t.Errorf("arg %d redacted to %q, want %q", i, out[i], keep)
		}
	}
	if !slices.Contains(in, "postgres://portico:hunter2@db:5432/portico?sslmode=disable") {
		t.Error("redactedArgs changed its argument")
	}
}

func TestPrivateDirFixesAnOpenDirectory(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(log, dir); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(t.TempDir(), "new", "data")
	if err := privateDir(log, fresh); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, fresh} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", d, fi.Mode().Perm(), err)
		}
	}
}

func TestSecretBoxSources(t *testing.T) {
	dir := t.TempDir()
	// SQLite: made on the first start, the same on the next.
	a, err := secretBox("", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secretBox("", dir, false)
	if err != nil || b.ID() != a.ID() {
		t.Fatalf("second start: %v, key %v vs %v", err, b, a)
	}
	if fi, err := os.Stat(filepath.Join(dir, "secret.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", fi.Mode(), err)
	}

	// PostgreSQL: never made up, so replicas cannot disagree.
	_, err = secretBox("", t.TempDir(), true)
	if err == nil || !strings.Contains(err.Error(), envSecretKey) || !strings.Contains(err.Error(), "--secret-key-file") {
		t.Errorf("a replica without a key: %v", err)
	}
	shared, err := secretBox(filepath.Join(dir, "secret.key"), t.TempDir(), true)
	if err != nil || shared.ID() != a.ID() {
		t.Errorf("a replica with --secret-key-file: %v", err)
	}

	// The environment wins, and leaves the environment.
	text := secret.NewKey()
	t.Setenv(envSecretKey, text)
	fromEnv, err := secretBox("", t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := secret.ParseKey(text)
	want, _ := secret.NewBox(key)
	if fromEnv.ID() != want.ID() {
		t.Error("the key of PORTICO_SECRET_KEY was not used")
	}
	if _, ok := os.LookupEnv(envSecretKey); ok {
		t.Error("PORTICO_SECRET_KEY stays in the environment that the portal's programs inherit")
	}
	t.Setenv(envSecretKey, "too short")
	if _, err := secretBox("", t.TempDir(), false); err == nil {
		t.Error("a malformed PORTICO_SECRET_KEY was accepted")
	}
}
