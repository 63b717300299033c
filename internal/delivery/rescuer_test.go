package delivery

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func TestRescuerConfig(t *testing.T) {
	t.Parallel()
	c := rescuerConfig{}.withDefaults()
	if c.Interval != 10*time.Second || c.Logger == nil || c.NowFunc == nil || c.NotifyFunc == nil {
		t.Errorf("defaults: interval %s, logger %v, clock set %v, notify set %v; want 10s and all set",
			c.Interval, c.Logger, c.NowFunc != nil, c.NotifyFunc != nil)
	}
	if c := (rescuerConfig{Interval: time.Minute}).withDefaults(); c.Interval != time.Minute {
		t.Errorf("interval %s, want the minute configured", c.Interval)
	}
	e := setup(t)
	tests := []struct {
		name    string
		cfg     rescuerConfig
		wantErr string
	}{
		{"valid", rescuerConfig{Store: e.Store}, ""},
		{"no store", rescuerConfig{}, "no store"},
		{"negative interval", rescuerConfig{Store: e.Store, Interval: -time.Second}, "negative interval"},
	}
	for _, tt := range tests {
		err := tt.cfg.withDefaults().validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: validate = %v, want an error with %q", tt.name, err, tt.wantErr)
		}
		r := newRescuer(tt.cfg)
		if err := r.Start(t.Context()); (err == nil) != (tt.wantErr == "") {
			t.Errorf("%s: Start = %v", tt.name, err)
		}
		if err := r.Stop(t.Context()); err != nil {
			t.Errorf("%s: Stop = %v", tt.name, err)
		}
	}
}

func TestRescuerLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := newRescuer(rescuerConfig{Store: e.Store, Interval: time.Hour})
	if err := r.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start = %v, want nil", err)
	}
	r.TestSignals.Init()
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start = %v, want already started", err)
	}
	r.TestSignals.Rescued.Wait(t, 5*time.Second) // the run at Start
	for range 2 {
		if err := r.Stop(t.Context()); err != nil {
			t.Errorf("Stop = %v", err)
		}
	}
	r.Notify() // after Stop: nothing runs
	if r.TestSignals.Rescued.Pending() {
		t.Error("a run after Stop")
	}
	if err := r.Start(t.Context()); err == nil {
		t.Error("Start after Stop = nil, want an error")
	}
}

// TestRescuerReturnsExpiredLeases: the deliveries of a crashed engine come back to the
// queue, unattempted, when their leases expire; the rescuer then wakes the engine.
func TestRescuerReturnsExpiredLeases(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.hook("http://receiver.example/hook")
	for range 3 {
		e.complete()
	}
	ctx := context.Background()
	claimed, err := e.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "crashed-engine", Limit: 10, Lease: time.Minute, Now: time.Now()})
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claim = %d deliveries, %v; want 3", len(claimed), err)
	}
	var clock atomic.Int64 // how far the rescuer's clock is ahead
	var notified atomic.Int64
	r := newRescuer(rescuerConfig{Store: e.Store, Interval: time.Hour, NotifyFunc: func() { notified.Add(1) },
		NowFunc: func() time.Time { return time.Now().Add(time.Duration(clock.Load())) }})
	r.TestSignals.Init()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	if n := r.TestSignals.Rescued.Wait(t, 5*time.Second); n != 0 || notified.Load() != 0 {
		t.Errorf("leases still running: rescued %d (notified %d times), want 0", n, notified.Load())
	}
	clock.Store(int64(2 * time.Minute)) // past the leases
	r.Notify()
	if n := r.TestSignals.Rescued.Wait(t, 5*time.Second); n != 3 || notified.Load() != 1 {
		t.Errorf("leases expired: rescued %d (notified %d times), want 3 (once)", n, notified.Load())
	}
	for _, d := range e.deliveries(w) {
		if d.Status != ubihooks.DeliveryPending || d.LeaseOwner != "" || d.Attempts != 0 {
			t.Errorf("rescued delivery: %s, lease owner %q, %d attempts; want pending, none, 0", d.Status, d.LeaseOwner, d.Attempts)
		}
	}
	r.Notify()
	if n := r.TestSignals.Rescued.Wait(t, 5*time.Second); n != 0 {
		t.Errorf("again: rescued %d, want 0", n)
	}
}
