package delivery

import (
	"math/rand/v2"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
)

// DefaultMaxRetryAfter caps a receiver's Retry-After when RetryPolicy.MaxRetryAfter is 0.
const DefaultMaxRetryAfter = time.Hour

// minRetryAfter is the shortest delay a Retry-After can ask for.
const minRetryAfter = time.Second

// RetryPolicy decides whether and when a failed attempt is retried.
//
// Which failures are retried: a webhook with retry: false gets exactly one attempt. With
// retry: true every failure is retried (as UbiOps documents: "network timeout or non 2xx or
// 3xx"), whatever the status code, 4xx and 410 Gone included, and whatever the transport
// error class, except ClassRefusedByPolicy: a destination refused by the SSRF policy is
// refused again on every attempt until an operator changes the allow-list, so it fails
// permanently at once.
//
// When: after attempt n (n >= 1) the next attempt comes Schedule[n-1] later, with a uniform
// jitter of ±Jitter (a fraction of the delay). When the receiver answered 429 or 503 with
// a Retry-After, that delay replaces the scheduled one, without jitter, at least 1s and at
// most MaxRetryAfter. After len(Schedule)+1 attempts the delivery fails.
type RetryPolicy struct {
	// Schedule holds the delays before the 2nd, 3rd, ... attempt.
	Schedule []time.Duration
	// Jitter spreads each scheduled delay uniformly over ±Jitter of it (0.2 = ±20%), so
	// that deliveries failing together do not retry together. Clamped to [0, 1].
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After; 0 means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// Rand returns a number in [0, 1) for the jitter; nil means math/rand/v2.Float64. It
	// must be safe for concurrent use.
	Rand func() float64
}

// DefaultRetryPolicy returns the retry policy of webhooks with retry: true. This is the
// canonical statement of the schedule.
//
// A delivery gets at most 10 attempts: the first, then retries after
//
//	5s, 30s, 2m, 10m, 30m, 1h, 3h, 6h, 12h
//
// each ±20% jitter, so the first retries come within seconds while a receiver that is down
// for hours is still reached. Nominally the last attempt comes 22h42m35s after the first
// (the horizon); with jitter, between 18h10m and 27h15m after it. A Retry-After (429, 503)
// replaces a scheduled delay and is capped at 1h, so each delay stays at most the larger
// of its jittered schedule and 1h, and the last attempt always comes within 32h.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Schedule: []time.Duration{
			5 * time.Second,
			30 * time.Second,
			2 * time.Minute,
			10 * time.Minute,
			30 * time.Minute,
			1 * time.Hour,
			3 * time.Hour,
			6 * time.Hour,
			12 * time.Hour,
		},
		Jitter:        0.2,
		MaxRetryAfter: DefaultMaxRetryAfter,
	}
}

// MaxAttempts returns the most attempts a delivery with retry: true gets (the first
// attempt plus one per Schedule entry).
func (p RetryPolicy) MaxAttempts() int { return len(p.Schedule) + 1 }

// Permanent reports whether a failure of this class is never retried.
func Permanent(errorClass string) bool { return errorClass == ubihooks.ClassRefusedByPolicy }

// Next decides what follows attempt number attempt (the attempts made so far, >= 1; lower
// values count as 1) that ended with res. It returns ok=false when there is no next
// attempt: res succeeded, retry is false, the failure is permanent or the attempts are
// exhausted. Otherwise the next attempt is due retryAt after this one ended.
func (p RetryPolicy) Next(attempt int, res outbound.Result, retry bool) (retryAt time.Duration, ok bool) {
	if !retry || res.ErrorClass == "" || Permanent(res.ErrorClass) {
		return 0, false
	}
	attempt = max(attempt, 1)
	if attempt > len(p.Schedule) {
		return 0, false
	}
	if res.RetryAfter > 0 {
		limit := p.MaxRetryAfter
		if limit <= 0 {
			limit = DefaultMaxRetryAfter
		}
		return min(max(res.RetryAfter, minRetryAfter), max(limit, minRetryAfter)), true
	}
	return p.jitter(p.Schedule[attempt-1]), true
}

// jitter spreads d uniformly over [d(1-j), d(1+j)).
func (p RetryPolicy) jitter(d time.Duration) time.Duration {
	j := min(max(p.Jitter, 0), 1)
	if j == 0 || d <= 0 {
		return max(d, 0)
	}
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	f := 1 + j*(2*r()-1)
	return max(time.Duration(float64(d)*f), 0)
}
