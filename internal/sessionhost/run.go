// Package sessionhost is the program that runs inside each workshop session.
// It prepares the session (workshop files, setup scripts), then serves what
// a person uses through the portal (the dashboard: instructions, terminals,
// countdown), the session's config endpoints, and its activity for the
// portal's orphaned rule. It is the program cmd/portico-session, which the
// portal runs with the session home as working directory (or the portal
// binary itself, as the hidden `portico sessionhost`, when that is
// missing). Whatever this package imports, every session pays for: a test
// of cmd/portico-session keeps the portal's dependencies out.
//
// The host writes only under the session home and the temporary directory,
// so it runs as it is in a sandbox that makes the rest read-only.
package sessionhost

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/atomicfile"
	"github.com/portico-dev/portico/internal/runtime"
)

// Options configures Run.
type Options struct {
	// Home is the session home; empty means the working directory.
	Home string
	// Listen is the address to serve on; empty means 127.0.0.1:0, a free
	// port chosen by the kernel and published in AddressFile.
	Listen string
	// Logger defaults to a text logger on stderr.
	Logger *slog.Logger
	// Output receives the output of the setup scripts; stderr when nil,
	// where the runtime keeps the host's log.
	Output io.Writer
	// Seed is a directory whose files (SeedConfig, SeedKubeconfig) are
	// copied into the home when it lacks them; empty for none.
	Seed string
	// AllocationFile holds the session's allocation (JSON of
	// runtime.Allocation) once it has an owner; read until then. Empty
	// for none: the owner then comes by POST only.
	AllocationFile string
	// Notify is a pipe to the runtime that started the host, for its notes
	// (see NoteNetwork); nil for none.
	Notify *os.File
}

// Main parses args, the command line after portico-session (or `portico
// sessionhost`), and runs the host until SIGTERM or SIGINT.
func Main(args []string) error {
	fs := flag.NewFlagSet("sessionhost", flag.ContinueOnError)
	home := fs.String("home", "", "session home directory (default: the working directory)")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve HTTP on: host:port, or unix:PATH for a Unix socket")
	seedDir := fs.String("seed", "", "directory of files to copy into a new home (session.json, kubeconfig)")
	allocation := fs.String("allocation-file", "", "file holding the session's allocation once it has an owner")
	notifyFD := fs.Int("notify-fd", -1, "descriptor of a pipe on which to tell the runtime what the host needs as it starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sessionhost: unexpected arguments %q", fs.Args())
	}
	var notify *os.File
	if *notifyFD >= 0 {
		// The host's alone: the workshop's programs do not inherit it.
		syscall.CloseOnExec(*notifyFD)
		notify = os.NewFile(uintptr(*notifyFD), "notify")
		defer notify.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return Run(ctx, Options{Home: *home, Listen: *listen, Seed: *seedDir, AllocationFile: *allocation, Notify: notify})
}

