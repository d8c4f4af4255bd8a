package ratelimit

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ now time.Time }

// failNow and waitNow count a failure and read a wait apart, which Try
// does in one step, so that tests can walk a backoff's states.
func (b *Backoff) failNow(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail(key, b.clock.Now())
}

func (b *Backoff) waitNow(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.wait(key, b.clock.Now())
}

func (c *clock) Now() time.Time { return c.now }

func TestBurstThenRefill(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(c, 3, 1)
	for i := range 3 {
		if d := l.Take("a"); d != 0 {
			t.Fatalf("attempt %d refused within the burst (wait %s)", i+1, d)
		}
	}
	if d := l.Take("a"); d != time.Second {
		t.Fatalf("fourth attempt: wait %s, want 1s", d)
	}
	if l.Take("b") != 0 {
		t.Fatal("another key shares the bucket")
	}
	c.now = c.now.Add(time.Second)
	if l.Take("a") != 0 {
		t.Fatal("no refill after a second")
	}
	if l.Take("a") == 0 {
		t.Fatal("refilled more than the rate")
	}
	l.Refund("a")
	if l.Take("a") != 0 {
		t.Fatal("a refunded attempt cannot be taken again")
	}
}

func TestBackoffDoublesUpToItsCeilingAndForgets(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	b := NewBackoff(c, BackoffPolicy{Free: 2, First: time.Second, Max: 5 * time.Second, Forget: time.Minute})
	var waits []time.Duration
	for range 6 {
		b.failNow("k")
		waits = append(waits, b.waitNow("k"))
	}
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits after 1..6 failures: %v, want %v", waits, want)
		}
	}
	if b.waitNow("other") != 0 {
		t.Fatal("another key waits")
	}
	c.now = c.now.Add(3 * time.Second)
	if d := b.waitNow("k"); d != 2*time.Second {
		t.Fatalf("3 s into a 5 s wait: %s left, want 2s", d)
	}
	c.now = c.now.Add(time.Minute)
	b.failNow("k")
	if d := b.waitNow("k"); d != 0 {
		t.Fatalf("a failure after a quiet minute counts as the first: wait %s", d)
	}
	for range 10 {
		b.failNow("k")
	}
	b.Reset("k")
	if b.waitNow("k") != 0 {
		t.Fatal("Reset left a wait")
	}
	for range 200 {
		b.failNow("many")
	}
	if d := b.waitNow("many"); d != 5*time.Second {
		t.Fatalf("200 failures: wait %s, want the 5 s ceiling", d)
	}
}

// Ten wrong passwords for an account from one address make that address
// wait; the right one from another address goes through, and a success
// forgets the failures.
func TestPasswordsPerAccountAndAddress(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	p := NewPasswords(c)
	for i := range 5 {
		if err := p.Attempt("bob", "a"); err != nil {
			t.Fatalf("attempt %d refused: %v", i+1, err)
		}
	}
	err := p.Attempt("bob", "a")
	var refused *Refused
	if !errors.As(err, &refused) || refused.Seconds() != 1 || !strings.Contains(refused.Reason, "this account from your address") {
		t.Fatalf("sixth attempt at once: %v, want a refusal for a second", err)
	}
	if err := p.Attempt("bob", "b"); err != nil {
		t.Fatalf("bob from another address: %v", err)
	}
	if err := p.Attempt("carol", "a"); err != nil {
		t.Fatalf("another account from the same address: %v", err)
	}
	for range 5 {
		c.now = c.now.Add(5 * time.Minute)
		if err := p.Attempt("bob", "a"); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	}
	if err := p.Attempt("bob", "a"); !errors.As(err, &refused) || refused.After != 32*time.Second {
		t.Fatalf("after ten failures: %v, want a wait of 32 s", err)
	}
	p.Succeeded("bob", "b")
	if err := p.Attempt("bob", "b"); err != nil {
		t.Fatalf("after a success: %v", err)
	}
}

