package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"
)

// bench is one run of the harness.
type bench struct {
	opts    *options
	portico string // the binary measured
	// session is the session host program beside it, which its portals
	// run; "" when there is none, and they run portico itself.
	session string
	self    string // this program, for its hidden modes
	root    string // temporary directory holding everything the run makes
	out     io.Writer
	report  *report
	started time.Time

	// Results later scenarios refer to.
	onDemand  map[int]burstResult // by clients
	hostReady *stats              // session host process start to ready
}

// hostStart is the p50 of a session host's start, when the host scenario
// has run.
func (b *bench) hostStart() (float64, bool) {
	if b.hostReady == nil {
		return 0, false
	}
	return b.hostReady.P50ms, true
}

func run(ctx context.Context, args []string, out io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	b := &bench{opts: opts, out: out, started: time.Now()}
	b.root, err = os.MkdirTemp("", "portico-bench-")
	if err != nil {
		return err
	}
	defer func() {
		killStrays(b.root)
		if opts.keep {
			fmt.Fprintf(out, "kept %s\n", b.root)
		} else {
			os.RemoveAll(b.root)
		}
	}()
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.portico, err = b.findPortico(ctx); err != nil {
		return err
	}
	if p := filepath.Join(filepath.Dir(b.portico), sessionBinary); isFile(p) {
		b.session = p
	}
	b.report = newReport(opts, args)
	b.logf("portico %s; session host %s; scenarios %s; temporary directory %s", b.portico, cmp.Or(b.session, "the portal itself"),
		strings.Join(opts.scenarios, ","), b.root)

	type step struct {
		name string
		run  func(context.Context) error
	}
	steps := []step{
		{"reserved", b.reservedScenario},
		{"rush", b.rushScenario},
		{"host", b.hostScenario}, // before ondemand, which refers to it
		{"ondemand", b.onDemandScenario},
		{"catalog", b.catalogScenario}, // catalog and idle: one portal
		{"flood", b.floodScenario},
		{"peer", b.peerScenario},
		{"chaos", b.chaosScenario},
		{"kube", b.kubeScenario},
	}
	var errs []error
	for _, s := range steps {
		if s.name == "catalog" && !opts.has("catalog") && !opts.has("idle") || s.name != "catalog" && !opts.has(s.name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		b.logf("== %s", s.name)
		if err := s.run(ctx); err != nil {
			b.logf("%s failed: %v", s.name, err)
			b.report.failed(s.name, err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
		b.logf("== %s done in %s", s.name, time.Since(t0).Round(100*time.Millisecond))
		killStrays(b.root)
	}
	b.report.finish(b.started)
	b.report.print(out)
	if opts.jsonOut != "" {
		if err := b.report.writeJSON(opts.jsonOut); err != nil {
			errs = append(errs, err)
		}
	}
	if opts.mdOut != "" {
		if err := b.report.writeMarkdown(opts.mdOut); err != nil {
			errs = append(errs, err)
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// logf reports progress on stderr; the table goes to out.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%7.1fs  %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) debugf(format string, args ...any) {
	if b.opts.verbose {
		b.logf(format, args...)
	}
}

// findPortico returns --portico, or builds ./cmd/portico and
// ./cmd/portico-session of the module this program runs in, side by side
// as the portal looks for the second.
func (b *bench) findPortico(ctx context.Context) (string, error) {
	if b.opts.portico != "" {
		p, err := exec.LookPath(b.opts.portico)
		if err != nil {
			return "", fmt.Errorf("--portico: %w", err)
		}
		return filepath.Abs(p)
	}
	mod, err := moduleRoot()
	if err != nil {
		return "", fmt.Errorf("find the module to build portico from (or give --portico): %w", err)
	}
	b.logf("building %s/cmd/portico and cmd/%s", mod, sessionBinary)
	if err := goBuild(ctx, mod, b.root, nil, "./cmd/portico", "./cmd/"+sessionBinary); err != nil {
		return "", err
	}
	return filepath.Join(b.root, "portico"), nil
}

// goBuild builds pkgs of the module in mod into the directory out.
func goBuild(ctx context.Context, mod, out string, flags []string, pkgs ...string) error {
	args := append(append([]string{"build", "-o", out + string(filepath.Separator)}, flags...), pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = mod
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// moduleRoot is the nearest directory above the working directory whose
// go.mod declares the portico module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			s := bufio.NewScanner(f)
			ok := s.Scan() && strings.TrimSpace(s.Text()) == "module github.com/portico-dev/portico"
			f.Close()
			if ok {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/portico-dev/portico above the working directory")
		}
		dir = parent
	}
}

// tempDir makes a directory for one portal or server under the run's root.
func (b *bench) tempDir(name string) (string, error) {
	return os.MkdirTemp(b.root, name+"-")
}

func gomaxprocs() int { return goruntime.GOMAXPROCS(0) }
