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
