package main

import (
	"bytes"
	"io"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// testCommands is a command table like portico's, with a command whose
// flags are of several kinds.
func testCommands(got *map[string]string) []command {
	return []command{{name: "run", summary: "run it", run: func(args []string, stdout io.Writer) error {
		fs := newFlags("run", "Usage: portico run [flags]\n\nRuns it.\n")
		listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
		strict := fs.Bool("strict", false, "refuse what is doubtful")
		wait := fs.Duration("read-timeout", time.Second, "how long a `request` may take")
		if err := parseFlags(fs, args, stdout); err != nil {
			return err
		}
		*got = map[string]string{"listen": *listen, "strict": ftoa(*strict), "read-timeout": wait.String()}
		return nil
	}}}
}

func ftoa(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestRunCLI(t *testing.T) {
	var got map[string]string
	commands := testCommands(&got)
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // each must appear in stdout
		stderr     []string // each must appear in stderr
		emptyStdio bool     // nothing on stdout
	}{
		{name: "no command", args: nil, code: 2, stderr: []string{"Usage: portico COMMAND", "run it"}, emptyStdio: true},
		{name: "--help", args: []string{"--help"}, code: 0, stdout: []string{"Usage: portico COMMAND", "run it"}},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"Usage: portico COMMAND"}},
		// Before, help exited 1 and `help serve` showed the generic usage.
		{name: "command --help", args: []string{"run", "--help"}, code: 0, stdout: []string{"Usage: portico run [flags]", "--listen", "--strict", "--read-timeout request"}},
		{name: "command -h", args: []string{"run", "-h"}, code: 0, stdout: []string{"Usage: portico run [flags]"}},
		{name: "help command", args: []string{"help", "run"}, code: 0, stdout: []string{"Usage: portico run [flags]", "$PORTICO_READ_TIMEOUT"}},
		{name: "help unknown", args: []string{"help", "nope"}, code: 2, stderr: []string{`unknown command "nope"`}, emptyStdio: true},
		{name: "help two", args: []string{"help", "run", "more"}, code: 2, stderr: []string{"one command at a time"}, emptyStdio: true},
		{name: "unknown command", args: []string{"serv"}, code: 2, stderr: []string{`unknown command "serv"`}, emptyStdio: true},
		// Before, an extra argument was ignored silently.
		{name: "extra argument", args: []string{"run", "extra-arg"}, code: 2, stderr: []string{`unexpected argument "extra-arg"`, "portico help run"}, emptyStdio: true},
		{name: "extra after flags", args: []string{"run", "--listen", ":1", "extra-arg"}, code: 2, stderr: []string{`"extra-arg"`}, emptyStdio: true},
		{name: "unknown flag", args: []string{"run", "--lisen", ":1"}, code: 2, stderr: []string{"-lisen"}, emptyStdio: true},
		{name: "bad flag value", args: []string{"run", "--strict=maybe"}, code: 2, stderr: []string{"-strict"}, emptyStdio: true},
		{name: "runs", args: []string{"run", "--listen", ":9"}, code: 0, emptyStdio: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runCLI(commands, tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tc.emptyStdio && stdout.Len() > 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
		})
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	var got map[string]string
	commands := testCommands(&got)
	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		want   map[string]string
		stderr string
	}{
		{name: "defaults", want: map[string]string{"listen": "127.0.0.1:8080", "strict": "false", "read-timeout": "1s"}},
		{name: "from the environment", env: map[string]string{"PORTICO_LISTEN": ":9", "PORTICO_STRICT": "true", "PORTICO_READ_TIMEOUT": "3s"},
			want: map[string]string{"listen": ":9", "strict": "true", "read-timeout": "3s"}},
		{name: "command line wins", env: map[string]string{"PORTICO_LISTEN": ":9", "PORTICO_STRICT": "true"}, args: []string{"--listen", ":7", "--strict=false"},
			want: map[string]string{"listen": ":7", "strict": "false", "read-timeout": "1s"}},
		{name: "invalid value names the variable", env: map[string]string{"PORTICO_READ_TIMEOUT": "soon"}, code: 2, stderr: "$PORTICO_READ_TIMEOUT"},
		{name: "invalid value not read when the flag is given", env: map[string]string{"PORTICO_READ_TIMEOUT": "soon"}, args: []string{"--read-timeout", "2s"},
			want: map[string]string{"listen": "127.0.0.1:8080", "strict": "false", "read-timeout": "2s"}},
		{name: "other variables ignored", env: map[string]string{"PORTICO_LISTENING": ":9", "LISTEN": ":8"},
			want: map[string]string{"listen": "127.0.0.1:8080", "strict": "false", "read-timeout": "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			got = nil
			var stdout, stderr bytes.Buffer
			if code := runCLI(commands, append([]string{"run"}, tc.args...), &stdout, &stderr); code != tc.code {
				t.Fatalf("exit status %d, want %d (stderr %q)", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			if tc.want == nil {
				return
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("--%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// The help of serve is made from its flag set: every flag serve parses is
// in it, with its variable.
func TestServeHelpListsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runCLI(commands, []string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("serve --help: exit status %d, stderr %q", code, stderr.String())
	}
	help := stdout.String()
	// Two flags the handwritten usage omitted, and the ones of this change.
	for _, name := range []string{"session-domain", "trusted-proxies", "listen", "url", "strict", "tls-cert", "tls-key", "acme-domain", "acme-email", "acme-directory", "http-redirect-listen"} {
		if !strings.Contains(help, "--"+name+" ") || !strings.Contains(help, envName(name)) {
			t.Errorf("serve --help lacks --%s or $%s:\n%s", name, envName(name), help)
		}
	}
}

func TestVersionText(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Path: "github.com/portico-dev/portico", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"},
			{Key: "vcs.time", Value: "2026-12-03T15:00:00Z"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"}}}
	want := "portico v1.2.3\nrevision: abc123 (with uncommitted changes)\ncommit time: 2026-12-03T15:00:00Z\ngo: go1.27.3 linux/arm64\n"
	if got := versionText(info); got != want {
		t.Errorf("versionText = %q, want %q", got, want)
	}
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		stdout.Reset()
		if code := runCLI(commands, args, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "portico ") {
			t.Errorf("%v: exit status %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	if code := runCLI(commands, []string{"version", "extra"}, &stdout, &stderr); code != 2 {
		t.Errorf("version extra: exit status %d, want 2", code)
	}
}
