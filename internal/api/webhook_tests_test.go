package api_test

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
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

// savedEnv is an API env that runs the delivery engine (127.0.0.0/8 allowed), with every
// recorded outcome signalling Changed; opts adjust the engine's configuration.
func savedEnv(t *testing.T, opts ...func(*apiEnv, *delivery.Config)) *apiEnv {
	e := newAPIEnv(t)
	cfg := delivery.Config{Store: e.Store, Client: loopbackClient(t), SignerFunc: e.Service.Signer,
		OpenHeadersFunc: e.Service.OpenHeaders, Owner: "saved-engine", OnRecordFunc: func([]ubihooks.Outcome) { e.Changed.Signal() }}
	for _, o := range opts {
		o(e, &cfg)
	}
	e.Run(delivery.NewEngine(cfg), ubihooks.ChannelDeliveries)
	return e
}

// loopbackClient is the outbound client of a server run with --allow-networks 127.0.0.0/8.
func loopbackClient(t *testing.T) *http.Client {
	allow, err := outbound.ParseNetworks("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	return outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: allow}))
}

// runTest posts a test of a saved webhook, waits for it to finish and returns its detail.
func (e *apiEnv) runTest(t *testing.T, webhook string, body any) M {
	t.Helper()
	r := e.A.Do("POST", "/webhooks/"+webhook+"/tests", body, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "WebhookTestDetail")
	id, _ := r.Object(t)["id"].(string)
	var got M
	e.Until(10*time.Second, "test "+id+" finished", func() bool {
		got = e.A.MustObj("GET", "/webhooks-tests/"+id, nil, http.StatusOK)
		return got["status"] != "pending"
	})
	return got
}

func TestTestSavedWebhook(t *testing.T) {
	t.Parallel()
	e := savedEnv(t)
	const secret = "saved-s3cret-4e1d"
	r1, r2 := e.Receiver(ubihookstest.ReceiverConfig{}), e.Receiver(ubihookstest.ReceiverConfig{})
	e.A.MustDo("POST", "/webhooks", webhook("saved", set("url", r1.URL+"/hook"), set("timeout", 5), set("headers", []M{
		{"key": "X-Api-Key", "value": secret, "protected": true}, {"key": "X-Plain", "value": "p", "protected": false}})), 201)
	e.A.MustDo("POST", "/webhooks", webhook("bound", set("url", r1.URL+"/bound"), set("version", "v2"), set("enabled", false)), 201)
	before := e.A.MustDo("GET", "/webhooks/saved", nil, 200).Body

	last := func(r *ubihookstest.Receiver) *ubihookstest.Arrival {
		t.Helper()
		as := r.Arrivals()
		if len(as) == 0 {
			t.Fatalf("%s received nothing", r.URL)
		}
		return as[len(as)-1]
	}
	check := func(what string, a *ubihookstest.Arrival, path, event, version string, headers map[string]string) {
		t.Helper()
		if a.Path != path || a.Payload["event"] != event || a.Payload["deployment_version_name"] != version {
			t.Errorf("%s: %s with event %v of version %v; want %s, %s, %s", what, a.Path, a.Payload["event"], a.Payload["deployment_version_name"], path, event, version)
		}
		for k, v := range headers {
			if got := a.Header.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", what, k, got, v)
			}
		}
	}

	// As saved (no body, an empty body, {}): the stored secret is sent.
	for i, body := range []any{nil, "", M{}} {
		got := e.runTest(t, "saved", body)
		list, _ := got["attempt_list"].([]any)
		if got["status"] != "completed" || len(list) != 1 || list[0].(M)["status_code"] != 200.0 {
			t.Fatalf("test %d as saved = %v, want completed after one 200", i, got)
		}
		check("as saved", last(r1), "/hook", "deployment_request_completed", "v1", map[string]string{"X-Api-Key": secret, "X-Plain": "p"})
	}
	if n := r1.Count(); n != 3 {
		t.Errorf("r1 received %d calls, want 3", n)
	}

	// With changes: another URL and event, the secret kept by sending the key alone, a
	// header replaced.
	e.runTest(t, "saved", M{"url": r2.URL + "/other", "event": "deployment_request_failed", "retry": true,
		"headers": []M{{"key": "x-api-key", "protected": true}, {"key": "X-New", "value": "n", "protected": false}}})
	check("with changes", last(r2), "/other", "deployment_request_failed", "v1", map[string]string{"X-Api-Key": secret, "X-New": "n", "X-Plain": ""})
	// A new secret for the test only.
	e.runTest(t, "saved", M{"headers": []M{{"key": "X-Api-Key", "value": "test-only", "protected": true}}})
	check("with a new secret", last(r1), "/hook", "deployment_request_completed", "v1", map[string]string{"X-Api-Key": "test-only", "X-Plain": ""})

	// Nothing was saved.
	if after := e.A.MustDo("GET", "/webhooks/saved", nil, 200).Body; !bytes.Equal(after, before) {
		t.Errorf("webhook after tests = %s, want it unchanged: %s", after, before)
	}
	if got := e.openedHeaders("saved"); !reflect.DeepEqual(got, map[string]string{"X-Api-Key": secret, "X-Plain": "p"}) {
		t.Errorf("stored headers after tests = %v", got)
	}

	// A webhook bound to a version tests that version, disabled or not.
	e.runTest(t, "bound", nil)
	check("bound", last(r1), "/bound", "deployment_request_completed", "v2", nil)
}

