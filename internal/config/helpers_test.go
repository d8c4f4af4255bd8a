package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFiles creates files (path → content) under a new temporary directory
// and returns the directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadString loads content as the single file portal.yaml.
func loadString(t *testing.T, content string) (*Definitions, error) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"portal.yaml": content})
	return Load(filepath.Join(dir, "portal.yaml"))
}

const workshopsAB = `
---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-a
spec:
  title: A
---
apiVersion: training.educates.dev/v1beta1
kind: Workshop
metadata:
  name: lab-b
spec:
  title: B
`

// portalDoc is a TrainingPortal named test whose spec is the given YAML,
// followed by the Workshops lab-a and lab-b.
func portalDoc(spec string) string {
	return "apiVersion: training.educates.dev/v1beta1\nkind: TrainingPortal\nmetadata:\n  name: test\nspec:\n" +
		indent(strings.TrimPrefix(spec, "\n"), "  ") + workshopsAB
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
