package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// floodScenario measures what unauthenticated floods of the token
// endpoints cost everyone else (issue 13): the latency of an unrelated
// REST session request, alone and then while loops post wrong client
// secrets to /oauth2/revoke-token/ and /oauth2/token/ as fast as they are
// answered. Each secret is checked with bcrypt; where that happens inside
// the write transaction, every write of the portal waits behind it. The
// loops come from one address, then from one address each (loopback
// addresses 127.0.0.2 and up), since the endpoints are limited per address.
func (b *bench) floodScenario(ctx context.Context) error {
	o := b.opts
	n := o.floodLoops
	b.report.section("credential flood", fmt.Sprintf("GET /workshops/environment/<env>/request/?user=<one user> "+
		"(the same user again: one write transaction that renews the session and adds an activation token) by 1 "+
		"keep-alive client, closed loop, %s warm-up then a %s window: first alone, then while %d loops post wrong "+
		"client secrets without pause, alternately to /oauth2/revoke-token/ and to /oauth2/token/ "+
		"(client_credentials), from one loopback address or from one each; portal on SQLite with the NOOP runtime, a "+
		"fresh portal per case. Reference: the same request alone on the same portal just before. \"checked\" counts "+
		"the flood's requests answered 401 (a bcrypt check ran), \"refused\" those answered 429.",
		o.warmup, o.window, n))
	one := make([]string, n)
	each := make([]string, n)
	for i := range n {
		one[i] = "127.0.0.2"
		each[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	for i, c := range []struct {
		name  string
		addrs []string
	}{
		{fmt.Sprintf("%d loops, one address", n), one},
		{fmt.Sprintf("%d loops, %d addresses", n, n), each},
	} {
		if err := b.floodCase(ctx, fmt.Sprintf("flood-%d", i), c.name, c.addrs); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

func (b *bench) floodCase(ctx context.Context, portalName, name string, addrs []string) error {
	o := b.opts
	p, err := b.startPortal(ctx, portalConfig{name: portalName, runtime: "noop", capacity: 1000, reserved: 1})
	if err != nil {
		return err
	}
	defer p.stop()
	client := newClient(1)
	defer client.CloseIdleConnections()
	steady := func(ctx context.Context, _, _ int) error {
		_, err := p.requestSession(ctx, client, "steady@bench", "0")
		return err
	}
	alone := runLoad(ctx, 1, o.warmup, o.window, nil, steady)
	if alone.Errors > 0 || alone.Requests == 0 {
		return fmt.Errorf("alone: %d requests, %d errors, first: %s", alone.Requests, alone.Errors, alone.FirstError)
	}
	f := startFlood(ctx, p.url, addrs)
	var atOpen floodCounts
	var opened time.Time
	loaded := runLoad(ctx, 1, o.warmup, o.window, func() { atOpen, opened = f.counts(), time.Now() }, steady)
	atClose, secs := f.counts(), time.Since(opened).Seconds()
	f.stop()
	b.logf("%s: p50 %.2f ms → %.2f ms, p99 %.2f ms → %.2f ms; flood %.0f checked/s, %.0f refused/s",
		name, alone.Latency.P50ms, loaded.Latency.P50ms, alone.Latency.P99ms, loaded.Latency.P99ms,
		float64(atClose.checked-atOpen.checked)/secs, float64(atClose.refused-atOpen.refused)/secs)
	if loaded.Errors > 0 || loaded.Requests == 0 {
		return fmt.Errorf("under the flood: %d requests, %d errors, first: %s", loaded.Requests, loaded.Errors, loaded.FirstError)
	}
	if atClose.other > 0 {
		return fmt.Errorf("the flood got %d answers other than 401 and 429, first: %s", atClose.other, atClose.firstOther)
	}
	detail := map[string]any{"alone": alone, "flood": loaded}
	b.report.add(row{Case: name, Metric: "p50 latency", Value: loaded.Latency.P50ms, Unit: "ms",
		Reference: "same request alone", RefValue: alone.Latency.P50ms, Detail: detail})
	b.report.add(row{Case: name, Metric: "p99 latency", Value: loaded.Latency.P99ms, Unit: "ms",
		Reference: "same request alone", RefValue: alone.Latency.P99ms})
	b.report.add(row{Case: name, Metric: "throughput", Value: loaded.Rate, Unit: "req/s",
		Reference: "same request alone", RefValue: alone.Rate})
	b.report.add(row{Case: name, Metric: "flood checked", Value: float64(atClose.checked-atOpen.checked) / secs, Unit: "req/s",
		Note: fmt.Sprintf("%s req/s refused", num(float64(atClose.refused-atOpen.refused)/secs))})
	return nil
}

// flood is loops posting wrong client secrets to the token endpoints.
type flood struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	checked atomic.Int64 // answered 401: a secret was checked
	refused atomic.Int64 // answered 429
	other   atomic.Int64
	first   atomic.Value // string: the first other answer
}

type floodCounts struct {
	checked, refused, other int64
	firstOther              string
}

// startFlood starts a loop per address, each connecting from its address:
// the loops at even places revoke, the others ask for a token.
func startFlood(ctx context.Context, portal string, addrs []string) *flood {
	ctx, cancel := context.WithCancel(ctx)
	f := &flood{cancel: cancel}
	for i, addr := range addrs {
		client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 2,
			DisableCompression:  true,
		}}
		path, form := "/oauth2/revoke-token/", url.Values{"token": {"not-a-token-of-anyone"}}
		if i%2 == 1 {
			path, form = "/oauth2/token/", url.Values{"grant_type": {"client_credentials"}}
		}
		f.wg.Go(func() {
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				f.post(ctx, client, portal+path, form.Encode())
			}
		})
	}
	return f
}

func (f *flood) post(ctx context.Context, client *http.Client, target, body string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, "wrong-"+clientSecret)
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			f.other.Add(1)
			f.first.CompareAndSwap(nil, err.Error())
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		f.checked.Add(1)
	case http.StatusTooManyRequests:
		f.refused.Add(1)
	default:
		f.other.Add(1)
		f.first.CompareAndSwap(nil, fmt.Sprintf("%s: %d", target, resp.StatusCode))
	}
}

func (f *flood) counts() floodCounts {
	first, _ := f.first.Load().(string)
	return floodCounts{f.checked.Load(), f.refused.Load(), f.other.Load(), first}
}

func (f *flood) stop() {
	f.cancel()
	f.wg.Wait()
}
