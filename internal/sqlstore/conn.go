package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// beginner starts write transactions; end(true) commits, end(false) rolls back.
type beginner interface {
	begin(ctx context.Context) (tx execer, end func(commit bool) error, err error)
}

// poolBeginner uses database/sql transactions on a pool (PostgreSQL).
type poolBeginner struct{ db *sql.DB }

func (p poolBeginner) begin(ctx context.Context) (execer, func(bool) error, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return tx, func(commit bool) error {
		if commit {
			return tx.Commit()
		}
		return tx.Rollback()
	}, nil
}

// maxCachedStmts bounds a statement cache: statements with a varying number of
// placeholders (IN lists, multi-row inserts) have many texts.
const maxCachedStmts = 1024

// stmtCache keeps prepared statements by SQL text.
type stmtCache struct {
	mu      sync.Mutex
	prepare func(ctx context.Context, query string) (*sql.Stmt, error)
	m       map[string]*sql.Stmt
}

func newStmtCache(prepare func(ctx context.Context, query string) (*sql.Stmt, error)) *stmtCache {
	return &stmtCache{prepare: prepare, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query; temp reports a statement that is not
// cached and must be closed after use.
func (c *stmtCache) get(ctx context.Context, query string) (st *sql.Stmt, temp bool, err error) {
	c.mu.Lock()
	st, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return st, false, nil
	}
	st, err = c.prepare(ctx, query)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[query]; ok { // prepared concurrently
		st.Close()
		return prev, false, nil
	}
	if len(c.m) >= maxCachedStmts {
		return st, true, nil
	}
	c.m[query] = st
	return st, false, nil
}

func (c *stmtCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.m {
		st.Close()
		delete(c.m, k)
	}
}

func (c *stmtCache) exec(ctx context.Context, query string, args []any) (sql.Result, error) {
	st, temp, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	if temp {
		defer st.Close()
	}
	return st.ExecContext(ctx, args...)
}

func (c *stmtCache) query(ctx context.Context, query string, args []any) (*sql.Rows, error) {
	st, temp, err := c.get(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if temp {
		// Closing a statement waits for its rows to close; database/sql does that.
		defer st.Close()
	}
	return rows, err
}

// cachedPool is a reader pool with prepared statements.
type cachedPool struct {
	*sql.DB
	stmts *stmtCache
}

func (p *cachedPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.stmts.exec(ctx, query, args)
}

func (p *cachedPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.stmts.query(ctx, query, args)
}

func (p *cachedPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, temp, err := p.stmts.get(ctx, query)
	if err != nil || temp {
		return p.DB.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// singleWriter runs every write on one connection, with prepared statements. Write
// transactions are group-committed by one goroutine: while it commits a batch, the
// transactions that arrive queue up, and it runs them all together in its next SQLite
// transaction, with one commit and one fsync (see runBatch for errors). Every caller still
// returns only after its writes are durable. Callers wait on their own answer, not on a
// lock: under load, every caller that arrived during a commit joins the next batch.
type singleWriter struct {
	mu    sync.Mutex // held while a batch runs, and by autocommit statements
	conn  *sql.Conn
	stmts *stmtCache

	qmu      sync.Mutex
	queue    []*txRequest
	pending  chan struct{} // signalled when the queue becomes non-empty
	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once

	syncer *syncer // nil: a commit is durable when it returns

	testSignals writerTestSignals
}

// writerTestSignals tell tests what the single writer did, so that they need not poll.
type writerTestSignals struct {
	Queued  testsignal.Signal[int] // a transaction joined the queue (the queue's length)
	Batched testsignal.Signal[int] // a batch committed (its size)
}

func newSingleWriter(conn *sql.Conn, syncFunc func() error) *singleWriter {
	w := &singleWriter{conn: conn, stmts: newStmtCache(conn.PrepareContext), pending: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if syncFunc != nil {
		w.syncer = newSyncer(syncFunc)
	}
	go w.loop()
	return w
}

// syncer makes commits durable off the writer's path: the connection commits without
// waiting for the disk, and the callers of what was committed then flush it themselves —
// one flush for every commit made since the last one began. The first caller to need a
// flush runs it, in its own goroutine; those who need one while it runs wait for it, and
// the first of them whose commit it did not cover (it came after the flush began) runs the
// next. Meanwhile the writer runs the next batch: a commit no longer holds up the writes
// behind it for the length of a flush, and no caller hears "done" before its writes are on
// disk. (No goroutine of its own: a hand-off to one would add its wake-up, under load
// often longer than the flush, to every durable commit.)
type syncer struct {
	fn        func() error
	mu        sync.Mutex
	committed uint64 // commits counted so far; a commit's number is its place in this count
	durable   uint64 // every commit up to this one is durable
	flushing  *flush // the flush under way, if one is
	// failed are the commits that a failed flush covered and no earlier flush had made
	// durable: their callers hear the flush's error however late they ask (a later flush
	// that succeeds proves nothing about them: after a failed fsync, Linux may have
	// dropped their pages and report the next fsync clean).
	failed []failure
}

// flush is one run of the flush function, covering the commits up to target.
type flush struct {
	target uint64
	done   chan struct{} // closed when it ended
	err    error
}

// failure is a failed flush: commits from through through were not made durable.
type failure struct {
	from, through uint64
	err           error
}

func newSyncer(fn func() error) *syncer { return &syncer{fn: fn} }

// commit counts a commit and returns its number. The writer calls it right after each
// commit, while it still holds the connection: numbers follow the commits' order.
func (s *syncer) commit() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed++
	return s.committed
}

// wait returns once commit n (and so every commit before it) is durable, flushing if no
// flush that began after it is under way; or the error of a failed flush that covered it.
func (s *syncer) wait(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for _, f := range s.failed {
			if f.from <= n && n <= f.through {
				return flushErr(f.err)
			}
		}
		if s.durable >= n {
			return nil
		}
		if f := s.flushing; f != nil {
			s.mu.Unlock()
			<-f.done
			s.mu.Lock()
			continue
		}
		f := &flush{target: s.committed, done: make(chan struct{})}
		s.flushing = f
		s.mu.Unlock()
		f.err = s.run()
		s.mu.Lock()
		s.flushing = nil
		if f.err == nil {
			s.durable = max(s.durable, f.target)
		} else if from := s.durable + 1; from <= f.target {
			if k := len(s.failed) - 1; k >= 0 && s.failed[k].from == from { // failing again
				s.failed[k].through = f.target
			} else {
				s.failed = append(s.failed, failure{from, f.target, f.err})
			}
		}
		close(f.done)
	}
}

// run runs the flush function; a panic in it is a failed flush, not a syncer stuck with a
// flush forever under way.
func (s *syncer) run() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the flush panicked: %v", p)
		}
	}()
	return s.fn()
}

