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

// sessionBinary is the session host program (cmd/portico-session), which
// portals run from beside their own executable.
const sessionBinary = "portico-session"

// hostScenario measures the session host: the time from the local runtime
// spawning it to its answering, and its memory once idle. The harness
// drives the local runtime itself (the portal's code, in this process),
// starting hosts one after the other, so each start is measured alone.
// References: the trivial handler's process, started and measured the same
// way (the floor of any Go server process), and the portal binary run as
// the host (`portico sessionhost`), which every session ran before
// cmd/portico-session and still runs where that is missing. Issue 14's
// goal 5 is checked here: the host's RSS, its start CPU, and the size of
// the portal binary without the Kubernetes runtime.
func (b *bench) hostScenario(ctx context.Context) error {
	o := b.opts
	measured := "`portico sessionhost` (no " + sessionBinary + " beside portico)"
	if b.session != "" {
		measured = "`" + sessionBinary + "`"
	}
	b.report.section("session host", fmt.Sprintf("%d session hosts (%s) started one after the other "+
		"by the local runtime (internal/runtime/local, driven by the harness): time from Start (home directory, "+
		"config, fork/exec) to the host answering /healthz, the first start not counted; then VmRSS and PSS of each "+
		"once all are up and idle for 1 s. "+
		"References: the trivial-handler process of the harness, started and measured the same way; the portal "+
		"binary run as the host (`portico sessionhost`), as every session was before cmd/%s, measured the same way. "+
		"Binary sizes: go build -ldflags=\"-s -w\" of this tree.", o.hosts, measured, sessionBinary))
	command := []string{b.portico, "sessionhost"}
	if b.session != "" {
		command = []string{b.session}
	}
	h, err := b.measureHosts(ctx, "hosts", command)
	if err != nil {
		return err
	}
	var portal *hostFigures
	if b.session != "" {
		if portal, err = b.measureHosts(ctx, "portal-hosts", []string{b.portico, "sessionhost"}); err != nil {
			return fmt.Errorf("portal as host: %w", err)
		}
	}
	b.hostReady = &h.start

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
		h.start.P50ms, h.start.P99ms, h.rss, h.pss, h.cpu, ref.P50ms, refRSS)
	c := fmt.Sprintf("%d hosts", h.hosts)
	b.report.add(row{Case: c, Metric: "RSS per idle host", Value: h.rss, Unit: "MB", Reference: "trivial Go server RSS",
		RefValue: refRSS, Target: "goal 5: < 15 MB", Met: met(h.rss < 15), Detail: h.detail})
	b.report.add(row{Case: c, Metric: "PSS per idle host", Value: h.pss, Unit: "MB", Note: "shared pages divided among the hosts"})
	if h.procs > h.hosts {
		b.report.add(row{Case: c, Metric: "RSS per idle session, all processes", Value: h.allRSS, Unit: "MB",
			Note: fmt.Sprintf("%d processes per session: the host and the sandbox (bubblewrap) around it; PSS %.1f MB",
				h.procs/h.hosts, h.allPSS)})
	}
	b.report.add(row{Case: c, Metric: "start → ready p50", Value: h.start.P50ms, Unit: "ms", Reference: "trivial Go server start → answer",
		RefValue: ref.P50ms, Detail: map[string]any{"host": h.start, "trivial": ref}})
	b.report.add(row{Case: c, Metric: "start → ready p99", Value: h.start.P99ms, Unit: "ms"})
	cpuNote := fmt.Sprintf("utime+stime; %d cores allow at most %.0f host starts/s", gomaxprocs(), float64(gomaxprocs())*1000/max(h.cpu, 0.001))
	if portal == nil {
		b.report.add(row{Case: c, Metric: "CPU per host, start and 1 s idle", Value: h.cpu, Unit: "ms", Note: cpuNote})
	} else {
		b.report.add(row{Case: c, Metric: "CPU per host, start and 1 s idle", Value: h.cpu, Unit: "ms",
			Reference: "`portico sessionhost` CPU", RefValue: portal.cpu, Target: "goal 5: no higher", Met: met(h.cpu <= portal.cpu), Note: cpuNote})
		b.report.add(row{Case: c, Metric: "RSS per idle host, `portico sessionhost`", Value: portal.rss, Unit: "MB",
			Reference: "trivial Go server RSS", RefValue: refRSS, Note: fmt.Sprintf("the portal binary as the host; PSS %.1f MB", portal.pss),
			Detail: portal.detail})
		b.report.add(row{Case: c, Metric: "start → ready p50, `portico sessionhost`", Value: portal.start.P50ms, Unit: "ms",
			Reference: "trivial Go server start → answer", RefValue: ref.P50ms, Detail: portal.start})
	}
	return b.binarySizes(ctx)
}

