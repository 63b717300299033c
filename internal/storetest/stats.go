package storetest

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// byEvent indexes claimed deliveries by their event.
func byEvent(ds []*ubihooks.Delivery) map[string]*ubihooks.Delivery {
	out := map[string]*ubihooks.Delivery{}
	for _, d := range ds {
		out[d.EventID] = d
	}
	return out
}

// attemptOf is outcome with the attempt's duration set.
func attemptOf(d *ubihooks.Delivery, status ubihooks.DeliveryStatus, number int, started time.Time, dur time.Duration) ubihooks.Outcome {
	o := outcome(d.ID, d.LeaseOwner, status, number, started)
	o.Attempt.Duration = dur
	return o
}

func testWebhookStats(t *testing.T, s suite) {
	s.run(t, "Counts", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		busy := f.webhook(o, nil, "a-busy", "completed")
		idle := f.webhook(o, nil, "b-idle", "completed", func(w *ubihooks.Webhook) { w.Enabled = false })
		failing := f.webhook(o, nil, "c-failing", "failed")
		mins := func(m int) time.Time { return at(time.Duration(m) * time.Minute) }
		claim := func(now time.Time, want int) map[string]*ubihooks.Delivery {
			t.Helper()
			ds := f.claim("w", 10, now)
			if len(ds) != want {
				t.Fatalf("claim at %v: %d deliveries, want %d", now, len(ds), want)
			}
			return byEvent(ds)
		}

		// Before the window: a delivery and its attempt that count nowhere.
		e0 := f.event(o, v, "completed", mins(-60))
		f.emit(mins(-60), e0)
		f.record(mins(-50), attemptOf(claim(mins(-60), 1)[e0.ID], ubihooks.DeliverySucceeded, 1, mins(-50), 900*time.Millisecond))
		// Hour 0: one success (100 ms) and one failure after a retry (300 ms, 200 ms).
		e1, e2 := f.event(o, v, "completed", mins(10)), f.event(o, v, "completed", mins(20))
		f.emit(mins(10), e1)
		f.emit(mins(20), e2)
		ds := claim(mins(20), 2)
		f.record(mins(21), attemptOf(ds[e1.ID], ubihooks.DeliverySucceeded, 1, mins(21), 100*time.Millisecond),
			attemptOf(ds[e2.ID], ubihooks.DeliveryPending, 1, mins(21), 300*time.Millisecond))
		f.record(mins(30), attemptOf(claim(mins(30), 1)[e2.ID], ubihooks.DeliveryFailed, 2, mins(30), 200*time.Millisecond))
		// Hour 2: a success (400 ms).
		e3 := f.event(o, v, "completed", mins(125))
		f.emit(mins(125), e3)
		f.record(mins(126), attemptOf(claim(mins(125), 1)[e3.ID], ubihooks.DeliverySucceeded, 1, mins(126), 400*time.Millisecond))
		// Hour 3: the other webhook's failure (50 ms).
		ef := f.event(o, v, "failed", mins(180))
		f.emit(mins(180), ef)
		f.record(mins(181), attemptOf(claim(mins(180), 1)[ef.ID], ubihooks.DeliveryFailed, 1, mins(181), 50*time.Millisecond))
		// Hour 5: one sending, one failure (500 ms), then a pending one, the newest.
		e4, e5 := f.event(o, v, "completed", mins(300)), f.event(o, v, "completed", mins(301))
		f.emit(mins(300), e4)
		f.emit(mins(301), e5)
		f.record(mins(302), attemptOf(claim(mins(301), 2)[e5.ID], ubihooks.DeliveryFailed, 1, mins(302), 500*time.Millisecond))
		f.emit(mins(302), f.event(o, v, "completed", mins(302)))
		// Another project's webhook of the same name, with a delivery in the window.
		op := f.project("other")
		oo := f.objectIn(op, ubihooks.ObjectDeployment, "dep")
		ov := f.version(oo, "v1", "http://backend.invalid/other")
		other := f.webhook(oo, nil, "a-busy", "completed")
		f.emit(mins(303), f.event(oo, ov, "completed", mins(303)))

		stats := func(projectID string, since time.Time, name string) []*ubihooks.WebhookStats {
			t.Helper()
			st, err := f.s.WebhookStats(f.ctx, projectID, since, name)
			f.must(err)
			return st
		}
		hour := func(since time.Time, k int, succeeded, failed int) ubihooks.StatsBucket {
			return ubihooks.StatsBucket{Start: since.Add(time.Duration(k) * time.Hour), Succeeded: succeeded, Failed: failed}
		}
		wantBusy := &ubihooks.WebhookStats{WebhookID: busy.ID, WebhookName: "a-busy", Succeeded: 2, Failed: 2, Pending: 2, SuccessRate: 0.5,
			// 100, 200, 300, 400, 500 ms: ranks 3 and 5.
			P50: 300 * time.Millisecond, P95: 500 * time.Millisecond, Attempts: 5, LastStatus: "pending", LastAttemptAt: mins(302),
			Buckets: []ubihooks.StatsBucket{hour(base, 0, 1, 1), hour(base, 2, 1, 0), hour(base, 5, 0, 1)}}
		wantIdle := &ubihooks.WebhookStats{WebhookID: idle.ID, WebhookName: "b-idle", SuccessRate: -1, Buckets: []ubihooks.StatsBucket{}}
		wantFailing := &ubihooks.WebhookStats{WebhookID: failing.ID, WebhookName: "c-failing", Failed: 1, SuccessRate: 0,
			P50: 50 * time.Millisecond, P95: 50 * time.Millisecond, Attempts: 1, LastStatus: "failed", LastAttemptAt: mins(181),
			Buckets: []ubihooks.StatsBucket{hour(base, 3, 0, 1)}}

		all := stats(f.p.ID, base, "")
		sameList(t, "webhooks", names(all, func(s *ubihooks.WebhookStats) string { return s.WebhookName }), []string{"a-busy", "b-idle", "c-failing"})
		if len(all) == 3 {
			same(t, "a-busy", all[0], wantBusy)
			same(t, "b-idle", all[1], wantIdle)
			same(t, "c-failing", all[2], wantFailing)
			if all[1].Buckets == nil {
				t.Errorf("b-idle: Buckets is nil, want empty")
			}
		}

		one := stats(f.p.ID, base, "c-failing")
		if len(one) != 1 {
			t.Fatalf("stats of c-failing: %d entries, want 1", len(one))
		}
		same(t, "c-failing alone", one[0], wantFailing)
		if got := stats(f.p.ID, base, "nope"); len(got) != 0 {
			t.Errorf("stats of an unknown webhook: %d entries, want none", len(got))
		}

		// A later window: hours count from its start.
		since := mins(120)
		later := stats(f.p.ID, since, "a-busy")
		if len(later) != 1 {
			t.Fatalf("stats since %v: %d entries, want 1", since, len(later))
		}
		same(t, "a-busy since 2h", later[0], &ubihooks.WebhookStats{WebhookID: busy.ID, WebhookName: "a-busy", Succeeded: 1, Failed: 1,
			Pending: 2, SuccessRate: 0.5, P50: 400 * time.Millisecond, P95: 500 * time.Millisecond, Attempts: 2, LastStatus: "pending",
			LastAttemptAt: mins(302), Buckets: []ubihooks.StatsBucket{hour(since, 0, 1, 0), hour(since, 3, 0, 1)}})

		// The other project sees its own webhook only.
		theirs := stats(op.ID, base, "")
		if len(theirs) != 1 {
			t.Fatalf("stats of the other project: %d entries, want 1", len(theirs))
		}
		same(t, "other project's a-busy", theirs[0], &ubihooks.WebhookStats{WebhookID: other.ID, WebhookName: "a-busy", Pending: 1,
			SuccessRate: -1, LastStatus: "pending", Buckets: []ubihooks.StatsBucket{}})
		// A project without webhooks has no stats.
		if got := stats(f.project("empty").ID, base, ""); got == nil || len(got) != 0 {
			t.Errorf("stats of a project without webhooks = %v, want empty", got)
		}
	})
	s.run(t, "SampleBound", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		n := ubihooks.StatsSampleSize + 1
		events := make([]*ubihooks.Event, n)
		for i := range events {
			events[i] = f.event(o, v, "completed", base)
		}
		f.emit(base, events...)
		ds := f.claim("w", n, base)
		if len(ds) != n {
			t.Fatalf("claim: %d deliveries, want %d", len(ds), n)
		}
		// The oldest attempt took an hour; the others 1 ms to 1000 ms, newest the slowest.
		outs := make([]ubihooks.Outcome, n)
		for i, d := range ds {
			started := at(time.Duration(i) * time.Millisecond)
			outs[i] = attemptOf(d, ubihooks.DeliverySucceeded, 1, started, time.Duration(i)*time.Millisecond)
			if i == 0 {
				outs[i].Attempt.Duration = time.Hour
			}
		}
		f.record(at(time.Minute), outs...)
		st, err := f.s.WebhookStats(f.ctx, f.p.ID, base, "hook")
		f.must(err)
		if len(st) != 1 {
			t.Fatalf("stats: %d entries, want 1", len(st))
		}
		got := st[0]
		if got.Succeeded != n || got.Attempts != ubihooks.StatsSampleSize || got.P50 != 500*time.Millisecond || got.P95 != 950*time.Millisecond {
			t.Errorf("stats over %d attempts: succeeded %d, sampled %d, P50 %v, P95 %v; want %d, %d, 500ms, 950ms (the oldest, an hour long, left out)",
				n, got.Succeeded, got.Attempts, got.P50, got.P95, n, ubihooks.StatsSampleSize)
		}
		if !got.LastAttemptAt.Equal(at(time.Duration(n-1) * time.Millisecond)) {
			t.Errorf("LastAttemptAt = %v, want the newest attempt's start %v", got.LastAttemptAt, at(time.Duration(n-1)*time.Millisecond))
		}
	})
}
