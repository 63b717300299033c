package delivery

import (
	"net/http"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestTake: a place is reserved for an emitted delivery only while the engine runs and has
// room: a free place among the sends and the prefetch, holds below their bound, and the
// host neither full nor stuck. Return gives places back.
func TestTake(t *testing.T) {
	t.Parallel()
	const host = "h:443"
	// 2 sends + 2 prefetched places; 2 sends + 2 unrecorded + 2 prefetched holds; one
	// send per host and a host cap of 1 + min(3, 2) = 3.
	cfg := Config{MaxInFlight: 2, Prefetch: 2, MaxUnrecorded: 2, MaxPerHost: 1}
	push := func(e *Engine, ids ...string) {
		for _, id := range ids {
			if !e.q.push(prepared{d: &ubihooks.Delivery{ID: id, Host: id[:1] + ":443"}}) {
				t.Fatalf("push %s refused", id)
			}
			e.held++
		}
	}
	tests := []struct {
		name  string
		setup func(e *Engine)
		want  bool
	}{
		{"not started", func(e *Engine) { e.started = false }, false},
		{"stopping", func(e *Engine) { e.closing = true }, false},
		{"room", func(*Engine) {}, true},
		{"places taken by other hosts", func(e *Engine) { push(e, "a1", "b1", "c1", "d1") }, false},
		{"a place left", func(e *Engine) { push(e, "a1", "b1", "c1") }, true},
		{"holds at their bound", func(e *Engine) { e.held = 6 }, false},
		{"a hold left", func(e *Engine) { e.held = 5 }, true},
		{"host full", func(e *Engine) { push(e, "h1", "h2"); e.q.reserve(host); e.held++ }, false},
		{"host below its cap", func(e *Engine) { push(e, "h1"); e.q.reserve(host); e.held++ }, true},
		{"host stuck", func(e *Engine) { e.backlogs.deferUntil(host, time.Now()) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := NewEngine(cfg)
			e.started = true
			tt.setup(e)
			places, held, reserved := e.q.places(), e.held, e.q.reserved[host]
			if got := e.Take(host); got != tt.want {
				t.Fatalf("Take = %v, want %v", got, tt.want)
			}
			wantPlaces, wantHeld, wantReserved := places, held, reserved
			if tt.want {
				wantPlaces, wantHeld, wantReserved = places+1, held+1, reserved+1
			}
			if e.q.places() != wantPlaces || e.held != wantHeld || e.q.reserved[host] != wantReserved {
				t.Errorf("after Take: places %d, held %d, reserved %d; want %d, %d, %d",
					e.q.places(), e.held, e.q.reserved[host], wantPlaces, wantHeld, wantReserved)
			}
			if !tt.want {
				return
			}
			e.Return([]string{host})
			if e.q.places() != places || e.held != held || e.q.reserved[host] != reserved {
				t.Errorf("after Return: places %d, held %d, reserved %d; want %d, %d, %d",
					e.q.places(), e.held, e.q.reserved[host], places, held, reserved)
			}
			select {
			case <-e.freed:
			default:
				t.Error("Return did not wake the claims")
			}
		})
	}
}

// TestDispatchHandOver: deliveries emitted while an engine runs are leased to it in the
// emitting transaction and handed over after the commit, without a claim; those without a
// send slot wait in the engine's queue.
func TestDispatchHandOver(t *testing.T) {
	t.Parallel()
	e := setup(t)
	answer := make(chan struct{})
	rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-answer:
		case <-r.Context().Done():
		case <-e.Done():
		}
	})
	w := e.hook(rc.URL+"/", timeoutSecs(20))
	eng := e.start(func(c *Config) { c.MaxPerHost = 1 })
	for range 3 {
		e.complete()
	}
	e.Until(10*time.Second, "the first arrival", func() bool { return rc.Count() == 1 })
	eng.mu.Lock()
	sending, waiting, reserved, held := eng.q.sending, eng.q.nWaiting, eng.q.nReserved, eng.held
	eng.mu.Unlock()
	if sending != 1 || waiting != 2 || reserved != 0 || held != 3 {
		t.Errorf("engine: %d sending, %d waiting, %d reserved, %d held; want 1, 2, 0, 3", sending, waiting, reserved, held)
	}
	owner, _ := eng.Lease()
	for _, d := range e.deliveries(w) {
		if d.Status != ubihooks.DeliverySending || d.LeaseOwner != owner {
			t.Errorf("delivery %s, leased to %q; want sending, leased to %q", d.Status, d.LeaseOwner, owner)
		}
	}
	for eng.TestSignals.Claimed.Pending() {
		if n := eng.TestSignals.Claimed.Wait(t, time.Second); n != 0 {
			t.Errorf("a claim brought %d deliveries, want none: all were dispatched", n)
		}
	}
	close(answer)
	ds, _ := e.waitDone(w, 3, 10*time.Second)
	for _, d := range ds {
		if d.Status != ubihooks.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("delivery %s after %d attempts, want succeeded after 1", d.Status, d.Attempts)
		}
	}
}
