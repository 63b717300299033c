package service

import (
	"context"
	"log/slog"
	"time"
)

// CleanerConfig configures the retention cleaner.
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

// Cleaner removes expired records in bounded batches, in the background.
type Cleaner struct {
	svc  *Service
	cfg  CleanerConfig
	stop context.CancelFunc
	done chan struct{}
}

// NewCleaner returns a cleaner; Start runs it.
func (s *Service) NewCleaner(cfg CleanerConfig) *Cleaner {
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	return &Cleaner{svc: s, cfg: cfg}
}

// Start runs the cleaner until Stop.
func (c *Cleaner) Start(ctx context.Context) {
	ctx, c.stop = context.WithCancel(context.WithoutCancel(ctx))
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		for {
			if _, err := c.RunOnce(ctx); err != nil && ctx.Err() == nil {
				c.svc.log.Error("retention cleaner", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the cleaner and waits for it.
func (c *Cleaner) Stop() {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
}

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
	if err := c.svc.store.PruneSigningKeys(ctx, c.svc.Now().Add(-c.svc.keyOverlap)); err != nil {
		return total, err
	}
	if total > 0 {
		c.svc.log.LogAttrs(ctx, slog.LevelInfo, "retention cleaner removed expired records", slog.Int("rows", total))
	}
	return total, nil
}
