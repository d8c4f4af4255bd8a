// Command portico is the training portal: `portico serve` runs it. The
// program inside each session is cmd/portico-session; the hidden `portico
// sessionhost` is the same program, for a portal that has none beside it.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/term"

	"github.com/portico-dev/portico/examples"
	"github.com/portico-dev/portico/internal/auth"
	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/config"
	"github.com/portico-dev/portico/internal/forwarded"
	"github.com/portico-dev/portico/internal/httpapi"
	"github.com/portico-dev/portico/internal/metrics"
	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/local"
	"github.com/portico-dev/portico/internal/runtime/noop"
	"github.com/portico-dev/portico/internal/sessionhost"
	"github.com/portico-dev/portico/internal/sessionorigin"
	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/postgres"
	"github.com/portico-dev/portico/internal/store/sqlite"
	"github.com/portico-dev/portico/internal/web"
)

// commands are the subcommands of portico, in the order the usage lists them.
var commands = []command{
	{name: "serve", summary: "run the portal", run: serve},
	{name: "version", summary: "print the version of portico and what it was built from", run: versionCommand},
	// The admin CLI: a client of a running portal's API.
	{name: "sessions", summary: "list, show, extend or terminate sessions of a portal", run: adminRunner("sessions")},
	{name: "environments", summary: "list or refresh the workshop environments of a portal", run: adminRunner("environments")},
	{name: "users", summary: "list the users of a portal", run: adminRunner("users")},
	{name: "token", summary: "print an access token for a portal's API", run: adminRunner("token")},
	{name: "lookup", summary: "serve Educates' lookup-service API in front of several portals", run: lookupService},
	// The program inside each session, run by the portal itself when it
	// finds no portico-session (sessionbinary.go).
	{name: "sessionhost", run: func(args []string, _ io.Writer) error { return sessionhost.Main(args) }},
}

func main() {
	args := os.Args
	// What the debug endpoints show as the command line.
	os.Args = redactedArgs(args)
	os.Exit(runCLI(commands, args[1:], os.Stdout, os.Stderr))
}

const serveDoc = `Usage: portico serve [flags]

Runs the portal. Without --config, the bundled example portal is served. The
database URL may also come from $PORTICO_DATABASE_URL, its password from
$PGPASSWORD or a password file ($PGPASSFILE, ~/.pgpass); the key that seals
config passwords from $PORTICO_SECRET_KEY instead of a file.
`

