package sqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/portico-dev/portico/internal/store"
	"github.com/portico-dev/portico/internal/store/sqlstore"
)

// maxBatch bounds the write transactions committed together.
const maxBatch = 128

// Group commit. SQLite has one writer; a write transaction's own cost
// (BEGIN IMMEDIATE, COMMIT, the WAL frame, handing the connection from one
// goroutine to the next) was paid once per request, and the requests
// queued for it. One goroutine now takes whatever transactions are waiting
// and runs them, one after the other, in one database transaction, each
// inside a savepoint of its own: a function that fails is rolled back to
// its savepoint alone, and every caller learns its outcome once the whole
// batch has committed. Callers see what they saw before: their function
// ran alone, after the ones committed before it, and committed or not.

type write struct {
	ctx context.Context
	fn  func(store.Tx) error
	err error
	// panicked holds what fn panicked with, to panic with in its caller.
	panicked any
	done     chan struct{}
}

type batcher struct {
	db      *DB
	queue   chan *write
	stop    chan struct{}
	stopped sync.WaitGroup
}

func (db *DB) startBatcher() {
	b := &batcher{db: db, queue: make(chan *write), stop: make(chan struct{})}
	db.batch = b
	b.stopped.Go(b.loop)
}

// close stops the batcher once the writes queued have run.
func (b *batcher) close() {
	close(b.stop)
	b.stopped.Wait()
}

// update queues fn and waits for its outcome. Once queued, it waits even
// when ctx ends: fn may be committing.
func (b *batcher) update(ctx context.Context, fn func(store.Tx) error) error {
	w := &write{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case b.queue <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return fmt.Errorf("%w: database closed", store.ErrUnavailable)
	}
	<-w.done
	if w.panicked != nil {
		panic(w.panicked)
	}
	return w.err
}

func (b *batcher) loop() {
	batch := make([]*write, 0, maxBatch)
	for {
		select {
		case w := <-b.queue:
			batch = append(batch[:0], w)
		case <-b.stop:
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case w := <-b.queue:
				batch = append(batch, w)
			default:
				break more
			}
		}
		b.run(batch)
		for _, w := range batch {
			close(w.done)
		}
	}
}

// run runs a batch in one transaction and sets the outcome of each write.
func (b *batcher) run(batch []*write) {
	sqltx, err := b.db.write.BeginTx(context.Background(), nil)
	if err != nil {
		for _, w := range batch {
			w.err = unavailable(err)
		}
		return
	}
	var ran []*write
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			continue
		}
		if _, err := sqltx.Exec(`SAVEPOINT write`); err != nil {
			b.abort(sqltx, batch, err)
			return
		}
		// The statements run to the end whatever happens to the caller's
		// context: SQLite rolls the whole transaction back when a write
		// in it is interrupted, and with it the batch.
		w.err, w.panicked = call(w.fn, sqlstore.New(context.WithoutCancel(w.ctx), sqltx, dialect))
		if w.err == nil && w.panicked == nil {
			if _, err := sqltx.Exec(`RELEASE write`); err != nil {
				b.abort(sqltx, batch, err)
				return
			}
			ran = append(ran, w)
			continue
		}
		if _, err := sqltx.Exec(`ROLLBACK TO write`); err != nil {
			b.abort(sqltx, batch, err)
			return
		}
		if _, err := sqltx.Exec(`RELEASE write`); err != nil {
			b.abort(sqltx, batch, err)
			return
		}
	}
	if err := sqltx.Commit(); err != nil {
		for _, w := range ran {
			w.err = unavailable(err)
		}
	}
}

// abort rolls a batch back after the transaction itself failed: every
// write of it that had not failed by itself fails with that error, those
// that ran and those not run yet alike, as nothing of theirs is kept.
func (b *batcher) abort(sqltx interface{ Rollback() error }, batch []*write, err error) {
	sqltx.Rollback()
	for _, w := range batch {
		if w.err == nil && w.panicked == nil {
			w.err = unavailable(err)
		}
	}
}

// call runs fn, turning a panic into a value its caller panics with.
func call(fn func(store.Tx) error, tx store.Tx) (err error, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			panicked = p
		}
	}()
	return fn(tx), nil
}
