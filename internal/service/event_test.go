package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// eventsEnv is the setup bundle of these tests: a ubihookstest.Env (real SQLite in
// t.TempDir(), the service with a secret.Box and a signing key, the project "acme") with
// the deployment "scorer" (v1), the Env's movable clock shared by the service, the engines
// and the receivers' verifier, and receivers that verify every signature. The Env's
// cleanup stops the engines, then the receivers, then closes the store.
type eventsEnv struct {
	t       *testing.T
	ctx     context.Context
	env     *ubihookstest.Env
	svc     *service.Service
	project *ubihooks.Project
	allow   []netip.Prefix
	quit    <-chan struct{} // closed when the test ends: stalled receivers give up
}

func setupEvents(t *testing.T, allow ...netip.Prefix) *eventsEnv {
	t.Helper()
	env := ubihookstest.New(t, ubihookstest.Options{Project: "acme", Organization: "acme-org"})
	env.Object(ubihooks.ObjectDeployment, "scorer", "v1")
	return &eventsEnv{t: t, ctx: env.Ctx, env: env, svc: env.Service, project: env.Project, allow: allow, quit: env.Done()}
}

var loopbackOnly = netip.MustParsePrefix("127.0.0.0/8")

// advance moves the shared clock forward.
func (e *eventsEnv) advance(d time.Duration) { e.env.Clock.Advance(d) }

// startEngine starts the engine as serve.go wires it, with short intervals; every commit
// wakes it, and every recorded outcome wakes the test's waits.
func (e *eventsEnv) startEngine() *delivery.Engine {
	e.t.Helper()
	client := outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: e.allow}))
	eng := delivery.NewEngine(delivery.Config{
		Store:           e.env.Store,
		Client:          client,
		SignerFunc:      e.svc.Signer,
		OpenHeadersFunc: e.svc.OpenHeaders,
		Owner:           "test-" + uuid.NewString(),
		Lease:           5 * time.Second,
		PollInterval:    50 * time.Millisecond,
		RescueInterval:  100 * time.Millisecond,
		Retry:           delivery.RetryPolicy{Schedule: []time.Duration{100 * time.Millisecond}},
		UserAgent:       "ubihooks/test",
		NowFunc:         e.env.Clock.Now,
		OnRecordFunc:    func([]ubihooks.Outcome) { e.env.Changed.Signal() },
	})
	e.env.Defer(client.CloseIdleConnections)
	e.env.Run(eng)
	return eng
}

// hit is one request a receiver got, signature verified.
type hit struct {
	n       int
	path    string
	header  http.Header
	payload map[string]any
}

type eventsReceiver struct {
	url string
	rc  *ubihookstest.Receiver
}

func (r *eventsReceiver) all() []hit {
	var hits []hit
	for _, a := range r.rc.Arrivals() {
		hits = append(hits, hit{n: a.N, path: a.Path, header: a.Header, payload: a.Payload})
	}
	return hits
}

// receiver starts a receiver that verifies signatures and answers with respond (nil: 200).
func (e *eventsEnv) receiver(respond func(n int, w http.ResponseWriter, r *http.Request)) *eventsReceiver {
	var cfg ubihookstest.ReceiverConfig
	if respond != nil {
		cfg.Respond = func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) { respond(a.N, w, r) }
	}
	rc := e.env.Receiver(cfg)
	return &eventsReceiver{url: rc.URL, rc: rc}
}

func (e *eventsEnv) webhook(name, url string, retry bool) *ubihooks.Webhook {
	e.t.Helper()
	return e.env.Webhook(ubihooks.WebhookCreate{Name: name, ObjectType: "deployment",
		ObjectName: "scorer", URL: url, Event: string(ubihooks.EventDeploymentCompleted), Retry: &retry})
}

