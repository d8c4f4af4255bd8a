// Command portico-bench measures how fast and how far Portico goes on one
// machine (issue 6). It starts real `portico serve` processes on loopback,
// each in a temporary directory with generated definitions, drives them
// over HTTP with its own load generator, and prints a table of figures
// (plus JSON and Markdown on request). Every figure is measured in the same
// run as its reference and reported as a ratio to it, because the machines
// it runs on are noisy.
//
//	go run ./cmd/portico-bench                      # every scenario but the peer: a few minutes
//	go run ./cmd/portico-bench --quick              # smoke run, under a minute
//	go run ./cmd/portico-bench --postgres           # reserved allocation and the rush on PostgreSQL too
//	go run ./cmd/portico-bench --peer jupyterhub    # add JupyterHub as the peer (run by hand)
//	go run ./cmd/portico-bench --scenarios reserved --clients 64 --cpuprofile cpu.pprof
//	go run ./cmd/portico-bench --chaos 10m          # the chaos run alone (issue 15; see CHAOS.md)
//	go run ./cmd/portico-bench --kube               # the Kubernetes runtime at scale alone (issue 14 goal 6)
//
// Scenarios (--scenarios, comma-separated):
//
//	reserved  allocation from the reserve (REST session requests by distinct users), noop runtime,
//	          against a trivial Go handler in its own process (the HTTP ceiling) and a raw
//	          single-row update transaction loop (the storage ceiling)
//	rush      N session requests released at once, each by a new user over a new connection, against
//	          a reserve of N (noop runtime; with --postgres also three replicas on one PostgreSQL),
//	          against the trivial handler under the same pattern
//	ondemand  on-demand allocation with the local runtime: request to session host ready
//	catalog   catalog with sessions=true and the user-session listing at 100, 1,000, 10,000 sessions
//	idle      portal CPU per wall second and RSS while holding 1,000 and 10,000 sessions (noop runtime)
//	host      session host RSS when idle and time from process start to ready (local runtime)
//	flood     an unrelated session request alone and while loops post wrong client secrets to the
//	          token endpoints, from one address and from several (noop runtime)
//	peer      JupyterHub doing what ondemand does (also selected by --peer jupyterhub)
//	chaos     three replicas on one PostgreSQL with the local runtime under a rush of requests and
//	          random faults, with an invariant checker (selected alone by --chaos DURATION)
//	kube      a reserve of 1,000 sessions on the Kubernetes runtime against a real kube-apiserver whose
//	          nodes and pods kwok simulates: time to ready, API objects and requests per session, portal
//	          CPU and memory, re-adoption after a restart (selected alone by --kube; in the default run
//	          only when scripts/kube-test-binaries and scripts/kwok-binary have built its binaries)
//
// The catalog and idle scenarios share one portal, filled step by step.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fixedServerArg runs the hidden mode that serves the HTTP ceiling.
const fixedServerArg = "__fixed-server"

var allScenarios = []string{"reserved", "rush", "ondemand", "catalog", "idle", "host", "flood", "peer", "chaos", "kube"}

// optIn are the scenarios that run only when named: the peer is run by
// hand, the chaos run is no measurement, and the kube scenario needs
// binaries built apart (the default run has it when they are there).
var optIn = []string{"peer", "chaos", "kube"}

