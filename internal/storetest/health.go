package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// failAttempt is a failed attempt's outcome for a delivery of w: a retry (pending) or final.
func failAttempt(d *ubihooks.Delivery, owner string, status ubihooks.DeliveryStatus, now time.Time) ubihooks.Outcome {
	o := outcome(d.ID, owner, status, 1, now)
	o.WebhookID = d.WebhookID
	return o
}

func (f *fx) getWebhook(w *ubihooks.Webhook) *ubihooks.Webhook {
	f.t.Helper()
	got, err := f.s.GetWebhook(f.ctx, w.ProjectID, w.Name)
	f.must(err)
	return got
}

func (f *fx) applyHealth(p ubihooks.WebhookHealthPolicy, now time.Time) []*ubihooks.WebhookHealthChange {
	f.t.Helper()
	cs, err := f.s.ApplyWebhookHealth(f.ctx, p, now)
	f.must(err)
	return cs
}

// failOnce emits an event for o/v, claims its deliveries and records each as failed for
// good (or retried, for the webhooks in retry), returning the deliveries.
func (f *fx) failOnce(o *ubihooks.Object, v *ubihooks.Version, now time.Time, retry map[string]bool) []*ubihooks.Delivery {
	f.t.Helper()
	f.emit(now, f.event(o, v, "completed", now))
	ds := f.claim("w", 100, now)
	var outs []ubihooks.Outcome
	for _, d := range ds {
		st := ubihooks.DeliveryFailed
		if retry[d.WebhookID] {
			st = ubihooks.DeliveryPending
		}
		outs = append(outs, failAttempt(d, "w", st, now))
	}
	f.record(now, outs...)
	return ds
}

func kinds(cs []*ubihooks.WebhookHealthChange) []string {
	return names(cs, func(c *ubihooks.WebhookHealthChange) string { return string(c.Kind) + " " + c.Webhook.Name })
}

