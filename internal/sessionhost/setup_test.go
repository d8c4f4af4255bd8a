package sessionhost

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSetupScripts(t *testing.T) {
	home := t.TempDir()
	writeFiles(t, home, map[string]string{
		// Not executable: run with bash, or sh.
		"workshop/setup.d/02-second.sh": "echo second >> \"$HOME/order\"\necho \"greeting=$GREETING\" >> \"$HOME/order\"\n",
		"workshop/setup.d/01-first.sh":  "#!/bin/sh\necho first >> \"$HOME/order\"\necho to the log\n",
		"workshop/setup.d/03-README.md": "not a script",
		"workshop/setup.d/.hidden.sh":   "exit 1",
	})
	os.Chmod(filepath.Join(home, "workshop/setup.d/01-first.sh"), 0o755)
	var out bytes.Buffer
	env := environ(map[string]string{"HOME": home, "PATH": os.Getenv("PATH"), "GREETING": "hi"})
	if err := runSetupScripts(t.Context(), home, env, nil, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	checkFiles(t, home, map[string]string{"order": "first\nsecond\ngreeting=hi\n"})
	if !strings.Contains(out.String(), "to the log") || !strings.Contains(out.String(), "setup: running workshop/setup.d/01-first.sh") {
		t.Errorf("output: %q", out.String())
	}

	writeFiles(t, home, map[string]string{"workshop/setup.d/04-fail.sh": "echo about to fail >&2\nexit 3\n", "workshop/setup.d/05-never.sh": "touch \"$HOME/never\"\n"})
	out.Reset()
	err := runSetupScripts(t.Context(), home, env, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "workshop/setup.d/04-fail.sh") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("failing script: %v", err)
	}
	if !strings.Contains(out.String(), "about to fail") {
		t.Errorf("output of the failing script missing: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(home, "never")); err == nil {
		t.Error("a script after the failing one ran")
	}

	// No setup.d: nothing to do.
	if err := runSetupScripts(t.Context(), t.TempDir(), env, nil, &out); err != nil {
		t.Error(err)
	}
}

// startHome prepares a session home with cfg for Run.
func startHome(t *testing.T, cfg Config) string {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, StateDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(home, cfg); err != nil {
		t.Fatal(err)
	}
	return home
}

func TestRunSetsTheSessionUp(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"workshop/content/01.md":       "# Hello\n",
		"workshop/setup.d/01-count.sh": "echo run >> \"$HOME/runs\"\necho \"$SESSION_NAME $GREETING\" > \"$HOME/seen\"\n",
		"exercises/a.txt":              "a",
	})
	cfg := testConfig
	cfg.WorkshopDir = src
	cfg.WorkshopFiles = []map[string]any{{"directory": map[string]any{"path": "."}}}
	home := startHome(t, cfg)

	for range 2 { // the second run, a restarted host, does not set up again
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{Home: home, Logger: slog.New(slog.DiscardHandler), Output: &bytes.Buffer{}})
		}()
		waitForAddress(t, home, done)
		os.Remove(filepath.Join(home, AddressFile))
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	checkFiles(t, home, map[string]string{
		"workshop/content/01.md": "# Hello\n",
		"exercises/a.txt":        "a",
		"runs":                   "run\n",
		"seen":                   "portal-w01-s001 hello\n",
	})
}

func TestRunFailsOnSetup(t *testing.T) {
	for name, tc := range map[string]struct {
		files   []map[string]any
		wantErr string
		wantOut string
	}{
		"script": {
			files:   []map[string]any{{"inline": map[string]any{"paths": map[string]any{"workshop/setup.d/01-bad.sh": "echo cannot prepare >&2\nexit 1\n"}}}},
			wantErr: "setup script workshop/setup.d/01-bad.sh failed",
			wantOut: "cannot prepare",
		},
		"files": {
			files:   []map[string]any{{"inline": map[string]any{"paths": map[string]any{"../x": "x"}}}},
			wantErr: "workshop files, item 1",
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig
			cfg.WorkshopFiles = tc.files
			home := startHome(t, cfg)
			var out bytes.Buffer
			err := Run(t.Context(), Options{Home: home, Logger: slog.New(slog.DiscardHandler), Output: &out})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q, want %q", out.String(), tc.wantOut)
			}
			if _, err := os.Stat(filepath.Join(home, AddressFile)); err == nil {
				t.Error("address published by a host that failed its setup")
			}
		})
	}
}
