package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestUIParkedDeliveries: a receiver that keeps failing gets its webhook disabled by
// ubihooks (a short policy, in real time); the pages say so, with the reason and the
// parked count; the events of the outage are listed as parked and nothing is sent; after
// Enable, the page offers to send them, and the recovery form sends each once with its
// original event id. The operations webhook gets signed webhook.disabled and
// webhook.recovered; a user-disabled webhook gets nothing.
func TestUIParkedDeliveries(t *testing.T) {
	t.Parallel()
	ops := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{}) // signatures checked below, with the server's key
	e := newUIEnv(t, "--failing-after", "2", "--disable-after", "1s", "--disable-min-failures", "3", "--health-interval", "200ms",
		"--operations-webhook", ops.URL+"/ops")
	model := ubihookstest.NewBackend(t, ubihookstest.BackendConfig{})
	e.deployment("model", model.URL)
	var down atomic.Bool
	down.Store(true)
	rcv := e.receiver(func(_ *ubihookstest.Arrival, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	muted := e.receiver(nil)
	e.api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "flaky", "object_type": "deployment", "object_name": "model",
		"event": "deployment_request_completed", "url": rcv.URL + "/hook", "retry": false}, 201)
	e.api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "muted", "object_type": "deployment", "object_name": "model",
		"event": "deployment_request_completed", "url": muted.URL + "/hook", "enabled": false}, 201)

	batch := func(n int) {
		reqs := make([]any, n)
		for i := range reqs {
			reqs[i] = map[string]any{}
		}
		e.api.MustDo("POST", "/deployments/model/requests/batch", reqs, 201)
	}
	batch(3)
	e.waitAPI("three failed deliveries", "/webhooks/flaky/deliveries?status=failed", 30*time.Second,
		func(ds []ubihookstest.Obj) bool { return len(ds) == 3 })
	deadline := time.Now().Add(30 * time.Second)
	for {
		w := e.api.MustObj("GET", "/webhooks/flaky", nil, 200)
		if w["enabled"] == false && w["disabled_reason"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failing webhook was not disabled: %v", w)
		}
		time.Sleep(100 * time.Millisecond)
	}
	batch(2)
	parked := e.waitAPI("two parked deliveries", "/webhooks/flaky/deliveries?status=parked", 30*time.Second,
		func(ds []ubihookstest.Obj) bool { return len(ds) == 2 })
	var want []string
	for _, d := range parked {
		want = append(want, d["event_id"].(string))
	}
	sort.Strings(want)
	if rcv.Count() != 3 {
		t.Errorf("the receiver got %d requests, want the 3 failed ones only (parked events are not sent)", rcv.Count())
	}

	met := scrapeMetrics(t, e.base+"/metrics")
	if v, _ := metricValue(met, "ubihooks_deliveries_parked", nil); v != 2 {
		t.Errorf("ubihooks_deliveries_parked = %v with two parked deliveries", v)
	}
	if v, _ := metricValue(met, "ubihooks_webhook_health_changes_total", map[string]string{"change": "disabled"}); v != 1 {
		t.Errorf("ubihooks_webhook_health_changes_total{change=disabled} = %v after one disable", v)
	}

	tb := e.newTab(true)
	tb.open("/ui/p/demo/webhooks")
	if got := tb.text("main"); !strings.Contains(got, "disabled by ubihooks") {
		t.Errorf("the webhooks list does not say that ubihooks disabled flaky:\n%s", got)
	}
	tb.check("list")
	tb.open("/ui/p/demo/webhooks/flaky")
	got := tb.text("#auto-disabled")
	for _, s := range []string{"ubihooks disabled this webhook", "2 so far", "all 3 delivery attempts since", "enable the webhook"} {
		if !strings.Contains(got, s) {
			t.Errorf("the disabled webhook's page says %q, want it to contain %q", got, s)
		}
	}
	if got := tb.text("#failing-run"); !strings.Contains(got, "the last 3 attempts failed") {
		t.Errorf("the health card says %q", got)
	}
	tb.check("auto-disabled")
	tb.open("/ui/p/demo/webhooks/flaky?status=parked")
	if got := tb.text("#delivery-rows tbody"); strings.Count(got, "parked") != 2 {
		t.Errorf("the parked filter lists:\n%s", got)
	}

	// The receiver is back: Enable, then send what was parked.
	down.Store(false)
	tb.do("enable", chromedp.Click(chromedp.CSS(`form[action$="/enabled"] button`)), chromedp.WaitVisible(chromedp.ID("parked-waiting")))
	if got := tb.text("#parked-waiting"); !strings.Contains(got, "2 parked deliveries wait") {
		t.Errorf("after Enable the page says %q", got)
	}
	tb.check("parked-waiting")
	tb.do("send them", chromedp.Click(chromedp.CSS(`#parked-waiting a`)), chromedp.WaitVisible(chromedp.ID("recover-count")))
	if got := tb.text("#recover-count"); !strings.Contains(got, "2 parked deliveries will be sent again with their original event ids") {
		t.Errorf("the recovery form says %q", got)
	}
	tb.check("recover-parked")
	tb.do("send", chromedp.Click(chromedp.CSS(`#send-form button`)), chromedp.WaitVisible(chromedp.CSS(`[role=status] strong`)))
	rcv.Until(t, 30*time.Second, "the parked events", func() bool { return rcv.Count() == 5 })
	var again []string
	for _, a := range rcv.Arrivals()[3:] {
		again = append(again, a.ID())
	}
	sort.Strings(again)
	if strings.Join(again, ",") != strings.Join(want, ",") {
		t.Errorf("sent after the recovery: %v, want the parked event ids %v", again, want)
	}

	// The operations webhook: disabled, then recovered once a delivery succeeded.
	ops.Until(t, 30*time.Second, "webhook.recovered at the operations webhook", func() bool {
		for _, a := range ops.Arrivals() {
			if a.Payload["event"] == "webhook.recovered" {
				return true
			}
		}
		return false
	})
	seen := map[string]int{}
	for _, a := range ops.Arrivals() {
		req := httptest.NewRequest(a.Method, "http://"+a.Host+a.Path, bytes.NewReader(a.Body))
		req.Header = a.Header
		if _, err := e.keys.Verify(req, a.Body); err != nil {
			t.Errorf("operations notification %s: signature: %v", a.Body, err)
		}
		seen[a.Payload["event"].(string)]++
	}
	if seen["webhook.disabled"] != 1 || seen["webhook.recovered"] != 1 {
		t.Errorf("operations notifications = %v, want webhook.disabled and webhook.recovered once each", seen)
	}
	met = scrapeMetrics(t, e.base+"/metrics")
	for change, want := range map[string]float64{"disabled": 1, "recovered": 1} {
		if v, _ := metricValue(met, "ubihooks_webhook_health_changes_total", map[string]string{"change": change}); v != want {
			t.Errorf("ubihooks_webhook_health_changes_total{change=%s} = %v, want %v", change, v, want)
		}
	}
	if v, _ := metricValue(met, "ubihooks_deliveries_parked", nil); v != 0 {
		t.Errorf("ubihooks_deliveries_parked = %v once they were sent", v)
	}
	if muted.Count() != 0 || len(e.api.MustList("GET", "/webhooks/muted/deliveries", nil, 200)) != 0 {
		t.Errorf("the user-disabled webhook got deliveries")
	}
}
