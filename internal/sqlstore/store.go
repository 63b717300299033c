// Package sqlstore implements ubihooks.Store once, in SQL that SQLite and PostgreSQL share.
// The adapters internal/sqlite and internal/postgres open the database, run their own
// migrations and supply a Dialect for the few places where the engines differ: placeholders,
// row locking in claims, and error codes.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Dialect describes an SQL engine.
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// Numbered placeholders ($1, $2, …) instead of "?".
	Numbered bool
	// SkipLocked is appended to the sub-select of claims ("FOR UPDATE SKIP LOCKED").
	SkipLocked string
	// UUIDExpr is an SQL expression for a new random UUID in text form.
	UUIDExpr string
	// IsUnique classifies driver errors by code, never by message.
	IsUnique func(error) bool
	// IsTransient, when set, reports an error of a lost connection or a database that is
	// restarting (by code or type, never by message): the statement did not complete, and
	// the same operation may succeed on another connection a moment later. Reads and
	// transactions that did not reach their commit are run once more; anything else is
	// answered EUNAVAILABLE.
	IsTransient func(error) bool
	// IsConflict, when set, reports a transaction that the database aborted to break a
	// deadlock or a serialization conflict (by code): run again, it may well succeed.
	IsConflict func(error) bool
	// SafeToRetry, when set, reports an error that came before the statement reached the
	// database, so that even a write may be sent again.
	SafeToRetry func(error) bool
	// AfterCommitFunc, when set, runs after a transaction that made work due (deliveries or
	// requests) commits, instead of telling this process's subscribers: an adapter whose
	// database is shared announces the commit to every replica (PostgreSQL: NOTIFY) and
	// overrides Subscribe to listen for those announcements.
	AfterCommitFunc func(ctx context.Context, channel ubihooks.Channel)
	// SyncFunc, when set (single writer only), makes every write committed so far durable;
	// the writer's connection then commits without waiting for the disk, and callers are
	// answered only after a SyncFunc that began after their commit (see syncer).
	SyncFunc func() error
	// TxBatches, when above 0 (pool stores: PostgreSQL), group-commits write transactions:
	// up to TxBatches database transactions run at once, each carrying every write
	// transaction that queued while the others ran (see poolBatcher).
	TxBatches int
	// EmitLinger, when above 0, is how long an emission waits for more EmitEvents calls to
	// join it, when the emission before it carried several calls (under load: emitters
	// queue faster than emissions run). A call that finds no emission running runs at
	// once. Larger emissions write larger multi-row statements, which cost a database
	// whose every statement is a round trip and a plan (PostgreSQL) less per row.
	EmitLinger time.Duration
	// EmitBatch, when above 0, ends an emission's wait (EmitLinger) early, once the queued
	// calls carry that many events: a statement of that many rows already spreads its
	// fixed cost, and waiting on would only add latency.
	EmitBatch int
	// EmitLeaders is how many emissions run at once (0 or 1: one). While they run, the
	// EmitEvents calls that arrive queue, and the next emission to start takes them all.
	// With one, emitters wait for each emission's round trips and commit one after the
	// other, and a database that runs transactions in parallel (PostgreSQL) idles
	// meanwhile; SQLite has one writer, which runs them one at a time anyway.
	EmitLeaders int
	// Migrations holds the adapter's migrations folder (migrations/*.sql): Ready checks
	// that the database has applied every one of them.
	Migrations fs.FS
}

// Store is the SQL implementation of ubihooks.Store.
type Store struct {
	w       writer       // autocommit writes
	r       execer       // reads
	begin   beginner     // write transactions
	batch   *poolBatcher // group commit of a pool's write transactions (Dialect.TxBatches)
	d       Dialect
	db      *sql.DB // a pool for adapters' maintenance and tests
	close   func() error
	onClose []func()
	// dispatcher takes new deliveries at emission (see ubihooks.Dispatcher).
	dispatcher atomic.Pointer[ubihooks.Dispatcher]
	// subs are told about commits that made work due (see Subscribe); copied on write, as
	// every such commit reads them.
	subs   atomic.Pointer[[]*subscriber]
	subsMu sync.Mutex
	// emits coalesces concurrent EmitEvents calls (see emitQueue).
	emits emitQueue
}

// subscriber is one Subscribe call's function.
type subscriber struct{ fn func(ubihooks.Channel) }

var _ ubihooks.Store = (*Store)(nil)