// completed records a request of scorer going processing → completed.
func (e *eventsEnv) completed() string {
	e.t.Helper()
	id := uuid.NewString()
	if _, err := e.svc.RecordTransition(e.ctx, e.project, service.Transition{ObjectType: ubihooks.ObjectDeployment,
		ObjectName: "scorer", RequestID: id, From: ubihooks.RequestProcessing, To: ubihooks.RequestCompleted}); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// waitFinished waits until every delivery of w is succeeded or failed and there are n,
// checking again at every recorded outcome.
func (e *eventsEnv) waitFinished(w *ubihooks.Webhook, n int) []*ubihooks.Delivery {
	e.t.Helper()
	var ds []*ubihooks.Delivery
	e.env.Until(10*time.Second, fmt.Sprintf("%d finished deliveries", n), func() bool {
		var err error
		if ds, err = e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, service.DeliveryQuery{}); err != nil {
			e.t.Fatal(err)
		}
		if len(ds) != n {
			return false
		}
		for _, d := range ds {
			if d.Status != ubihooks.DeliverySucceeded && d.Status != ubihooks.DeliveryFailed {
				return false
			}
		}
		return true
	})
	return ds
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string { return ubihookstest.FreeAddr(t) }

// TestWebhookTestOutcomes: a webhook test ends completed on a 2xx answer, and failed with
// an actionable message on a 500, a timeout, a refused connection and an address the
// network policy refuses (a message that names no resolved address).
func TestWebhookTestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		allow      []netip.Prefix
		url        func(e *eventsEnv) (string, *eventsReceiver)
		want       ubihooks.TestStatus
		wantInMsg  []string
		notInMsg   []string
		wantHits   int
		includeRes bool
	}{
		{name: "2xx", allow: []netip.Prefix{loopbackOnly}, includeRes: true,
			url:  func(e *eventsEnv) (string, *eventsReceiver) { rc := e.receiver(nil); return rc.url + "/ok", rc },
			want: ubihooks.TestCompleted, wantHits: 1},
		{name: "500", allow: []netip.Prefix{loopbackOnly},
			url: func(e *eventsEnv) (string, *eventsReceiver) {
				rc := e.receiver(func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
				return rc.url + "/err", rc
			},
			want: ubihooks.TestFailed, wantInMsg: []string{"500"}, wantHits: 1},
		{name: "timeout", allow: []netip.Prefix{loopbackOnly},
			url: func(e *eventsEnv) (string, *eventsReceiver) {
				rc := e.receiver(func(_ int, _ http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-e.quit:
					}
				})
				return rc.url + "/slow", rc
			},
			want: ubihooks.TestFailed, wantInMsg: []string{"timeout", "1s"}, wantHits: 1},
		{name: "connection refused", allow: []netip.Prefix{loopbackOnly},
			url:  func(*eventsEnv) (string, *eventsReceiver) { return "http://" + closedPort(t) + "/", nil },
			want: ubihooks.TestFailed, wantInMsg: []string{"connection refused"}},
		{name: "private address refused by policy",
			url:  func(*eventsEnv) (string, *eventsReceiver) { return "http://10.0.0.1:8080/hook", nil },
			want: ubihooks.TestFailed, wantInMsg: []string{"not allowed", "allow-networks"}, notInMsg: []string{"10.0.0.1", "10."}},
		{name: "metadata address refused by policy",
			url:  func(*eventsEnv) (string, *eventsReceiver) { return "http://169.254.169.254/latest/meta-data/", nil },
			want: ubihooks.TestFailed, wantInMsg: []string{"not allowed", "allow-networks"}, notInMsg: []string{"169.254"}},
		{name: "loopback refused by policy",
			url:  func(e *eventsEnv) (string, *eventsReceiver) { rc := e.receiver(nil); return rc.url + "/", rc },
			want: ubihooks.TestFailed, wantInMsg: []string{"not allowed"}, notInMsg: []string{"127.0.0.1"}, wantHits: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setupEvents(t, tt.allow...)
			url, rc := tt.url(e)
			one, no := 1, false
			protected, secretValue := true, "test-secret-"+uuid.NewString()
			in := ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "scorer", URL: url,
				Event: string(ubihooks.EventDeploymentCompleted), Timeout: &one, Retry: &no, IncludeResult: &tt.includeRes,
				Headers: []ubihooks.HeaderInput{{Key: "Authorization", Value: &secretValue, Protected: &protected}}}
			test, err := e.svc.CreateWebhookTest(e.ctx, e.project, in)
			if err != nil {
				t.Fatal(err)
			}
			if test.Status != ubihooks.TestPending {
				t.Errorf("new test status %s, want pending", test.Status)
			}
			e.startEngine()
			var got *ubihooks.WebhookTest
			e.env.Until(10*time.Second, "the test to finish", func() bool {
				got, err = e.svc.GetWebhookTest(e.ctx, e.project.ID, test.ID)
				if err != nil {
					t.Fatal(err)
				}
				return got.Status != ubihooks.TestPending
			})
			if got.Status != tt.want {
				t.Fatalf("test status %s (%q), want %s", got.Status, got.ErrorMessage, tt.want)
			}
			if tt.want == ubihooks.TestCompleted && got.ErrorMessage != "" {
				t.Errorf("completed test has error_message %q", got.ErrorMessage)
			}
			if tt.want == ubihooks.TestFailed && got.ErrorMessage == "" {
				t.Errorf("failed test has no error_message")
			}
			for _, s := range tt.wantInMsg {
				if !strings.Contains(got.ErrorMessage, s) {
					t.Errorf("error_message %q does not mention %q", got.ErrorMessage, s)
				}
			}
			for _, s := range append(tt.notInMsg, secretValue) {
				if strings.Contains(got.ErrorMessage, s) {
					t.Errorf("error_message %q contains %q", got.ErrorMessage, s)
				}
			}
			if rc != nil {
				hits := rc.all()
				if len(hits) != tt.wantHits {
					t.Errorf("receiver got %d requests, want %d", len(hits), tt.wantHits)
				}
				for _, h := range hits {
					if h.header.Get("Authorization") != secretValue || h.payload["test"] != true {
						t.Errorf("test request: Authorization %q, payload %v", h.header.Get("Authorization"), h.payload)
					}
				}
			}
		})
	}
}

