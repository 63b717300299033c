package api_test

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestFailingReceiverParkedNotDropped follows a receiver that is down for longer than the
// health policy allows, on a clock the test moves (shared by the service, the engine and
// the signature checks), with the real engine sending to real receivers: ubihooks reports
// the webhooks failing, disables them with a reason the API shows, parks the events that
// happen during the outage (listed, not sent), refuses to send them while the webhooks
// stay disabled, and after a re-enable and a bulk redelivery of the parked deliveries
// sends each parked event exactly once per webhook with its original event id. The
// operations webhook receives signed webhook.failing, webhook.disabled and
// webhook.recovered notifications; a webhook that its user disabled gets nothing, parked
// or sent.
func TestFailingReceiverParkedNotDropped(t *testing.T) {
	t.Parallel()
	e := savedEnv(t, func(e *apiEnv, c *delivery.Config) { c.NowFunc = e.Clock.Now })
	client := loopbackClient(t)

	var down atomic.Bool
	down.Store(true)
	receiver := e.Receiver(ubihookstest.ReceiverConfig{Respond: func(_ *ubihookstest.Arrival, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}})
	off := e.Receiver(ubihookstest.ReceiverConfig{})
	ops := e.Receiver(ubihookstest.ReceiverConfig{})
	const secret = "parked-s3cret-77f0"
	for _, name := range []string{"flaky-a", "flaky-b"} {
		e.A.MustDo("POST", "/webhooks", webhook(name, set("url", receiver.URL+"/"+name), set("headers",
			[]M{{"key": "Authorization", "value": secret, "protected": true}})), 201)
	}
	e.A.MustDo("POST", "/webhooks", webhook("off", set("url", off.URL+"/off"), set("enabled", false)), 201)

	var mu sync.Mutex
	changes := map[ubihooks.WebhookHealthKind]int{}
	watcher := e.Service.NewHealthWatcher(service.HealthConfig{
		Policy:   ubihooks.WebhookHealthPolicy{FailingAfter: 3, DisableAfter: time.Hour, MinFailures: 5},
		Interval: time.Hour, OperationsURL: ops.URL + "/ops", Client: client,
		Observe: func(c *ubihooks.WebhookHealthChange) { mu.Lock(); changes[c.Kind]++; mu.Unlock() },
	})
	// Passes run when the test says (RunOnce), not in the background; Stop ends the
	// notifications still being sent.
	e.Defer(func() {
		if err := watcher.Stop(e.Ctx); err != nil {
			t.Error(err)
		}
	})
	pass := func(want ...ubihooks.WebhookHealthKind) {
		t.Helper()
		got, err := watcher.RunOnce(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, c := range got {
			kinds = append(kinds, string(c.Kind)+" "+c.Webhook.Name)
		}
		var wantKinds []string
		for _, k := range want {
			for _, name := range []string{"flaky-a", "flaky-b"} {
				wantKinds = append(wantKinds, string(k)+" "+name)
			}
		}
		slices.Sort(kinds)
		if !slices.Equal(kinds, wantKinds) {
			t.Fatalf("health pass at %s: %q, want %q", e.Clock.Now().Format(time.RFC3339), kinds, wantKinds)
		}
	}
	finished := func(n int) {
		t.Helper()
		e.Until(20*time.Second, "every delivery finished", func() bool {
			for _, name := range []string{"flaky-a", "flaky-b"} {
				ds := e.A.MustList("GET", "/webhooks/"+name+"/deliveries?status=failed&limit=100", nil, 200)
				if len(ds) != n {
					return false
				}
			}
			return true
		})
	}

	// Three failures each: reported failing, not disabled.
	e.completeRequests(t, 3)
	finished(3)
	pass(ubihooks.WebhookFailing)
	w := e.A.MustObj("GET", "/webhooks/flaky-a", nil, 200)
	if w["enabled"] != true || w["disabled_reason"] != nil || w["consecutive_failures"] != 3.0 || w["failing_since"] == nil {
		t.Fatalf("a failing webhook = %v; want enabled, no reason, 3 failures and failing_since", w)
	}
	// Half the period later, seven failures: still not disabled (the run is too short).
	e.Clock.Advance(30 * time.Minute)
	e.completeRequests(t, 4)
	finished(7)
	pass()
	// The period is over: disabled, with a reason.
	e.Clock.Advance(31 * time.Minute)
	pass(ubihooks.WebhookDisabled)
	for _, name := range []string{"flaky-a", "flaky-b"} {
		w := e.A.MustObj("GET", "/webhooks/"+name, nil, 200)
		reason, _ := w["disabled_reason"].(string)
		if w["enabled"] != false || !strings.Contains(reason, "disabled by ubihooks: all 7 delivery attempts") || w["disabled_at"] == nil {
			t.Fatalf("%s after the period = %v; want disabled by ubihooks with its reason", name, w)
		}
	}

	// Events of the outage are parked (listed, not sent); the user-disabled webhook gets none.
	before := receiver.Count()
	outage := e.completeRequests(t, 5)
	var parked map[string][]string // webhook → event ids, oldest first
	collect := func() {
		parked = map[string][]string{}
		for _, name := range []string{"flaky-a", "flaky-b"} {
			for _, d := range e.A.MustList("GET", "/webhooks/"+name+"/deliveries?status=parked&limit=100", nil, 200) {
				parked[name] = append(parked[name], d["event_id"].(string))
				if d["request_id"] == nil {
					t.Errorf("parked delivery %v has no request id", d)
				}
			}
		}
	}
	collect()
	for _, name := range []string{"flaky-a", "flaky-b"} {
		if len(parked[name]) != len(outage) {
			t.Fatalf("%s parked %d deliveries, want one per event of the outage (%d)", name, len(parked[name]), len(outage))
		}
	}
	if ds := e.A.MustList("GET", "/webhooks/off/deliveries?limit=100", nil, 200); len(ds) != 0 {
		t.Errorf("the user-disabled webhook has deliveries: %v", ds)
	}
	if receiver.Count() != before {
		t.Errorf("the receiver got %d requests while its webhooks were disabled", receiver.Count()-before)
	}

	// While ubihooks keeps them disabled, parked deliveries are counted but not sent.
	expectError(t, e.A.Do("POST", "/webhooks/flaky-a/deliveries/redeliver", M{"status": "parked"}, ""), http.StatusConflict,
		"enable it first")
	if got := e.A.MustObj("POST", "/webhooks/flaky-a/deliveries/redeliver", M{"status": "parked", "dry_run": true}, 200); got["count"] != 5.0 {
		t.Errorf("dry run while disabled = %v, want a count of 5", got)
	}

	// The receiver is back; the user enables the webhooks and sends what was parked.
	down.Store(false)
	e.Clock.Advance(2 * time.Hour)
	for _, name := range []string{"flaky-a", "flaky-b"} {
		w := e.A.MustObj("PATCH", "/webhooks/"+name, M{"enabled": true}, 200)
		if w["enabled"] != true || w["disabled_reason"] != nil || w["disabled_at"] != nil || w["consecutive_failures"] != 0.0 {
			t.Fatalf("%s enabled again = %v; want enabled, its reason and run cleared", name, w)
		}
		if got := e.A.MustObj("POST", "/webhooks/"+name+"/deliveries/redeliver", M{"status": "parked", "dry_run": true}, 200); got["count"] != 5.0 {
			t.Errorf("%s: dry run = %v, want a count of 5", name, got)
		}
		if got := e.A.MustObj("POST", "/webhooks/"+name+"/deliveries/redeliver", M{"status": "parked"}, 200); got["count"] != 5.0 || got["more"] != false {
			t.Errorf("%s: redeliver parked = %v, want a count of 5 and no more", name, got)
		}
	}
	receiver.Until(t, 20*time.Second, "the parked events arrived", func() bool { return receiver.Count() >= before+10 })
	e.Until(20*time.Second, "the parked deliveries succeeded", func() bool {
		for _, name := range []string{"flaky-a", "flaky-b"} {
			if len(e.A.MustList("GET", "/webhooks/"+name+"/deliveries?status=succeeded&limit=100", nil, 200)) != 5 {
				return false
			}
		}
		return true
	})
	got := map[string]map[string]int{} // webhook → event id → arrivals
	for _, a := range receiver.Arrivals()[before:] {
		name := strings.TrimPrefix(a.Path, "/")
		if got[name] == nil {
			got[name] = map[string]int{}
		}
		got[name][a.ID()]++
		if a.Header.Get("Authorization") != secret {
			t.Errorf("a parked delivery to %s arrived without its protected header", name)
		}
	}
	for _, name := range []string{"flaky-a", "flaky-b"} {
		if len(got[name]) != len(parked[name]) {
			t.Errorf("%s received %d distinct events after the recovery, want the %d parked ones: %v", name, len(got[name]), len(parked[name]), got[name])
		}
		for _, id := range parked[name] {
			if got[name][id] != 1 {
				t.Errorf("%s: parked event %s arrived %d times, want exactly once", name, id, got[name][id])
			}
		}
	}
	if ds := e.A.MustList("GET", "/webhooks/flaky-a/deliveries?status=parked", nil, 200); len(ds) != 0 {
		t.Errorf("parked deliveries left after the recovery: %v", ds)
	}

	// A success after the re-enable: recovered.
	pass(ubihooks.WebhookRecovered)
	pass()
	mu.Lock()
	defer mu.Unlock()
	if changes[ubihooks.WebhookFailing] != 2 || changes[ubihooks.WebhookDisabled] != 2 || changes[ubihooks.WebhookRecovered] != 2 {
		t.Errorf("observed changes = %v, want 2 of each", changes)
	}

	// The operations webhook: six signed notifications (the receiver checks signatures).
	ops.Until(t, 20*time.Second, "six operations notifications", func() bool { return ops.Count() >= 6 })
	seen := map[string]int{}
	for _, a := range ops.Arrivals() {
		if a.Path != "/ops" || a.Sig == nil {
			t.Errorf("operations notification at %s, signature %v (%v)", a.Path, a.Sig, a.SigErr)
		}
		hook, _ := a.Payload["webhook"].(map[string]any)
		name, _ := hook["name"].(string)
		event, _ := a.Payload["event"].(string)
		seen[event+" "+name]++
		if a.Payload["project"] != projA || a.ID() == "" || a.Payload["text"] == "" {
			t.Errorf("operations notification %s lacks project, id or text", a.Body)
		}
		if event == "webhook.disabled" {
			reason, _ := hook["disabled_reason"].(string)
			if !strings.Contains(reason, "disabled by ubihooks") || a.Payload["parked"] == nil {
				t.Errorf("webhook.disabled notification %s has no reason", a.Body)
			}
		}
		if strings.Contains(string(a.Body), secret) {
			t.Errorf("the operations notification shows a protected header: %s", a.Body)
		}
	}
	for _, k := range ubihooks.WebhookHealthKinds {
		for _, name := range []string{"flaky-a", "flaky-b"} {
			if seen[string(k)+" "+name] != 1 {
				t.Errorf("operations webhook received %s of %s %d times, want once (all: %v)", k, name, seen[string(k)+" "+name], seen)
			}
		}
	}
	if off.Count() != 0 {
		t.Errorf("the user-disabled webhook's receiver got %d requests", off.Count())
	}
	if logs := e.logs.String(); !strings.Contains(logs, "webhook.disabled") || strings.Contains(logs, secret) {
		t.Errorf("the log should report webhook.disabled and never show the secret")
	}
}
