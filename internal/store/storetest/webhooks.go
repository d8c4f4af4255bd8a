package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portico-dev/portico/internal/store"
)

func newWebhook(id string, created time.Time) store.Webhook {
	return store.Webhook{ID: id, URL: "https://hooks.example/in?token=t", Event: "Session/Started",
		Body: `{"event":{"name":"Session/Started"}}`, Created: created, State: store.WebhookPending, NextAt: created}
}

func claim(t *testing.T, st store.Store, holder string, now time.Time, limit int) []store.Webhook {
	t.Helper()
	var got []store.Webhook
	update(t, st, func(tx store.Tx) (err error) {
		got, err = tx.ClaimWebhooks(holder, now, time.Minute, limit)
		return err
	})
	return got
}

func ids(ws []store.Webhook) map[string]bool {
	out := map[string]bool{}
	for _, w := range ws {
		out[w.ID] = true
	}
	return out
}

func testWebhooks(t *testing.T, st store.Store) {
	a, b, c := newWebhook("msg_a", at(0)), newWebhook("msg_b", at(time.Second)), newWebhook("msg_c", at(2*time.Second))
	b.Guarded = true
	c.NextAt = at(time.Hour) // a retry, not due yet
	update(t, st, func(tx store.Tx) error {
		for _, w := range []store.Webhook{a, b, c} {
			if err := tx.InsertWebhook(w); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, st, func(tx store.Tx) error {
		wantErr(t, "InsertWebhook of a taken id", tx.InsertWebhook(a), store.ErrConflict)
		return nil
	})

	view(t, st, func(tx store.Tx) error {
		next, err := tx.NextWebhook()
		if err == nil && !next.Equal(at(0)) {
			t.Errorf("NextWebhook = %v, want %v", next, at(0))
		}
		return err
	})

	got := claim(t, st, "A", at(5*time.Second), 10)
	if want := map[string]bool{"msg_a": true, "msg_b": true}; !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("claimed %v, want the due ones %v", ids(got), want)
	}
	for _, w := range got {
		want := a
		if w.ID == "msg_b" {
			want = b
		}
		if !reflect.DeepEqual(w, want) {
			t.Errorf("claimed\n%+v\nwant\n%+v", w, want)
		}
	}
	if again := claim(t, st, "B", at(6*time.Second), 10); len(again) != 0 {
		t.Errorf("rows claimed by A were claimed again: %v", ids(again))
	}
	// While A's claims run, the next one due is when they end.
	view(t, st, func(tx store.Tx) error {
		next, err := tx.NextWebhook()
		if err == nil && !next.Equal(at(5*time.Second+time.Minute)) {
			t.Errorf("NextWebhook = %v, want the end of the claims", next)
		}
		return err
	})

	// A delivers msg_a and fails msg_b once.
	delivered := a
	delivered.State, delivered.Attempts, delivered.LastStatus, delivered.Done, delivered.NextAt =
		store.WebhookDelivered, 1, 204, at(7*time.Second), time.Time{}
	retry := b
	retry.Attempts, retry.LastStatus, retry.LastError, retry.NextAt = 1, 503, "503 Service Unavailable", at(10*time.Second)
	update(t, st, func(tx store.Tx) error {
		wantErr(t, "FinishWebhook by a replica without the claim", tx.FinishWebhook(delivered, "B"), store.ErrConflict)
		if err := tx.FinishWebhook(delivered, "A"); err != nil {
			return err
		}
		wantErr(t, "FinishWebhook twice", tx.FinishWebhook(delivered, "A"), store.ErrConflict)
		return tx.FinishWebhook(retry, "A")
	})
	if got := claim(t, st, "B", at(9*time.Second), 10); len(got) != 0 {
		t.Errorf("claimed before the retry is due: %v", ids(got))
	}
	if got := claim(t, st, "B", at(10*time.Second), 1); len(got) != 1 || !reflect.DeepEqual(got[0], retry) {
		t.Errorf("retry claimed as %+v, want %+v", got, retry)
	}

	view(t, st, func(tx store.Tx) error {
		all, err := tx.Webhooks(10)
		if err != nil {
			return err
		}
		var order []string
		for _, w := range all {
			order = append(order, w.ID)
		}
		if !reflect.DeepEqual(order, []string{"msg_c", "msg_b", "msg_a"}) {
			t.Errorf("Webhooks order %v, want newest first", order)
		}
		if len(all) == 3 && !reflect.DeepEqual(all[2], delivered) {
			t.Errorf("delivered row\n%+v\nwant\n%+v", all[2], delivered)
		}
		if two, err := tx.Webhooks(2); err != nil || len(two) != 2 {
			t.Errorf("Webhooks(2) = %d rows, %v", len(two), err)
		}
		return nil
	})

	// Only finished rows are deleted, and only those finished before t.
	update(t, st, func(tx store.Tx) error {
		n, err := tx.DeleteWebhooks(at(7 * time.Second))
		if err == nil && n != 1 {
			t.Errorf("DeleteWebhooks = %d, want 1", n)
		}
		if n, err := tx.DeleteWebhooks(at(time.Hour)); err != nil || n != 0 {
			t.Errorf("DeleteWebhooks of pending rows = %d, %v", n, err)
		}
		return err
	})
	view(t, st, func(tx store.Tx) error {
		all, err := tx.Webhooks(10)
		if err == nil && len(all) != 2 {
			t.Errorf("%d rows left, want 2", len(all))
		}
		return err
	})
}

// The rows of a replica that died are retried once its claim expires, by
// whoever claims them first, and the dead replica's late outcome is not
// recorded over the new claim.
func testWebhookClaimExpires(t *testing.T, st store.Store) {
	w := newWebhook("msg_x", at(0))
	update(t, st, func(tx store.Tx) error { return tx.InsertWebhook(w) })
	if got := claim(t, st, "dead", at(0), 5); len(got) != 1 {
		t.Fatalf("claimed %d", len(got))
	}
	if got := claim(t, st, "B", at(time.Minute-time.Millisecond), 5); len(got) != 0 {
		t.Fatalf("claimed while the first claim runs")
	}
	got := claim(t, st, "B", at(time.Minute), 5)
	if len(got) != 1 || got[0].ID != "msg_x" {
		t.Fatalf("after the claim expired, claimed %v", ids(got))
	}
	done := got[0]
	done.State, done.Attempts, done.Done = store.WebhookDelivered, 1, at(time.Minute)
	update(t, st, func(tx store.Tx) error {
		wantErr(t, "FinishWebhook by the replica that lost its claim", tx.FinishWebhook(done, "dead"), store.ErrConflict)
		return tx.FinishWebhook(done, "B")
	})
	// A claim in a transaction that rolls back was never made.
	update(t, st, func(tx store.Tx) error { return tx.InsertWebhook(newWebhook("msg_y", at(0))) })
	err := st.Update(context.Background(), func(tx store.Tx) error {
		if got, err := tx.ClaimWebhooks("gone", at(2*time.Minute), time.Hour, 5); err != nil || len(got) != 1 {
			t.Errorf("ClaimWebhooks = %v, %v", ids(got), err)
		}
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	if got := claim(t, st, "C", at(2*time.Minute), 5); len(got) != 1 {
		t.Errorf("claimed %v after a rolled back claim", ids(got))
	}
}

// Replicas claiming at once share the rows out: none is claimed twice.
func testConcurrentWebhookClaims(t *testing.T, st store.Store) {
	const rows = 64
	update(t, st, func(tx store.Tx) error {
		for i := range rows {
			if err := tx.InsertWebhook(newWebhook(fmt.Sprintf("msg_%03d", i), at(time.Duration(i)*time.Millisecond))); err != nil {
				return err
			}
		}
		return nil
	})
	warm(t, st)
	var (
		mu    sync.Mutex
		count = map[string]int{}
	)
	parallel(workers, func(i int) {
		for {
			var got []store.Webhook
			err := st.Update(context.Background(), func(tx store.Tx) (err error) {
				got, err = tx.ClaimWebhooks(fmt.Sprintf("h%d", i), at(time.Second), time.Minute, 3)
				return err
			})
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			if len(got) == 0 {
				return
			}
			mu.Lock()
			for _, w := range got {
				count[w.ID]++
			}
			mu.Unlock()
		}
	})
	if len(count) != rows {
		t.Errorf("%d rows claimed, want %d", len(count), rows)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

func testSettings(t *testing.T, st store.Store) {
	update(t, st, func(tx store.Tx) error {
		got, err := tx.InsertSetting("webhook-secret", "first")
		if err == nil && got != "first" {
			t.Errorf("InsertSetting = %q, want first", got)
		}
		return err
	})
	update(t, st, func(tx store.Tx) error {
		got, err := tx.InsertSetting("webhook-secret", "second")
		if err == nil && got != "first" {
			t.Errorf("InsertSetting over a stored value = %q, want the stored first", got)
		}
		return err
	})
	// Replicas making the value up at once all end with the same.
	warm(t, st)
	vals := make([]string, workers)
	parallel(workers, func(i int) {
		err := st.Update(context.Background(), func(tx store.Tx) (err error) {
			vals[i], err = tx.InsertSetting("race", fmt.Sprintf("v%d", i))
			return err
		})
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	})
	for _, v := range vals {
		if v != vals[0] {
			t.Fatalf("replicas disagree: %v", vals)
		}
	}
}
