package webhook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portico-dev/portico/internal/broker"
	"github.com/portico-dev/portico/internal/store"
)

// Defaults of Options.
const (
	DefaultMaxAge  = 24 * time.Hour
	DefaultBackoff = 5 * time.Second
	// maxBackoff bounds the pause between attempts.
	maxBackoff = time.Hour
	// attemptTimeout bounds one attempt, the receiver's answer included.
	attemptTimeout = 15 * time.Second
	// claimTTL is how long a replica holds the rows it claimed: well over
	// one attempt, so that a live replica never loses its rows, and short
	// enough that a dead one's rows are soon retried.
	claimTTL = 4 * attemptTimeout
	// parallel is how many deliveries one replica makes at once; each
	// starts as soon as one ends, so a slow receiver does not hold up the
	// others' deliveries.
	parallel = 16
	// poll bounds the sleep of the loop: rows other replicas add wake
	// nobody here.
	poll = 2 * time.Second
	// keep is how long the delivery log keeps finished deliveries.
	keep = 7 * 24 * time.Hour
	// maxError bounds the error kept for the delivery log.
	maxError = 300
)

// Options configure a Sender.
type Options struct {
	Store  store.Store
	Portal Portal
	// URL is the portal's own webhook, which gets every event; empty for
	// none. The operator chose it: it may be on any address.
	URL    string
	Secret Secret
	// Replica names this process among the portal's replicas in claims.
	Replica string
	Clock   broker.Clock
	Log     *slog.Logger
	// MaxAge is how long a delivery is retried before it is given up
	// (default DefaultMaxAge).
	MaxAge time.Duration
	// Backoff is the pause before the first retry (default
	// DefaultBackoff); each retry waits about twice as long as the one
	// before, up to an hour.
	Backoff time.Duration
	// AllowPrivate lets sessions' analytics URLs reach loopback, private
	// and link-local addresses: for a front end on the portal's own
	// network. Off, only public addresses.
	AllowPrivate bool
	// Observe, when set, is told the outcome of every attempt (for
	// metrics); it must not block.
	Observe func(Attempt)
}

// The outcomes of an attempt.
const (
	Delivered = "delivered" // the receiver answered 2xx
	Retry     = "retry"     // another attempt follows
	Failed    = "failed"    // given up: no attempt follows
)

// Attempt is the outcome of one attempt at a delivery.
type Attempt struct {
	Event string
	// Outcome is Delivered, Retry or Failed.
	Outcome string
	Status  int // HTTP status, 0 when none came
	Latency time.Duration
}

// Sender keeps events in the outbox and delivers them.
type Sender struct {
	store   store.Store
	portal  Portal
	global  string
	secret  Secret
	replica string
	clock   broker.Clock
	log     *slog.Logger
	maxAge  time.Duration
	backoff time.Duration
	observe func(Attempt)

	// open posts to the operator's URL; guarded to the sessions' URLs.
	open, guarded *http.Client
	wake          chan struct{}
	// busy holds a token per delivery under way.
	busy     chan struct{}
	underway sync.WaitGroup
}

var (
	_ broker.Outbox = (*Sender)(nil)
	_ broker.Events = (*Sender)(nil)
)

// New returns a Sender; Run delivers.
func New(opts Options) *Sender {
	s := &Sender{store: opts.Store, portal: opts.Portal, global: opts.URL, secret: opts.Secret,
		replica: opts.Replica, clock: cmp.Or[broker.Clock](opts.Clock, broker.SystemClock),
		log: cmp.Or(opts.Log, slog.Default()), maxAge: cmp.Or(opts.MaxAge, DefaultMaxAge),
		backoff: cmp.Or(opts.Backoff, DefaultBackoff), observe: opts.Observe, wake: make(chan struct{}, 1),
		busy: make(chan struct{}, parallel)}
	s.open = client(nil)
	s.guarded = s.open
	if !opts.AllowPrivate {
		s.guarded = client(publicOnly)
	}
	return s
}

