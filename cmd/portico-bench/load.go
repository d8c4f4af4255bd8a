package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// stats summarises latencies.
type stats struct {
	N      int     `json:"n"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

func summarise(lat []time.Duration) stats {
	if len(lat) == 0 {
		return stats{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	// Nearest rank.
	q := func(p float64) float64 {
		i := int(p*float64(len(lat))+0.999999) - 1
		return ms(lat[min(max(i, 0), len(lat)-1)])
	}
	return stats{N: len(lat), P50ms: q(0.50), P90ms: q(0.90), P99ms: q(0.99), MaxMs: ms(lat[len(lat)-1]),
		MeanMs: ms(sum / time.Duration(len(lat)))}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadResult is one closed-loop load level.
type loadResult struct {
	Clients    int     `json:"clients"`
	Requests   int     `json:"requests"` // completed in the window
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Rate       float64 `json:"rate_per_s"`
	Latency    stats   `json:"latency"`
	FirstError string  `json:"first_error,omitempty"`
}

// op is one request of a load level: worker is the client's number, seq
// counts that client's requests from 0.
type op func(ctx context.Context, worker, seq int) error

// runLoad runs clients concurrent closed-loop clients: each sends its next
// request as soon as the previous one is answered. They run for warmup, then
// for window, which is what counts: requests completed in the window, with
// their latencies. onWindow, if set, is called as the window opens.
func runLoad(ctx context.Context, clients int, warmup, window time.Duration, onWindow func(), do op) loadResult {
	type acc struct {
		lat      []time.Duration
		errs     int
		firstErr error
	}
	accs := make([]acc, clients)
	start := time.Now()
	from, end := start.Add(warmup), start.Add(warmup+window)
	ctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			a := &accs[w]
			a.lat = make([]time.Duration, 0, 1024)
			for seq := 0; ; seq++ {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				err := do(ctx, w, seq)
				t1 := time.Now()
				if t1.Before(from) || t1.After(end) {
					continue
				}
				if err != nil {
					a.errs++
					if a.firstErr == nil {
						a.firstErr = err
					}
					continue
				}
				a.lat = append(a.lat, t1.Sub(t0))
			}
		})
	}
	if onWindow != nil {
		wg.Go(func() {
			select {
			case <-time.After(time.Until(from)):
				onWindow()
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	res := loadResult{Clients: clients, Seconds: window.Seconds()}
	var all []time.Duration
	for _, a := range accs {
		all = append(all, a.lat...)
		res.Errors += a.errs
		if a.firstErr != nil && res.FirstError == "" {
			res.FirstError = a.firstErr.Error()
		}
	}
	res.Requests = len(all)
	res.Rate = float64(len(all)) / window.Seconds()
	res.Latency = summarise(all)
	return res
}

// newClient is an HTTP client with keep-alive connections for clients
// concurrent users.
func newClient(clients int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        clients + 16,
			MaxIdleConnsPerHost: clients + 16,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 2 * time.Minute,
	}
}

// statusError is an answer other than the one expected.
type statusError struct {
	method, url string
	code        int
	body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.url, e.code, e.body)
}

// do sends a request and reads the whole answer; an answer with another
// status than want is an error.
func do(client *http.Client, req *http.Request, want int) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		if len(body) > 300 {
			body = body[:300]
		}
		return body, &statusError{req.Method, req.URL.String(), resp.StatusCode, string(body)}
	}
	return body, nil
}

// clientsCase names a load level.
func clientsCase(n int) string {
	if n == 1 {
		return "1 client"
	}
	return fmt.Sprintf("%d clients", n)
}
