package sqlstore

import (
	"context"
	"database/sql"
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
// transactions are group-committed: while one transaction commits, the ones that queue
// behind it are run together in the next SQLite transaction and share one commit and one
// fsync (see runBatch for errors). Every caller still returns only after its writes are
// durable.
type singleWriter struct {
	mu    sync.Mutex // held by the leader that runs a batch, and by autocommit statements
	conn  *sql.Conn
	stmts *stmtCache

	qmu   sync.Mutex
	queue []*txRequest
}

// txRequest is one queued transaction.
type txRequest struct {
	ctx  context.Context
	fn   func(execer) error
	done chan error // buffered: the result
}

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

// run queues fn and returns once the transaction that ran it has committed (or fn failed
// and its writes were undone). The first caller to take the writer leads: it runs every
// queued transaction in one batch.
func (w *singleWriter) run(ctx context.Context, fn func(execer) error) error {
	req := &txRequest{ctx: ctx, fn: fn, done: make(chan error, 1)}
	w.qmu.Lock()
	w.queue = append(w.queue, req)
	w.qmu.Unlock()
	w.mu.Lock()
	select {
	case err := <-req.done: // a leader ran it while we waited
		w.mu.Unlock()
		return err
	default:
	}
	w.qmu.Lock()
	batch := w.queue
	w.queue = nil
	w.qmu.Unlock()
	func() {
		defer w.mu.Unlock() // also when a transaction function panics
		w.runBatch(batch)
	}()
	return <-req.done
}

// runBatch runs queued transactions in one SQLite transaction. When one of them fails, the
// whole transaction is rolled back, the failed one is answered with its error, and the
// others run again without it (as if each had run alone, in order). Failures are rare
// (conflicts, validation), so this is cheaper than a savepoint around each one.
// Transaction functions may run more than once and must not accumulate state.
func (w *singleWriter) runBatch(batch []*txRequest) {
	l := locked{w}
	bg := context.Background() // BEGIN/COMMIT must not fail because one caller left
	defer func() {
		// A panicking transaction function must not leave the writer in a transaction nor
		// the other callers waiting: roll back, answer them, and let the panic go on.
		if p := recover(); p != nil {
			_, _ = l.ExecContext(bg, "ROLLBACK")
			answer(batch, fmt.Errorf("sqlstore: a transaction in the same batch panicked: %v", p))
			panic(p)
		}
	}()
	for len(batch) > 0 {
		if _, err := l.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
			answer(batch, err)
			return
		}
		failed := -1
		var ferr error
		for i, r := range batch {
			if ferr = r.fn(l); ferr != nil {
				failed = i
				break
			}
		}
		if failed < 0 {
			_, err := l.ExecContext(bg, "COMMIT")
			if err != nil {
				_, _ = l.ExecContext(bg, "ROLLBACK")
			}
			answer(batch, err)
			return
		}
		_, _ = l.ExecContext(bg, "ROLLBACK")
		batch[failed].done <- ferr
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

func answer(batch []*txRequest, err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// Autocommit statements outside a transaction.

func (w *singleWriter) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stmts.exec(ctx, query, args)
}
