package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// catalogReserve is the reserve of the catalog/idle portal: small, as only
// allocated sessions are listed.
const catalogReserve = 100

// catalogScenario fills one portal (noop runtime) with allocated sessions
// step by step and, at each --sessions checkpoint, measures what it costs
// to hold them while nothing happens (idle) and to list them (catalog).
func (b *bench) catalogScenario(ctx context.Context) error {
	o := b.opts
	maxN := o.counts[len(o.counts)-1]
	p, err := b.startPortal(ctx, portalConfig{name: "catalog", runtime: "noop", capacity: maxN + 10*catalogReserve, reserved: catalogReserve})
	if err != nil {
		return err
	}
	defer p.stop()
	desc := fmt.Sprintf("one portal on SQLite with the NOOP runtime (sessions are rows only: a fake runtime stands in "+
		"for processes), holding N sessions allocated through the REST API to distinct users (not activated, no "+
		"activation timeout) plus a reserve of %d; the portal is filled step by step and let settle before each checkpoint.", catalogReserve)
	if o.has("idle") {
		b.report.section("idle cost and memory", desc+fmt.Sprintf(" CPU = run time of the portal process's threads (/proc/<pid>/task/*/schedstat) "+
			"over a %s window with no requests, per second of wall time; RSS = VmRSS. Reference: the same portal before any "+
			"session was allocated.", o.idleWindow))
	}
	// Sections are filled in turn: rows go to the last section added, so
	// idle and catalog rows are collected apart and added at the end.
	var idleRows, catalogRows []row
	var base idleResult
	idleAt := map[int]idleResult{}
	if o.has("idle") {
		if base, err = b.idle(ctx, p, 0); err != nil {
			return err
		}
		b.logf("idle with 0 sessions held: %.4f CPU s/s, RSS %.1f MB", base.CPUPerSecond, base.RSSMB)
	}
	var firstCat, firstUser stats
	held := 0
	users := []string{}
	for _, n := range o.counts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t0 := time.Now()
		added, err := b.fill(ctx, p, held, n)
		users = append(users, added...)
		if err != nil {
			return fmt.Errorf("allocating sessions %d to %d: %w", held, n, err)
		}
		held = n
		b.logf("holding %d sessions (filled in %s)", n, time.Since(t0).Round(100*time.Millisecond))
		if err := b.settle(ctx, p); err != nil {
			return err
		}
		c := fmt.Sprintf("%d sessions", n)
		if o.has("idle") {
			r, err := b.idle(ctx, p, n)
			if err != nil {
				return err
			}
			b.logf("idle with %d sessions held: %.4f CPU s/s, RSS %.1f MB", n, r.CPUPerSecond, r.RSSMB)
			idleRows = append(idleRows, row{Case: c, Metric: "idle CPU per wall second", Value: r.CPUPerSecond, Unit: "CPU s/s",
				Reference: "0 sessions", RefValue: base.CPUPerSecond, Detail: r})
			if prev, ok := idleAt[n/10]; ok {
				// The growth over ten times fewer sessions. A portal that
				// only renews its lease uses about 0.002 CPU s/s: half of
				// that is allowed as noise.
				x := row{Case: c, Metric: "idle CPU growth", Value: r.CPUPerSecond, Unit: "CPU s/s",
					Reference: fmt.Sprintf("%d sessions", n/10), RefValue: prev.CPUPerSecond}
				if n >= 10000 {
					x.Target = "does not grow with idle sessions (≤ 1.5× + 0.001)"
					x.Met = met(r.CPUPerSecond <= 1.5*prev.CPUPerSecond+0.001)
				}
				idleRows = append(idleRows, x)
			}
			idleAt[n] = r
			idleRows = append(idleRows, row{Case: c, Metric: "portal RSS", Value: r.RSSMB, Unit: "MB", Reference: "0 sessions", RefValue: base.RSSMB,
				Note: fmt.Sprintf("%.1f KB per session held", (r.RSSMB-base.RSSMB)*1024/float64(n))})
		}
		if o.has("catalog") {
			var prof *profiler
			if o.profiled("catalog", n) {
				prof = b.startProfiles(ctx, p.debugURL, fmt.Sprintf("the catalog at %d sessions", n), o.warmup+o.window)
			}
			cat, err := b.latency(ctx, p, "/workshops/catalog/environments/?sessions=true", func(body catalogAnswer) error {
				got := 0
				for _, e := range body.Environments {
					got += len(e.Sessions)
				}
				if got != n {
					return fmt.Errorf("catalog lists %d sessions, %d are allocated", got, n)
				}
				return nil
			})
			if perr := prof.wait(); err == nil {
				err = perr
			}
			if err != nil {
				return err
			}
			usr, err := b.latencyPaths(ctx, p, func() string {
				return "/workshops/user/" + users[rand.IntN(len(users))] + "/sessions/"
			})
			if err != nil {
				return err
			}
			b.logf("%d sessions: catalog p50 %.1f ms p99 %.1f ms; user sessions p50 %.2f ms p99 %.2f ms", n, cat.P50ms, cat.P99ms, usr.P50ms, usr.P99ms)
			if firstCat.N == 0 {
				firstCat, firstUser = cat, usr
			}
			ref := fmt.Sprintf("%d sessions", o.counts[0])
			x := row{Case: c, Metric: "catalog ?sessions=true p50", Value: cat.P50ms, Unit: "ms", Detail: cat}
			if n != o.counts[0] {
				x.Reference, x.RefValue = ref, firstCat.P50ms
			}
			if n >= 10000 {
				x.Target, x.Met = "< 30 ms", met(cat.P50ms < 30)
			}
			catalogRows = append(catalogRows, x)
			x = row{Case: c, Metric: "catalog ?sessions=true p99", Value: cat.P99ms, Unit: "ms"}
			if n >= 10000 {
				x.Target, x.Met = "< 100 ms", met(cat.P99ms < 100)
			}
			catalogRows = append(catalogRows, x)
			x = row{Case: c, Metric: "user's sessions p50", Value: usr.P50ms, Unit: "ms", Detail: usr}
			if n != o.counts[0] {
				x.Reference, x.RefValue = ref, firstUser.P50ms
			}
			if n >= 10000 {
				x.Target, x.Met = "unchanged (ratio ≤ 1.5)", met(usr.P50ms <= 1.5*firstUser.P50ms)
			}
			catalogRows = append(catalogRows, x)
			catalogRows = append(catalogRows, row{Case: c, Metric: "user's sessions p99", Value: usr.P99ms, Unit: "ms"})
		}
	}
	for _, x := range idleRows {
		b.report.add(x)
	}
	if o.has("catalog") {
		b.report.section("catalog and user sessions", desc+fmt.Sprintf(" One client in a loop for %s after a %s warm-up: "+
			"GET /workshops/catalog/environments/?sessions=true (every allocated session, checked), then GET "+
			"/workshops/user/<random holder>/sessions/. Reference: the same at %d sessions.", o.window, o.warmup, o.counts[0]))
		for _, x := range catalogRows {
			b.report.add(x)
		}
	}
	return nil
}