func TestTestSavedWebhookValidation(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const secret = "never-echoed-9c2a"
	e.A.MustDo("POST", "/webhooks", webhook("v", set("headers", []M{{"key": "X-Api-Key", "value": secret, "protected": true}})), 201)
	for _, tc := range []struct {
		name   string
		hook   string
		body   any
		status int
		msg    string
	}{
		{"unknown webhook", "nope", nil, 404, `webhook "nope" not found`},
		{"object_type", "v", M{"object_type": "pipeline"}, 400, "object_type cannot be changed"},
		{"version", "v", M{"version": "v2"}, 400, "version cannot be changed"},
		{"timeout", "v", M{"timeout": 0, "headers": []M{{"key": "X-Api-Key", "value": secret, "protected": true}}}, 400, "timeout must be between 1 and 30 seconds, got 0"},
		{"url", "v", M{"url": "ftp://example.com/"}, 400, "url must be an absolute http:// or https:// URL"},
		{"event", "v", M{"event": "pipeline_request_completed"}, 400, `does not match object_type "deployment"`},
		{"new protected header without value", "v", M{"headers": []M{{"key": "X-Other", "protected": true}}}, 400, `this webhook has no protected header "X-Other"`},
		{"name", "v", M{"name": ""}, 400, "name is required"},
		{"malformed", "v", `{`, 400, "malformed JSON"},
		{"array", "v", `[]`, 400, "request body must be an object"},
		{"timeout string", "v", `{"timeout":"5"}`, 400, `invalid value for "timeout"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.A.Do("POST", "/webhooks/"+tc.hook+"/tests", tc.body, "")
			expectError(t, r, tc.status, tc.msg)
			if bytes.Contains(r.Body, []byte(secret)) {
				t.Errorf("%s: the answer holds the protected value", r)
			}
		})
	}
	// The body is optional in the OpenAPI document, and the operation is marked an extension.
	var doc struct {
		Paths map[string]map[string]struct {
			Summary     string `json:"summary"`
			RequestBody struct {
				Required bool `json:"required"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	e.root.Decode("GET", "/openapi.json", nil, &doc)
	op := doc.Paths["/projects/{project_name}/webhooks/{webhook_name}/tests"]["post"]
	if op.RequestBody.Required || !bytes.HasSuffix([]byte(op.Summary), []byte("(ubihooks extension)")) {
		t.Errorf("POST …/webhooks/{webhook_name}/tests in the OpenAPI document: %+v; want an optional body and an extension's summary", op)
	}
}
