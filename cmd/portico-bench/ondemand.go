package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// starter is a system that starts servers for users on demand: Portico
// with the local runtime, or the peer.
type starter interface {
	// start asks for a server for user and returns what names it.
	start(ctx context.Context, client *http.Client, user string) (string, error)
	// ready reports whether it is ready; an error when it failed.
	ready(ctx context.Context, client *http.Client, handle string) (bool, error)
	// stop ends it.
	stop(ctx context.Context, client *http.Client, handle string) error
	// settle waits until everything stopped has gone.
	settle(ctx context.Context) error
}

// burstResult is a set of bursts: N concurrent start requests for distinct
// users, each followed until its server is ready.
type burstResult struct {
	Clients    int     `json:"clients"`
	Rounds     int     `json:"rounds"`
	Sessions   int     `json:"sessions"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"` // the sum of the rounds' makespans
	Rate       float64 `json:"ready_per_s"`
	PollMs     float64 `json:"poll_interval_ms"`
	Latency    stats   `json:"latency"` // request to ready
	FirstError string  `json:"first_error,omitempty"`
}

// pollInterval is how often a client polls for readiness at n clients:
// the --poll interval, stretched so that all clients together poll at most
// 2,000 times a second and the polling itself loads the system little.
func (b *bench) pollInterval(n int) time.Duration {
	return max(b.opts.odPoll, time.Duration(n)*500*time.Microsecond)
}

// rounds is how many bursts of n are measured: about 20 sessions, and at
// least two bursts unless there is one client... which gets 20 rounds.
func (b *bench) rounds(n int) int {
	want := 20
	if b.opts.quick {
		want = 3
	}
	r := (want + n - 1) / n
	if !b.opts.quick {
		r = max(r, 2)
	}
	return r
}

// bursts runs the rounds of one level: every round starts n servers at
// once, waits until each is ready (or failed), then stops them all and
// waits until they have gone, so that rounds do not overlap.
func (b *bench) bursts(ctx context.Context, s starter, n int, prefix string, onRound func(round int)) (burstResult, error) {
	poll := b.pollInterval(n)
	res := burstResult{Clients: n, Rounds: b.rounds(n), PollMs: ms(poll)}
	client := newClient(n)
	defer client.CloseIdleConnections()
	var all []time.Duration
	for r := range res.Rounds {
		if onRound != nil {
			onRound(r)
		}
		type one struct {
			handle string
			lat    time.Duration
			err    error
		}
		got := make([]one, n)
		users := make([]string, n)
		for i := range users {
			users[i] = fmt.Sprintf("%s-r%d-%d", prefix, r, i)
		}
		if pr, ok := s.(preparer); ok {
			if err := pr.prepare(ctx, client, users); err != nil {
				return res, fmt.Errorf("creating the users: %w", err)
			}
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				o := &got[i]
				start := time.Now()
				o.handle, o.err = s.start(ctx, client, users[i])
				deadline := start.Add(2 * time.Minute)
				for o.err == nil {
					ok, err := s.ready(ctx, client, o.handle)
					if err != nil {
						o.err = err
						break
					}
					if ok {
						o.lat = time.Since(start)
						break
					}
					if time.Now().After(deadline) {
						o.err = errors.New("not ready after 2 minutes")
						break
					}
					select {
					case <-ctx.Done():
						o.err = ctx.Err()
					case <-time.After(poll):
					}
				}
			})
		}
		wg.Wait()
		makespan := time.Since(t0)
		res.Seconds += makespan.Seconds()
		for _, o := range got {
			if o.err != nil {
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = o.err.Error()
				}
				continue
			}
			all = append(all, o.lat)
		}
		var stopErr error
		var mu sync.Mutex
		var swg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, o := range got {
			if o.handle == "" {
				continue
			}
			swg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := s.stop(ctx, client, o.handle); err != nil {
					mu.Lock()
					stopErr = errors.Join(stopErr, err)
					mu.Unlock()
				}
			})
		}
		swg.Wait()
		if stopErr != nil {
			return res, fmt.Errorf("stopping: %w", stopErr)
		}
		if err := s.settle(ctx); err != nil {
			return res, err
		}
		b.debugf("%s: round %d of %d clients: makespan %s", prefix, r, n, makespan.Round(time.Millisecond))
	}
	res.Sessions = len(all)
	if res.Seconds > 0 {
		res.Rate = float64(res.Sessions) / res.Seconds
	}
	res.Latency = summarise(all)
	return res, nil
}

// porticoStarter starts sessions through the REST API.
type porticoStarter struct{ p *portal }

func (s porticoStarter) start(ctx context.Context, client *http.Client, user string) (string, error) {
	return s.p.requestSession(ctx, client, user, "")
}

