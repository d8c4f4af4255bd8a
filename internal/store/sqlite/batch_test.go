package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/portico-dev/portico/internal/store"
)

// Writes committed together keep their own outcomes: the users of the
// writes that failed, or panicked, are not kept; all the others are.
func TestBatchedWritesKeepTheirOwnOutcome(t *testing.T) {
	st := open(t)
	errOdd := errors.New("odd")
	const n = 96
	results := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			defer func() { panics[i] = recover() }()
			results[i] = st.Update(context.Background(), func(tx store.Tx) error {
				u := store.User{Username: fmt.Sprintf("user%d", i), Role: store.RoleAnonymous}
				if err := tx.InsertUser(&u); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errOdd
				case 2:
					if i%2 == 0 {
						panic(fmt.Sprintf("write %d", i))
					}
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	err := st.View(context.Background(), func(tx store.Tx) error {
		for i := range n {
			_, err := tx.User(fmt.Sprintf("user%d", i))
			panicked := i%3 == 2 && i%2 == 0
			switch {
			case i%3 == 1:
				if !errors.Is(results[i], errOdd) || !errors.Is(err, store.ErrNotFound) {
					t.Errorf("write %d failed with %v; its user: %v", i, results[i], err)
				}
			case panicked:
				if panics[i] != fmt.Sprintf("write %d", i) || !errors.Is(err, store.ErrNotFound) {
					t.Errorf("write %d panicked with %v; its user: %v", i, panics[i], err)
				}
			default:
				if results[i] != nil || panics[i] != nil || err != nil {
					t.Errorf("write %d: %v, panic %v; its user: %v", i, results[i], panics[i], err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A write whose caller has gone before it ran is not run.
func TestBatchedWriteOfAGoneCaller(t *testing.T) {
	st := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := st.Update(ctx, func(tx store.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("write of a cancelled caller: %v, ran %v", err, ran)
	}
}
