package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/portico-dev/portico/internal/secret"
)

// reservedCapacity is the workshop capacity of the reserved-allocation
// portals: far more than a run allocates, so capacity never refuses.
const reservedCapacity = 1_000_000

// reservedScenario measures allocation from the reserve: REST session
// requests by distinct users at each --clients level, each level on a fresh
// portal with the noop runtime and a large reserve, next to the trivial
// handler at the same level and the storage ceiling.
func (b *bench) reservedScenario(ctx context.Context) error {
	fx, err := b.startFixedServer(ctx)
	if err != nil {
		return err
	}
	defer fx.stop()
	stores := []string{"sqlite"}
	if b.opts.postgres {
		stores = append(stores, "postgres")
	}
	var errs []error
	for _, store := range stores {
		if err := b.reservedOn(ctx, store, fx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", store, err))
		}
	}
	return errors.Join(errs...)
}

func (b *bench) reservedOn(ctx context.Context, store string, fx *fixed) error {
	o := b.opts
	var pg *pgServer
	name := "reserved allocation"
	profileName := "reserved"
	if store == "postgres" {
		var err error
		if pg, err = b.startPostgres(ctx); err != nil {
			return err
		}
		defer pg.stop()
		name += " (PostgreSQL)"
		profileName = "reserved-postgres"
	}
	b.report.section(name, fmt.Sprintf("GET /workshops/environment/<env>/request/?user=<new user> by N keep-alive clients, "+
		"closed loop, %s warm-up then a %s window; portal on %s with the NOOP runtime (sessions are rows only), reserve %d, "+
		"capacity %d, a fresh portal per level. References: a trivial Go handler serving a fixed JSON answer behind the same "+
		"http.Server settings in its own process (HTTP ceiling), and single-row UPDATE transactions in a loop on one "+
		"connection (storage ceiling).%s", o.warmup, o.window, storeName(store), o.reserve, reservedCapacity, replicasNote(pg != nil)))

	var (
		storage storageResult
		err     error
	)
	if pg != nil {
		storage, err = b.postgresCeiling(ctx, pg, o.warmup, o.window)
	} else {
		storage, err = b.sqliteCeiling(ctx, o.warmup, o.window)
	}
	if err != nil {
		return fmt.Errorf("storage ceiling: %w", err)
	}
	b.logf("%s storage ceiling: %.0f tx/s, p50 %.3f ms", store, storage.Rate, storage.Latency.P50ms)
	b.report.add(row{Case: "1 connection", Metric: "storage ceiling", Value: storage.Rate, Unit: "tx/s",
		Note: fmt.Sprintf("p50 %s ms, p99 %s ms", num(storage.Latency.P50ms), num(storage.Latency.P99ms)), Detail: storage})

	var first, last loadResult
	for _, n := range o.clients {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ceiling := b.fixedLoad(ctx, fx, n)
		b.logf("trivial handler, %d clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms", n, ceiling.Rate, ceiling.Latency.P50ms, ceiling.Latency.P99ms)
		if ceiling.Errors > 0 {
			return fmt.Errorf("trivial handler: %d errors, first: %s", ceiling.Errors, ceiling.FirstError)
		}

		cfg := portalConfig{name: fmt.Sprintf("reserved-%s-%d", store, n), runtime: "noop", capacity: reservedCapacity, reserved: o.reserve}
		if pg != nil {
			if cfg.database, err = pg.newDatabase(ctx); err != nil {
				return err
			}
		}
		p, err := b.startPortal(ctx, cfg)
		if err != nil {
			return err
		}
		client := newClient(n)
		var prof *profiler
		onWindow := func() {}
		if o.profiled(profileName, n) {
			onWindow = func() { prof = b.startProfiles(ctx, p.debugURL, fmt.Sprintf("%s at %d clients", name, n), o.window) }
		}
		res := runLoad(ctx, n, o.warmup, o.window, onWindow, func(ctx context.Context, w, seq int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+requestPath("u"+strconv.Itoa(w)+"-"+strconv.Itoa(seq), ""), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+p.token)
			_, err = do(client, req, http.StatusOK)
			return err
		})
		perr := prof.wait()
		client.CloseIdleConnections()
		_, avail, _ := p.environment(ctx)
		p.stop()
		if perr != nil {
			return perr
		}
		b.logf("portico %s, %d clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors; %d reserved left", store, n, res.Rate, res.Latency.P50ms, res.Latency.P99ms, res.Errors, avail)
		if res.Errors > 0 {
			return fmt.Errorf("%d clients: %d errors, first: %s", n, res.Errors, res.FirstError)
		}
		if res.Requests == 0 {
			return fmt.Errorf("%d clients: no request completed in the window", n)
		}
		if first.Clients == 0 {
			first = res
		}
		last = res
		c := clientsCase(n)
		note := ""
		if avail == 0 {
			note = "reserve ran out: some sessions were made on demand"
		}
		x := row{Case: c, Metric: "throughput", Value: res.Rate, Unit: "req/s", Reference: "trivial handler", RefValue: ceiling.Rate, Note: note,
			Detail: map[string]any{"portico": res, "trivial_handler": ceiling, "reserve_left": avail}}
		if n == 64 {
			// Issue 14, goals 1 (SQLite) and 2 (PostgreSQL, one replica).
			share := 0.5
			if pg != nil {
				share = 0.25
			}
			x.Target, x.Met = fmt.Sprintf("ratio ≥ %g", share), met(res.Rate >= ceiling.Rate*share)
		}
		b.report.add(x)
		b.report.add(row{Case: c, Metric: "throughput", Value: res.Rate, Unit: "req/s", Reference: "storage ceiling", RefValue: storage.Rate})
		b.report.add(row{Case: c, Metric: "p50 latency", Value: res.Latency.P50ms, Unit: "ms", Reference: "trivial handler", RefValue: ceiling.Latency.P50ms})
		x = row{Case: c, Metric: "p99 latency", Value: res.Latency.P99ms, Unit: "ms", Reference: "trivial handler", RefValue: ceiling.Latency.P99ms}
		if n == 64 && pg == nil {
			x.Target, x.Met = "< 20 ms", met(res.Latency.P99ms < 20)
		}
		b.report.add(x)
		if n > first.Clients {
			x := row{Case: c, Metric: "throughput growth", Value: res.Rate, Unit: "req/s", Reference: "portico at " + clientsCase(first.Clients), RefValue: first.Rate}
			if n == 64 {
				x.Target, x.Met = "grows from 1 to 64 (ratio > 1)", met(res.Rate > first.Rate*1.05)
				if pg != nil {
					x.Target, x.Met = "grows from 1 to 64 (ratio ≥ 3)", met(res.Rate >= first.Rate*3)
				}
			}
			b.report.add(x)
		}
	}
	if pg == nil || last.Clients == 0 {
		return nil
	}
	// Goal 2: three replicas on one database serve at least what one does,
	// at the highest level.
	n := last.Clients
	res, avail, err := b.reservedReplicas(ctx, pg, n)
	if err != nil {
		return fmt.Errorf("three replicas: %w", err)
	}
	b.logf("portico postgres, 3 replicas, %d clients: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors; %d reserved left", n, res.Rate, res.Latency.P50ms, res.Latency.P99ms, res.Errors, avail)
	if res.Errors > 0 {
		return fmt.Errorf("three replicas, %d clients: %d errors, first: %s", n, res.Errors, res.FirstError)
	}
	c := clientsCase(n) + ", 3 replicas"
	b.report.add(row{Case: c, Metric: "throughput", Value: res.Rate, Unit: "req/s", Reference: "one replica, " + clientsCase(n),
		RefValue: last.Rate, Target: "ratio ≥ 1", Met: met(res.Rate >= last.Rate),
		Detail: map[string]any{"portico": res, "one_replica": last, "reserve_left": avail}})
	b.report.add(row{Case: c, Metric: "p99 latency", Value: res.Latency.P99ms, Unit: "ms", Reference: "one replica, " + clientsCase(n), RefValue: last.Latency.P99ms})
	return nil
}

