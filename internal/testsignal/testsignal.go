// Package testsignal lets a background service tell its tests that something happened
// (a batch recorded, a rescue run, a loop idle), so that tests wait for the event itself
// instead of sleeping and hoping. A signal that a test never initialised costs one nil
// check: production code calls Signal unconditionally.
package testsignal

import (
	"testing"
	"time"
)

// bufferSize is how many signals may wait unread before further ones are dropped. Tests
// wait for what they expect soon after it happens, so a small buffer is plenty; dropping
// keeps a forgotten signal from blocking the service.
const bufferSize = 1000

// Signal is one kind of event a service reports, carrying a value of type T.
// The zero Signal is inert.
type Signal[T any] struct {
	ch chan T
}

// Init arms the signal. Call it before the service starts.
func (s *Signal[T]) Init() { s.ch = make(chan T, bufferSize) }

// Signal reports v when the signal is armed, and does nothing otherwise. It never blocks.
func (s *Signal[T]) Signal(v T) {
	if s.ch == nil {
		return
	}
	select {
	case s.ch <- v:
	default:
	}
}

// Wait returns the next value reported, or fails t after timeout.
func (s *Signal[T]) Wait(t testing.TB, timeout time.Duration) T {
	t.Helper()
	if s.ch == nil {
		t.Fatal("testsignal: Wait on a signal that was not initialised")
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case v := <-s.ch:
		return v
	case <-timer.C:
		t.Fatalf("testsignal: no signal within %v", timeout)
		var zero T
		return zero
	}
}

// WaitFor waits until a reported value satisfies ok, discarding the others, or fails t
// after timeout (counted from the call).
func (s *Signal[T]) WaitFor(t testing.TB, timeout time.Duration, ok func(T) bool) T {
	t.Helper()
	if s.ch == nil {
		t.Fatal("testsignal: WaitFor on a signal that was not initialised")
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case v := <-s.ch:
			if ok(v) {
				return v
			}
		case <-timer.C:
			t.Fatalf("testsignal: no matching signal within %v", timeout)
			var zero T
			return zero
		}
	}
}

// Pending reports whether a value waits to be read (for tests that assert that something
// did not happen yet).
func (s *Signal[T]) Pending() bool { return len(s.ch) > 0 }
