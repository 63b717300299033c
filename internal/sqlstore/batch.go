package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// poolBatcher group-commits the write transactions of a pool (PostgreSQL): up to max
// transactions of the database run at once, each carrying every transaction that queued
// while the others ran. At low load each transaction runs alone, at once; under load they
// share BEGIN, COMMIT and its flush of the write-ahead log, which is most of what a small
// transaction costs the database. Failures are handled as the single writer does (see
// runBatch): the failed transaction is answered with its error and the others run again
// without it, as if each had run alone, in order. Transaction functions may run more than
// once and must not accumulate state.
type poolBatcher struct {
	db  *sql.DB
	max int
	// again reports an error after which the whole batch may run again: nothing was
	// committed, and no one transaction function is at fault (a lost connection, a
	// deadlock between batches that the database broke).
	again func(error) bool

	mu      sync.Mutex
	queue   []*txRequest
	running int // batch runners

	batches atomic.Int64 // database transactions begun, for tests
}

// batchTries bounds the runs of a batch that fails by no function's fault.
const batchTries = 3

// batchFailure is the answer of a batch that failed outside its transaction functions:
// at BEGIN, or at COMMIT (whose outcome is then unknown).
type batchFailure struct {
	op  string // "begin" or "commit"
	err error
}

func (f *batchFailure) Error() string { return f.op + ": " + f.err.Error() }
func (f *batchFailure) Unwrap() error { return f.err }

// run queues fn and returns once the batch that ran it has committed (or fn failed and
// its writes were undone). A panic in fn is raised again here, in the caller's goroutine.
func (b *poolBatcher) run(ctx context.Context, fn func(execer) error) error {
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, req)
	lead := b.running < b.max
	if lead {
		b.running++
	}
	b.mu.Unlock()
	if lead {
		go b.lead()
	}
	err := <-req.done
	if p, ok := err.(txPanic); ok {
		panic(p.v)
	}
	return err
}

// lead runs what has queued, a batch at a time, until the queue is empty.
func (b *poolBatcher) lead() {
	for {
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.runBatch(batch)
	}
}

// runBatch runs batch in one transaction of the pool. A transaction function that fails
// rolls the transaction back and is answered with its error, and the others run again
// without it. A batch that failed by no function's fault (see again) runs again, up to
// batchTries times in all.
func (b *poolBatcher) runBatch(batch []*txRequest) {
	bg := context.Background() // BEGIN/COMMIT must not fail because one caller left
	tries := 1
	for len(batch) > 0 {
		// A caller that left before its turn is not run.
		live := batch[:0:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.done <- err
				continue
			}
			live = append(live, r)
		}
		if batch = live; len(batch) == 0 {
			return
		}
		b.batches.Add(1)
		tx, err := b.db.BeginTx(bg, nil)
		if err != nil {
			if tries < batchTries && b.again(err) {
				tries++
				continue
			}
			answer(batch, &batchFailure{"begin", err})
			return
		}
		failed := -1
		var ferr error
		for i, r := range batch {
			if ferr = protect(r.fn, tx); ferr != nil {
				failed = i
				break
			}
		}
		if failed < 0 {
			if err := tx.Commit(); err != nil {
				answer(batch, &batchFailure{"commit", err})
				return
			}
			answer(batch, nil)
			return
		}
		_ = tx.Rollback()
		if tries < batchTries && b.again(ferr) {
			tries++
			continue
		}
		batch[failed].done <- ferr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}
