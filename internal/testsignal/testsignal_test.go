package testsignal

import (
	"testing"
	"time"
)

func TestSignal(t *testing.T) {
	t.Parallel()
	var s Signal[int]
	s.Signal(1) // inert before Init: must not block or panic
	s.Init()
	if s.Pending() {
		t.Fatal("Pending after Init, want none")
	}
	s.Signal(1)
	s.Signal(2)
	s.Signal(3)
	if got := s.Wait(t, time.Second); got != 1 {
		t.Fatalf("Wait = %d, want 1", got)
	}
	if got := s.WaitFor(t, time.Second, func(v int) bool { return v == 3 }); got != 3 {
		t.Fatalf("WaitFor = %d, want 3", got)
	}
	if s.Pending() {
		t.Fatal("Pending after reading everything, want none")
	}
}

func TestSignalNeverBlocks(t *testing.T) {
	t.Parallel()
	var s Signal[int]
	s.Init()
	for i := range 2 * bufferSize {
		s.Signal(i)
	}
	if got := s.Wait(t, time.Second); got != 0 {
		t.Fatalf("first = %d, want 0", got)
	}
}
