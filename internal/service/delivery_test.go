package service_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// emitCompleted records n completed requests of scorer's default version at the clock's
// time, in one transaction of the store (as fast as a test of thousands of deliveries
// needs), and returns their request ids in order.
func (e *eventsEnv) emitCompleted(n int) []string {
	e.t.Helper()
	o, err := e.svc.GetObject(e.ctx, e.project.ID, ubihooks.ObjectDeployment, "scorer")
	if err != nil {
		e.t.Fatal(err)
	}
	v := e.env.Version(o, "v1")
	now := e.svc.Now()
	events := make([]*ubihooks.Event, n)
	ids := make([]string, n)
	for i := range events {
		ids[i] = ubihooks.NewID()
		events[i] = &ubihooks.Event{ID: ubihooks.EventID(ids[i], ubihooks.EventDeploymentCompleted), ProjectID: e.project.ID,
			ProjectName: e.project.Name, Type: ubihooks.EventDeploymentCompleted, ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name,
			VersionID: v.ID, VersionName: v.Name, RequestID: ids[i], Status: "completed", CreatedAt: now}
	}
	if _, err := e.env.Store.EmitEvents(e.ctx, events, now); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

// finishAll sends every due delivery, as an engine would, with the given final outcome.
func (e *eventsEnv) finishAll(status ubihooks.DeliveryStatus) int {
	e.t.Helper()
	now := e.svc.Now()
	ds, err := e.env.Store.ClaimDeliveries(e.ctx, ubihooks.DeliveryClaim{Owner: "test", Limit: 1 << 20, Lease: time.Minute, Now: now})
	if err != nil {
		e.t.Fatal(err)
	}
	outs := make([]ubihooks.Outcome, len(ds))
	for i, d := range ds {
		outs[i] = ubihooks.Outcome{DeliveryID: d.ID, Owner: "test", Status: status, Attempt: ubihooks.Attempt{DeliveryID: d.ID,
			Number: d.Attempts + 1, StartedAt: now, Duration: time.Millisecond, StatusCode: 503, ErrorClass: ubihooks.ClassHTTPStatus, Error: "HTTP 503"}}
	}
	if err := e.env.Store.RecordOutcomes(e.ctx, outs, now); err != nil {
		e.t.Fatal(err)
	}
	return len(ds)
}

func wantError(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	if ubihooks.ErrorCode(err) != code || !strings.Contains(ubihooks.ErrorMessage(err), msg) {
		t.Errorf("%s: %v; want %s containing %q", what, err, code, msg)
	}
}

// TestListDeliveriesQuery: a webhook's deliveries are listed 50 at a time unless asked
// otherwise, filtered, and paged with the last ID as the cursor; bad queries are refused.
func TestListDeliveriesQuery(t *testing.T) {
	t.Parallel()
	e := setupEvents(t)
	w := e.webhook("list", "http://127.0.0.1:9/", false)
	reqs := e.emitCompleted(60)
	list := func(q service.DeliveryQuery) []*ubihooks.Delivery {
		t.Helper()
		ds, err := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, q)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	if n := len(list(service.DeliveryQuery{})); n != service.DefaultDeliveryLimit {
		t.Errorf("default listing: %d deliveries, want %d", n, service.DefaultDeliveryLimit)
	}
	all := list(service.DeliveryQuery{Limit: 500})
	if len(all) != 60 {
		t.Fatalf("listing with limit 500: %d deliveries, want 60", len(all))
	}
	seen := map[string]bool{}
	q := service.DeliveryQuery{Limit: 25}
	for _, want := range []int{25, 25, 10, 0} {
		page := list(q)
		if len(page) != want {
			t.Fatalf("page after %q: %d deliveries, want %d", q.Before, len(page), want)
		}
		for i, d := range page {
			if d.ID != all[len(seen)].ID {
				t.Errorf("page item %d is %s, want %s (the order of the whole listing)", i, d.ID, all[len(seen)].ID)
			}
			seen[d.ID] = true
		}
		if len(page) > 0 {
			q.Before = page[len(page)-1].ID
		}
	}
	ds := list(service.DeliveryQuery{RequestID: reqs[7], Status: "pending"})
	if len(ds) != 1 || ds[0].Event == nil || ds[0].Event.RequestID != reqs[7] || ds[0].WebhookName != w.Name {
		t.Errorf("by request: %d deliveries (%+v); want the request's one, with its event and webhook name", len(ds), ds)
	}
	if ds := list(service.DeliveryQuery{EventID: ubihooks.EventID(reqs[7], ubihooks.EventDeploymentCompleted)}); len(ds) != 1 {
		t.Errorf("by event: %d deliveries, want 1", len(ds))
	}
	if ds := list(service.DeliveryQuery{Status: "failed"}); len(ds) != 0 {
		t.Errorf("failed: %d deliveries, want none", len(ds))
	}
	for name, c := range map[string]struct {
		webhook string
		q       service.DeliveryQuery
		code    string
		msg     string
	}{
		"status":         {w.Name, service.DeliveryQuery{Status: "done"}, ubihooks.EINVALID, `status must be one of pending, sending, succeeded, failed, parked; got "done"`},
		"limit too high": {w.Name, service.DeliveryQuery{Limit: 501}, ubihooks.EINVALID, "limit must be between 1 and 500, got 501"},
		"limit negative": {w.Name, service.DeliveryQuery{Limit: -1}, ubihooks.EINVALID, "limit must be between 1 and 500, got -1"},
		"cursor":         {w.Name, service.DeliveryQuery{Before: uuid.NewString()}, ubihooks.EINVALID, "before: delivery"},
		"webhook":        {"nope", service.DeliveryQuery{}, ubihooks.ENOTFOUND, `webhook "nope" not found`},
	} {
		_, err := e.svc.ListDeliveries(e.ctx, e.project.ID, c.webhook, c.q)
		wantError(t, name, err, c.code, c.msg)
	}
}

// TestSearchDeliveries: the deliveries of a request or an event are found across the
// project's webhooks, never those of webhook tests.
func TestSearchDeliveries(t *testing.T) {
	t.Parallel()
	e := setupEvents(t)
	e.webhook("a", "http://127.0.0.1:9/a", false)
	e.webhook("b", "http://127.0.0.1:9/b", false)
	req := e.completed()
	e.completed()
	if _, err := e.svc.CreateWebhookTest(e.ctx, e.project, ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "scorer",
		Event: string(ubihooks.EventDeploymentCompleted), URL: "http://127.0.0.1:9/t"}); err != nil {
		t.Fatal(err)
	}
	search := func(q service.DeliveryQuery) []string {
		t.Helper()
		ds, err := e.svc.SearchDeliveries(e.ctx, e.project.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		var hooks []string
		for _, d := range ds {
			if d.Event == nil || d.Event.RequestID != req {
				t.Errorf("found delivery %s of event %+v, want one of request %s", d.ID, d.Event, req)
			}
			hooks = append(hooks, d.WebhookName)
		}
		return slices.Sorted(slices.Values(hooks))
	}
	if got := search(service.DeliveryQuery{RequestID: req}); strings.Join(got, ",") != "a,b" {
		t.Errorf("by request: webhooks %q, want a, b", got)
	}
	if got := search(service.DeliveryQuery{EventID: ubihooks.EventID(req, ubihooks.EventDeploymentCompleted), Status: "pending"}); strings.Join(got, ",") != "a,b" {
		t.Errorf("by event: webhooks %q, want a, b", got)
	}
	if got := search(service.DeliveryQuery{RequestID: req, Status: "succeeded"}); len(got) != 0 {
		t.Errorf("succeeded: %q, want none", got)
	}
	ds, err := e.svc.SearchDeliveries(e.ctx, e.project.ID, service.DeliveryQuery{RequestID: "00000000-0000-0000-0000-000000000000"})
	if err != nil || len(ds) != 0 {
		t.Errorf("by the request id of webhook tests: %d deliveries, %v; want none", len(ds), err)
	}
	_, err = e.svc.SearchDeliveries(e.ctx, e.project.ID, service.DeliveryQuery{Status: "failed"})
	wantError(t, "no event or request", err, ubihooks.EINVALID, "event_id or request_id is required")
	_, err = e.svc.SearchDeliveries(e.ctx, e.project.ID, service.DeliveryQuery{RequestID: req, Status: "lost"})
	wantError(t, "status", err, ubihooks.EINVALID, "status must be one of")
}

// TestRedeliverManyValidation: the status, the time range and the webhook are checked
// before anything changes; until defaults to now.
func TestRedeliverManyValidation(t *testing.T) {
	t.Parallel()
	e := setupEvents(t)
	w := e.webhook("bulk", "http://127.0.0.1:9/", false)
	e.emitCompleted(3)
	e.finishAll(ubihooks.DeliveryFailed)
	now := e.svc.Now()
	for name, c := range map[string]struct {
		webhook string
		p       service.RedeliverParams
		code    string
		msg     string
	}{
		"pending":         {w.Name, service.RedeliverParams{Status: "pending", Since: now.Add(-time.Hour)}, ubihooks.EINVALID, `status must be "failed", "succeeded" or "parked"`},
		"unknown status":  {w.Name, service.RedeliverParams{Status: "broken", Since: now.Add(-time.Hour)}, ubihooks.EINVALID, `got "broken"`},
		"no since":        {w.Name, service.RedeliverParams{}, ubihooks.EINVALID, "since is required"},
		"since too late":  {w.Name, service.RedeliverParams{Since: now.Add(time.Hour)}, ubihooks.EINVALID, "must be before until"},
		"empty range":     {w.Name, service.RedeliverParams{Since: now, Until: now}, ubihooks.EINVALID, "must be before until"},
		"unknown webhook": {"nope", service.RedeliverParams{Since: now.Add(-time.Hour)}, ubihooks.ENOTFOUND, `webhook "nope" not found`},
	} {
		_, _, err := e.svc.RedeliverMany(e.ctx, e.project.ID, c.webhook, c.p)
		wantError(t, name, err, c.code, c.msg)
	}
	e.advance(time.Second) // until defaults to now, and excludes what was created at now
	n, more, err := e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, service.RedeliverParams{Since: now.Add(-time.Hour), DryRun: true})
	if n != 3 || more || err != nil {
		t.Errorf("dry run = %d, %v, %v; want 3, false, nil", n, more, err)
	}
	n, _, err = e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, service.RedeliverParams{Status: "succeeded", Since: now.Add(-time.Hour)})
	if n != 0 || err != nil {
		t.Errorf("succeeded = %d, %v; want 0 (they failed), nil", n, err)
	}
}