// TestWebhookTestPayload: the receiver of a webhook test gets the payload shape of a real
// event, marked as a test, with the protected header's real value.
func TestWebhookTestPayload(t *testing.T) {
	t.Parallel()
	e := setupEvents(t, loopbackOnly)
	rc := e.receiver(nil)
	yes, protected := true, true
	secretValue := "Bearer " + uuid.NewString()
	test, err := e.svc.CreateWebhookTest(e.ctx, e.project, ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "scorer",
		URL: rc.url + "/t", Event: string(ubihooks.EventDeploymentCompleted), IncludeResult: &yes,
		Headers: []ubihooks.HeaderInput{{Key: "Authorization", Value: &secretValue, Protected: &protected}}})
	if err != nil {
		t.Fatal(err)
	}
	e.startEngine()
	e.env.Until(10*time.Second, "the test delivery", func() bool { return len(rc.all()) == 1 })
	h := rc.all()[0]
	p := h.payload
	if p["test"] != true || p["event"] != string(ubihooks.EventDeploymentCompleted) || p["deployment_name"] != "scorer" ||
		p["deployment_version_name"] != "v1" || p["status"] != "completed" || p["project"] != "acme" {
		t.Errorf("test payload %v", p)
	}
	if id, _ := p["request_id"].(string); id == "" {
		t.Errorf("test payload has no dummy request_id: %v", p)
	}
	if r, ok := p["result"].(map[string]any); !ok || r["test"] != true {
		t.Errorf("include_result: result = %v", p["result"])
	}
	if got := h.header.Get("Authorization"); got != secretValue {
		t.Errorf("Authorization = %q, want the protected value", got)
	}
	e.env.Until(5*time.Second, "the test to complete", func() bool {
		got, err := e.svc.GetWebhookTest(e.ctx, e.project.ID, test.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status == ubihooks.TestCompleted
	})
}