type options struct {
	portico    string
	scenarios  []string
	peer       string
	postgres   bool
	quick      bool
	jsonOut    string
	mdOut      string
	verbose    bool
	keep       bool
	clients    []int // reserved allocation levels
	odClients  []int // on-demand levels (ondemand and peer)
	counts     []int // catalog and idle checkpoints
	rush       []int // requests (and reserve) of each rush
	warmup     time.Duration
	window     time.Duration
	idleWindow time.Duration
	reserve    int
	hosts      int
	odPoll     time.Duration
	floodLoops int
	cpuProfile string
	memProfile string
	profileAt  string // scenario/level, e.g. reserved/64
	chaos      time.Duration
	faults     []string // kinds the chaos scenario injects, as the report names them

	// The kube scenario.
	kube         bool
	kubeSessions int           // its reserve
	kubeLimit    time.Duration // how long it waits for its reserve, and for re-adoption
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == fixedServerArg {
		if err := fixedServer(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "portico-bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "portico-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("portico-bench", flag.ContinueOnError)
	o := &options{}
	var scenarios, clients, odClients, counts, rushes string
	fs.StringVar(&o.portico, "portico", "", "portico binary to measure (default: go build ./cmd/portico into a temporary directory)")
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios: "+strings.Join(allScenarios, ", ")+" (default: all but peer)")
	fs.StringVar(&o.peer, "peer", "", "peer to measure against: jupyterhub (run by hand; needs apt-get install jupyterhub node-configurable-http-proxy)")
	fs.BoolVar(&o.postgres, "postgres", false, "also run the reserved allocation (one portal) and the rush (three replicas) on a throwaway PostgreSQL server")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: fewer levels, short windows (checks the harness, not timings)")
	fs.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.mdOut, "markdown", "", "write the machine, the command and the table as Markdown to this file")
	fs.BoolVar(&o.verbose, "v", false, "log progress in detail")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directories (portal logs and data)")
	fs.StringVar(&clients, "clients", "", "concurrent clients of the reserved allocation (default 1,16,64,256; quick 1,16)")
	fs.StringVar(&odClients, "ondemand-clients", "", "concurrent clients of on-demand allocation and the peer (default 1,16,64; quick 1,4)")
	fs.StringVar(&counts, "sessions", "", "sessions held for catalog and idle (default 100,1000,10000; quick 100,1000)")
	fs.StringVar(&rushes, "rush", "", "requests released at once in the rush, each against a reserve of as many (default 1000; quick 100; 5000 takes a while on 2 cores)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before each timed window (default 1s; quick 200ms)")
	fs.DurationVar(&o.window, "window", 0, "timed window of each load level (default 5s; quick 1s)")
	fs.DurationVar(&o.idleWindow, "idle-window", 0, "idle window of the idle scenario (default 5s; quick 1s)")
	fs.IntVar(&o.reserve, "reserve", 0, "reserve of the reserved-allocation portal (default 2000; quick 200)")
	fs.IntVar(&o.hosts, "hosts", 0, "session hosts the host scenario starts (default 20; quick 3)")
	fs.DurationVar(&o.odPoll, "poll", 2*time.Millisecond, "interval at which on-demand clients poll a session's schedule")
	fs.IntVar(&o.floodLoops, "flood-loops", 6, "loops posting wrong client secrets in the flood scenario (at most 250)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the portal, taken during --profile-at, to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile (allocs, delta over the window) of the portal, taken during --profile-at, to this file")
	fs.DurationVar(&o.chaos, "chaos", 0, "run the chaos scenario for this long (alone, unless --scenarios names others; default with --scenarios chaos: 10m, quick 20s)")
	faults := fs.String("faults", "", "comma-separated faults of the chaos scenario: "+strings.Join(slices.Sorted(maps.Keys(faultNames)), ", ")+" (default: all)")
	fs.BoolVar(&o.kube, "kube", false, "run the kube scenario (alone, unless --scenarios names others): needs scripts/kube-test-binaries and scripts/kwok-binary")
	fs.IntVar(&o.kubeSessions, "kube-sessions", 0, "reserve of the kube scenario (default 1000; quick 20)")
	fs.DurationVar(&o.kubeLimit, "kube-limit", 15*time.Minute, "how long the kube scenario waits for its reserve to be ready, and for a restarted portal to adopt it")
	fs.StringVar(&o.profileAt, "profile-at", "reserved/64", "scenario/level whose timed window is profiled: reserved/<clients>, reserved-postgres/<clients>, rush/<N>, rush-postgres/<N>, ondemand/<clients>, catalog/<sessions>, idle/<sessions>, kube/<sessions> (the first 30 s of the fill)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./cmd/portico-bench [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(quick, full []int) []int {
		if o.quick {
			return quick
		}
		return full
	}
	var err error
	if o.clients, err = intList(clients, def([]int{1, 16}, []int{1, 16, 64, 256})); err != nil {
		return nil, fmt.Errorf("--clients: %w", err)
	}
	if o.odClients, err = intList(odClients, def([]int{1, 4}, []int{1, 16, 64})); err != nil {
		return nil, fmt.Errorf("--ondemand-clients: %w", err)
	}
	if o.counts, err = intList(counts, def([]int{100, 1000}, []int{100, 1000, 10000})); err != nil {
		return nil, fmt.Errorf("--sessions: %w", err)
	}
	slices.Sort(o.counts)
	if o.rush, err = intList(rushes, def([]int{100}, []int{1000})); err != nil {
		return nil, fmt.Errorf("--rush: %w", err)
	}
	slices.Sort(o.rush)
	durDef := func(v *time.Duration, quick, full time.Duration) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	durDef(&o.warmup, 200*time.Millisecond, time.Second)
	durDef(&o.window, time.Second, 5*time.Second)
	durDef(&o.idleWindow, time.Second, 5*time.Second)
	if o.reserve == 0 {
		o.reserve = 2000
		if o.quick {
			o.reserve = 200
		}
	}
	if o.hosts == 0 {
		o.hosts = 20
		if o.quick {
			o.hosts = 3
		}
	}
	if o.floodLoops < 1 || o.floodLoops > 250 {
		return nil, fmt.Errorf("--flood-loops: %d is not between 1 and 250", o.floodLoops)
	}
	switch o.peer {
	case "", "jupyterhub":
	default:
		return nil, fmt.Errorf("--peer: %q is not jupyterhub", o.peer)
	}
	if o.chaos < 0 {
		return nil, fmt.Errorf("--chaos: %s is negative", o.chaos)
	}
	if o.kubeSessions == 0 {
		o.kubeSessions = 1000
		if o.quick {
			o.kubeSessions = 20
		}
	}
	if o.kubeSessions < 0 {
		return nil, fmt.Errorf("--kube-sessions: %d is negative", o.kubeSessions)
	}
	switch {
	case scenarios == "" && (o.chaos > 0 || o.kube):
		if o.chaos > 0 {
			o.scenarios = append(o.scenarios, "chaos")
		}
		if o.kube {
			o.scenarios = append(o.scenarios, "kube")
		}
	case scenarios == "":
		o.scenarios = slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return slices.Contains(optIn, s) })
		if kubeMissing() == nil {
			o.scenarios = append(o.scenarios, "kube")
		}
	default:
		for _, s := range strings.Split(scenarios, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(allScenarios, s) {
				return nil, fmt.Errorf("--scenarios: unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	if o.kube && !slices.Contains(o.scenarios, "kube") {
		o.scenarios = append(o.scenarios, "kube")
	}
	if o.peer != "" && !slices.Contains(o.scenarios, "peer") {
		o.scenarios = append(o.scenarios, "peer")
	}
	if slices.Contains(o.scenarios, "peer") && o.peer == "" {
		o.peer = "jupyterhub"
	}
	durDef(&o.chaos, 20*time.Second, 10*time.Minute)
	o.faults = faultKinds
	if *faults != "" {
		o.faults = nil
		for _, f := range strings.Split(*faults, ",") {
			kind, ok := faultNames[strings.TrimSpace(f)]
			if !ok {
				return nil, fmt.Errorf("--faults: unknown fault %q (have %s)", f, strings.Join(slices.Sorted(maps.Keys(faultNames)), ", "))
			}
			o.faults = append(o.faults, kind)
		}
	}
	return o, nil
}

func intList(s string, def []int) ([]int, error) {
	if s == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o *options) has(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

// profiled reports whether the timed window of scenario at level is the one
// --cpuprofile and --memprofile are taken in.
func (o *options) profiled(scenario string, level int) bool {
	return (o.cpuProfile != "" || o.memProfile != "") && o.profileAt == fmt.Sprintf("%s/%d", scenario, level)
}