// One address spraying guesses over many accounts stops at the cap;
// other addresses do not, and successes do not count.
func TestPasswordsCapPerAddress(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	p := NewPasswords(c)
	for i := range 100 {
		if err := p.Attempt("admin", "a"); err != nil {
			t.Fatalf("successful login %d refused: %v", i+1, err)
		}
		p.Succeeded("admin", "a")
	}
	n := 0
	for i := range 100 {
		if p.Attempt("user"+string(rune('A'+i)), "a") != nil {
			break
		}
		n++
	}
	if n != int(passwordsPerAddress) {
		t.Fatalf("%d guesses over distinct accounts from one address, want the cap of %v", n, passwordsPerAddress)
	}
	var refused *Refused
	if err := p.Attempt("admin", "a"); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "from your address") {
		t.Fatalf("at the cap: %v", err)
	}
	if err := p.Attempt("admin", "b"); err != nil {
		t.Fatalf("another address at the cap of a: %v", err)
	}
}

// Parallel guesses are counted as they start: no more than the free ones
// get through before the first of them is answered. Many rounds, each
// released at once, so that a check and a count made apart meet.
func TestPasswordsCountParallelGuesses(t *testing.T) {
	for round := range 50 {
		p := NewPasswords(&clock{now: time.Unix(1000, 0)})
		var passed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 40 {
			wg.Go(func() {
				<-start
				if p.Attempt("bob", "a") == nil {
					passed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := int(passed.Load()); n != passwordBackoff.Free {
			t.Fatalf("round %d: %d of 40 parallel guesses checked, want %d", round, n, passwordBackoff.Free)
		}
	}
}

// Keys that carry nothing are forgotten, and no limiter holds more than
// maxKeys however many clients come.
func TestLimitersForget(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(c, 2, 1)
	b := NewBackoff(c, BackoffPolicy{Free: 1, First: time.Second, Max: time.Minute, Forget: time.Hour})
	for i := range pruneFrom {
		l.Take(strconv.Itoa(i))
		b.failNow(strconv.Itoa(i))
	}
	c.now = c.now.Add(2 * time.Hour)
	l.Take("new")
	b.failNow("new")
	if len(l.buckets) != 1 || len(b.keys) != 1 {
		t.Fatalf("after everything refilled and was forgotten: %d buckets, %d failures kept, want 1 each", len(l.buckets), len(b.keys))
	}
	for i := range 3 * maxKeys {
		l.Take(strconv.Itoa(i))
		b.failNow(strconv.Itoa(i))
		if len(l.buckets) > maxKeys || len(b.keys) > maxKeys {
			t.Fatalf("%d keys at once: %d buckets, %d failures kept", i+1, len(l.buckets), len(b.keys))
		}
	}
	// What was kept still counts.
	l.Take("last")
	l.Take("last")
	b.failNow("last")
	if l.Take("last") == 0 || b.waitNow("last") == 0 {
		t.Fatal("the last key's state was lost")
	}
}

func TestRefusedSaysHowLong(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		secs int
		text string
	}{
		{10 * time.Millisecond, 1, "Slow down. Try again in a second."},
		{1500 * time.Millisecond, 2, "Slow down. Try again in 2 seconds."},
		{32 * time.Second, 32, "Slow down. Try again in 32 seconds."},
	} {
		r := Refuse(tc.wait, "Slow down")
		if r.Seconds() != tc.secs || r.Error() != tc.text {
			t.Errorf("Refuse(%s): %d %q, want %d %q", tc.wait, r.Seconds(), r.Error(), tc.secs, tc.text)
		}
	}
}

func TestClientIP(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:5555":                  "192.0.2.7",
		"[::ffff:192.0.2.7]:5555":         "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:443":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443":      "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":               "fe80::/64",
		"not an address":                  "not an address",
		"[2001:db8:1:3:3:4:5:6]:0":        "2001:db8:1:3::/64",
		"198.51.100.1:0":                  "198.51.100.1",
		"[2001:db8:ffff:ffff::9]:8080":    "2001:db8:ffff:ffff::/64",
		"[::1]:8080":                      "::/64",
		"127.0.0.1:8080":                  "127.0.0.1",
		"[2001:db8:1:2::]:1":              "2001:db8:1:2::/64",
		"[2001:db8:0:0:1:0:0:1]:1":        "2001:db8::/64",
		"[2001:0db8:0001:0002:0:0:0:1]:1": "2001:db8:1:2::/64",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		if got := ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", remote, got, want)
		}
	}
}