// TestDeliveryHistory: ListDeliveries and GetDelivery show each delivery's status and
// attempts; Redeliver sends a finished delivery again with the same event id.
func TestDeliveryHistory(t *testing.T) {
	t.Parallel()
	e := setupEvents(t, loopbackOnly)
	var fail atomic.Bool
	fail.Store(true)
	rc := e.receiver(func(_ int, w http.ResponseWriter, _ *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "down for maintenance")
		}
	})
	w := e.webhook("history", rc.url+"/", false)
	other := e.webhook("other", rc.url+"/other", false)
	first := e.completed()
	e.startEngine()
	e.waitFinished(w, 1)
	fail.Store(false)
	second := e.completed()
	ds := e.waitFinished(w, 2)

	// Newest first: the second request's delivery succeeded, the first failed.
	if ds[0].Event.RequestID != second || ds[1].Event.RequestID != first {
		t.Fatalf("list order: %s, %s; want the second request first", ds[0].Event.RequestID, ds[1].Event.RequestID)
	}
	if ds[0].Status != ubihooks.DeliverySucceeded || ds[1].Status != ubihooks.DeliveryFailed {
		t.Errorf("statuses %s, %s; want succeeded, failed", ds[0].Status, ds[1].Status)
	}
	failed, attempts, err := e.svc.GetDelivery(e.ctx, e.project.ID, w.Name, ds[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if failed.Attempts != 1 || len(attempts) != 1 || attempts[0].StatusCode != 500 || attempts[0].ErrorClass != ubihooks.ClassHTTPStatus ||
		attempts[0].ResponseBody != "down for maintenance" || failed.LastStatusCode != 500 || failed.CompletedAt.IsZero() {
		t.Errorf("failed delivery: %+v, attempts %+v", failed, attempts)
	}
	if _, _, err := e.svc.GetDelivery(e.ctx, e.project.ID, other.Name, ds[1].ID); !ubihooks.IsNotFound(err) {
		t.Errorf("GetDelivery through another webhook: %v, want not found", err)
	}

	// Redeliver the failed one: same event id, a second attempt, now succeeded.
	eventID := ubihooks.EventID(first, ubihooks.EventDeploymentCompleted)
	if failed.EventID != eventID {
		t.Errorf("delivery event id %s, want %s", failed.EventID, eventID)
	}
	d, err := e.svc.Redeliver(e.ctx, e.project.ID, w.Name, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.EventID != eventID {
		t.Errorf("redelivery event id %s, want %s", d.EventID, eventID)
	}
	var again *ubihooks.Delivery
	e.env.Until(10*time.Second, "the redelivery", func() bool {
		again, attempts, err = e.svc.GetDelivery(e.ctx, e.project.ID, w.Name, failed.ID)
		if err != nil {
			t.Fatal(err)
		}
		return again.Status == ubihooks.DeliverySucceeded
	})
	if len(attempts) != 2 || attempts[0].StatusCode != 500 || attempts[1].StatusCode != 200 || attempts[1].Number != 2 {
		t.Errorf("attempts after redelivery: %+v", attempts)
	}
	var ids []string
	for _, h := range rc.all() {
		if h.payload["request_id"] == first && h.path == "/" {
			ids = append(ids, h.payload["id"].(string))
			if h.header.Get("Idempotency-Key") != eventID {
				t.Errorf("Idempotency-Key %q, want %s", h.header.Get("Idempotency-Key"), eventID)
			}
		}
	}
	if len(ids) != 2 || ids[0] != eventID || ids[1] != eventID {
		t.Errorf("the first request arrived with event ids %v, want %s twice", ids, eventID)
	}
	if _, err := e.svc.Redeliver(e.ctx, e.project.ID, w.Name, uuid.NewString()); !ubihooks.IsNotFound(err) {
		t.Errorf("Redeliver(unknown): %v, want not found", err)
	}
}

// TestRedeliverPending: a delivery that has not finished cannot be redelivered.
func TestRedeliverPending(t *testing.T) {
	t.Parallel()
	e := setupEvents(t, loopbackOnly)
	w := e.webhook("pending", "http://127.0.0.1:9/", false)
	e.completed() // no engine: stays pending
	ds, err := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, service.DeliveryQuery{})
	if err != nil || len(ds) != 1 || ds[0].Status != ubihooks.DeliveryPending {
		t.Fatalf("ListDeliveries = %v, %v; want one pending", ds, err)
	}
	if _, err := e.svc.Redeliver(e.ctx, e.project.ID, w.Name, ds[0].ID); ubihooks.ErrorCode(err) != ubihooks.ECONFLICT {
		t.Errorf("Redeliver(pending): %v, want conflict", err)
	}
}

// TestCleanerRemovesFinishedKeepsPending: RunOnce removes finished deliveries (with their
// attempts) older than the retention and keeps newer and pending ones.
func TestCleanerRemovesFinishedKeepsPending(t *testing.T) {
	t.Parallel()
	e := setupEvents(t, loopbackOnly)
	rc := e.receiver(nil)
	w := e.webhook("clean", rc.url+"/", false)
	eng := e.startEngine()
	e.completed()
	old := e.waitFinished(w, 1)[0]
	e.advance(2 * time.Hour)
	e.completed()
	recent := e.waitFinished(w, 2)[0]
	if err := eng.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.completed() // no engine any more: stays pending
	ds, err := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, service.DeliveryQuery{})
	if err != nil || len(ds) != 3 {
		t.Fatalf("ListDeliveries: %d, %v; want 3", len(ds), err)
	}
	pending := ds[0]
	if pending.Status != ubihooks.DeliveryPending {
		t.Fatalf("newest delivery %s, want pending", pending.Status)
	}
	exists := func(d *ubihooks.Delivery) bool {
		_, _, err := e.svc.GetDelivery(e.ctx, e.project.ID, w.Name, d.ID)
		if err != nil && !ubihooks.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}

	cleaner := e.svc.NewCleaner(service.CleanerConfig{Retention: time.Hour, Batch: 1})
	e.advance(30 * time.Minute) // old finished 2h30m ago, recent 30m ago
	n, err := cleaner.RunOnce(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 {
		t.Errorf("RunOnce removed %d rows, want at least the old delivery", n)
	}
	if exists(old) || !exists(recent) || !exists(pending) {
		t.Errorf("after the first run: old exists %v, recent %v, pending %v; want false, true, true", exists(old), exists(recent), exists(pending))
	}

	e.advance(10 * time.Hour) // everything is past the retention now
	if _, err := cleaner.RunOnce(e.ctx); err != nil {
		t.Fatal(err)
	}
	if exists(recent) || !exists(pending) {
		t.Errorf("after the second run: recent exists %v, pending %v; want false, true", exists(recent), exists(pending))
	}
	d, attempts, err := e.svc.GetDelivery(e.ctx, e.project.ID, w.Name, pending.ID)
	if err != nil || d.Event == nil || d.Event.ID != pending.EventID || len(attempts) != 0 {
		t.Errorf("pending delivery after cleaning: %+v, %v, %v", d, attempts, err)
	}
	if ds, _ := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, service.DeliveryQuery{}); len(ds) != 1 {
		t.Errorf("%d deliveries left, want the pending one", len(ds))
	}
}

