// Package ratelimit bounds how often one client may try something costly
// or guessable: a token bucket per key (usually the client's address), a
// growing delay per key after failures, and the error that tells the
// client how long to wait.
//
// The state lives in one process, which bounds the rate per replica: a
// portal of N replicas lets N times as much through, which is still far
// too little to guess a password or fill a workshop.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Clock is the time source, so tests can move time.
type Clock interface{ Now() time.Time }

// Keys a limiter holds. Past pruneFrom it forgets the keys that carry
// nothing any more (a full bucket, old failures), then waits until it
// holds twice as many before it looks again, so that looking costs O(1)
// per key added. It never holds more than maxKeys: clients from more
// addresses than that at once (an IPv6 block walked /64 by /64) make it
// forget arbitrary keys, which lets some of them start again from
// nothing, rather than take the portal's memory.
const pruneFrom, maxKeys = 10_000, 200_000

// bound applies pruneFrom and maxKeys to m; *next is the size at which it
// looks again.
func bound[V any](m map[string]V, next *int, stale func(V) bool) {
	if len(m) < max(*next, pruneFrom) {
		return
	}
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= maxKeys/2 {
			break
		}
		delete(m, k)
	}
	*next = min(2*len(m), maxKeys)
}

// Limiter is a token bucket per key.
type Limiter struct {
	mu      sync.Mutex
	clock   Clock
	burst   float64
	rate    float64 // tokens per second
	buckets map[string]*bucket
	next    int // see bound
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter that allows burst attempts at once per key and
// refills at rate attempts per second.
func New(clock Clock, burst, rate float64) *Limiter {
	return &Limiter{clock: clock, burst: burst, rate: rate, buckets: map[string]*bucket{}}
}

// Take takes one attempt from key's bucket and returns 0, or, when the
// bucket is empty, takes nothing and returns how long until it is not.
func (l *Limiter) Take(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	if b.tokens < 1 {
		return l.until(b)
	}
	b.tokens--
	return 0
}

// Refund gives back an attempt taken for something that turned out not to
// count.
func (l *Limiter) Refund(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	b.tokens = min(l.burst, b.tokens+1)
}

func (l *Limiter) until(b *bucket) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - b.tokens) / l.rate * float64(time.Second)))
}

// bucket returns key's bucket, refilled up to now. l.mu is held.
func (l *Limiter) bucket(key string) *bucket {
	now := l.clock.Now()
	b, ok := l.buckets[key]
	if !ok {
		// A bucket that has refilled is the same as a new one.
		bound(l.buckets, &l.next, func(b *bucket) bool {
			return b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst
		})
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}

// Backoff makes a key wait longer after each failure: the first few
// failures cost nothing (typos), then each one doubles the wait before
// the next attempt, up to a ceiling. A key without failures for a while
// starts again from nothing.
type Backoff struct {
	mu     sync.Mutex
	clock  Clock
	policy BackoffPolicy
	keys   map[string]*failures
	next   int // see bound
}

// BackoffPolicy is the shape of a Backoff's delays.
type BackoffPolicy struct {
	Free   int           // failures that cost no wait
	First  time.Duration // wait after the first failure beyond Free
	Max    time.Duration // longest wait
	Forget time.Duration // failures older than this no longer count
}

type failures struct {
	n    int
	last time.Time
}

// NewBackoff returns a Backoff with policy.
func NewBackoff(clock Clock, policy BackoffPolicy) *Backoff {
	return &Backoff{clock: clock, policy: policy, keys: map[string]*failures{}}
}

// Try returns how long key must wait, or, when it may try now, counts the
// attempt as a failure and returns 0: one step, so that attempts made in
// parallel cannot all pass the check before any of them is counted.
func (b *Backoff) Try(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	if d := b.wait(key, now); d > 0 {
		return d
	}
	b.fail(key, now)
	return 0
}

// wait returns how long key must wait at now; b.mu is held.
func (b *Backoff) wait(key string, now time.Time) time.Duration {
	f := b.keys[key]
	if f == nil || now.Sub(f.last) >= b.policy.Forget || f.n < b.policy.Free {
		return 0
	}
	delay := b.policy.Max
	if shift := f.n - b.policy.Free; shift < 32 {
		delay = min(delay, b.policy.First<<shift)
	}
	return max(0, f.last.Add(delay).Sub(now))
}

// fail counts a failure of key at now; b.mu is held.
func (b *Backoff) fail(key string, now time.Time) {
	f := b.keys[key]
	if f == nil {
		bound(b.keys, &b.next, func(f *failures) bool { return now.Sub(f.last) >= b.policy.Forget })
		f = &failures{}
		b.keys[key] = f
	}
	if now.Sub(f.last) >= b.policy.Forget {
		f.n = 0
	}
	f.n++
	f.last = now
}

// Reset forgets key's failures.
func (b *Backoff) Reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.keys, key)
}

// Refused is the answer to an attempt over a limit: HTTP 429 with
// Retry-After (httpapi.Status makes it so).
type Refused struct {
	Reason string
	After  time.Duration
}

// Refuse returns the error for an attempt refused for wait, saying why in
// words for the person making it.
func Refuse(wait time.Duration, why string) *Refused {
	r := &Refused{After: wait}
	r.Reason = fmt.Sprintf("%s. Try again in %d seconds.", why, r.Seconds())
	if r.Seconds() == 1 {
		r.Reason = why + ". Try again in a second."
	}
	return r
}

func (e *Refused) Error() string { return e.Reason }

// Seconds is the wait in whole seconds, at least one: what Retry-After
// says.
func (e *Refused) Seconds() int { return max(1, int(math.Ceil(e.After.Seconds()))) }

// ClientIP is the key of the client a request came from: its address, as
// internal/forwarded leaves it in RemoteAddr behind trusted proxies. An
// IPv6 client is its /64, the block one host or home gets, so that a
// client cannot step past its limits by changing its address within it.
func ClientIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

type clientKey struct{}

// WithClient returns ctx carrying the key of the client a request came
// from (ClientIP), for limits kept below the HTTP layer.
func WithClient(ctx context.Context, client string) context.Context {
	return context.WithValue(ctx, clientKey{}, client)
}

// ClientOf returns the client key ctx carries, "" when it carries none:
// every such caller then shares one key, so a missing key tightens the
// limits rather than lifting them.
func ClientOf(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}
