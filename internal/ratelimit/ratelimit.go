// Package ratelimit bounds how often one client may try something costly
// or guessable: a token bucket per key, usually the client's address.
package ratelimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Clock is the time source, so tests can move time.
type Clock interface{ Now() time.Time }

// Limiter is a token bucket per key. It lives in one process, which bounds
// the rate per replica; that is enough to make password guessing
// impractical.
type Limiter struct {
	mu      sync.Mutex
	clock   Clock
	burst   float64
	rate    float64 // tokens per second
	buckets map[string]*bucket
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

// Allow takes one attempt from key's bucket; false when it is empty.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Blocked reports whether key's bucket is empty, taking nothing: with
// Spend, it limits only the attempts that fail.
func (l *Limiter) Blocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bucket(key).tokens < 1
}

// Spend takes one attempt from key's bucket.
func (l *Limiter) Spend(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key)
	b.tokens = max(0, b.tokens-1)
}

// bucket returns key's bucket, refilled up to now. l.mu is held.
func (l *Limiter) bucket(key string) *bucket {
	now := l.clock.Now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 10000 {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}

// prune forgets buckets that have refilled: they are the same as new ones.
func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// ClientIP is the key for a request: the address it came from.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