// TestRedeliverManyRecoversTenThousand: 10,000 failed deliveries come back in ten calls of
// 1,000, each pending again with its event; a dry run counts them all first.
func TestRedeliverManyRecoversTenThousand(t *testing.T) {
	t.Parallel()
	const total = 10000
	e := setupEvents(t)
	w := e.webhook("outage", "http://127.0.0.1:9/", false)
	e.webhook("other", "http://127.0.0.1:9/other", false)
	since := e.svc.Now()
	e.emitCompleted(total)
	if n := e.finishAll(ubihooks.DeliveryFailed); n != 2*total {
		t.Fatalf("failed %d deliveries, want %d", n, 2*total)
	}
	e.advance(time.Second)
	p := service.RedeliverParams{Since: since}
	dry := p
	dry.DryRun = true
	if n, more, err := e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, dry); n != total || !more || err != nil {
		t.Fatalf("dry run = %d, %v, %v; want %d, true, nil", n, more, err, total)
	}
	sum, calls := 0, 0
	for more := true; more; calls++ {
		if calls == 20 {
			t.Fatalf("still more after %d calls (%d redelivered)", calls, sum)
		}
		var n int
		var err error
		n, more, err = e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, p)
		if err != nil {
			t.Fatal(err)
		}
		if n != service.RedeliverManyLimit {
			t.Errorf("call %d redelivered %d, want %d", calls+1, n, service.RedeliverManyLimit)
		}
		sum += n
	}
	if sum != total || calls != total/service.RedeliverManyLimit {
		t.Errorf("redelivered %d in %d calls, want %d in %d", sum, calls, total, total/service.RedeliverManyLimit)
	}
	count := func(webhookID string, st ubihooks.DeliveryStatus) int {
		t.Helper()
		ds, err := e.env.Store.ListDeliveries(e.ctx, ubihooks.DeliveryFilter{ProjectID: e.project.ID, WebhookID: webhookID, Status: string(st), Limit: 2 * total})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds)
	}
	if p, f := count(w.ID, ubihooks.DeliveryPending), count(w.ID, ubihooks.DeliveryFailed); p != total || f != 0 {
		t.Errorf("after the recovery: %d pending, %d failed; want %d, 0", p, f, total)
	}
	if f := count("", ubihooks.DeliveryFailed); f != total {
		t.Errorf("the other webhook has %d failed deliveries, want %d (untouched)", f, total)
	}
	if n, more, err := e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, p); n != 0 || more || err != nil {
		t.Errorf("once recovered = %d, %v, %v; want 0, false, nil", n, more, err)
	}
}