// client posts without following redirects (a receiver answers 2xx or the
// attempt failed) and without a proxy from the environment, which would
// make the destination check see the proxy's address instead.
func client(control func(string, string, syscall.RawConn) error) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: control}
	return &http.Client{
		Timeout: attemptTimeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (s *Sender) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers due rows until ctx ends: woken when this process commits
// events, when the earliest pending row is due, and every few seconds for
// the rows of other replicas. Rows are claimed (a write) only when some
// are due.
func (s *Sender) Run(ctx context.Context) {
	// Returns once every claimed row has been recorded or handed back.
	defer s.underway.Wait()
	lastSweep := time.Time{}
	for ctx.Err() == nil {
		wait, err := s.untilNext(ctx)
		if err == nil && wait == 0 {
			var n int
			n, err = s.deliverDue(ctx)
			if n > 0 && err == nil {
				continue // more may be due
			}
			// Due, yet nothing claimed: every hand is busy (the one that
			// ends nudges), or another replica is claiming.
			wait = poll
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("webhook deliveries", "err", err)
			}
			wait = poll
		}
		if now := s.clock.Now(); now.Sub(lastSweep) > time.Hour {
			lastSweep = now
			s.sweep(ctx, now)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// untilNext is how long until a pending row is due: 0 when one is, at
// most poll.
func (s *Sender) untilNext(ctx context.Context) (time.Duration, error) {
	var next time.Time
	err := s.store.View(ctx, func(tx store.Tx) (err error) {
		next, err = tx.NextWebhook()
		return err
	})
	if err != nil || next.IsZero() {
		return poll, err
	}
	return min(max(next.Sub(s.clock.Now()), 0), poll), nil
}

// sweep forgets deliveries finished long ago.
func (s *Sender) sweep(ctx context.Context, now time.Time) {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.DeleteWebhooks(now.Add(-keep))
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("webhook log cleanup", "err", err)
	}
}

// deliverDue claims as many due rows as there are free hands and starts
// an attempt at each.
func (s *Sender) deliverDue(ctx context.Context) (int, error) {
	free := cap(s.busy) - len(s.busy)
	if free == 0 {
		return 0, nil
	}
	var due []store.Webhook
	err := s.store.Update(ctx, func(tx store.Tx) (err error) {
		due, err = tx.ClaimWebhooks(s.replica, s.clock.Now(), claimTTL, free)
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, w := range due {
		s.busy <- struct{}{}
		s.underway.Go(func() {
			defer s.nudge() // a hand is free
			defer func() { <-s.busy }()
			s.deliver(ctx, w)
		})
	}
	return len(due), nil
}

// deliver makes one attempt and records its outcome. An attempt cut short
// by shutdown is not one: the row is handed back as it was, for the next
// start or another replica.
func (s *Sender) deliver(ctx context.Context, w store.Webhook) {
	start := s.clock.Now()
	status, err := s.post(ctx, w, start)
	if ctx.Err() != nil {
		s.finish(w)
		return
	}
	now := s.clock.Now()
	a := Attempt{Event: w.Event, Status: status, Latency: now.Sub(start)}
	w.Attempts++
	w.LastStatus = status
	switch next := now.Add(s.pause(w.Attempts)); {
	case err == nil:
		w.State, w.Done, w.NextAt, w.LastError = store.WebhookDelivered, now, time.Time{}, ""
		a.Outcome = Delivered
	case errors.Is(err, errDestination) || next.Sub(w.Created) > s.maxAge:
		w.State, w.Done, w.NextAt, w.LastError = store.WebhookFailed, now, time.Time{}, errorText(err)
		a.Outcome = Failed
		s.log.Warn("webhook delivery given up", "id", w.ID, "event", w.Event, "webhook", Origin(w.URL),
			"attempts", w.Attempts, "err", w.LastError)
	default:
		w.NextAt, w.LastError = next, errorText(err)
		a.Outcome = Retry
		s.log.Info("webhook delivery failed; will retry", "id", w.ID, "event", w.Event, "webhook", Origin(w.URL),
			"attempt", w.Attempts, "retry_at", next.UTC().Format(time.RFC3339), "err", w.LastError)
	}
	s.finish(w)
	if s.observe != nil {
		s.observe(a)
	}
}

// finish records an outcome, whatever the state of the context that
// claimed the row: a delivered row left claimed would be sent again.
func (s *Sender) finish(w store.Webhook) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.store.Update(ctx, func(tx store.Tx) error { return tx.FinishWebhook(w, s.replica) })
	if errors.Is(err, store.ErrConflict) {
		// The claim ran out and another replica has the row: it decides.
		return
	}
	if err != nil {
		s.log.Warn("webhook outcome not recorded; the delivery will be repeated", "id", w.ID, "err", err)
	}
}

// pause is the wait before retry n (n ≥ 1): the backoff doubled n-1
// times, up to maxBackoff, of which a random half is taken off so that
// retries of many deliveries spread out.
func (s *Sender) pause(n int) time.Duration {
	d := s.backoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt: 2xx is success, anything else an error.
func (s *Sender) post(ctx context.Context, w store.Webhook, now time.Time) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, strings.NewReader(w.Body))
	if err != nil {
		return 0, withoutURL(err)
	}
	ts := now.Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Portico-Webhooks")
	req.Header.Set("webhook-id", w.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", s.secret.Sign(w.ID, ts, []byte(w.Body)))
	c := s.open
	if w.Guarded {
		c = s.guarded
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, withoutURL(err)
	}
	// Drained a little, so the connection may be reused; a receiver's
	// answer is not read beyond that.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return resp.StatusCode, nil
}

// errorText is an error as the delivery log keeps it: bounded, valid
// UTF-8 (a receiver's name may be anything).
func errorText(err error) string {
	text := strings.ToValidUTF8(err.Error(), "?")
	if len(text) > maxError {
		text = strings.ToValidUTF8(text[:maxError], "") + "…"
	}
	return text
}
