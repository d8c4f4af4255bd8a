package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/portico-dev/portico/internal/runtime"
	"github.com/portico-dev/portico/internal/runtime/local"
)

// hostScenario measures the session host: the time from the local runtime
// spawning it to its answering, and its memory once idle. The harness
// drives the local runtime itself (the portal's code, in this process),
// starting hosts one after the other, so each start is measured alone.
// Reference: the trivial handler's process, started and measured the same
// way (the floor of any Go server process).
func (b *bench) hostScenario(ctx context.Context) error {
	o := b.opts
	b.report.section("session host", fmt.Sprintf("%d session hosts (`portico sessionhost`) started one after the other "+
		"by the local runtime (internal/runtime/local, driven by the harness): time from Start (home directory, "+
		"config, fork/exec) to the host answering /healthz, the first start not counted; then VmRSS and PSS of each "+
		"once all are up and idle for 1 s. "+
		"Reference: the trivial-handler process of the harness, started and measured the same way.", o.hosts))
	dir, err := b.tempDir("hosts")
	if err != nil {
		return err
	}
	workshop := filepath.Join(dir, "workshop")
	if err := os.MkdirAll(workshop, 0o755); err != nil {
		return err
	}
	rt, err := local.New(local.Options{Dir: filepath.Join(dir, "sessions"), Command: []string{b.portico, "sessionhost"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	var (
		names []string
		lat   []time.Duration
	)
	defer func() {
		var wg sync.WaitGroup
		for _, name := range names {
			wg.Go(func() {
				if err := rt.Stop(context.WithoutCancel(ctx), name); err != nil {
					b.logf("stop %s: %v", name, err)
				}
			})
		}
		wg.Wait()
	}()
	for i := range o.hosts {
		name := fmt.Sprintf("%s-s%03d", benchEnv, i+1)
		spec := runtime.Spec{Session: name, ID: fmt.Sprintf("s%03d", i+1), Environment: benchEnv, Workshop: "bench",
			Portal: benchPortal, PortalURL: "http://127.0.0.1:9", SessionURL: "http://" + name + ".localhost:9",
			ConfigPassword: fmt.Sprintf("config-password-%d", i), WorkshopDir: workshop}
		t0 := time.Now()
		_, err := rt.Start(ctx, spec)
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		names = append(names, name)
		if i > 0 || o.hosts == 1 { // the first warms the binary's pages
			lat = append(lat, d)
		}
	}
	time.Sleep(time.Second)
	procs := sessionProcesses(filepath.Join(dir, "sessions"))
	var (
		hosts                    int
		rss, pss, allRSS, allPSS int64
		cpu                      float64
	)
	for _, sp := range procs {
		r, err1 := statusKB(sp.pid, "VmRSS")
		p, err2 := pssKB(sp.pid)
		c, err3 := statCPUSeconds(sp.pid)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		allRSS += r
		allPSS += p
		if sp.host {
			hosts++
			rss += r
			pss += p
			cpu += c
		}
	}
	if hosts != len(names) {
		return fmt.Errorf("%d session hosts running, %d started", hosts, len(names))
	}
	avgCPU := cpu / float64(hosts) * 1000
	start := summarise(lat)
	b.hostReady = &start
	per := func(kb int64) float64 { return float64(kb) / float64(hosts) / 1024 }
	avgRSS, avgPSS := per(rss), per(pss)

	// The reference: a minimal Go server process.
	var refLat []time.Duration
	var refRSS float64
	for i := range 5 {
		t0 := time.Now()
		fx, err := b.startFixedServer(ctx)
		if err != nil {
			return err
		}
		client := newClient(1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fx.url+requestPath("x", ""), nil)
		_, err = do(client, req, http.StatusOK)
		d := time.Since(t0)
		client.CloseIdleConnections()
		if err == nil && i == 4 {
			time.Sleep(time.Second)
			var kb int64
			kb, err = statusKB(fx.pid, "VmRSS")
			refRSS = float64(kb) / 1024
		}
		fx.stop()
		if err != nil {
			return err
		}
		if i > 0 {
			refLat = append(refLat, d)
		}
	}
	ref := summarise(refLat)
	b.logf("session host: start p50 %.1f ms, p99 %.1f ms; RSS %.1f MB, PSS %.1f MB, CPU %.0f ms (trivial process: %.1f ms, %.1f MB)",
		start.P50ms, start.P99ms, avgRSS, avgPSS, avgCPU, ref.P50ms, refRSS)
	c := fmt.Sprintf("%d hosts", hosts)
	b.report.add(row{Case: c, Metric: "RSS per idle host", Value: avgRSS, Unit: "MB", Reference: "trivial Go server RSS",
		RefValue: refRSS, Target: "< 20 MB", Met: met(avgRSS < 20), Detail: map[string]any{"hosts": hosts, "rss_kb_total": rss, "pss_kb_total": pss, "processes": len(procs),
			"all_rss_kb_total": allRSS, "all_pss_kb_total": allPSS}})
	b.report.add(row{Case: c, Metric: "PSS per idle host", Value: avgPSS, Unit: "MB", Note: "shared pages divided among the hosts"})
	if len(procs) > hosts {
		b.report.add(row{Case: c, Metric: "RSS per idle session, all processes", Value: per(allRSS), Unit: "MB",
			Note: fmt.Sprintf("%d processes per session: the host and the sandbox (bubblewrap) around it; PSS %.1f MB",
				len(procs)/hosts, per(allPSS))})
	}
	b.report.add(row{Case: c, Metric: "start → ready p50", Value: start.P50ms, Unit: "ms", Reference: "trivial Go server start → answer",
		RefValue: ref.P50ms, Detail: map[string]any{"host": start, "trivial": ref}})
	b.report.add(row{Case: c, Metric: "start → ready p99", Value: start.P99ms, Unit: "ms"})
	b.report.add(row{Case: c, Metric: "CPU per host, start and 1 s idle", Value: avgCPU, Unit: "ms",
		Note: fmt.Sprintf("utime+stime; %d cores allow at most %.0f host starts/s", gomaxprocs(), float64(gomaxprocs())*1000/max(avgCPU, 0.001))})
	return nil
}
