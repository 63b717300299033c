package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/ubihooks/ubihooks"
)

// LockWriter holds a single-writer store's writer so that transactions queue behind it,
// and returns the function that lets them run (as one group-committed batch).
func LockWriter(s *Store) (release func()) {
	sw := s.begin.(*singleWriter)
	sw.mu.Lock()
	return sw.mu.Unlock
}

// FailingTx runs a transaction that fails after writing nothing.
func FailingTx(ctx context.Context, s *Store) error {
	return s.tx(ctx, func(execer) error { return errors.New("boom") })
}

// WriterTestSignals are the single writer's test signals.
type WriterTestSignals = writerTestSignals

// WriterSignals arms and returns the test signals of a single-writer store's writer. Call it
// before the transactions it should see begin.
func WriterSignals(s *Store) *WriterTestSignals {
	sw := s.begin.(*singleWriter)
	// The writer raises Batched holding mu and Queued holding qmu.
	sw.mu.Lock()
	sw.qmu.Lock()
	sw.testSignals.Queued.Init()
	sw.testSignals.Batched.Init()
	sw.qmu.Unlock()
	sw.mu.Unlock()
	return &sw.testSignals
}

// Queued returns how many transactions wait for the writer.
func Queued(s *Store) int {
	sw := s.begin.(*singleWriter)
	sw.qmu.Lock()
	defer sw.qmu.Unlock()
	return len(sw.queue)
}

// PanickingTx runs a transaction whose function panics.
func PanickingTx(ctx context.Context, s *Store) error {
	return s.tx(ctx, func(execer) error { panic("boom") })
}

// ExecTx runs query in a write transaction of s.
func ExecTx(ctx context.Context, s *Store, query string, args ...any) error {
	return s.tx(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

// WriterExecArgs runs an autocommit statement on s's writer.
func WriterExecArgs(ctx context.Context, s *Store, query string, args ...any) error {
	_, err := s.w.ExecContext(ctx, query, args...)
	return err
}

// ExecVolatileTx runs query in a write transaction of s that need not wait for the disk.
func ExecVolatileTx(ctx context.Context, s *Store, query string, args ...any) error {
	return s.txVolatile(ctx, func(tx execer) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	})
}

// DeliveryListSQL returns the query of a delivery listing with its arguments.
func DeliveryListSQL(ctx context.Context, s *Store, f ubihooks.DeliveryFilter) (string, []any, error) {
	where, args, err := s.deliveryListWhere(ctx, f)
	return `SELECT ` + deliveryColumns + `, ` + eventColumns + deliveryFrom + where, args, err
}

// RedeliverSQL returns the selection of a bulk redelivery with its arguments.
func RedeliverSQL(s *Store, f ubihooks.RedeliverFilter) (string, []any) {
	where, args := redeliverWhere(f)
	return s.redeliverPick(where), append(args, f.Limit)
}

// PoolBatches returns how many database transactions a pool store's batcher has begun
// (-1: the store does not batch).
func PoolBatches(s *Store) int64 {
	if s.batch == nil {
		return -1
	}
	return s.batch.batches.Load()
}

// EmitsQueued returns how many EmitEvents calls wait for an emission.
func EmitsQueued(s *Store) int {
	s.emits.mu.Lock()
	defer s.emits.mu.Unlock()
	return len(s.emits.queue)
}

// CoalescedEmissions returns how many emissions carried several EmitEvents calls.
func CoalescedEmissions(s *Store) int64 { return s.emits.coalesced.Load() }

// SetEmitBatch sets the store's Dialect.EmitBatch; call it before the store emits.
func SetEmitBatch(s *Store, n int) { s.d.EmitBatch = n }

// SetEmitLeaders sets the store's Dialect.EmitLeaders; call it before the store emits.
func SetEmitLeaders(s *Store, n int) { s.d.EmitLeaders = n }

// SetEmitLinger sets the store's Dialect.EmitLinger; call it before the store emits.
func SetEmitLinger(s *Store, d time.Duration) { s.d.EmitLinger = d }
