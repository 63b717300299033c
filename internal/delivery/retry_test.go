package delivery

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
)

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

func TestRetryPolicyNext(t *testing.T) {
	t.Parallel()
	fail500 := outbound.Result{StatusCode: 500, ErrorClass: ubihooks.ClassHTTPStatus, Error: "receiver answered 500 Internal Server Error"}
	timeout := outbound.Result{ErrorClass: ubihooks.ClassTimeout, Error: "timed out waiting for the receiver's response"}
	limited := func(d time.Duration) outbound.Result {
		return outbound.Result{StatusCode: 429, ErrorClass: ubihooks.ClassHTTPStatus, RetryAfter: d}
	}
	p := DefaultRetryPolicy()
	p.Rand = fixedRand(0.5) // no jitter: 1 + 0.2*(2*0.5-1) = 1

	tests := []struct {
		name    string
		p       RetryPolicy
		attempt int
		res     outbound.Result
		retry   bool
		want    time.Duration
		wantOK  bool
	}{
		{"retry false: exactly one attempt", p, 1, fail500, false, 0, false},
		{"success is not retried", p, 1, outbound.Result{StatusCode: 200}, true, 0, false},
		{"first retry", p, 1, fail500, true, 5 * time.Second, true},
		{"second retry", p, 2, timeout, true, 30 * time.Second, true},
		{"attempt 0 counts as 1", p, 0, fail500, true, 5 * time.Second, true},
		{"last retry", p, 9, fail500, true, 12 * time.Hour, true},
		{"exhausted", p, 10, fail500, true, 0, false},
		{"far past exhausted", p, 50, fail500, true, 0, false},
		{"refused by policy is permanent", p, 1, outbound.Result{ErrorClass: ubihooks.ClassRefusedByPolicy}, true, 0, false},
		{"410 Gone is retried", p, 1, outbound.Result{StatusCode: 410, ErrorClass: ubihooks.ClassHTTPStatus}, true, 5 * time.Second, true},
		{"DNS is retried", p, 3, outbound.Result{ErrorClass: ubihooks.ClassDNS}, true, 2 * time.Minute, true},
		{"TLS is retried", p, 4, outbound.Result{ErrorClass: ubihooks.ClassTLS}, true, 10 * time.Minute, true},
		{"connect is retried", p, 5, outbound.Result{ErrorClass: ubihooks.ClassConnect}, true, 30 * time.Minute, true},
		{"other is retried", p, 6, outbound.Result{ErrorClass: ubihooks.ClassOther}, true, time.Hour, true},
		{"Retry-After replaces a shorter delay", p, 1, limited(2 * time.Minute), true, 2 * time.Minute, true},
		{"Retry-After replaces a longer delay", p, 9, limited(2 * time.Minute), true, 2 * time.Minute, true},
		{"Retry-After is capped", p, 1, limited(5 * time.Hour), true, time.Hour, true},
		{"Retry-After at least 1s", p, 1, limited(10 * time.Millisecond), true, time.Second, true},
		{"Retry-After with retry false", p, 1, limited(time.Minute), false, 0, false},
		{"Retry-After after exhaustion", p, 10, limited(time.Minute), true, 0, false},
		{"Retry-After own cap", RetryPolicy{Schedule: p.Schedule, MaxRetryAfter: 10 * time.Minute}, 1, limited(time.Hour), true, 10 * time.Minute, true},
		{"Retry-After zero cap means default", RetryPolicy{Schedule: p.Schedule}, 1, limited(5 * time.Hour), true, DefaultMaxRetryAfter, true},
		{"empty schedule: no retries", RetryPolicy{}, 1, fail500, true, 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.p.Next(tt.attempt, tt.res, tt.retry)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: Next(%d, %+v, %v) = %v, %v; want %v, %v", tt.name, tt.attempt, tt.res, tt.retry, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestRetryPolicyJitterBounds(t *testing.T) {
	t.Parallel()
	fail := outbound.Result{StatusCode: 503, ErrorClass: ubihooks.ClassHTTPStatus}
	sched := DefaultRetryPolicy().Schedule
	for _, tc := range []struct {
		rand   float64
		factor float64
	}{{0, 0.8}, {0.25, 0.9}, {0.5, 1}, {0.75, 1.1}, {0.999999, 1.2}} {
		p := DefaultRetryPolicy()
		p.Rand = fixedRand(tc.rand)
		for i, d := range sched {
			got, ok := p.Next(i+1, fail, true)
			want := time.Duration(float64(d) * tc.factor)
			if !ok || absDuration(got-want) > time.Duration(float64(d)*1e-5) {
				t.Errorf("rand %v: Next(%d) = %v, %v; want ≈%v, true", tc.rand, i+1, got, ok, want)
			}
			if got < time.Duration(float64(d)*0.8) || got > time.Duration(float64(d)*1.2) {
				t.Errorf("rand %v: Next(%d) = %v outside %v ±20%%", tc.rand, i+1, got, d)
			}
		}
	}

	// The default source stays within the bounds too.
	p := DefaultRetryPolicy()
	for range 1000 {
		got, _ := p.Next(1, fail, true)
		if got < 4*time.Second || got > 6*time.Second {
			t.Fatalf("Next(1) = %v, want within 5s ±20%%", got)
		}
	}

	// Jitter is clamped to [0, 1].
	for _, j := range []float64{-1, 0} {
		p := RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: j, Rand: fixedRand(0)}
		if got, _ := p.Next(1, fail, true); got != time.Minute {
			t.Errorf("Jitter %v: Next = %v, want 1m0s", j, got)
		}
	}
	p = RetryPolicy{Schedule: []time.Duration{time.Minute}, Jitter: 5, Rand: fixedRand(0.9999)}
	if got, _ := p.Next(1, fail, true); got > 2*time.Minute {
		t.Errorf("Jitter 5: Next = %v, want at most 2m0s", got)
	}
}

func TestDefaultRetryPolicy(t *testing.T) {
	t.Parallel()
	p := DefaultRetryPolicy()
	if got, want := p.MaxAttempts(), 10; got != want {
		t.Errorf("MaxAttempts() = %d, want %d", got, want)
	}
	var horizon time.Duration
	for i, d := range p.Schedule {
		if i > 0 && d <= p.Schedule[i-1] {
			t.Errorf("Schedule[%d] = %v, not longer than the previous %v", i, d, p.Schedule[i-1])
		}
		horizon += d
	}
	if want := 22*time.Hour + 42*time.Minute + 35*time.Second; horizon != want {
		t.Errorf("horizon = %v, want %v (as documented)", horizon, want)
	}
	if p.Schedule[0] > 10*time.Second {
		t.Errorf("first retry after %v, want within seconds", p.Schedule[0])
	}
	if max := time.Duration(float64(horizon) * (1 + p.Jitter)); max > 28*time.Hour {
		t.Errorf("horizon with jitter up to %v, want about a day", max)
	}
	if p.Jitter != 0.2 || p.MaxRetryAfter != time.Hour {
		t.Errorf("Jitter, MaxRetryAfter = %v, %v; want 0.2, 1h", p.Jitter, p.MaxRetryAfter)
	}
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
