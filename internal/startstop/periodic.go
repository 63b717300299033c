// Package startstop holds the start/stop machinery that background services share, so
// that each service writes only its own work: a loop started once, stopped by cancelling
// its context and waiting for it, and woken early by Notify.
package startstop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Periodic runs RunFunc at Start, then every Interval and whenever notified, until Stop.
// A Periodic runs once: after Stop it cannot be started again. Set its fields before
// Start and leave them alone afterwards.
type Periodic struct {
	// Name starts its errors ("cleaner: already started").
	Name string
	// Interval between passes; it must be positive.
	Interval time.Duration
	// RunFunc is one pass. Its ctx ends at Stop: a long pass should watch it.
	RunFunc func(ctx context.Context)

	mu      sync.Mutex
	wake    chan struct{}
	started bool
	cancel  context.CancelFunc // stops the loop
	done    chan struct{}      // closed when the loop has returned
}

// Start runs the loop in the background. ctx gives the passes their values; its end does
// not stop them (Stop does). It fails when started before or when Interval is not positive.
func (p *Periodic) Start(ctx context.Context) error {
	if p.Interval <= 0 {
		return fmt.Errorf("%s: interval must be positive, got %s", p.Name, p.Interval)
	}
	if p.RunFunc == nil {
		return fmt.Errorf("%s: nothing to run", p.Name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New(p.Name + ": already started")
	}
	p.started = true
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go p.loop(ctx, p.wakeLocked(), p.done)
	return nil
}

// Stop ends the loop (the pass in progress sees its ctx end) and waits for it until ctx
// is done, then returns ctx's error. It is safe to call more than once, and before Start.
func (p *Periodic) Stop(ctx context.Context) error {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: stop: %w", p.Name, ctx.Err())
	}
}

// Notify makes a running loop pass now instead of at its next interval; notifications
// that arrive during a pass make one more pass after it.
func (p *Periodic) Notify() {
	p.mu.Lock()
	wake := p.wakeLocked()
	p.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (p *Periodic) wakeLocked() chan struct{} {
	if p.wake == nil {
		p.wake = make(chan struct{}, 1)
	}
	return p.wake
}

func (p *Periodic) loop(ctx context.Context, wake <-chan struct{}, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		p.RunFunc(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}
