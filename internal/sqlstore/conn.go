package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
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
// waiting for the disk, and the syncer, in its own goroutine, flushes what was committed
// (one flush for every batch committed since the last one began) and only then answers
// the batches' callers. Meanwhile the writer runs the next batch: a commit no longer holds
// up the writes behind it for the length of a flush, and no caller hears "done" before
// its writes are on disk.
type syncer struct {
	fn      func() error
	mu      sync.Mutex
	waiting []chan<- error // answered after the next flush that begins after they joined
	closed  bool
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newSyncer(fn func() error) *syncer {
	s := &syncer{fn: fn, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.loop()
	return s
}

// after queues done to be answered once everything committed so far is durable.
func (s *syncer) after(done chan<- error) {
	s.mu.Lock()
	if s.closed { // a late autocommit statement beside Close: flush here
		s.mu.Unlock()
		done <- flushErr(s.fn())
		return
	}
	s.waiting = append(s.waiting, done)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wait returns once everything committed so far is durable.
func (s *syncer) wait() error {
	done := make(chan error, 1)
	s.after(done)
	return <-done
}

func (s *syncer) loop() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			// Close: whoever still waits gets a last flush.
			s.flush()
			return
		}
		s.flush()
	}
}

func (s *syncer) flush() {
	s.mu.Lock()
	batch := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := flushErr(s.fn())
	for _, done := range batch {
		done <- err
	}
}

func flushErr(err error) error {
	if err != nil {
		return fmt.Errorf("sqlstore: flush committed writes to disk: %w", err)
	}
	return nil
}

func (s *syncer) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
}

// txRequest is one queued transaction.
type txRequest struct {
	ctx  context.Context
	fn   func(execer) error
	done chan error // buffered: the result
	// volatile: answer at commit, before the commit is durable (see Store.txVolatile).
	volatile bool
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
	return err
}

// loop runs queued transactions in batches until close.
func (w *singleWriter) loop() {
	defer close(w.stopped)
	for {
		select {
		case <-w.stop:
			return
		case <-w.pending:
		}
		for {
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
			w.mu.Unlock()
		}
	}
}

// close stops the loop once the queued transactions have run.
func (w *singleWriter) close() {
	w.stopOnce.Do(func() {
		close(w.stop)
		<-w.stopped
		if w.syncer != nil {
			w.syncer.close()
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
			for _, r := range batch {
				if r.volatile {
					r.done <- nil
				} else {
					w.syncer.after(r.done)
				}
			}
			return
		}
		_, _ = l.ExecContext(bg, "ROLLBACK")
		batch[failed].done <- ferr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

// protect runs fn, turning a panic into a txPanic error.
func protect(fn func(execer) error, l locked) (err error) {
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
	w.mu.Unlock()
	if err == nil && w.syncer != nil {
		err = w.syncer.wait()
	}
	return res, err
}