// fill allocates sessions to new users until n are held, 64 requests at a
// time, and returns the users.
func (b *bench) fill(ctx context.Context, p *portal, from, n int) ([]string, error) {
	const clients = 64
	client := newClient(clients)
	defer client.CloseIdleConnections()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		errs  error
		users = make([]string, n-from)
		wg    sync.WaitGroup
	)
	next.Store(int64(from))
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				user := "held-" + strconv.Itoa(i)
				// timeout=0: no activation deadline, held until the
				// workshop's hour is up.
				if _, err := p.requestSession(ctx, client, user, "0"); err != nil {
					mu.Lock()
					errs = errors.Join(errs, err)
					mu.Unlock()
					return
				}
				users[i-from] = user
			}
		})
	}
	wg.Wait()
	if errs != nil {
		return nil, errs
	}
	allocated, _, err := p.environment(ctx)
	if err != nil {
		return nil, err
	}
	if allocated != n {
		return nil, fmt.Errorf("%d sessions allocated, want %d", allocated, n)
	}
	return users, nil
}

// settle waits until the portal has caught up with what was asked of it:
// its database holds no session still to start, stop or give its owner,
// and its CPU use over 250 ms falls under 2%; or 2 minutes have passed. A
// fill faster than the reserve is refilled leaves sessions to start, and
// a moment of low CPU is no sign they have been.
func (b *bench) settle(ctx context.Context, p *portal) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pending, err := p.pending(ctx)
		if err != nil {
			return err
		}
		c0, err := p.cpu()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		c1, err := p.cpu()
		if err != nil {
			return err
		}
		if pending == 0 && (c1-c0)/0.25 < 0.02 {
			return nil
		}
	}
	b.logf("portal still busy after 2 minutes; measuring anyway")
	return nil
}

// idleResult is what holding sessions costs while nothing happens.
type idleResult struct {
	Seconds      float64 `json:"seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPerSecond float64 `json:"cpu_per_second"`
	RSSMB        float64 `json:"rss_mb"`
}

func (b *bench) idle(ctx context.Context, p *portal, n int) (idleResult, error) {
	var prof *profiler
	if b.opts.profiled("idle", n) {
		prof = b.startProfiles(ctx, p.debugURL, fmt.Sprintf("idle with %d sessions held", n), b.opts.idleWindow)
	}
	c0, err := p.cpu()
	if err != nil {
		return idleResult{}, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return idleResult{}, ctx.Err()
	case <-time.After(b.opts.idleWindow):
	}
	c1, err := p.cpu()
	wall := time.Since(t0).Seconds()
	if err != nil {
		return idleResult{}, err
	}
	if err := prof.wait(); err != nil {
		return idleResult{}, err
	}
	kb, err := p.rssKB()
	if err != nil {
		return idleResult{}, err
	}
	return idleResult{Seconds: wall, CPUSeconds: c1 - c0, CPUPerSecond: (c1 - c0) / wall, RSSMB: float64(kb) / 1024}, nil
}

// latency measures one client GETting path in a loop for the window (at
// least 5 times), checking the first answer with check.
func (b *bench) latency(ctx context.Context, p *portal, path string, check func(catalogAnswer) error) (stats, error) {
	var body catalogAnswer
	if err := p.get(ctx, p.ctl, path, &body); err != nil {
		return stats{}, err
	}
	if err := check(body); err != nil {
		return stats{}, err
	}
	return b.latencyPaths(ctx, p, func() string { return path })
}

func (b *bench) latencyPaths(ctx context.Context, p *portal, path func() string) (stats, error) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	var lat []time.Duration
	warm := time.Now().Add(b.opts.warmup)
	end := warm.Add(b.opts.window)
	for time.Now().Before(end) || len(lat) < 5 {
		t0 := time.Now()
		if err := p.get(ctx, client, path(), nil); err != nil {
			return stats{}, err
		}
		if t0.After(warm) {
			lat = append(lat, time.Since(t0))
		}
	}
	return summarise(lat), nil
}
