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
// covers — also those who ask after it ended, even once a later flush succeeded — while a
// later commit flushes again.
func TestSyncerSharesFlushes(t *testing.T) {
	t.Parallel()
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
	if err := s.wait(c2); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("commit 2, asked after its flush failed: %v, want that flush's error", err)
	}
	c4 := s.commit()
	e := wait(c4) // after the failure: flushes again
	began("commit 4")
	release <- nil
	if err := <-e; err != nil {
		t.Fatalf("commit 4: %v", err)
	}
	if err := s.wait(c3); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("commit 3, after a later flush succeeded: %v, want the failed flush's error", err)
	}
	if err := s.wait(c1); err != nil { // made durable before the failure
		t.Fatalf("commit 1, asked late: %v", err)
	}
	if flushes != 3 {
		t.Errorf("flushes = %d, want 3", flushes)
	}
}

// TestSyncerFlushPanics: a flush function that panics fails the flush; the syncer is not
// left with a flush under way forever.
func TestSyncerFlushPanics(t *testing.T) {
	t.Parallel()
	calls := 0
	s := newSyncer(func() error {
		if calls++; calls == 1 {
			panic("boom")
		}
		return nil
	})
	c1 := s.commit()
	if err := s.wait(c1); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("wait after a panicking flush: %v, want an error that says so", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.wait(s.commit()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the next commit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the next commit's wait never returned")
	}
}
