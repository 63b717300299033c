package ubihooks

import (
	"fmt"
	"time"
)

// WebhookHealthPolicy says when a webhook whose receiver keeps failing is reported, and
// when ubihooks disables it. A webhook's run of failures counts its delivery attempts that
// failed since the last one that succeeded (webhook tests do not count).
type WebhookHealthPolicy struct {
	// FailingAfter is the run of failures after which the webhook is reported failing
	// (webhook.failing); 0 never reports it.
	FailingAfter int
	// DisableAfter is how long a run of failures lasts before ubihooks disables the webhook
	// (with MinFailures); 0 never disables.
	DisableAfter time.Duration
	// MinFailures is the shortest run that disables, however long it lasted, so that one
	// event retried for days does not trip it.
	MinFailures int
}

// DefaultWebhookHealthPolicy reports a webhook failing after 10 failed attempts in a row
// and disables it once every attempt failed for 5 days, at least 20 of them.
func DefaultWebhookHealthPolicy() WebhookHealthPolicy {
	return WebhookHealthPolicy{FailingAfter: 10, DisableAfter: 5 * 24 * time.Hour, MinFailures: 20}
}

// Validate reports a policy that cannot be applied.
func (p WebhookHealthPolicy) Validate() error {
	switch {
	case p.FailingAfter < 0:
		return Errorf(EINVALID, "the failing threshold must not be negative, got %d", p.FailingAfter)
	case p.DisableAfter < 0:
		return Errorf(EINVALID, "the disable period must not be negative, got %s", p.DisableAfter)
	case p.MinFailures < 1 && p.DisableAfter > 0:
		return Errorf(EINVALID, "the minimum number of failures that disables must be at least 1, got %d", p.MinFailures)
	}
	return nil
}

// WebhookHealthKind names a change of a webhook's health, as the operations webhook, the
// log and the metrics report it.
type WebhookHealthKind string

// Health changes.
const (
	// WebhookFailing: a run of failures reached the policy's FailingAfter.
	WebhookFailing WebhookHealthKind = "webhook.failing"
	// WebhookDisabled: ubihooks disabled the webhook; its events are parked from now on.
	WebhookDisabled WebhookHealthKind = "webhook.disabled"
	// WebhookRecovered: an attempt succeeded again after the webhook was reported failing
	// or disabled (after a re-enable, for a disabled one).
	WebhookRecovered WebhookHealthKind = "webhook.recovered"
)

// WebhookHealthKinds lists every health change.
var WebhookHealthKinds = []WebhookHealthKind{WebhookFailing, WebhookDisabled, WebhookRecovered}

// WebhookHealthChange is one change of a webhook's health, found by
// Store.ApplyWebhookHealth. It is reported once, by the one process whose pass made it.
type WebhookHealthChange struct {
	Kind    WebhookHealthKind
	Webhook *Webhook // as it is after the change
	// ProjectName is the webhook's project's name.
	ProjectName string
	// Parked counts the pending deliveries parked by a disable.
	Parked int
	At     time.Time
}

// DisabledReason is the reason ubihooks gives when it disables a webhook.
func (p WebhookHealthPolicy) DisabledReason(failures int, since time.Time) string {
	return fmt.Sprintf("disabled by ubihooks: all %d delivery attempts since %s failed (over %s); new events are parked, not sent. "+
		"Re-enable the webhook (enabled: true), then send the parked deliveries with POST …/deliveries/redeliver {\"status\": \"parked\"}",
		failures, since.UTC().Format(time.RFC3339), durationText(p.DisableAfter))
}

// durationText writes d in days and hours when it is that long.
func durationText(d time.Duration) string {
	if d >= 24*time.Hour && d%time.Hour == 0 {
		days, hours := int(d/(24*time.Hour)), int((d%(24*time.Hour))/time.Hour)
		text := plural(days, "day")
		if hours > 0 {
			text += " " + plural(hours, "hour")
		}
		return text
	}
	if d >= time.Hour && d%time.Hour == 0 {
		return plural(int(d/time.Hour), "hour")
	}
	if d >= time.Minute && d%time.Minute == 0 {
		return plural(int(d/time.Minute), "minute")
	}
	return d.String()
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