// TestRecordTransitionValidation: bad transitions are refused with EINVALID.
func TestRecordTransitionValidation(t *testing.T) {
	t.Parallel()
	e := setupEvents(t)
	id := uuid.NewString()
	for name, tr := range map[string]service.Transition{
		"unknown status":  {From: "running", To: ubihooks.RequestCompleted, RequestID: id},
		"no request id":   {From: ubihooks.RequestProcessing, To: ubihooks.RequestCompleted},
		"invalid result":  {From: ubihooks.RequestProcessing, To: ubihooks.RequestCompleted, RequestID: id, Result: json.RawMessage(`{`)},
		"emits no events": {From: ubihooks.RequestCompleted, To: ubihooks.RequestCompleted, RequestID: id},
	} {
		tr.ObjectType, tr.ObjectName = ubihooks.ObjectDeployment, "scorer"
		if _, err := e.svc.RecordTransition(e.ctx, e.project, tr); ubihooks.ErrorCode(err) != ubihooks.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	tr := service.Transition{ObjectType: ubihooks.ObjectDeployment, ObjectName: "nope", RequestID: id,
		From: ubihooks.RequestProcessing, To: ubihooks.RequestCompleted}
	if _, err := e.svc.RecordTransition(e.ctx, e.project, tr); !ubihooks.IsNotFound(err) {
		t.Errorf("unknown deployment: %v, want not found", err)
	}
}
