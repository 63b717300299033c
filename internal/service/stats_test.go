package service_test

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestWebhookStatsRules: the windows are those of StatsWindows, an unknown webhook is
// ENOTFOUND, and the buckets cover the whole window (the store returns only those with
// deliveries).
func TestWebhookStatsRules(t *testing.T) {
	t.Parallel()
	e := ubihookstest.New(t, ubihookstest.Options{})
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e.Clock.Freeze(now)
	e.Object(ubihooks.ObjectDeployment, "dep", "v1")
	e.Webhook(ubihooks.WebhookCreate{Name: "hook", ObjectType: "deployment", ObjectName: "dep", URL: "https://example.com/",
		Event: string(ubihooks.EventDeploymentCompleted)})

	for _, w := range []time.Duration{0, 2 * time.Hour, 48 * time.Hour, -time.Hour} {
		_, err := e.Service.WebhookStats(e.Ctx, e.Project.ID, w, "")
		if ubihooks.ErrorCode(err) != ubihooks.EINVALID || ubihooks.ErrorMessage(err) != "window must be one of 1h, 24h, 7d" {
			t.Errorf("WebhookStats(window %v) = %v, want EINVALID naming the windows", w, err)
		}
	}
	_, err := e.Service.WebhookStats(e.Ctx, e.Project.ID, time.Hour, "nope")
	if ubihooks.ErrorCode(err) != ubihooks.ENOTFOUND || ubihooks.ErrorMessage(err) != `webhook "nope" not found` {
		t.Errorf("WebhookStats(nope) = %v, want ENOTFOUND", err)
	}
	for _, tc := range []struct {
		window time.Duration
		n      int
		size   time.Duration
	}{{time.Hour, 1, time.Hour}, {24 * time.Hour, 24, time.Hour}, {7 * 24 * time.Hour, 28, 6 * time.Hour}} {
		for _, name := range []string{"", "hook"} {
			stats, err := e.Service.WebhookStats(e.Ctx, e.Project.ID, tc.window, name)
			if err != nil || len(stats) != 1 {
				t.Fatalf("WebhookStats(%v, %q) = %d entries, %v; want 1", tc.window, name, len(stats), err)
			}
			bs := stats[0].Buckets
			if len(bs) != tc.n || !bs[0].Start.Equal(now.Add(-tc.window)) || !bs[tc.n-1].Start.Equal(now.Add(-tc.size)) {
				t.Errorf("WebhookStats(%v, %q): %d buckets, %v to %v; want %d from %v to %v", tc.window, name, len(bs), bs[0].Start,
					bs[len(bs)-1].Start, tc.n, now.Add(-tc.window), now.Add(-tc.size))
			}
			if st := stats[0]; st.WebhookName != "hook" || st.SuccessRate != -1 || st.LastStatus != "" || !st.LastAttemptAt.IsZero() {
				t.Errorf("stats of a webhook without deliveries = %+v", st)
			}
		}
	}
}