func serve(args []string, stdout io.Writer) error {
	fs := newFlags("serve", serveDoc)
	configPath := fs.String("config", "", "TrainingPortal and Workshop definitions: a YAML file or a directory (default: the bundled example)")
	dataDir := fs.String("data-dir", "portico-data", "directory for the database and the session homes")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on, HTTP or HTTPS (with --tls-cert or --acme-domain); on every address (:8080) the portal's URL names this machine by its address on the default route")
	publicURL := fs.String("url", "", "public URL of the portal, as people open it (default: from --listen or --acme-domain, logged at start)")
	strict := fs.Bool("strict", false, "refuse definitions with fields Portico does not use (a misspelled capacty, say) instead of warning about them")
	var tf tlsFlags
	fs.StringVar(&tf.certFile, "tls-cert", "", "PEM file of the certificate chain to serve HTTPS with, reloaded when it changes; to serve sessions it must cover *.<session domain> too")
	fs.StringVar(&tf.keyFile, "tls-key", "", "PEM file of the private key of --tls-cert")
	fs.StringVar(&tf.acmeDomain, "acme-domain", "", "public DNS name of the portal: serve HTTPS with certificates from an ACME authority (Let's Encrypt) for it and for the origin of each session, <session>.<domain>")
	fs.StringVar(&tf.acmeEmail, "acme-email", "", "with --acme-domain: contact address of the ACME account, for expiry notices")
	fs.StringVar(&tf.acmeDirectory, "acme-directory", autocert.DefaultACMEDirectory, "with --acme-domain: directory URL of the ACME authority")
	fs.StringVar(&tf.redirectListen, "http-redirect-listen", "", "with HTTPS: address to redirect HTTP to HTTPS on, which also answers ACME's HTTP-01 challenges (default: port 80 of the --listen host when that listens on port 443, else none)")
	hooks := addWebhookFlags(fs)
	defFlags := addDefinitionFlags(fs)
	database := fs.String("database", "", "postgres://... to keep the portal's state in PostgreSQL, shared by replicas (default: $"+envDatabaseURL+", else SQLite in the data directory); without a password in it, pgx reads $PGPASSWORD or the password file ($PGPASSFILE, ~/.pgpass)")
	secretKeyFile := fs.String("secret-key-file", "", "file with the key that seals sessions' config passwords in the database, the base64 of 32 random bytes (default: $"+envSecretKey+", else <data-dir>/secret.key, made on the first start with SQLite; replicas on one PostgreSQL need the same key)")
	runtimeName := fs.String("runtime", "local", "session runtime: local (a process tree per session), kubernetes (a namespace and pod per session) or noop (sessions are rows only and do nothing: for measuring the portal alone and load tests)")
	kubeconfig := fs.String("kubeconfig", "", "with --runtime kubernetes or --definitions kubernetes: kubeconfig of the cluster (default: $KUBECONFIG, else the in-cluster account)")
	sessionImage := fs.String("session-image", defaultSessionImage, "with --runtime kubernetes: session host image of workshops that name none in spec.workshop.image")
	sessionDomain := fs.String("session-domain", "", "domain the sessions are served under, each from <session>.<domain> on the portal's scheme and port: a wildcard DNS name (and certificate) *.<domain> that reaches the portal (default: --ingress-domain, else localhost for a portal on this machine, else the host of --url)")
	ingressDomain := fs.String("ingress-domain", "", "with --runtime kubernetes: $(ingress_domain) of workshop objects (default: the host of --url)")
	sessionBinaryPath := fs.String("session-binary", "", "with --runtime local: the session host program, built from ./cmd/"+sessionBinary+" of the same tree (default: "+sessionBinary+" beside this executable, else this executable itself, whose sessions use more memory)")
	sessionReadOnly := fs.String("session-read-only", "", "comma-separated absolute paths that sandboxed local sessions see read-only, beside /usr, /bin, /lib* and /etc (tools in /opt)")
	debugListen := fs.String("debug-listen", "", "address to serve net/http/pprof and expvar on, apart from the portal (default: off)")
	metricsListen := fs.String("metrics-listen", "", "address to serve Prometheus /metrics on without authentication, apart from the portal, whose own /metrics takes a staff or robot bearer token (default: off)")
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	logLevel := fs.String("log-level", "info", "least severe level logged: debug, info, warn or error")
	trusted := fs.String("trusted-proxies", "", "comma-separated addresses or CIDR prefixes of the proxies in front of the portal (an ingress controller): their X-Forwarded-For names the client whose attempts are limited (default: none, the header is ignored)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := tf.check(); err != nil {
		return err
	}
	if err := defFlags.check(*configPath); err != nil {
		return err
	}
	proxies, err := forwarded.Parse(*trusted)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	log, err := newLogger(os.Stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	if dsn, ok := fromEnv(envDatabaseURL); ok && *database == "" {
		*database = dsn
	}

	if err := privateDir(log, *dataDir); err != nil {
		return err
	}
	release, err := lockDataDir(*dataDir, *database == "")
	if err != nil {
		return err
	}
	defer release()
	if err := privateFile(filepath.Join(*dataDir, generatedFile)); err != nil {
		return err
	}
	secrets, err := secretBox(*secretKeyFile, *dataDir, *database != "")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var (
		defs    *config.Definitions
		cluster *clusterDefinitions
	)
	if *defFlags.source == "kubernetes" {
		defs, cluster, err = loadFromCluster(ctx, log, defFlags, *kubeconfig, *strict)
	} else {
		if *configPath == "" {
			dir := filepath.Join(*dataDir, "examples")
			if err := examples.Extract(dir); err != nil {
				return fmt.Errorf("unpack the bundled example: %w", err)
			}
			*configPath = dir
		}
		defs, err = load(log, *configPath, *strict)
	}
	if err != nil {
		return err
	}
	// Caught from the start: SIGHUP's default action would end the portal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	db, err := openStore(ctx, *database, *dataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	clock, err := portalClock(ctx, log, db)
	if err != nil {
		return err
	}
	stats := metrics.New()
	db = stats.Store(db)
	stats.CollectSessions(db, log)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	url := *publicURL
	if url == "" {
		scheme := "http"
		if tf.enabled() {
			scheme = "https"
		}
		url = defaultURL(scheme, ln.Addr().(*net.TCPAddr), tf.acmeDomain, system)
	}
	domain := cmp.Or(*sessionDomain, *ingressDomain)
	if domain == "" {
		if domain = sslipDomain(url); domain != "" {
			log.Warn("the portal's URL names it by an address, and session origins need a wildcard DNS name: "+
				"sessions are served under sslip.io, whose public DNS maps <session>.<domain> to the address; "+
				"--session-domain or --url name another", "session_domain", domain)
		}
	}
	origins, err := sessionorigin.New(url, domain)
	if err != nil {
		return err
	}

	var rt runtime.Runtime
	switch *runtimeName {
	case "local":
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		command, err := sessionHostCommand(log, exe, *sessionBinaryPath)
		if err != nil {
			return err
		}
		opts := local.Options{Dir: filepath.Join(*dataDir, "sessions"), Command: command, Logger: log}
		// Session homes are the sessions' own: the sandbox shows each
		// only its own, whatever the modes above it.
		if err := privateDir(log, opts.Dir); err != nil {
			return err
		}
		// Sessions never see the definitions (the robot's secret), even
		// where the sandbox shows what holds them (/etc).
		if p, err := filepath.Abs(*configPath); err == nil && *configPath != "" {
			opts.Hide = append(opts.Hide, p)
		}
		if *sessionReadOnly != "" {
			opts.ReadOnly = strings.Split(*sessionReadOnly, ",")
		}
		if rt, err = local.New(opts); err != nil {
			return err
		}
	case "noop":
		log.Warn("noop runtime: sessions are rows only and do nothing")
		rt = noop.New()
	case "kubernetes":
		kr, err := kubeRuntime(log, *kubeconfig, defs.Portal.Name, *sessionImage, *ingressDomain, url)
		if err != nil {
			return err
		}
		defer kr.Close()
		rt = kr
	default:
		return fmt.Errorf("--runtime: %q is not local, kubernetes or noop", *runtimeName)
	}
	if *debugListen != "" {
		if err := serveDebug(ctx, log, *debugListen); err != nil {
			return err
		}
	}
	if *metricsListen != "" {
		if err := serveMetrics(ctx, log, *metricsListen, stats.Handler()); err != nil {
			return err
		}
	}
	host, _ := os.Hostname()
	replica := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), ln.Addr())
	events, hookSecret, err := webhooks(ctx, log, hooks, db, secrets, defs.Portal, url, replica, stats)
	if err != nil {
		return err
	}
	b := broker.New(broker.Options{Store: db, Runtime: rt, Events: cluster.events(events), Outbox: events, Logger: log, URL: url,
		Sessions: origins, Replica: replica, Secrets: secrets, WebhookSecret: hookSecret.String(),
		Observer: stats, Clock: clock}, defs)
	var secure *https
	if tf.enabled() {
		if secure, err = newHTTPS(tf, log, *dataDir, origins, b.SessionExists); err != nil {
			return err
		}
	}
	if err := b.SealPasswords(ctx); err != nil {
		return err
	}
	authn := auth.New(db, clock)

	gen, err := authn.Bootstrap(ctx, defs.Portal)
	if err != nil {
		return fmt.Errorf("set up accounts: %w", err)
	}
	if err := b.Apply(ctx, defs); err != nil {
		return fmt.Errorf("apply definitions: %w", err)
	}
	var terminal io.Writer
	if term.IsTerminal(int(os.Stderr.Fd())) {
		terminal = os.Stderr
	}
	if err := saveGenerated(log, terminal, *dataDir, defs.Portal, gen); err != nil {
		return err
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Run(ctx)
	}()
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		events.Run(ctx)
	}()
	if cluster != nil {
		cluster.run(ctx, b, url, defs.Portal, gen)
	} else {
		go reloadOnHangup(ctx, log, hup, b, *configPath, *strict)
	}

	mux := http.NewServeMux()
	httpapi.Register(mux, b, authn, clock, log)
	httpapi.RegisterHealth(mux, log, readiness(db, rt)...)
	mux.Handle("GET /metrics", httpapi.MetricsHandler(authn, log, stats.Handler()))
	handler := proxies.Handler(httpapi.Observe(web.Handler(mux, b, authn, clock, log), log, stats))
	if secure != nil {
		ln = tls.NewListener(ln, secure.config)
		handler = hsts(handler)
		redirect, err := redirectToHTTPS(url, origins, log)
		if err != nil {
			return err
		}
		if err := serveRedirect(ctx, log, tf.redirectListen, ln.Addr(), secure.challenge(redirect)); err != nil {
			return err
		}
	}
	srv := newServer(handler, log, readTimeout)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("portal serving", "url", url, "sessions", origins.URL("<session>"), "portal", defs.Portal.Name, "data_dir", *dataDir)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	// Before the database closes: attempts cut short are handed back.
	<-delivered
	if *database == "" {
		// A single portal ends its sessions when it stops: nobody could
		// reach them. Replicas on PostgreSQL leave them to the others.
		log.Info("ending sessions")
		ectx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.EndAll(ectx); err != nil {
			log.Error("ending sessions", "err", err)
		}
	}
	log.Info("portal stopped")
	return nil
}

