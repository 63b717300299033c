package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/ubihooks/ubihooks/internal/sqlite" // the sqlite driver
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// gatedSync is a SyncFunc whose flushes wait for the test.
type gatedSync struct {
	started chan struct{} // a flush began
	release chan error    // lets one flush end, with this error
	count   atomic.Int64
}

func newGatedSync() *gatedSync {
	return &gatedSync{started: make(chan struct{}, 16), release: make(chan error)}
}

func (g *gatedSync) sync() error {
	g.count.Add(1)
	g.started <- struct{}{}
	return <-g.release
}

// closeStore closes st, letting every flush still asked for end.
func (g *gatedSync) closeStore(st *sqlstore.Store) {
	go func() {
		for range g.started {
			g.release <- nil
		}
	}()
	st.Close()
	close(g.started)
}

// flushBegins waits for the next flush to begin.
func (g *gatedSync) flushBegins(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no flush began", what)
	}
}

func openSynced(t *testing.T, fn func() error) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "s.db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMaxOpenConns(1)
	if _, err := w.Exec(`CREATE TABLE t (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.NewSingleWriter(context.Background(), w, r, sqlstore.Dialect{Name: "sqlite", SyncFunc: fn})
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

// stillWaiting fails the test if c is answered within 50ms: what sent on it must still be
// waiting for its flush.
func stillWaiting(t *testing.T, c <-chan error, what string) {
	t.Helper()
	select {
	case err := <-c:
		t.Fatalf("%s returned (%v) before its flush ended", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func rowCount(t *testing.T, r *sql.DB) int {
	t.Helper()
	var n int
	if err := r.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommitWaitsForFlush: with a SyncFunc, a transaction's caller is answered only after
// a flush that began after its commit; meanwhile the writer goes on with the next batch,
// whose caller waits for the next flush. A failed flush fails the callers it answers, and
// autocommit statements wait for a flush too.
func TestCommitWaitsForFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGatedSync()
	st, r := openSynced(t, g.sync)
	defer g.closeStore(st)
	sig := sqlstore.WriterSignals(st)

	first := make(chan error, 1)
	go func() { first <- sqlstore.ExecTx(ctx, st, `INSERT INTO t VALUES (1)`) }()
	g.flushBegins(t, "first transaction") // committed; its flush is running
	sig.Batched.Wait(t, 5*time.Second)    // the first transaction's batch
	if n := rowCount(t, r); n != 1 {
		t.Fatalf("rows visible while the first flush runs = %d, want 1 (committed)", n)
	}
	stillWaiting(t, first, "the first transaction")
	// The writer is not held up by the flush: a second transaction commits meanwhile.
	second := make(chan error, 1)
	go func() { second <- sqlstore.ExecTx(ctx, st, `INSERT INTO t VALUES (2)`) }()
	sig.Batched.Wait(t, 5*time.Second) // the second transaction's batch
	if n := rowCount(t, r); n != 2 {
		t.Fatalf("rows visible after the second commit, while the first flush runs = %d, want 2", n)
	}
	g.release <- nil // the first flush ends: it began before the second commit
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("the second transaction returned (%v) on a flush that began before its commit", err)
	case <-g.started:
	case <-time.After(5 * time.Second):
		t.Fatal("no flush began for the second transaction")
	}
	g.release <- errors.New("disk on fire")
	if err := <-second; err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("second after a failed flush: %v, want the flush's error", err)
	}

	// An autocommit statement on the writer waits for a flush as well.
	auto := make(chan error, 1)
	go func() { auto <- sqlstore.WriterExecArgs(ctx, st, `INSERT INTO t VALUES (3)`) }()
	g.flushBegins(t, "autocommit statement")
	stillWaiting(t, auto, "an autocommit statement")
	g.release <- nil
	if err := <-auto; err != nil {
		t.Fatalf("autocommit: %v", err)
	}
	if got := g.count.Load(); got != 3 {
		t.Errorf("flushes = %d, want 3", got)
	}
}

// TestVolatileTxSkipsFlush: a volatile transaction (a claim) is answered once committed,
// while the flush runs; a durable one committed in the same batch still waits for it.
func TestVolatileTxSkipsFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := newGatedSync()
	st, r := openSynced(t, g.sync)
	defer g.closeStore(st)

	sig := sqlstore.WriterSignals(st)
	release := sqlstore.LockWriter(st) // both join one batch
	durable := make(chan error, 1)
	go func() { durable <- sqlstore.ExecTx(ctx, st, `INSERT INTO t VALUES (1)`) }()
	volatile := make(chan error, 1)
	go func() { volatile <- sqlstore.ExecVolatileTx(ctx, st, `INSERT INTO t VALUES (2)`) }()
	sig.Queued.WaitFor(t, 5*time.Second, func(queued int) bool { return queued == 2 })
	release()
	g.flushBegins(t, "the batch")
	select {
	case err := <-volatile:
		if err != nil {
			t.Fatalf("volatile: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the volatile transaction waited for the flush")
	}
	if n := rowCount(t, r); n != 2 {
		t.Fatalf("rows after the batch committed = %d, want 2", n)
	}
	stillWaiting(t, durable, "the durable transaction")
	g.release <- nil
	if err := <-durable; err != nil {
		t.Fatalf("durable: %v", err)
	}
}
