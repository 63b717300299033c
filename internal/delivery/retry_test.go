package delivery

import (
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
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

func TestRetryFalseIsOneAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(ubihookstest.Status(http.StatusInternalServerError))
	w := e.hook(rc.URL+"/", retry(false))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	d := ds[0]
	if d.Status != ubihooks.DeliveryFailed || d.Attempts != 1 || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts (%d recorded), want failed after 1", d.Status, d.Attempts, len(as[0]))
	}
	a := as[0][0]
	if a.StatusCode != 500 || a.ErrorClass != ubihooks.ClassHTTPStatus || !strings.Contains(a.Error, "500") {
		t.Errorf("attempt: status %d class %q error %q, want 500 http_status", a.StatusCode, a.ErrorClass, a.Error)
	}
	if d.LastStatusCode != 500 || d.LastError == "" {
		t.Errorf("delivery last status %d error %q", d.LastStatusCode, d.LastError)
	}
	if n := rc.Count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestRetry covers retry: true with a short schedule (100ms steps, no jitter).
func TestRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		respond     func(e *env) ubihookstest.Responder
		closed      bool // send to a port where nothing listens
		timeout     int
		schedule    []time.Duration
		wantStatus  ubihooks.DeliveryStatus
		wantCodes   []int
		wantClasses []string
		wantArrived int
	}{
		{name: "500 until exhausted", respond: func(*env) ubihookstest.Responder { return ubihookstest.Status(500) },
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{500, 500, 500, 500},
			wantClasses: []string{"http_status", "http_status", "http_status", "http_status"}, wantArrived: 4},
		{name: "timeout", timeout: 1, schedule: []time.Duration{100 * time.Millisecond},
			respond: func(e *env) ubihookstest.Responder {
				return ubihookstest.Hang()
			},
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{0, 0}, wantClasses: []string{"timeout", "timeout"}, wantArrived: 2},
		{name: "connection refused", closed: true,
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{0, 0, 0, 0},
			wantClasses: []string{"connect", "connect", "connect", "connect"}},
		{name: "stops on success", respond: func(*env) ubihookstest.Responder { return ubihookstest.Script(500, 500, 200) },
			wantStatus: ubihooks.DeliverySucceeded, wantCodes: []int{500, 500, 200}, wantClasses: []string{"http_status", "http_status", ""}, wantArrived: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			url := "http://" + ubihookstest.FreeAddr(t) + "/hook"
			var rc *ubihookstest.Receiver
			if !tt.closed {
				rc = e.receiver(tt.respond(e))
				url = rc.URL + "/hook"
			}
			mods := []func(*ubihooks.WebhookCreate){retry(true)}
			if tt.timeout > 0 {
				mods = append(mods, timeoutSecs(tt.timeout))
			}
			w := e.hook(url, mods...)
			reqID := e.complete()
			e.start(func(c *Config) {
				if tt.schedule != nil {
					c.Retry = RetryPolicy{Schedule: tt.schedule}
				}
			})
			ds, as := e.waitDone(w, 1, 15*time.Second)
			d, attempts := ds[0], as[0]
			if d.Status != tt.wantStatus || d.Attempts != len(tt.wantCodes) {
				t.Errorf("delivery %s after %d attempts, want %s after %d", d.Status, d.Attempts, tt.wantStatus, len(tt.wantCodes))
			}
			var codes []int
			var classes []string
			for i, a := range attempts {
				codes = append(codes, a.StatusCode)
				classes = append(classes, a.ErrorClass)
				if a.Number != i+1 {
					t.Errorf("attempt %d numbered %d", i+1, a.Number)
				}
				if a.ErrorClass != "" && a.Error == "" {
					t.Errorf("attempt %d: class %s without a message", i+1, a.ErrorClass)
				}
			}
			if !slices.Equal(codes, tt.wantCodes) || !slices.Equal(classes, tt.wantClasses) {
				t.Errorf("attempts: codes %v classes %v, want %v %v", codes, classes, tt.wantCodes, tt.wantClasses)
			}
			if rc != nil {
				byEvent := rc.ByID()
				want := ubihooks.EventID(reqID, ubihooks.EventDeploymentCompleted)
				if len(byEvent) != 1 || byEvent[want] != tt.wantArrived {
					t.Errorf("receiver got %v, want %d requests all with event id %s", byEvent, tt.wantArrived, want)
				}
			}
		})
	}
}

// TestRetryAfter: a 429 with Retry-After: 1 delays the next attempt by at least 1s, although
// the schedule says 100ms.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, _ *http.Request) {
		if a.N == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 2 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 2", ds[0].Status, len(as[0]))
	}
	if as[0][0].StatusCode != 429 || !strings.Contains(as[0][0].Error, "Retry-After") {
		t.Errorf("first attempt: %d %q, want 429 naming the Retry-After", as[0][0].StatusCode, as[0][0].Error)
	}
	got := rc.Arrivals()
	if gap := got[1].At.Sub(got[0].At); gap < time.Second {
		t.Errorf("second attempt came %s after the first, want at least 1s (Retry-After: 1)", gap)
	}
	if gap := as[0][1].StartedAt.Sub(as[0][0].StartedAt.Add(as[0][0].Duration)); gap < time.Second {
		t.Errorf("recorded attempts are %s apart, want at least 1s", gap)
	}
	if got[0].ID() != got[1].ID() {
		t.Errorf("retry has event id %s, first attempt %s", got[1].ID(), got[0].ID())
	}
}

// TestDefaultRetryPolicyIsUsed: an engine configured without a policy retries on
// DefaultRetryPolicy's schedule (5s ±20% after the first attempt).
func TestDefaultRetryPolicyIsUsed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(ubihookstest.Status(503))
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	eng := e.start(func(c *Config) { c.Retry = RetryPolicy{} })
	if want := DefaultRetryPolicy(); !reflect.DeepEqual(eng.cfg.Retry, want) {
		t.Errorf("engine policy = %+v, want DefaultRetryPolicy %+v", eng.cfg.Retry, want)
	}
	var d *ubihooks.Delivery
	var as []*ubihooks.Attempt
	e.Until(10*time.Second, "the first attempt", func() bool {
		ds := e.deliveries(w)
		if len(ds) != 1 || ds[0].Attempts != 1 {
			return false
		}
		d, as = e.delivery(w, ds[0].ID)
		return len(as) == 1
	})
	if d.Status != ubihooks.DeliveryPending {
		t.Fatalf("after a 503 with retry: status %s, want pending", d.Status)
	}
	ended := as[0].StartedAt.Add(as[0].Duration)
	first := DefaultRetryPolicy().Schedule[0]
	if gap := d.NextAttemptAt.Sub(ended); gap < first*8/10-10*time.Millisecond || gap > first*12/10+10*time.Millisecond {
		t.Errorf("next attempt due %s after the first ended, want %s ±20%%", gap, first)
	}
	if n := rc.Count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}
