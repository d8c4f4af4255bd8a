package examples

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/portico-dev/portico/internal/config"
)

func TestExtract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "examples")
	if err := Extract(dir); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mode fs.FileMode
	}{
		{"portal.yaml", 0o644},
		{"lab-hello-terminal/workshop.yaml", 0o644},
		{"lab-hello-terminal/workshop/content/01-welcome.md", 0o644},
		{"lab-hello-terminal/workshop/content/02-terminal.md", 0o644},
		{"lab-hello-terminal/workshop/content/03-files.md", 0o644},
		{"lab-hello-terminal/workshop/setup.d/01-greet.sh", 0o755},
		{"lab-hello-terminal/exercises/hello.txt", 0o644},
	}
	for _, tt := range tests {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(tt.name)))
		if err != nil {
			t.Error(err)
			continue
		}
		if info.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.name, info.Mode().Perm(), tt.mode)
		}
	}

	defs, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w := defs.Workshops["lab-hello-terminal"]; w == nil || w.Dir != filepath.Join(dir, "lab-hello-terminal") {
		t.Errorf("extracted workshop not loaded from its directory: %+v", w)
	}
}

func TestExtractOverwrites(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "lab-hello-terminal", "workshop", "setup.d", "01-greet.sh")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Extract(dir); err != nil {
		t.Fatal(err)
	}
	want, _ := FS.ReadFile("lab-hello-terminal/workshop/setup.d/01-greet.sh")
	got, err := os.ReadFile(script)
	if err != nil || string(got) != string(want) {
		t.Errorf("script not replaced: %q, %v", got, err)
	}
	if info, _ := os.Stat(script); info.Mode().Perm() != 0o755 {
		t.Errorf("script mode %v", info.Mode().Perm())
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*", ".extract-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
