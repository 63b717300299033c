package service

import (
	"context"
	"time"

	"github.com/ubihooks/ubihooks"
)

// WebhookStats sums up the deliveries of a project's webhooks over the last window (one of
// ubihooks.StatsWindows), or of the webhook named name unless it is "" (ENOTFOUND when
// there is none): one entry per webhook, by name, with the buckets of the whole window.
func (s *Service) WebhookStats(ctx context.Context, projectID string, window time.Duration, name string) ([]*ubihooks.WebhookStats, error) {
	if err := ubihooks.ValidateStatsWindow(window); err != nil {
		return nil, err
	}
	now := s.Now()
	since := now.Add(-window)
	stats, err := s.store.WebhookStats(ctx, projectID, since, name)
	if err != nil {
		return nil, err
	}
	if name != "" && len(stats) == 0 {
		return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "webhook %q not found", name)
	}
	for _, st := range stats {
		st.Buckets = ubihooks.StatsBuckets(st.Buckets, since, now)
	}
	return stats, nil
}
