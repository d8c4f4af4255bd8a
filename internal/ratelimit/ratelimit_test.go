package ratelimit

import (
	"testing"
	"time"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestBurstThenRefill(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(c, 3, 1)
	for i := range 3 {
		if !l.Allow("a") {
			t.Fatalf("attempt %d refused within the burst", i+1)
		}
	}
	if l.Allow("a") {
		t.Fatal("fourth attempt allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another key shares the bucket")
	}
	c.now = c.now.Add(time.Second)
	if !l.Allow("a") {
		t.Fatal("no refill after a second")
	}
	if l.Allow("a") {
		t.Fatal("refilled more than the rate")
	}
}

func TestBlockedAndSpend(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	l := New(c, 2, 1)
	if l.Blocked("a") {
		t.Fatal("a new key is blocked")
	}
	l.Spend("a")
	l.Spend("a")
	if !l.Blocked("a") || l.Blocked("b") {
		t.Fatal("two spends of a burst of two: a must be blocked, b not")
	}
	c.now = c.now.Add(time.Second)
	if l.Blocked("a") {
		t.Fatal("no refill after a second")
	}
}
