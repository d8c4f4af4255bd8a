package sessionhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/atomicfile"
)

// SetupDir holds the scripts, *.sh, that run once per session, in name
// order, before the host reports ready (the convention of Educates).
const SetupDir = "workshop/setup.d"

// SetupTimeout bounds one setup script; runtimes wait at least this long
// for a host to be ready.
const SetupTimeout = 5 * time.Minute

// runSetupScripts runs the setup scripts of home with env, copying their
// output to out. The first script that fails ends the setup with an error
// that names it; its output is in out.
func runSetupScripts(ctx context.Context, home string, env []string, user *WorkshopUser, out io.Writer) error {
	dir := filepath.Join(home, SetupDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("setup scripts: %w", err)
	}
	var scripts []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sh") && !strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			scripts = append(scripts, e.Name())
		}
	}
	slices.Sort(scripts)
	for _, name := range scripts {
		rel := SetupDir + "/" + name
		fmt.Fprintf(out, "setup: running %s\n", rel)
		if err := runScript(ctx, home, filepath.Join(dir, name), env, user, out); err != nil {
			return fmt.Errorf("setup script %s failed: %w (its output is above)", rel, err)
		}
	}
	return nil
}

// runScript runs one script: directly when it is executable, so that its
// #! line chooses the interpreter, else with bash (or sh).
func runScript(ctx context.Context, home, script string, env []string, user *WorkshopUser, out io.Writer) error {
	ctx, cancel := context.WithTimeoutCause(ctx, SetupTimeout, fmt.Errorf("timed out after %s", SetupTimeout))
	defer cancel()
	var cmd *exec.Cmd
	if fi, err := os.Stat(script); err == nil && fi.Mode()&0o111 != 0 {
		cmd = exec.CommandContext(ctx, script)
	} else {
		cmd = exec.CommandContext(ctx, shellPath(), script)
	}
	cmd.Dir = home
	cmd.Env = env
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	// A group of its own, so that a timeout ends what the script started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Daemons the script leaves behind may hold out open: do not wait for
	// them longer than this once the script itself is done.
	cmd.WaitDelay = 2 * time.Second
	if err := user.start(cmd); err != nil {
		return err
	}
	err := cmd.Wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// shellPath is bash when there is one, else sh.
func shellPath() string {
	if p, err := exec.LookPath("bash"); err == nil {
		return p
	}
	return "/bin/sh"
}

// once runs step unless marker exists in home, then creates marker: the
// steps of a session's setup run once even when its host restarts.
func once(home, marker string, step func() error) error {
	p := filepath.Join(home, marker)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := step(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(p, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}
