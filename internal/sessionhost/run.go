// Package sessionhost is the program that runs inside each workshop session:
// it serves the session's config endpoints and reports its activity to the
// portal. The portal binary runs it as the hidden subcommand
// `portico sessionhost`, with the session home as working directory.
package sessionhost

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/atomicfile"
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
}

// Main parses args, the command line after `portico sessionhost`, and runs
// the host until SIGTERM or SIGINT.
func Main(args []string) error {
	fs := flag.NewFlagSet("sessionhost", flag.ContinueOnError)
	home := fs.String("home", "", "session home directory (default: the working directory)")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve HTTP on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sessionhost: unexpected arguments %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return Run(ctx, Options{Home: *home, Listen: *listen})
}

// Run sets the session up (configuration, SSH keys), serves until ctx is
// done, then shuts the server down gracefully. Setup finishes before the
// address is published, so a published address means a ready host.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	home := opts.Home
	if home == "" {
		home = "."
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return err
	}
	cfg, err := ReadConfig(home)
	if err != nil {
		return err
	}
	log = log.With("session", cfg.Session)
	keys, err := loadOrCreateKeys(filepath.Join(home, ".ssh"), cfg.Session)
	if err != nil {
		return fmt.Errorf("ssh keys: %w", err)
	}
	h := newHost(cfg, home, keys, time.Now)

	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
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

	// The listener queues connections already, so the address is usable as
	// soon as it is published.
	addr := ln.Addr().String()
	if err := atomicfile.Write(filepath.Join(home, AddressFile), []byte(addr), 0o600); err != nil {
		srv.Close()
		return fmt.Errorf("publish address: %w", err)
	}
	log.Info("session host serving", "address", addr)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(shutdownCtx) != nil {
		srv.Close() // connections still busy after the grace period
	}
	log.Info("session host stopped")
	return nil
}
