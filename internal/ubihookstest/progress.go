package ubihookstest

import (
	"sync"
	"testing"
	"time"
)

// Progress tells waiters that something changed, so that a test checks its condition again
// at each change instead of polling on a timer. Signals coalesce: a waiter wakes at least
// once after the last change, and every waiter wakes. The zero Progress is ready to use.
type Progress struct {
	mu sync.Mutex
	ch chan struct{} // closed by the next Signal; nil when nobody waits
}

// Signal wakes every waiter.
func (p *Progress) Signal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil {
		close(p.ch)
		p.ch = nil
	}
}

// next returns a channel that the next Signal closes.
func (p *Progress) next() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		p.ch = make(chan struct{})
	}
	return p.ch
}

// Await waits until cond holds, checking it at once and again after every Signal; it
// reports false when within passed first. cond runs on the caller's goroutine.
func (p *Progress) Await(within time.Duration, cond func() bool) bool {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		// Taken before the check: a change during the check still wakes the next wait.
		changed := p.next()
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return cond()
		}
	}
}

// Until is Await that fails the test when within passes first.
func (p *Progress) Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !p.Await(within, cond) {
		t.Fatalf("timed out after %s waiting for %s", within, what)
	}
}