// New returns a Store over the given writer and reader pools (PostgreSQL: one pool for
// both; the driver caches prepared statements per connection).
func New(w, r *sql.DB, d Dialect) *Store {
	s := &Store{w: w, r: r, d: d, db: w, begin: poolBeginner{w}}
	if d.TxBatches > 0 {
		s.batch = &poolBatcher{db: w, max: d.TxBatches, again: func(err error) bool {
			return s.transient(err) || d.IsConflict != nil && d.IsConflict(err)
		}}
	}
	if d.IsTransient != nil {
		s.w, s.r = retrying{w, d}, retrying{r, d}
	}
	s.close = func() error {
		err := w.Close()
		if r != w {
			if err2 := r.Close(); err == nil {
				err = err2
			}
		}
		return err
	}
	return s
}

// NewSingleWriter returns a Store whose writes all go through one connection of w, in
// turn, with prepared statements kept for reuse (SQLite: one writer anyway, and parsing
// SQL is most of the cost of a small statement). Reads use r, also with cached statements.
func NewSingleWriter(ctx context.Context, w, r *sql.DB, d Dialect) (*Store, error) {
	conn, err := w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: writer connection: %w", d.Name, err)
	}
	sw := newSingleWriter(conn, d.SyncFunc)
	// The writer pool's one connection is held by the writer: DB() is the reader pool.
	s := &Store{w: sw, r: &cachedPool{DB: r, stmts: newStmtCache(r.PrepareContext)}, d: d, db: r, begin: sw}
	s.close = func() error {
		sw.close()
		sw.mu.Lock()
		sw.stmts.closeAll()
		err := conn.Close()
		sw.mu.Unlock()
		if err2 := w.Close(); err == nil {
			err = err2
		}
		if err2 := r.Close(); err == nil {
			err = err2
		}
		return err
	}
	return s, nil
}

// Close closes the pools.
func (s *Store) Close() error {
	for _, fn := range s.onClose {
		fn()
	}
	return s.close()
}

// OnClose registers fn to run first when the store closes (adapters' background work).
func (s *Store) OnClose(fn func()) { s.onClose = append(s.onClose, fn) }

// WriterExec runs one autocommit statement on the writer (on a single-writer store: on its
// connection, between transactions), for adapters' maintenance such as checkpoints.
func (s *Store) WriterExec(ctx context.Context, query string) error {
	_, err := s.w.ExecContext(ctx, query)
	return err
}

// DB returns a pool for adapters' maintenance work and tests (on a single-writer store,
// the reader pool: the writer's one connection is taken).
func (s *Store) DB() *sql.DB { return s.db }

// q rebinds "?" placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// writer runs autocommit writes.
type writer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tx runs fn in a write transaction and commits it, or rolls back on error.
func (s *Store) tx(ctx context.Context, fn func(tx execer) error) error {
	if sw, ok := s.begin.(*singleWriter); ok {
		err := sw.run(ctx, fn)
		var ue *ubihooks.Error
		if err != nil && !errors.As(err, &ue) {
			return s.translate("transaction", err)
		}
		return err
	}
	if s.batch != nil {
		err := s.batch.run(ctx, fn)
		var bf *batchFailure
		if errors.As(err, &bf) {
			return s.translate(bf.op, bf.err)
		}
		return err
	}
	committing, err := s.poolTx(ctx, fn)
	if err != nil && !committing && s.transient(err) {
		// Nothing was committed: the database rolled the transaction back when its
		// connection went, and transaction functions may run more than once.
		committing, err = s.poolTx(ctx, fn)
	}
	if err != nil && committing {
		return s.translate("commit", err)
	}
	return err
}

// poolTx runs fn in one transaction of the pool; committing reports that the error came
// from the commit itself, whose outcome is then unknown.
func (s *Store) poolTx(ctx context.Context, fn func(tx execer) error) (committing bool, err error) {
	tx, end, err := s.begin.begin(ctx)
	if err != nil {
		return false, s.translate("begin", err)
	}
	if err := fn(tx); err != nil {
		_ = end(false)
		return false, err
	}
	if err := end(true); err != nil {
		return true, err
	}
	return false, nil
}

// retrying runs a read once more when its connection was lost, and a write when it never
// reached the database: a pooled connection that a database restart closed fails its next
// statement, and another connection of the pool will do.
type retrying struct {
	db *sql.DB
	d  Dialect
}

