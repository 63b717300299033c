package startstop

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPeriodic(t *testing.T) {
	t.Parallel()
	passes := make(chan struct{}, 10)
	release := make(chan struct{})
	p := &Periodic{Name: "test", Interval: time.Hour, RunFunc: func(ctx context.Context) {
		passes <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
	}}
	if err := p.Stop(t.Context()); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	p.Notify() // before Start: remembered, so the loop passes again after its first pass
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err == nil || err.Error() != "test: already started" {
		t.Errorf("second Start: %v, want \"test: already started\"", err)
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-passes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s within 5s", what)
		}
	}
	wait("pass at Start")
	release <- struct{}{}
	wait("pass after the notification")
	release <- struct{}{}
	p.Notify()
	wait("pass after a notification while idle")

	// Stop cancels the pass in progress and waits for it; a Stop that cannot wait that
	// long says so.
	short, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Stop(short); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with an ended ctx: %v", err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	select {
	case <-passes:
		t.Error("a pass after Stop")
	default:
	}
}

func TestPeriodicValidates(t *testing.T) {
	t.Parallel()
	for _, p := range []*Periodic{{Name: "x", RunFunc: func(context.Context) {}}, {Name: "x", Interval: time.Second}} {
		if err := p.Start(t.Context()); err == nil {
			t.Errorf("Start of %+v succeeded, want an error", p)
			_ = p.Stop(t.Context())
		}
	}
}
