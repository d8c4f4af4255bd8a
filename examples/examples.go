// Package examples bundles a training portal and one workshop with the
// binary, so that Portico has something to serve when it is given no
// definitions of its own.
package examples

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS holds portal.yaml and the workshop it lists.
//
//go:embed portal.yaml lab-hello-terminal
var FS embed.FS

// Extract writes the bundled files into dir, creating it, and replacing the
// files already there so that an upgrade of the binary upgrades them.
func Extract(dir string) error {
	return fs.WalkDir(FS, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := FS.ReadFile(name)
		if err != nil {
			return err
		}
		// Embedded files have no modes: setup scripts must be executable.
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		return writeFile(target, data, mode)
	})
}

// writeFile replaces target atomically, so that a portal reading the
// definitions while they are extracted sees either the old or the new file.
func writeFile(target string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(target), ".extract-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}
