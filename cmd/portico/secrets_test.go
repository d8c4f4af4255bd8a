package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portico-dev/portico/internal/secret"
)

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
