package service

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ubihooks/ubihooks/internal/startstop"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// CleanerConfig configures the retention cleaner. Zero values take the documented defaults.
type CleanerConfig struct {
	// Retention is how long finished deliveries (with attempts), events, tests and finished
	// requests are kept (default 30 days). An event's deliveries go together, once the last
	// of them has been finished for that long.
	Retention time.Duration
	// Interval is how often the cleaner runs (default 1 minute).
	Interval time.Duration
	// Batch bounds the rows removed per statement, so that cleaning never holds the
	// database for long (default 1000).
	Batch int
}

// withDefaults returns c with every unset field at its default.
func (c CleanerConfig) withDefaults() CleanerConfig {
	c.Retention = cmp.Or(c.Retention, 30*24*time.Hour)
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.Batch = cmp.Or(c.Batch, 1000)
	return c
}

// validate reports the first setting a cleaner cannot run with.
func (c CleanerConfig) validate() error {
	switch {
	case c.Retention <= 0:
		return fmt.Errorf("cleaner: Retention must be positive, got %s", c.Retention)
	case c.Interval <= 0:
		return fmt.Errorf("cleaner: Interval must be positive, got %s", c.Interval)
	case c.Batch < 1:
		return fmt.Errorf("cleaner: Batch must be at least 1, got %d", c.Batch)
	}
	return nil
}

// CleanerTestSignals are the events a Cleaner reports to its tests; see testsignal.
type CleanerTestSignals struct {
	// Ran follows every pass of the background loop.
	Ran testsignal.Signal[CleanerPass]
}

// Init arms every signal. Call it before Start.
func (s *CleanerTestSignals) Init() { s.Ran.Init() }

// CleanerPass is one pass of the cleaner: the rows it removed, and its error.
type CleanerPass struct {
	Rows int
	Err  error
}

// Cleaner removes expired records in bounded batches, in the background.
type Cleaner struct {
	// TestSignals are armed by tests before Start.
	TestSignals CleanerTestSignals

	svc  *Service
	cfg  CleanerConfig
	loop startstop.Periodic
}

// NewCleaner returns a cleaner; Start runs it, RunOnce runs one pass in the caller.
func (s *Service) NewCleaner(cfg CleanerConfig) *Cleaner {
	c := &Cleaner{svc: s, cfg: cfg.withDefaults()}
	c.loop = startstop.Periodic{Name: "cleaner", Interval: c.cfg.Interval, RunFunc: c.pass}
	return c
}

// Notify makes a running cleaner pass at once instead of at its next interval.
func (c *Cleaner) Notify() { c.loop.Notify() }

// Start runs a pass at once, then one every Interval, until Stop; ctx is not watched. It
// fails on an invalid configuration, and when the cleaner was started before: a Cleaner
// runs once.
func (c *Cleaner) Start(ctx context.Context) error {
	if err := c.cfg.validate(); err != nil {
		return err
	}
	return c.loop.Start(ctx)
}

// pass is one pass of the background loop.
func (c *Cleaner) pass(ctx context.Context) {
	n, err := c.RunOnce(ctx)
	if err != nil && ctx.Err() == nil {
		c.svc.log.Error("retention cleaner", "err", err)
	}
	c.TestSignals.Ran.Signal(CleanerPass{Rows: n, Err: err})
}

// Stop ends the cleaner: a pass in progress is canceled between statements. It waits for
// the pass to end until ctx is done, and then returns ctx's error. Stopping again, or
// stopping a cleaner that never started, does nothing.
func (c *Cleaner) Stop(ctx context.Context) error { return c.loop.Stop(ctx) }

// RunOnce removes everything that expired, batch by batch, and returns the rows removed.
func (c *Cleaner) RunOnce(ctx context.Context) (int, error) {
	before := c.svc.Now().Add(-c.cfg.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := c.svc.store.DeleteExpired(ctx, before, c.cfg.Batch)
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break
		}
	}
	n, err := c.svc.store.DeleteExpiredSessions(ctx, c.svc.Now())
	total += n
	if err != nil {
		return total, err
	}
	if err := c.svc.store.PruneSigningKeys(ctx, c.svc.Now().Add(-c.svc.keyOverlap)); err != nil {
		return total, err
	}
	if total > 0 {
		c.svc.log.LogAttrs(ctx, slog.LevelInfo, "retention cleaner removed expired records", slog.Int("rows", total))
	}
	return total, nil
}