// closingRuntime is a session runtime holding connections (the Kubernetes
// runtime's watches) that end with the portal.
type closingRuntime interface {
	runtime.Runtime
	Close()
}

// serveDebug serves the profiles of net/http/pprof and the variables of
// expvar on a listener of their own, never on the portal's.
func serveDebug(ctx context.Context, log *slog.Logger, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/vars", expvar.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go srv.Serve(ln)
	log.Info("debug endpoints serving", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return nil
}

// openStore opens PostgreSQL when a URL is given, else the SQLite file of
// the data directory. Either way the schema is brought up to date.
func openStore(ctx context.Context, database, dataDir string) (store.Store, error) {
	if strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://") {
		return postgres.Open(ctx, database)
	}
	if database != "" {
		// Not quoted back: it may hold a password.
		return nil, errors.New("--database: not a postgres:// or postgresql:// URL")
	}
	return sqlite.Open(ctx, filepath.Join(dataDir, "portico.db"))
}

// load reads the definitions at path; strict refuses the fields Portico
// does not use, of which it warns otherwise.
func load(log *slog.Logger, path string, strict bool) (*config.Definitions, error) {
	defs, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if strict && len(defs.Unused) > 0 {
		return nil, fmt.Errorf("--strict: %w", errors.Join(defs.Unused...))
	}
	for _, w := range defs.Warnings {
		log.Warn(w)
	}
	return defs, nil
}

// reloadOnHangup re-reads the definitions on SIGHUP. A bad definition is
// rejected and the running one kept.
func reloadOnHangup(ctx context.Context, log *slog.Logger, hup <-chan os.Signal, b *broker.Broker, path string, strict bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			defs, err := load(log, path, strict)
			if err == nil {
				err = b.Apply(ctx, defs)
			}
			if err != nil {
				log.Error("reload rejected; keeping the running definitions", "err", err)
				continue
			}
			log.Info("definitions reloaded", "path", path)
		}
	}
}
