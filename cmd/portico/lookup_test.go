package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// portico lookup refuses to start without a configuration or with a bad
// one, saying which field is wrong.
func TestLookupCommandConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "lookup.yaml")
	if err := os.WriteFile(bad, []byte("clients: [{name: front, password: short, roles: [tenant]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"lookup"}, 2, "--config is required"},
		{[]string{"lookup", "--config", bad}, 1, "clients[0].password: at least 8 characters"},
		{[]string{"help", "lookup"}, 0, ""},
	} {
		var stdout, stderr bytes.Buffer
		if code := runCLI(commands, tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}