// waitAll returns once every commit counted so far is durable.
func (s *syncer) waitAll() error {
	s.mu.Lock()
	n := s.committed
	s.mu.Unlock()
	return s.wait(n)
}

func flushErr(err error) error {
	if err != nil {
		return fmt.Errorf("sqlstore: flush committed writes to disk: %w", err)
	}
	return nil
}

// txRequest is one queued transaction.
type txRequest struct {
	ctx  context.Context
	fn   func(execer) error
	done chan error // buffered: the result
	// volatile: answer at commit, before the commit is durable (see Store.txVolatile).
	volatile bool
	// seq is the number of the commit that made it (see syncer.commit), 0 for none.
	seq uint64
}

// txPanic carries a transaction function's panic back to its caller.
type txPanic struct{ v any }

func (p txPanic) Error() string { return fmt.Sprintf("sqlstore: a transaction panicked: %v", p.v) }

// locked is the writer while a transaction holds it.
type locked struct{ w *singleWriter }

func (l locked) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return l.w.stmts.exec(ctx, query, args)
}

func (l locked) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return l.w.stmts.query(ctx, query, args)
}

func (l locked) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, temp, err := l.w.stmts.get(ctx, query)
	if err != nil || temp {
		return l.w.conn.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (w *singleWriter) begin(ctx context.Context) (execer, func(bool) error, error) {
	panic("sqlstore: singleWriter runs transactions through run")
}

// errWriterClosed answers transactions queued after the store closed.
var errWriterClosed = errors.New("sqlstore: the store is closed")

// run queues fn and returns once the batch that ran it has committed (or fn failed and its
// writes were undone). A panic in fn is raised again here, in the caller's goroutine.
func (w *singleWriter) run(ctx context.Context, fn func(execer) error) error {
	return w.runTx(&txRequest{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// runVolatile is run, but answers as soon as the batch has committed, without waiting
// for the commit to be durable. A crash may undo it — and everything committed after it,
// never anything before: the WAL is flushed in commit order.
func (w *singleWriter) runVolatile(ctx context.Context, fn func(execer) error) error {
	return w.runTx(&txRequest{ctx: ctx, fn: fn, done: make(chan error, 1), volatile: true})
}

func (w *singleWriter) runTx(req *txRequest) error {
	w.qmu.Lock()
	w.queue = append(w.queue, req)
	w.testSignals.Queued.Signal(len(w.queue))
	w.qmu.Unlock()
	select {
	case w.pending <- struct{}{}:
	default:
	}
	var err error
	select {
	case err = <-req.done:
	case <-w.stopped:
		select {
		case err = <-req.done:
		default:
			return errWriterClosed
		}
	}
	if p, ok := err.(txPanic); ok {
		panic(p.v)
	}
	if err == nil && req.seq > 0 {
		err = w.syncer.wait(req.seq)
	}
	return err
}

// loop runs queued transactions in batches until close.
func (w *singleWriter) loop() {
	defer close(w.stopped)
	var lastBatch time.Time // when the last batch ended
	for {
		select {
		case <-w.stop:
			return
		case <-w.pending:
		}
		for {
			if time.Since(lastBatch) < gatherBusy {
				w.gather()
			}
			// The lock comes first: while something else holds the writer (an autocommit
			// statement, a test), transactions keep joining the queue, and run as one batch.
			w.mu.Lock()
			w.qmu.Lock()
			batch := w.queue
			w.queue = nil
			w.qmu.Unlock()
			if len(batch) == 0 {
				w.mu.Unlock()
				break
			}
			w.runBatch(batch)
			w.testSignals.Batched.Signal(len(batch))
			w.mu.Unlock()
			lastBatch = time.Now()
		}
	}
}

// Group commit lets company gather while the writer is busy. Every commit costs its WAL
// writes (each B-tree it touched writes its last page again) and a flush, whether it
// carries one transaction or twenty; under load, fewer and larger batches spend less CPU
// per transaction. So before a small batch the writer yields its processor once: when
// other goroutines wait for one (the sends, the callers of the last batch), they run
// first (under heavy load that can be every runnable goroutine, a millisecond or more), and
// the transactions they queue meanwhile join the batch; when none do, it goes on at once,
// so a writer that is not short of CPU loses nothing. Measured with `ubihooks
// bench` (2 cores, where sends and writer share the CPU): 8–13% more deliveries per
// second at full load, and the same latency at half load; the store's lifecycle benchmark,
// where nothing else wants the CPU, is unchanged. (A timed wait instead — 50 to 200 µs —
// gained as much in the first but made the second 15–60% slower.)
const (
	gatherMin  = 8                    // queued transactions that need no company
	gatherBusy = 2 * time.Millisecond // a batch this recent means the writer is busy
)

// gather gives the transactions that other goroutines are about to queue a chance to join
// the next batch, when it would be small (see gatherMin).
func (w *singleWriter) gather() {
	w.qmu.Lock()
	n := len(w.queue)
	w.qmu.Unlock()
	if n > 0 && n < gatherMin {
		runtime.Gosched()
	}
}

// close stops the loop once the queued transactions have run.
func (w *singleWriter) close() {
	w.stopOnce.Do(func() {
		close(w.stop)
		<-w.stopped
		if w.syncer != nil {
			// Everything committed is durable before the database closes; callers still
			// waiting share this flush (or one under way) and hear its outcome.
			_ = w.syncer.waitAll()
		}
	})
	<-w.stopped
	w.qmu.Lock()
	rest := w.queue
	w.queue = nil
	w.qmu.Unlock()
	answer(rest, errWriterClosed)
}

// runBatch runs queued transactions in one SQLite transaction. When one of them fails, the
// whole transaction is rolled back, the failed one is answered with its error, and the
// others run again without it (as if each had run alone, in order). Failures are rare
// (conflicts, validation), so this is cheaper than a savepoint around each one.
// Transaction functions may run more than once and must not accumulate state. A panicking
// function fails like an erroring one, and its caller panics.
func (w *singleWriter) runBatch(batch []*txRequest) {
	l := locked{w}
	bg := context.Background() // BEGIN/COMMIT must not fail because one caller left
	for len(batch) > 0 {
		if _, err := l.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
			answer(batch, err)
			return
		}
		failed := -1
		var ferr error
		for i, r := range batch {
			if ferr = protect(r.fn, l); ferr != nil {
				failed = i
				break
			}
		}
		if failed < 0 {
			_, err := l.ExecContext(bg, "COMMIT")
			if err != nil {
				_, _ = l.ExecContext(bg, "ROLLBACK")
			}
			if err != nil || w.syncer == nil {
				answer(batch, err)
				return
			}
			// Each durable transaction's caller waits for its commit to be flushed (see
			// syncer); a volatile one's goes on at once.
			seq := w.syncer.commit()
			for _, r := range batch {
				if !r.volatile {
					r.seq = seq
				}
				r.done <- nil
			}
			return
		}
		_, _ = l.ExecContext(bg, "ROLLBACK")
		batch[failed].done <- ferr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// protect runs fn, turning a panic into a txPanic error.
func protect(fn func(execer) error, l execer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = txPanic{p}
		}
	}()
	return fn(l)
}

func answer(batch []*txRequest, err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// Autocommit statements outside a transaction.

func (w *singleWriter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w.mu.Lock()
	res, err := w.stmts.exec(ctx, query, args)
	var seq uint64
	if err == nil && w.syncer != nil {
		seq = w.syncer.commit()
	}
	w.mu.Unlock()
	if seq > 0 {
		err = w.syncer.wait(seq)
	}
	return res, err
}
