package delivery

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/startstop"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// rescuerConfig configures a rescuer. Zero values take the documented defaults.
type rescuerConfig struct {
	// Store holds the deliveries; required.
	Store ubihooks.Store
	// Interval is how often expired leases are looked for (default 10s).
	Interval time.Duration
	// NotifyFunc, when set, is called after deliveries came back to the queue, to wake the
	// engine that claims them.
	NotifyFunc func()
	Logger     *slog.Logger
	NowFunc    func() time.Time
}

func (c rescuerConfig) withDefaults() rescuerConfig {
	c.Interval = cmp.Or(c.Interval, 10*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	if c.NotifyFunc == nil {
		c.NotifyFunc = func() {}
	}
	return c
}

func (c rescuerConfig) validate() error {
	if c.Store == nil {
		return errors.New("delivery: rescuer: no store")
	}
	if c.Interval < 0 {
		return errors.New("delivery: rescuer: negative interval")
	}
	return nil
}

// rescuerTestSignals are the events a rescuer reports to tests.
type rescuerTestSignals struct {
	// Rescued reports each run with how many deliveries came back (0 on a store error).
	Rescued testsignal.Signal[int]
}

// Init arms every signal.
func (ts *rescuerTestSignals) Init() { ts.Rescued.Init() }

// rescuer returns the deliveries whose lease expired to the queue: those of an engine that
// crashed, or that stopped before it could hand them back. It runs at Start, then every
// Interval and whenever it is notified. A rescuer runs once: after Stop it cannot be
// started again.
type rescuer struct {
	cfg  rescuerConfig
	loop startstop.Periodic

	// TestSignals tell tests what the rescuer did; arm them with Init before Start.
	TestSignals rescuerTestSignals
}

func newRescuer(cfg rescuerConfig) *rescuer {
	r := &rescuer{cfg: cfg.withDefaults()}
	r.loop = startstop.Periodic{Name: "delivery: rescuer", Interval: r.cfg.Interval, RunFunc: r.rescue}
	return r
}

// Start validates the configuration and runs the rescuer in the background until Stop.
// ctx gives the rescuer its values; its end does not stop it.
func (r *rescuer) Start(ctx context.Context) error {
	if err := r.cfg.validate(); err != nil {
		return err
	}
	return r.loop.Start(ctx)
}

// Stop ends the rescuer and waits for its run in progress until ctx ends. It is safe to
// call more than once, and before Start.
func (r *rescuer) Stop(ctx context.Context) error { return r.loop.Stop(ctx) }

// Notify makes the rescuer look for expired leases now.
func (r *rescuer) Notify() { r.loop.Notify() }

func (r *rescuer) rescue(ctx context.Context) {
	n, err := r.cfg.Store.RescueDeliveries(ctx, r.cfg.NowFunc())
	if err != nil && ctx.Err() == nil {
		r.cfg.Logger.Error("rescue deliveries", "err", err)
	}
	if n > 0 {
		r.cfg.Logger.Info("rescued deliveries with expired leases", "count", n)
		r.cfg.NotifyFunc()
	}
	r.TestSignals.Rescued.Signal(n)
}