func (x retrying) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := x.db.QueryContext(ctx, query, args...)
	if err != nil && x.d.IsTransient(err) && ctx.Err() == nil {
		return x.db.QueryContext(ctx, query, args...)
	}
	return rows, err
}

func (x retrying) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	row := x.db.QueryRowContext(ctx, query, args...)
	if err := row.Err(); err != nil && x.d.IsTransient(err) && ctx.Err() == nil {
		return x.db.QueryRowContext(ctx, query, args...)
	}
	return row
}

func (x retrying) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := x.db.ExecContext(ctx, query, args...)
	if err != nil && x.d.SafeToRetry != nil && x.d.SafeToRetry(err) && ctx.Err() == nil {
		return x.db.ExecContext(ctx, query, args...)
	}
	return res, err
}

// transient reports an error of a lost connection (see Dialect.IsTransient).
func (s *Store) transient(err error) bool {
	return err != nil && s.d.IsTransient != nil && s.d.IsTransient(err)
}

// txVolatile is tx for a write that may be lost in a crash without harm, and so need not
// wait for the disk: a lost claim leaves its deliveries pending, to be claimed again,
// which is what a crash after the claim would lead to anyway (their leases expire). With
// the single writer, the caller goes on as soon as the transaction has committed, while
// the flush runs; the next durable commit makes it durable too.
func (s *Store) txVolatile(ctx context.Context, fn func(tx execer) error) error {
	if sw, ok := s.begin.(*singleWriter); ok && sw.syncer != nil {
		err := sw.runVolatile(ctx, fn)
		var ue *ubihooks.Error
		if err != nil && !errors.As(err, &ue) {
			return s.translate("transaction", err)
		}
		return err
	}
	return s.tx(ctx, fn)
}

// translate turns driver errors into domain errors by code.
func (s *Store) translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var ue *ubihooks.Error
	if errors.As(err, &ue) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ubihooks.Errorf(ubihooks.ENOTFOUND, "%s: not found", op)
	}
	if s.d.IsUnique != nil && s.d.IsUnique(err) {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "%s: already exists", op)
	}
	if s.transient(err) {
		return &ubihooks.Error{Code: ubihooks.EUNAVAILABLE, Message: "the database is unavailable for a moment; try again"}
	}
	return fmt.Errorf("%s: %s: %w", s.d.Name, op, err)
}

// notify announces a commit that made work of channel due.
func (s *Store) notify(ctx context.Context, channel ubihooks.Channel) {
	if s.d.AfterCommitFunc != nil {
		s.d.AfterCommitFunc(ctx, channel)
		return
	}
	if subs := s.subs.Load(); subs != nil {
		for _, sub := range *subs {
			sub.fn(channel)
		}
	}
}

// Subscribe calls fn after each commit of this store that made work due, until ctx ends.
// The store is the only writer of its database, so its own commits are all there is.
func (s *Store) Subscribe(ctx context.Context, fn func(ubihooks.Channel)) {
	sub := &subscriber{fn}
	s.updateSubs(func(subs []*subscriber) []*subscriber { return append(subs, sub) })
	context.AfterFunc(ctx, func() {
		s.updateSubs(func(subs []*subscriber) []*subscriber {
			return slices.DeleteFunc(subs, func(x *subscriber) bool { return x == sub })
		})
	})
}

func (s *Store) updateSubs(change func([]*subscriber) []*subscriber) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var subs []*subscriber
	if p := s.subs.Load(); p != nil {
		subs = slices.Clone(*p)
	}
	subs = change(subs)
	s.subs.Store(&subs)
}

// Times are stored as integer microseconds since the Unix epoch (UTC); NULL or 0 is "none".
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromTS(v sql.NullInt64) time.Time {
	if !v.Valid || v.Int64 == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlstore: encode %T: %v", v, err))
	}
	return string(b)
}

func labelsText(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	return jsonText(m)
}

func parseLabels(s sql.NullString) (map[string]string, error) {
	m := map[string]string{}
	if !s.Valid || s.String == "" {
		return m, nil
	}
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("sqlstore: decode labels: %w", err)
	}
	return m, nil
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func notFound(what, name string) error {
	return ubihooks.Errorf(ubihooks.ENOTFOUND, "%s %q not found", what, name)
}

// varLimit is a LIMIT whose value changes from call to call (a claim's free slots). SQLite
// reads the value bound to a bare "LIMIT ?" while planning and prepares the statement again
// whenever it changes; inside an expression the value stays a run-time parameter.
const varLimit = `CAST(? AS INTEGER)`
