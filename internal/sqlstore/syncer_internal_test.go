package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSyncerSharesFlushes: the first caller to need a flush runs it; callers whose commits
// it covers wait for it and run none; a caller whose commit came after it began runs the
// next one, which covers every commit made meanwhile. A failed flush fails the callers it
// covers, and the next caller flushes again.
func TestSyncerSharesFlushes(t *testing.T) {
	started := make(chan struct{}, 8)
	release := make(chan error)
	flushes := 0
	s := newSyncer(func() error {
		flushes++
		started <- struct{}{}
		return <-release
	})
	began := func(what string) {
		t.Helper()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no flush began", what)
		}
	}
	wait := func(n uint64) chan error {
		c := make(chan error, 1)
		go func() { c <- s.wait(n) }()
		return c
	}
	pending := func(c chan error, what string) {
		t.Helper()
		select {
		case err := <-c:
			t.Fatalf("%s returned (%v) before a flush covering it ended", what, err)
		case <-time.After(30 * time.Millisecond):
		}
	}

	c1 := s.commit()
	a := wait(c1)
	began("commit 1") // a flush covering commit 1 only
	b := wait(c1)     // covered by it: waits, runs none
	c2, c3 := s.commit(), s.commit()
	c := wait(c2)
	d := wait(c3)
	pending(b, "a second caller of commit 1")
	pending(c, "commit 2")
	release <- nil
	for _, ch := range []chan error{a, b} {
		if err := <-ch; err != nil {
			t.Fatalf("commit 1: %v", err)
		}
	}
	began("commits 2 and 3") // one flush, run by c or d, covers both
	pending(c, "commit 2")
	pending(d, "commit 3")
	release <- errors.New("disk on fire")
	for _, ch := range []chan error{c, d} {
		if err := <-ch; err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("after a failed flush: %v, want its error", err)
		}
	}
	e := wait(c3) // not durable yet: flushes again
	began("commit 3 again")
	release <- nil
	if err := <-e; err != nil {
		t.Fatalf("commit 3 again: %v", err)
	}
	if err := s.wait(c3); err != nil { // durable now: no flush
		t.Fatalf("commit 3, durable: %v", err)
	}
	if flushes != 3 {
		t.Errorf("flushes = %d, want 3", flushes)
	}
}
