package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// WebhookStatsDetail sums up a webhook's deliveries over a window (ubihooks extension):
// those created in it, and their attempts.
type WebhookStatsDetail struct {
	WebhookName string `json:"webhook_name"`
	// Window is "1h", "24h" or "7d".
	Window    string `json:"window"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	// Pending counts deliveries pending or being sent.
	Pending int `json:"pending"`
	// Parked counts deliveries kept, not sent, while ubihooks disabled the webhook.
	Parked int `json:"parked"`
	// SuccessRate is succeeded/(succeeded+failed); null when none has finished.
	SuccessRate *float64 `json:"success_rate"`
	// P50MS and P95MS are percentiles of the attempts' durations in milliseconds, over the
	// newest 1000 attempts at most (AttemptsSampled); null without attempts.
	P50MS           *float64 `json:"p50_ms"`
	P95MS           *float64 `json:"p95_ms"`
	AttemptsSampled int      `json:"attempts_sampled"`
	// LastStatus is the status of the newest delivery of the window; null when none.
	LastStatus *string `json:"last_status"`
	// LastAttemptAt is when the newest attempt of the window started; null when none.
	LastAttemptAt *string `json:"last_attempt_at"`
	// Buckets cover the window, oldest first: hours for windows up to a day, six hours for
	// a week.
	Buckets []StatsBucketDetail `json:"buckets"`
}

// StatsBucketDetail counts the deliveries created in one period of a window that have
// succeeded or failed.
type StatsBucketDetail struct {
	Start     string `json:"start"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
}

func webhookStatsDetail(st *ubihooks.WebhookStats, window string) WebhookStatsDetail {
	out := WebhookStatsDetail{WebhookName: st.WebhookName, Window: window, Succeeded: st.Succeeded, Failed: st.Failed,
		Pending: st.Pending, Parked: st.Parked, AttemptsSampled: st.Attempts, LastStatus: strPtr(st.LastStatus), LastAttemptAt: isoTime(st.LastAttemptAt),
		Buckets: make([]StatsBucketDetail, len(st.Buckets))}
	if st.SuccessRate >= 0 {
		out.SuccessRate = &st.SuccessRate
	}
	if st.Attempts > 0 {
		p50, p95 := durationMS(st.P50), durationMS(st.P95)
		out.P50MS, out.P95MS = &p50, &p95
	}
	for i, b := range st.Buckets {
		out.Buckets[i] = StatsBucketDetail{Start: *isoTime(b.Start), Succeeded: b.Succeeded, Failed: b.Failed}
	}
	return out
}

// webhookStats answers the stats of the project's webhooks, or of the one in the path, over
// the window of the query ("24h" when absent).
func (s *Server) webhookStats(c *call) error {
	name := c.r.URL.Query().Get("window")
	if name == "" {
		name = "24h"
	}
	window, err := ubihooks.ParseStatsWindow(name)
	if err != nil {
		return err
	}
	webhook := c.p["webhook_name"]
	stats, err := s.svc.WebhookStats(c.r.Context(), c.project.ID, window, webhook)
	if err != nil {
		return err
	}
	out := make([]WebhookStatsDetail, len(stats))
	for i, st := range stats {
		out[i] = webhookStatsDetail(st, name)
	}
	if webhook != "" {
		return c.json(http.StatusOK, out[0])
	}
	return c.json(http.StatusOK, out)
}
