package ubihooks

import "time"

// StatsSampleSize bounds the attempts per webhook whose durations give WebhookStats.P50 and
// P95: the newest ones of the window. Percentiles over a bounded sample keep the cost of a
// busy webhook's stats, and the memory they take, the same whatever its traffic.
const StatsSampleSize = 1000

// StatsWindows are the windows over which webhook stats are offered, with their names.
var StatsWindows = []struct {
	Name     string
	Duration time.Duration
}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}}

// WebhookStats sums up a webhook's deliveries over a window: those created in it, and the
// attempts made for them. A webhook without any has zero counts, SuccessRate -1, zero
// percentiles, LastStatus "", a zero LastAttemptAt and empty buckets.
type WebhookStats struct {
	WebhookID, WebhookName string
	// Succeeded, Failed, Pending and Parked count the deliveries created in the window by
	// their status now; Pending counts pending and sending ones, Parked those kept while
	// ubihooks disabled the webhook.
	Succeeded, Failed, Pending, Parked int
	// SuccessRate is Succeeded/(Succeeded+Failed); -1 when none has finished.
	SuccessRate float64
	// P50 and P95 are nearest-rank percentiles of the durations of the window's attempts,
	// at most the newest StatsSampleSize of them (Attempts says how many).
	P50, P95 time.Duration
	Attempts int
	// LastStatus is the status of the window's newest delivery ("" when none).
	LastStatus string
	// LastAttemptAt is when the window's newest attempt started (zero when none).
	LastAttemptAt time.Time
	// Buckets split the window into equal periods (StatsBucketSize), oldest first, empty
	// ones included: each counts the deliveries created in it that have succeeded or failed.
	Buckets []StatsBucket
}

// StatsBucket is one period of a window.
type StatsBucket struct {
	Start             time.Time
	Succeeded, Failed int
}

// ParseStatsWindow returns the window named "1h", "24h" or "7d".
func ParseStatsWindow(name string) (time.Duration, error) {
	for _, w := range StatsWindows {
		if w.Name == name {
			return w.Duration, nil
		}
	}
	return 0, errStatsWindow()
}

// StatsWindowName returns the name of a window of StatsWindows ("" for another duration).
func StatsWindowName(window time.Duration) string {
	for _, w := range StatsWindows {
		if w.Duration == window {
			return w.Name
		}
	}
	return ""
}

// ValidateStatsWindow accepts only the windows of StatsWindows.
func ValidateStatsWindow(window time.Duration) error {
	if StatsWindowName(window) == "" {
		return errStatsWindow()
	}
	return nil
}

func errStatsWindow() error { return Errorf(EINVALID, "window must be one of 1h, 24h, 7d") }

// StatsBucketSize returns the period of a window's buckets: an hour for windows up to 48
// hours, six hours for longer ones (a week is 28 buckets).
func StatsBucketSize(window time.Duration) time.Duration {
	if window <= 48*time.Hour {
		return time.Hour
	}
	return 6 * time.Hour
}

// StatsBuckets regroups hourly buckets that start at since plus a whole number of hours
// (as a Store returns them: in any order, empty ones left out) into the buckets of the
// window from since to until: StatsBucketSize periods from since, oldest first, every one
// present, the last one ending at or after until. A bucket outside the window (a clock
// that moved back) counts in the nearest one.
func StatsBuckets(hourly []StatsBucket, since, until time.Time) []StatsBucket {
	window := until.Sub(since)
	size := StatsBucketSize(window)
	n := max(1, int((window+size-1)/size))
	out := make([]StatsBucket, n)
	for i := range out {
		out[i].Start = since.Add(time.Duration(i) * size)
	}
	for _, b := range hourly {
		i := min(max(0, int(b.Start.Sub(since)/size)), n-1)
		out[i].Succeeded += b.Succeeded
		out[i].Failed += b.Failed
	}
	return out
}

// SuccessRate returns succeeded/(succeeded+failed), or -1 when both are zero.
func SuccessRate(succeeded, failed int) float64 {
	if succeeded+failed == 0 {
		return -1
	}
	return float64(succeeded) / float64(succeeded+failed)
}

// DurationPercentile returns the nearest-rank percentile (1 to 100) of durations sorted in
// ascending order: the smallest value that at least percent % of them do not exceed. It
// returns 0 for none. The rank is computed in integers: in floating point, 0.07 × 100 is a
// little over 7, and its ceiling would be 8.
func DurationPercentile(sorted []time.Duration, percent int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (percent*len(sorted) + 99) / 100
	return sorted[min(max(rank, 1), len(sorted))-1]
}