func (s porticoStarter) ready(ctx context.Context, client *http.Client, session string) (bool, error) {
	st, err := s.p.status(ctx, client, session)
	switch {
	case err != nil:
		return false, err
	case st == "WAITING" || st == "RUNNING":
		return true, nil
	case st == "STARTING":
		return false, nil
	}
	return false, fmt.Errorf("session %s is %q", session, st)
}

func (s porticoStarter) stop(ctx context.Context, client *http.Client, session string) error {
	return s.p.terminate(ctx, client, session)
}

func (s porticoStarter) settle(ctx context.Context) error { return s.p.waitNoHosts(ctx, time.Minute) }

// onDemandScenario measures on-demand allocation with the local runtime:
// from the REST request to the session host ready (the session's schedule
// says WAITING), N sessions at once for distinct users, on a portal with
// no reserve.
func (b *bench) onDemandScenario(ctx context.Context) error {
	o := b.opts
	b.report.section("on-demand allocation", fmt.Sprintf("LOCAL runtime (a real session host process per session), no reserve, "+
		"capacity 1000, SQLite; a fresh portal per level. Each round, N clients at once request a session for a new user, then "+
		"poll GET /workshops/session/<name>/schedule/ every max(%s, N × 0.5 ms) until its status is WAITING (host ready); the "+
		"sessions are then terminated and their hosts waited out before the next round. Rate = sessions ready / summed "+
		"round makespans.", o.odPoll))
	b.onDemand = map[int]burstResult{}
	var errs []error
	for _, n := range o.odClients {
		res, err := b.onDemandLevel(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("%d clients: %w", n, err))
			continue
		}
		b.onDemand[n] = res
		b.logf("portico on demand, %d clients: %d sessions, %.1f ready/s, p50 %.1f ms, p99 %.1f ms, %d errors",
			n, res.Sessions, res.Rate, res.Latency.P50ms, res.Latency.P99ms, res.Errors)
		c := clientsCase(n)
		x := row{Case: c, Metric: "request → ready p50", Value: res.Latency.P50ms, Unit: "ms", Detail: res}
		if n == 1 {
			x.Target, x.Met = "< 50 ms", met(res.Latency.P50ms < 50)
		}
		if h, ok := b.hostStart(); ok {
			x.Reference, x.RefValue = "host process start → ready p50", h
		}
		b.report.add(x)
		b.report.add(row{Case: c, Metric: "request → ready p99", Value: res.Latency.P99ms, Unit: "ms"})
		x = row{Case: c, Metric: "sessions ready per second", Value: res.Rate, Unit: "/s"}
		if base, ok := b.onDemand[o.odClients[0]]; ok && n != o.odClients[0] {
			x.Reference, x.RefValue = "portico at "+clientsCase(o.odClients[0]), base.Rate
		}
		if n == 64 {
			x.Target, x.Met = "≥ 200/s (or ≥ 10× JupyterHub)", met(res.Rate >= 200)
		}
		if res.Errors > 0 {
			x.Note = fmt.Sprintf("%d failed: %s", res.Errors, res.FirstError)
		}
		b.report.add(x)
	}
	return errors.Join(errs...)
}

func (b *bench) onDemandLevel(ctx context.Context, n int) (burstResult, error) {
	p, err := b.startPortal(ctx, portalConfig{name: fmt.Sprintf("ondemand-%d", n), runtime: "local", capacity: 1000})
	if err != nil {
		return burstResult{}, err
	}
	defer p.stop()
	s := porticoStarter{p}
	// One session first, uncounted: the binary's pages and the store warm.
	if _, err := b.warmStart(ctx, s); err != nil {
		return burstResult{}, fmt.Errorf("warm-up session: %w", err)
	}
	var prof *profiler
	onRound := func(r int) {
		if r == 0 && b.opts.profiled("ondemand", n) {
			prof = b.startProfiles(ctx, p.debugURL, fmt.Sprintf("on-demand allocation at %d clients (first rounds)", n), 2*time.Second)
		}
	}
	res, err := b.bursts(ctx, s, n, fmt.Sprintf("od%d", n), onRound)
	if perr := prof.wait(); err == nil {
		err = perr
	}
	return res, err
}

// warmStart starts and stops one server, uncounted.
func (b *bench) warmStart(ctx context.Context, s starter) (time.Duration, error) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	user := fmt.Sprintf("warm%d", time.Now().UnixNano())
	if pr, ok := s.(preparer); ok {
		if err := pr.prepare(ctx, client, []string{user}); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	h, err := s.start(ctx, client, user)
	if err != nil {
		return 0, err
	}
	for {
		ok, err := s.ready(ctx, client, h)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		if time.Since(t0) > 2*time.Minute {
			return 0, errors.New("not ready after 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(t0)
	if err := s.stop(ctx, client, h); err != nil {
		return d, err
	}
	return d, s.settle(ctx)
}
