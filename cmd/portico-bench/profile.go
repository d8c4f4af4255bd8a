package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sync"
	"time"
)

// profiler takes the profiles --cpuprofile and --memprofile ask for from a
// portal's --debug-listen, over a timed window.
type profiler struct {
	b   *bench
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

// start begins the profiles now, for window (rounded up to whole seconds,
// as net/http/pprof takes them). wait returns once they are written.
func (b *bench) startProfiles(ctx context.Context, debugURL, what string, window time.Duration) *profiler {
	p := &profiler{b: b}
	secs := max(1, int(math.Ceil(window.Seconds())))
	fetch := func(path, file, kind string) {
		if file == "" {
			return
		}
		p.wg.Go(func() {
			err := fetchTo(ctx, fmt.Sprintf("%s%s?seconds=%d", debugURL, path, secs), file)
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				p.err = fmt.Errorf("%s profile: %w", kind, err)
				return
			}
			b.report.Profiles = append(b.report.Profiles, fmt.Sprintf("%s profile of the portal during %s (%d s) in %s (go tool pprof -top %s %s)",
				kind, what, secs, file, b.portico, file))
		})
	}
	fetch("/debug/pprof/profile", b.opts.cpuProfile, "CPU")
	fetch("/debug/pprof/allocs", b.opts.memProfile, "allocation")
	return p
}

func (p *profiler) wait() error {
	if p == nil {
		return nil
	}
	p.wg.Wait()
	return p.err
}

func fetchTo(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