// reservedReplicas measures n clients spread evenly over three replicas
// of a portal on one new PostgreSQL database; the first leads and makes
// the reserve.
func (b *bench) reservedReplicas(ctx context.Context, pg *pgServer, n int) (loadResult, int, error) {
	o := b.opts
	dsn, err := pg.newDatabase(ctx)
	if err != nil {
		return loadResult{}, 0, err
	}
	dataDir, err := b.tempDir("reserved-replicas-data")
	if err != nil {
		return loadResult{}, 0, err
	}
	key := secret.NewKey()
	var ps []*portal
	defer func() {
		for _, p := range ps {
			p.stop()
		}
	}()
	for i := range 3 {
		p, err := b.startPortal(ctx, portalConfig{name: fmt.Sprintf("reserved-replica%d-%d", i, n), runtime: "noop",
			capacity: reservedCapacity, reserved: o.reserve, database: dsn, dataDir: dataDir, secretKey: key,
			noReserveWait: i > 0})
		if err != nil {
			return loadResult{}, 0, err
		}
		ps = append(ps, p)
	}
	clients := make([]*http.Client, len(ps))
	for i := range clients {
		clients[i] = newClient(n/len(ps) + 1)
		defer clients[i].CloseIdleConnections()
	}
	res := runLoad(ctx, n, o.warmup, o.window, nil, func(ctx context.Context, w, seq int) error {
		p := ps[w%len(ps)]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+requestPath("u"+strconv.Itoa(w)+"-"+strconv.Itoa(seq), ""), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+p.token)
		_, err = do(clients[w%len(ps)], req, http.StatusOK)
		return err
	})
	_, avail, _ := ps[0].environment(ctx)
	return res, avail, nil
}

func replicasNote(postgres bool) string {
	if !postgres {
		return ""
	}
	return " At the highest level, three replicas of the portal on one new database then serve the same clients, spread evenly."
}

func storeName(store string) string {
	if store == "postgres" {
		return "PostgreSQL (throwaway server, fsync off)"
	}
	return "SQLite (WAL, synchronous=NORMAL)"
}

// fixedLoad measures the trivial handler with n clients sending what the
// portal is sent.
func (b *bench) fixedLoad(ctx context.Context, fx *fixed, n int) loadResult {
	client := newClient(n)
	defer client.CloseIdleConnections()
	return runLoad(ctx, n, b.opts.warmup, b.opts.window, nil, func(ctx context.Context, w, seq int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fx.url+requestPath("u"+strconv.Itoa(w)+"-"+strconv.Itoa(seq), ""), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer token-of-the-same-length-as-a-portal-token-0123456789abcdef")
		_, err = do(client, req, http.StatusOK)
		return err
	})
}