// Run sets the session up (configuration, SSH keys, workshop files, setup
// scripts), serves until ctx is done, then shuts the server down gracefully.
// Setup finishes before the address is published, so a published address
// means a ready host; a setup that fails returns its error, for the runtime
// to report.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	out := opts.Output
	if out == nil {
		out = os.Stderr
	}
	home := opts.Home
	if home == "" {
		home = "."
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return err
	}
	if opts.Seed != "" {
		if err := seed(opts.Seed, home); err != nil {
			return err
		}
	}
	cfg, err := ReadConfig(home)
	if err != nil {
		return err
	}
	if cfg.WorkshopUser != nil {
		if err := refuseInspection(); err != nil {
			return fmt.Errorf("make the host non-dumpable: %w", err)
		}
	}
	log = log.With("session", cfg.Session)
	if cfg.Owner == nil {
		// Allocated before a restart of the host.
		if cfg.Owner, err = loadOwner(home); err != nil {
			return err
		}
	}
	if cfg.Owner == nil && opts.AllocationFile != "" {
		// Allocated while the host was not running or not reachable.
		if cfg.Owner, err = readAllocation(opts.AllocationFile); err != nil {
			return err
		}
	}
	if cfg.ServicesPassword == "" {
		if cfg.ServicesPassword, err = loadOrCreateSecret(filepath.Join(home, servicesPasswordFile)); err != nil {
			return fmt.Errorf("services password: %w", err)
		}
	}
	keys, err := loadOrCreateKeys(filepath.Join(home, ".ssh"), cfg.Session)
	if err != nil {
		return fmt.Errorf("ssh keys: %w", err)
	}
	h := newHost(cfg, home, keys, time.Now)
	h.log = log
	defer h.close()

	// The runtime brings the network up once the host serves, so that its
	// start does not slow the host's: what needs it sooner, fetching files
	// and running setup scripts (which may fetch anything), asks for it and
	// waits. Terminals wait for it too (see terminal).
	notes := &notifier{f: opts.Notify}
	network := func() error {
		if !cfg.Network {
			return nil
		}
		notes.note(NoteNetwork)
		return h.awaitNetwork(ctx)
	}
	err = once(home, filesDoneFile, func() error {
		if fetchesFiles(cfg.WorkshopFiles) {
			if err := network(); err != nil {
				return err
			}
		}
		if err := unpackWorkshopFiles(ctx, cfg, home); err != nil {
			return err
		}
		return cfg.WorkshopUser.handOver(home)
	})
	if err != nil {
		return err
	}
	env, _ := h.values()
	err = once(home, setupDoneFile, func() error {
		if _, err := os.Stat(filepath.Join(home, SetupDir)); err == nil {
			if err := network(); err != nil {
				return err
			}
		}
		return runSetupScripts(ctx, home, environ(env, inheritedEnv()...), cfg.WorkshopUser, out)
	})
	if err != nil {
		return err
	}

	ln, addr, err := listen(opts.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if opts.AllocationFile != "" {
		go h.watchAllocation(ctx, opts.AllocationFile)
	}

	// The listener queues connections already, so the address is usable as
	// soon as it is published.
	if err := atomicfile.Write(filepath.Join(home, AddressFile), []byte(addr), 0o600); err != nil {
		srv.Close()
		return fmt.Errorf("publish address: %w", err)
	}
	log.Info("session host serving", "address", addr)
	notes.note(NoteServing)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Websockets are not waited for by Shutdown: end them first.
	h.close()
	if srv.Shutdown(shutdownCtx) != nil {
		srv.Close() // connections still busy after the grace period
	}
	log.Info("session host stopped")
	return nil
}

// listen opens the host's listener on spec: host:port (127.0.0.1:0 when
// empty), or unix: and a socket path, which is made afresh (a socket left
// by a previous run of the host refuses a new bind). It returns the
// address to publish, as runtime.HostURL reads it.
func listen(spec string) (net.Listener, string, error) {
	if path, ok := runtime.UnixSocket(spec); ok {
		ln, err := runtime.ListenUnix(path)
		if err != nil {
			return nil, "", err
		}
		return ln, runtime.UnixAddress(path), nil
	}
	if spec == "" {
		spec = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", spec)
	if err != nil {
		return nil, "", err
	}
	return ln, ln.Addr().String(), nil
}

// networkTimeout bounds the wait for the session's network.
const networkTimeout = 15 * time.Second

// awaitNetwork waits until the session's network is up, at most
// networkTimeout.
func (h *host) awaitNetwork(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		if h.networkUp() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the session's network did not come up within %s", networkTimeout)
		case <-time.After(delay):
		}
	}
}

// fetchesFiles reports whether an item of files comes from the network.
func fetchesFiles(files []map[string]any) bool {
	for _, item := range files {
		if _, source, err := parseFilesItem(item); err == nil && slices.Contains(remoteSources, source) {
			return true
		}
	}
	return false
}

// hasDefaultRoute reports whether /proc/net/route lists a route to
// 0.0.0.0/0.
func hasDefaultRoute() bool {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		f := strings.Fields(line)
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return true
		}
	}
	return false
}
