package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/forwarded"
	"github.com/portico-dev/portico/internal/httpapi"
	lookupsvc "github.com/portico-dev/portico/internal/lookup"
)

const lookupDoc = `Usage: portico lookup --config FILE [flags]

Serves the REST API of Educates' lookup service (/login, /api/v1/...) in
front of the portals the configuration file lists: front ends log in as a
client, list a tenant's workshops and request sessions, and the service asks
each portal's REST API as its robot. The file lists clients, tenants and
clusters of portals; see "Educates' lookup service" in the README.
`

func lookupService(args []string, stdout io.Writer) error {
	fs := newFlags("lookup", lookupDoc)
	configPath := fs.String("config", "", "the lookup service's configuration: clients, tenants and clusters of portals (YAML; required)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve the API on (HTTP: put a TLS proxy in front)")
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	logLevel := fs.String("log-level", "info", "least severe level logged: debug, info, warn or error")
	trusted := fs.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the proxies in front of the service: their X-Forwarded-For names the client whose wrong passwords are limited (default: none, the header is ignored)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *configPath == "" {
		return usageError{errors.New("--config is required")}
	}
	proxies, err := forwarded.Parse(*trusted)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	log, err := newLogger(os.Stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	cfg, err := lookupsvc.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	svc, err := lookupsvc.New(cfg, lookupsvc.Options{Logger: log,
		Backend: func(pc lookupsvc.PortalConfig) (lookupsvc.Backend, error) { return lookupsvc.NewRemote(pc, nil) }})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := newServer(proxies.Handler(httpapi.Observe(lookupsvc.Handler(svc, log), log, nil)), log, readTimeout)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("lookup service serving", "url", "http://"+ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