func testWebhookHealth(t *testing.T, s suite) {
	policy := ubihooks.WebhookHealthPolicy{FailingAfter: 3, DisableAfter: 48 * time.Hour, MinFailures: 4}
	day := 24 * time.Hour

	s.run(t, "FailingDisabledParkedRecovered", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		dead := f.webhook(o, nil, "dead", "completed")
		healthy := f.webhook(o, nil, "healthy", "completed")
		off := f.webhook(o, nil, "user-off", "completed", func(w *ubihooks.Webhook) { w.Enabled = false })

		// Two failures of dead (healthy succeeds): a run of 2, begun at the first.
		for i, now := range []time.Time{at(0), at(time.Hour)} {
			f.emit(now, f.event(o, v, "completed", now))
			var outs []ubihooks.Outcome
			for _, d := range f.claim("w", 100, now) {
				if d.WebhookID == healthy.ID {
					o := outcome(d.ID, "w", ubihooks.DeliverySucceeded, 1, now)
					o.WebhookID = d.WebhookID
					outs = append(outs, o)
				} else {
					outs = append(outs, failAttempt(d, "w", ubihooks.DeliveryFailed, now))
				}
			}
			f.record(now, outs...)
			if got := f.getWebhook(dead); got.ConsecutiveFailures != i+1 || !got.FailingSince.Equal(at(0)) {
				t.Errorf("after failure %d: run %d since %v, want %d since %v", i+1, got.ConsecutiveFailures, got.FailingSince, i+1, at(0))
			}
		}
		if got := f.getWebhook(healthy); got.ConsecutiveFailures != 0 || !got.FailingSince.IsZero() {
			t.Errorf("healthy: run %d since %v, want none", got.ConsecutiveFailures, got.FailingSince)
		}
		if cs := f.applyHealth(policy, at(2*time.Hour)); len(cs) != 0 {
			t.Errorf("a run of 2 with FailingAfter 3: changes %v, want none", kinds(cs))
		}
		// The third failure reports it failing, once. healthy fails once too: no report.
		f.failOnce(o, v, at(day), nil)
		cs := f.applyHealth(policy, at(day+time.Minute))
		sameList(t, "changes after 3 failures", kinds(cs), []string{"webhook.failing dead"})
		if len(cs) == 1 && (cs[0].ProjectName != f.p.Name || !cs[0].Webhook.Enabled || !cs[0].At.Equal(at(day+time.Minute))) {
			t.Errorf("failing change: project %q, enabled %v, at %v", cs[0].ProjectName, cs[0].Webhook.Enabled, cs[0].At)
		}
		if cs := f.applyHealth(policy, at(day+2*time.Minute)); len(cs) != 0 {
			t.Errorf("second pass: changes %v, want none (reported once)", kinds(cs))
		}
		// A success of healthy ends its run.
		f.emit(at(day+3*time.Minute), f.event(o, v, "completed", at(day+3*time.Minute)))
		var outs []ubihooks.Outcome
		var deadRetry *ubihooks.Delivery
		for _, d := range f.claim("w", 100, at(day+3*time.Minute)) {
			if d.WebhookID == healthy.ID {
				o := outcome(d.ID, "w", ubihooks.DeliverySucceeded, 1, at(day+3*time.Minute))
				o.WebhookID = d.WebhookID
				outs = append(outs, o)
			} else {
				deadRetry = d // dead's fourth failure is a retry: pending when the webhook is disabled
				outs = append(outs, failAttempt(d, "w", ubihooks.DeliveryPending, at(day+3*time.Minute)))
			}
		}
		f.record(at(day+3*time.Minute), outs...)
		if got := f.getWebhook(healthy); got.ConsecutiveFailures != 0 || !got.FailingSince.IsZero() {
			t.Errorf("healthy after a success: run %d since %v, want none", got.ConsecutiveFailures, got.FailingSince)
		}
		// 4 failures over more than 48h: disabled, with the reason, and the pending retry parked.
		now := at(2*day + time.Minute)
		cs = f.applyHealth(policy, now)
		sameList(t, "changes after 48h", kinds(cs), []string{"webhook.disabled dead"})
		if len(cs) == 1 && cs[0].Parked != 1 {
			t.Errorf("disable parked %d deliveries, want 1 (the pending retry)", cs[0].Parked)
		}
		got := f.getWebhook(dead)
		if got.Enabled || !got.DisabledAt.Equal(now) || !got.AutoDisabled() || !strings.Contains(got.DisabledReason, "all 4 delivery attempts") {
			t.Errorf("dead after disable: enabled %v, disabled at %v, reason %q", got.Enabled, got.DisabledAt, got.DisabledReason)
		}
		if d, _ := f.delivery(deadRetry.ID); d.Status != ubihooks.DeliveryParked {
			t.Errorf("dead's pending retry is %s, want parked", d.Status)
		}
		// Events now park dead's deliveries; user-off still gets none; healthy gets one.
		e := f.event(o, v, "completed", now)
		if n := f.emit(now, e); n != 2 {
			t.Errorf("emit with dead disabled by ubihooks: %d deliveries, want 2 (healthy pending, dead parked)", n)
		}
		parked, err := f.s.ListDeliveries(f.ctx, ubihooks.DeliveryFilter{ProjectID: f.p.ID, WebhookID: dead.ID,
			Status: string(ubihooks.DeliveryParked), Limit: 100})
		f.must(err)
		if len(parked) != 2 || parked[0].EventID != e.ID {
			t.Errorf("dead's parked deliveries: %v, want the new event's and the retry", ids(parked, deliveryID))
		}
		if n := len(f.deliveries(off)); n != 0 {
			t.Errorf("the webhook a user disabled has %d deliveries, want 0", n)
		}
		// Parked deliveries are not claimed, and are counted.
		for _, d := range f.claim("w", 100, now.Add(time.Hour)) {
			if d.WebhookID == dead.ID {
				t.Errorf("claimed %s of the disabled webhook", d.ID)
			}
			f.record(now, outcome(d.ID, "w", ubihooks.DeliverySucceeded, 1, now))
		}
		q, err := f.s.DeliveryQueue(f.ctx, now, 100)
		f.must(err)
		if q.Parked != 2 {
			t.Errorf("DeliveryQueue.Parked = %d, want 2", q.Parked)
		}
		stats, err := f.s.WebhookStats(f.ctx, f.p.ID, now.Add(-30*day), dead.Name)
		f.must(err)
		if len(stats) != 1 || stats[0].Parked != 2 || stats[0].Pending != 0 {
			t.Errorf("dead's stats count parked deliveries as %+v, want 2 parked and none pending", *stats[0])
		}
		// They are kept past the retention.
		if _, err := f.s.DeleteExpired(f.ctx, now.Add(365*day), 1000); err != nil {
			t.Fatal(err)
		}
		if d, _ := f.delivery(deadRetry.ID); d.Status != ubihooks.DeliveryParked {
			t.Errorf("after DeleteExpired the parked retry is %s", d.Status)
		}

		// Re-enabled by a user: the run starts over; the parked wait for a redelivery.
		got.Enabled, got.DisabledReason, got.DisabledAt, got.FailingSince, got.ConsecutiveFailures = true, "", time.Time{}, time.Time{}, 0
		got.UpdatedAt = now.Add(time.Hour)
		f.must(f.s.UpdateWebhook(f.ctx, got))
		if got := f.getWebhook(dead); !got.Enabled || got.ConsecutiveFailures != 0 || !got.FailingSince.IsZero() || got.DisabledReason != "" {
			t.Errorf("after re-enable: %+v", got)
		}
		if cs := f.applyHealth(policy, now.Add(2*time.Hour)); len(cs) != 0 {
			t.Errorf("re-enabled without a success: changes %v, want none", kinds(cs))
		}
		rf := ubihooks.RedeliverFilter{ProjectID: f.p.ID, WebhookID: dead.ID, Status: string(ubihooks.DeliveryParked), Limit: 10, DryRun: true}
		n, more, err := f.s.RedeliverMany(f.ctx, rf, now.Add(2*time.Hour))
		f.must(err)
		if n != 2 || more {
			t.Errorf("dry run of parked: %d (more %v), want 2", n, more)
		}
		rf.DryRun = false
		n, _, err = f.s.RedeliverMany(f.ctx, rf, now.Add(2*time.Hour))
		f.must(err)
		if n != 2 {
			t.Errorf("redelivered %d parked, want 2", n)
		}
		ds := f.claim("w", 100, now.Add(2*time.Hour))
		if len(ds) != 2 {
			t.Fatalf("claimed %d after the redelivery, want 2", len(ds))
		}
		for _, d := range ds {
			o := outcome(d.ID, "w", ubihooks.DeliverySucceeded, 1, now.Add(2*time.Hour))
			o.WebhookID = d.WebhookID
			f.record(now.Add(2*time.Hour), o)
		}
		cs = f.applyHealth(policy, now.Add(3*time.Hour))
		sameList(t, "changes after a success", kinds(cs), []string{"webhook.recovered dead"})
		if cs := f.applyHealth(policy, now.Add(4*time.Hour)); len(cs) != 0 {
			t.Errorf("after recovery: changes %v, want none", kinds(cs))
		}
	})

	s.run(t, "ShortRunsDoNotDisable", func(t *testing.T, f *fx) {
		// One event retried for days: 3 failures over 3 days stay under MinFailures 4.
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "slow", "completed")
		for _, d := range []time.Duration{0, day, 3 * day} {
			f.failOnce(o, v, at(d), nil)
		}
		cs := f.applyHealth(policy, at(3*day+time.Minute))
		sameList(t, "changes", kinds(cs), []string{"webhook.failing slow"})
		if !f.getWebhook(w).Enabled {
			t.Error("disabled after 3 failures, MinFailures 4")
		}
		// A batch whose success comes between failures: the run is what follows the success.
		f.emit(at(4*day), f.event(o, v, "completed", at(4*day)), f.event(o, v, "completed", at(4*day)), f.event(o, v, "completed", at(4*day)))
		ds := f.claim("w", 100, at(4*day))
		if len(ds) != 3 {
			t.Fatalf("claimed %d, want 3", len(ds))
		}
		ok := outcome(ds[1].ID, "w", ubihooks.DeliverySucceeded, 1, at(4*day))
		ok.WebhookID = w.ID
		f.record(at(4*day), failAttempt(ds[0], "w", ubihooks.DeliveryFailed, at(4*day)), ok, failAttempt(ds[2], "w", ubihooks.DeliveryFailed, at(4*day)))
		if got := f.getWebhook(w); got.ConsecutiveFailures != 1 || !got.FailingSince.Equal(at(4*day)) {
			t.Errorf("after fail, success, fail: run %d since %v, want 1 since %v", got.ConsecutiveFailures, got.FailingSince, at(4*day))
		}
		// Disabled policies change nothing; bad ones are refused.
		if cs := f.applyHealth(ubihooks.WebhookHealthPolicy{}, at(10*day)); len(cs) != 1 || cs[0].Kind != ubihooks.WebhookRecovered {
			t.Errorf("zero policy: changes %v, want the recovery only", kinds(cs))
		}
		_, err := f.s.ApplyWebhookHealth(f.ctx, ubihooks.WebhookHealthPolicy{DisableAfter: day}, at(10*day))
		wantCode(t, "policy without MinFailures", err, ubihooks.EINVALID)
	})

	s.run(t, "ConcurrentPassesReportOnce", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		for _, name := range []string{"a", "b", "c"} {
			f.webhook(o, nil, name, "completed")
		}
		for i := range 4 {
			f.failOnce(o, v, at(time.Duration(i)*day), nil)
		}
		var mu sync.Mutex
		var all []string
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				cs, err := f.s.ApplyWebhookHealth(f.ctx, policy, at(4*day))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, kinds(cs)...)
				mu.Unlock()
			})
		}
		wg.Wait()
		sameList(t, "changes of 4 concurrent passes", sortedStrings(all),
			[]string{"webhook.disabled a", "webhook.disabled b", "webhook.disabled c"})
	})
}
