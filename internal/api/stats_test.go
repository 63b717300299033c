package api_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// statsEnv is an API env with webhooks "s-a" (completed), "s-b" (failed) and "s-idle"
// (completed, disabled) on "dep", and, at t0 and t0+2h on the frozen clock, deliveries
// that the test records as sent at t0+2h:
//   - s-a: one at t0 that succeeded in 10 ms, one at t0+2h that failed in 30 ms;
//   - s-b: one at t0+2h that succeeded in 20 ms.
//
// The clock is left at t0+3h.
func statsEnv(t *testing.T) (*apiEnv, time.Time) {
	e := newAPIEnv(t)
	ctx := context.Background()
	e.A.MustDo("POST", "/webhooks", webhook("s-a"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("s-b", set("event", "deployment_request_failed")), 201)
	e.A.MustDo("POST", "/webhooks", webhook("s-idle", set("enabled", false)), 201)
	p, err := e.Service.GetProject(ctx, projA)
	if err != nil {
		t.Fatal(err)
	}
	emit := func(to ubihooks.RequestStatus) {
		t.Helper()
		if _, err := e.Service.RecordTransition(ctx, p, service.Transition{ObjectType: ubihooks.ObjectDeployment, ObjectName: "dep",
			RequestID: uuid.NewString(), From: ubihooks.RequestProcessing, To: to}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	e.Clock.Freeze(t0)
	emit(ubihooks.RequestCompleted)
	e.Clock.Freeze(t0.Add(2 * time.Hour))
	emit(ubihooks.RequestCompleted)
	emit(ubihooks.RequestFailed)
	now := e.Service.Now()
	ds, err := e.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "o", Limit: 10, Lease: time.Minute, Now: now})
	if err != nil || len(ds) != 3 {
		t.Fatalf("claim = %d deliveries, %v; want 3", len(ds), err)
	}
	sb := e.storedWebhook("s-b").ID
	var outs []ubihooks.Outcome
	for _, d := range ds {
		o := ubihooks.Outcome{DeliveryID: d.ID, Owner: "o", Status: ubihooks.DeliverySucceeded,
			Attempt: ubihooks.Attempt{Number: 1, StartedAt: now, StatusCode: 200}}
		switch {
		case d.WebhookID == sb:
			o.Attempt.Duration = 20 * time.Millisecond
		case d.CreatedAt.Equal(t0):
			o.Attempt.Duration = 10 * time.Millisecond
		default:
			o.Status, o.Attempt.Duration = ubihooks.DeliveryFailed, 30*time.Millisecond
			o.Attempt.StatusCode, o.Attempt.ErrorClass, o.Attempt.Error = 0, ubihooks.ClassConnect, "connection refused"
		}
		outs = append(outs, o)
	}
	if err := e.Store.RecordOutcomes(ctx, outs, now); err != nil {
		t.Fatal(err)
	}
	e.Clock.Freeze(t0.Add(3 * time.Hour))
	return e, t0
}

// iso renders a time as the API does.
func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// buckets returns want's buckets: n periods of size from since, with counts at some.
func buckets(since time.Time, size time.Duration, n int, counts map[int][2]int) []any {
	out := make([]any, n)
	for i := range out {
		c := counts[i]
		out[i] = M{"start": iso(since.Add(time.Duration(i) * size)), "succeeded": float64(c[0]), "failed": float64(c[1])}
	}
	return out
}

func TestWebhookStats(t *testing.T) {
	t.Parallel()
	e, t0 := statsEnv(t)
	now := t0.Add(3 * time.Hour)
	day := now.Add(-24 * time.Hour)
	lastAttempt := iso(t0.Add(2 * time.Hour))

	r := e.A.MustDo("GET", "/webhooks-stats?window=24h", nil, http.StatusOK)
	list := r.List(t)
	if len(list) != 3 {
		t.Fatalf("stats = %s, want 3 webhooks", r.Body)
	}
	want := []M{
		{"webhook_name": "s-a", "window": "24h", "succeeded": 1.0, "failed": 1.0, "pending": 0.0, "parked": 0.0, "success_rate": 0.5, "p50_ms": 10.0,
			"p95_ms": 30.0, "attempts_sampled": 2.0, "last_status": "failed", "last_attempt_at": lastAttempt,
			// t0 is hour 21 of the day before t0+3h, t0+2h hour 23.
			"buckets": buckets(day, time.Hour, 24, map[int][2]int{21: {1, 0}, 23: {0, 1}})},
		{"webhook_name": "s-b", "window": "24h", "succeeded": 1.0, "failed": 0.0, "pending": 0.0, "parked": 0.0, "success_rate": 1.0, "p50_ms": 20.0,
			"p95_ms": 20.0, "attempts_sampled": 1.0, "last_status": "succeeded", "last_attempt_at": lastAttempt,
			"buckets": buckets(day, time.Hour, 24, map[int][2]int{23: {1, 0}})},
		{"webhook_name": "s-idle", "window": "24h", "succeeded": 0.0, "failed": 0.0, "pending": 0.0, "parked": 0.0, "success_rate": nil, "p50_ms": nil,
			"p95_ms": nil, "attempts_sampled": 0.0, "last_status": nil, "last_attempt_at": nil, "buckets": buckets(day, time.Hour, 24, nil)},
	}
	for i, w := range want {
		if !reflect.DeepEqual(list[i], w) {
			t.Errorf("stats[%d] =\n%v\nwant\n%v", i, list[i], w)
		}
	}
	// No window means a day.
	if r2 := e.A.MustDo("GET", "/webhooks-stats", nil, http.StatusOK); string(r2.Body) != string(r.Body) {
		t.Errorf("stats without a window = %s, want those of 24h", r2.Body)
	}

	// The last hour starts at t0+2h, and holds what came then; a second later it is empty.
	got := e.A.MustObj("GET", "/webhooks/s-a/stats?window=1h", nil, http.StatusOK)
	if got["window"] != "1h" || got["succeeded"] != 0.0 || got["failed"] != 1.0 || got["success_rate"] != 0.0 || got["p50_ms"] != 30.0 ||
		!reflect.DeepEqual(got["buckets"], buckets(now.Add(-time.Hour), time.Hour, 1, map[int][2]int{0: {0, 1}})) {
		t.Errorf("s-a over the hour from t0+2h = %v, want the failure at t0+2h", got)
	}
	e.Clock.Freeze(now.Add(time.Second))
	r = e.A.MustDo("GET", "/webhooks/s-a/stats?window=1h", nil, http.StatusOK)
	got = r.Object(t)
	if got["succeeded"] != 0.0 || got["failed"] != 0.0 || got["last_status"] != nil || got["p50_ms"] != nil ||
		!reflect.DeepEqual(got["buckets"], buckets(now.Add(time.Second-time.Hour), time.Hour, 1, nil)) {
		t.Errorf("s-a over the hour from t0+2h+1s = %s, want nothing in it", r.Body)
	}
	// A week has 28 buckets of six hours.
	e.Clock.Freeze(t0.Add(2*time.Hour + 30*time.Minute))
	week := e.A.MustObj("GET", "/webhooks/s-a/stats?window=7d", nil, http.StatusOK)
	now = t0.Add(2*time.Hour + 30*time.Minute)
	since := now.Add(-7 * 24 * time.Hour)
	// t0 is 165.5 hours into the week (bucket 27), t0+2h 167.5 (bucket 27).
	if week["window"] != "7d" || week["succeeded"] != 1.0 || week["failed"] != 1.0 ||
		!reflect.DeepEqual(week["buckets"], buckets(since, 6*time.Hour, 28, map[int][2]int{27: {1, 1}})) {
		t.Errorf("s-a over a week = %v", week)
	}

	for _, tc := range []struct{ path, msg string }{
		{"/webhooks-stats?window=2h", "window must be one of 1h, 24h, 7d"},
		{"/webhooks-stats?window=1d", "window must be one of 1h, 24h, 7d"},
		{"/webhooks/s-a/stats?window=168h", "window must be one of 1h, 24h, 7d"},
	} {
		expectError(t, e.A.Do("GET", tc.path, nil, ""), http.StatusBadRequest, tc.msg)
	}
	expectError(t, e.A.Do("GET", "/webhooks/nope/stats?window=7d", nil, ""), http.StatusNotFound, `webhook "nope" not found`)
	// Project B's webhook is not A's.
	expectError(t, e.A.Do("GET", "/webhooks/hook-b/stats", nil, ""), http.StatusNotFound, `webhook "hook-b" not found`)
	b := e.root.As(e.tokB).Project(projB).MustList("GET", "/webhooks-stats?window=7d", nil, http.StatusOK)
	if len(b) != 1 || b[0]["webhook_name"] != "hook-b" || b[0]["succeeded"] != 0.0 {
		t.Errorf("project B's stats = %v, want hook-b alone, without deliveries", b)
	}
}