// hostFigures are the averages of one batch of session hosts.
type hostFigures struct {
	hosts, procs             int
	rss, pss, allRSS, allPSS float64 // MB per host
	cpu                      float64 // ms per host
	start                    stats
	detail                   map[string]any
}

// measureHosts starts o.hosts session hosts with command, one after the
// other, measures them once idle, and stops them.
func (b *bench) measureHosts(ctx context.Context, name string, command []string) (*hostFigures, error) {
	o := b.opts
	dir, err := b.tempDir(name)
	if err != nil {
		return nil, err
	}
	workshop := filepath.Join(dir, "workshop")
	if err := os.MkdirAll(workshop, 0o755); err != nil {
		return nil, err
	}
	rt, err := local.New(local.Options{Dir: filepath.Join(dir, "sessions"), Command: command,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("start %s: %w", name, err)
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
			return nil, err
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
		return nil, fmt.Errorf("%d session hosts running, %d started", hosts, len(names))
	}
	per := func(kb int64) float64 { return float64(kb) / float64(hosts) / 1024 }
	return &hostFigures{hosts: hosts, procs: len(procs), rss: per(rss), pss: per(pss), allRSS: per(allRSS), allPSS: per(allPSS),
		cpu: cpu / float64(hosts) * 1000, start: summarise(lat),
		detail: map[string]any{"command": command, "hosts": hosts, "rss_kb_total": rss, "pss_kb_total": pss, "processes": len(procs),
			"all_rss_kb_total": allRSS, "all_pss_kb_total": allPSS}}, nil
}

// binarySizes reports the sizes of the portal and session host binaries
// built stripped from this tree, with and without the Kubernetes runtime:
// goal 5 wants the portal under 40 MB without it.
func (b *bench) binarySizes(ctx context.Context) error {
	mod, err := moduleRoot()
	if err != nil {
		b.report.note("binary sizes not measured: %v", err)
		return nil
	}
	dir, err := b.tempDir("binaries")
	if err != nil {
		return err
	}
	strip := []string{"-ldflags=-s -w"}
	full, small := filepath.Join(dir, "full"), filepath.Join(dir, "nokubernetes")
	if err := goBuild(ctx, mod, full, strip, "./cmd/portico", "./cmd/"+sessionBinary); err != nil {
		return err
	}
	if err := goBuild(ctx, mod, small, append(strip, "-tags", "nokubernetes"), "./cmd/portico"); err != nil {
		return err
	}
	size := func(path string) (float64, error) {
		fi, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		return float64(fi.Size()) / 1e6, nil
	}
	withKube, err1 := size(filepath.Join(full, "portico"))
	without, err2 := size(filepath.Join(small, "portico"))
	host, err3 := size(filepath.Join(full, sessionBinary))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	b.logf("binaries, stripped: portico %.1f MB, without Kubernetes %.1f MB; %s %.1f MB", withKube, without, sessionBinary, host)
	c := "stripped binaries"
	b.report.add(row{Case: c, Metric: "portal, -tags nokubernetes", Value: without, Unit: "MB", Reference: "portal with the Kubernetes runtime",
		RefValue: withKube, Target: "goal 5: < 40 MB", Met: met(without < 40)})
	b.report.add(row{Case: c, Metric: "portal", Value: withKube, Unit: "MB", Note: "the default build, with the Kubernetes runtime"})
	b.report.add(row{Case: c, Metric: sessionBinary, Value: host, Unit: "MB", Note: "what every session runs"})
	return nil
}
