package api_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/api"
)

// TestWebhookTestDetail: a test's detail carries its creation time and the attempts of its
// delivery, in the model of the deliveries API.
func TestWebhookTestDetail(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	ctx := context.Background()
	r := e.A.MustDo("POST", "/webhooks-tests", M{"object_type": "deployment", "object_name": "dep", "url": "https://example.com/t",
		"event": "deployment_request_completed", "retry": true}, http.StatusCreated)
	created := r.Object(t)
	id := created["id"].(string)
	if _, err := time.Parse(time.RFC3339, created["created_at"].(string)); err != nil {
		t.Errorf("created_at = %v: %v", created["created_at"], err)
	}
	if !bytes.Contains(r.Body, []byte(`"attempt_list":[]`)) {
		t.Errorf("a new test's attempt_list should be []: %s", r.Body)
	}
	r = e.A.MustDo("GET", "/webhooks-tests/"+id, nil, http.StatusOK)
	expectModel(t, r, "WebhookTestDetail")
	if got := r.Object(t); got["created_at"] != created["created_at"] || !bytes.Contains(r.Body, []byte(`"attempt_list":[]`)) {
		t.Errorf("GET of an unsent test = %s, want created_at %v and attempt_list []", r.Body, created["created_at"])
	}

	// Two attempts, as the engine records them: a 503 to retry, then a 200.
	now := e.Service.Now()
	attempt := func(n, code int, status ubihooks.DeliveryStatus, at time.Time) {
		t.Helper()
		ds, err := e.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "o", Limit: 10, Lease: time.Minute, Now: at})
		if err != nil || len(ds) != 1 || ds[0].TestID != id {
			t.Fatalf("claim = %d deliveries, %v; want the test's", len(ds), err)
		}
		o := ubihooks.Outcome{DeliveryID: ds[0].ID, Owner: "o", Status: status, NextAttemptAt: at.Add(time.Second),
			Attempt: ubihooks.Attempt{Number: n, StartedAt: at, Duration: 1500 * time.Microsecond, StatusCode: code, ResponseBody: "busy"}}
		if code >= 500 {
			o.Attempt.ErrorClass, o.Attempt.Error = ubihooks.ClassHTTPStatus, "HTTP 503"
		}
		if err := e.Store.RecordOutcomes(ctx, []ubihooks.Outcome{o}, at); err != nil {
			t.Fatal(err)
		}
	}
	attempt(1, 503, ubihooks.DeliveryPending, now)
	attempt(2, 200, ubihooks.DeliverySucceeded, now.Add(time.Second))
	r = e.A.MustDo("GET", "/webhooks-tests/"+id, nil, http.StatusOK)
	expectModel(t, r, "WebhookTestDetail")
	got := r.Object(t)
	list, _ := got["attempt_list"].([]any)
	if got["status"] != "completed" || len(list) != 2 {
		t.Fatalf("test after two attempts = %s, want completed with 2 attempts", r.Body)
	}
	first, second := list[0].(M), list[1].(M)
	if first["number"] != 1.0 || first["status_code"] != 503.0 || first["error_class"] != ubihooks.ClassHTTPStatus || first["duration_ms"] != 1.5 {
		t.Errorf("first attempt = %v, want number 1, 503, http_status, 1.5 ms", first)
	}
	if second["number"] != 2.0 || second["status_code"] != 200.0 || second["error"] != nil {
		t.Errorf("second attempt = %v, want number 2, 200, no error", second)
	}
	// The same model as a delivery's attempts.
	var d struct {
		AttemptList []api.AttemptDetail `json:"attempt_list"`
	}
	e.A.Decode("GET", "/webhooks-tests/"+id, nil, &d)
	if len(d.AttemptList) != 2 || d.AttemptList[1].StartedAt == nil {
		t.Errorf("attempt_list decoded as AttemptDetail = %+v", d.AttemptList)
	}
}