// TestRedeliverManySends: after an outage, the failed deliveries are sent again by the
// engine with their event ids, and succeed.
func TestRedeliverManySends(t *testing.T) {
	t.Parallel()
	e := setupEvents(t, loopbackOnly)
	var down atomic.Bool
	down.Store(true)
	rc := e.receiver(func(_ int, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "down")
		}
	})
	w := e.webhook("recover", rc.url+"/", false)
	since := e.svc.Now()
	e.startEngine()
	reqs := []string{e.completed(), e.completed(), e.completed()}
	for _, d := range e.waitFinished(w, 3) {
		if d.Status != ubihooks.DeliveryFailed {
			t.Fatalf("delivery during the outage %s, want failed", d.Status)
		}
	}
	down.Store(false)
	n, more, err := e.svc.RedeliverMany(e.ctx, e.project.ID, w.Name, service.RedeliverParams{Since: since})
	if n != 3 || more || err != nil {
		t.Fatalf("RedeliverMany = %d, %v, %v; want 3, false, nil", n, more, err)
	}
	e.env.Until(10*time.Second, "the redeliveries", func() bool {
		ds, err := e.svc.ListDeliveries(e.ctx, e.project.ID, w.Name, service.DeliveryQuery{Status: "succeeded"})
		if err != nil {
			t.Fatal(err)
		}
		return len(ds) == 3
	})
	got := map[string]int{}
	for _, h := range rc.all() {
		got[h.payload["id"].(string)]++
	}
	for _, r := range reqs {
		if id := ubihooks.EventID(r, ubihooks.EventDeploymentCompleted); got[id] != 2 {
			t.Errorf("event %s arrived %d times, want 2 (the failure, then the redelivery)", id, got[id])
		}
	}
}
