package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newBox(t *testing.T) *Box {
	t.Helper()
	key, err := ParseKey(NewKey())
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBox(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBoxSealsForOneRecord(t *testing.T) {
	b := newBox(t)
	const password = "Q7wVb1xY2mN3pL4kJ5hG6fD7sA8qW9eR"
	sealed := b.Seal(password, "portal-w01-s001")
	if strings.Contains(sealed, password) || sealed == b.Seal(password, "portal-w01-s001") {
		t.Fatalf("sealed value %q shows the secret or repeats", sealed)
	}
	if id, ok := Sealed(sealed); !ok || id != b.ID() {
		t.Errorf("Sealed(%q) = %q, %v; want %q, true", sealed, id, ok, b.ID())
	}
	got, err := b.Open(sealed, "portal-w01-s001")
	if err != nil || got != password {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(sealed, "portal-w01-s002"); err == nil {
		t.Error("a value moved to another record opens")
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if tampered == sealed {
		tampered = sealed[:len(sealed)-2] + "BB"
	}
	if _, err := b.Open(tampered, "portal-w01-s001"); err == nil {
		t.Error("an altered value opens")
	}
	if _, err := b.Open("v1:"+b.ID()+":!!", "portal-w01-s001"); err == nil {
		t.Error("a malformed value opens")
	}
}

func TestBoxReadsClearTextOfOlderRows(t *testing.T) {
	b := newBox(t)
	clear := Alnum(32)
	if _, ok := Sealed(clear); ok {
		t.Fatalf("clear text %q taken for a sealed value", clear)
	}
	if got, err := b.Open(clear, "s"); err != nil || got != clear {
		t.Errorf("Open(clear) = %q, %v", got, err)
	}
}

func TestBoxNamesAnotherKey(t *testing.T) {
	a, b := newBox(t), newBox(t)
	_, err := b.Open(a.Seal("x", "s"), "s")
	if !errors.Is(err, ErrOtherKey) || !strings.Contains(err.Error(), a.ID()) || !strings.Contains(err.Error(), b.ID()) {
		t.Errorf("opening with another key: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	if _, err := ParseKey(NewKey() + "\n"); err != nil {
		t.Errorf("a key with its newline: %v", err)
	}
	for _, bad := range []string{"", "c2hvcnQ=", "not base64 at all", strings.Repeat("A", 44)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if _, err := NewBox(make([]byte, 16)); err == nil {
		t.Error("NewBox took a 16-byte key")
	}
}

func TestCreateKeyFileAgreesAcrossConcurrentStarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := CreateKeyFile(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) {
			t.Fatal("portals starting at once made different keys")
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	again, err := CreateKeyFile(path)
	if err != nil || string(again) != string(keys[0]) {
		t.Errorf("the key of a later start differs: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".secret-key-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKeyFile(path); err == nil {
		t.Error("a damaged key file was replaced or accepted")
	}
}
