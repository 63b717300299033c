package sqlstore

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestSyncerAfterClose: a flush asked for after the syncer closed (an autocommit statement
// racing the store's Close) still happens, in the caller, instead of waiting forever.
func TestSyncerAfterClose(t *testing.T) {
	var flushes atomic.Int64
	s := newSyncer(func() error { flushes.Add(1); return nil })
	if err := s.wait(); err != nil || flushes.Load() != 1 {
		t.Fatalf("wait = %v after %d flushes, want nil after 1", err, flushes.Load())
	}
	s.close()
	done := make(chan error, 1)
	go func() { done <- s.wait() }()
	select {
	case err := <-done:
		if err != nil || flushes.Load() != 2 {
			t.Fatalf("wait after close = %v after %d flushes, want nil after 2", err, flushes.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait after close never returned")
	}
}
