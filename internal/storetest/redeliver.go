package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// redeliverFx holds finished and unfinished deliveries for the RedeliverMany cases:
//
//	hook:  +0s failed, +1s succeeded, +2s failed, +3s failed, +4s pending (a retry), +5s sending
//	other: +2s failed
//	a webhook test: +6s failed
type redeliverFx struct {
	*fx
	hook, other *ubihooks.Webhook
	d           []*ubihooks.Delivery // hook's, oldest first
	otherFailed *ubihooks.Delivery
	testFailed  *ubihooks.Delivery
}

func newRedeliverFx(f *fx) *redeliverFx {
	f.t.Helper()
	r := &redeliverFx{fx: f}
	o, v := f.deployment("dep")
	r.hook = f.webhook(o, nil, "hook", "completed")
	r.other = f.webhook(o, nil, "other", "failed")
	status := map[string]ubihooks.DeliveryStatus{}
	for i, st := range []ubihooks.DeliveryStatus{"failed", "succeeded", "failed", "failed", "pending", "sending"} {
		e := f.event(o, v, "completed", at(time.Duration(i)*time.Second))
		f.emit(at(time.Duration(i)*time.Second), e)
		status[e.ID] = st
	}
	ef := f.event(o, v, "failed", at(2*time.Second))
	f.emit(at(2*time.Second), ef)
	status[ef.ID] = ubihooks.DeliveryFailed
	_, te, _ := f.webhookTest(o, v, at(6*time.Second))
	status[te.ID] = ubihooks.DeliveryFailed
	ds := f.claim("w", 100, at(10*time.Second))
	if len(ds) != len(status) {
		f.t.Fatalf("claimed %d deliveries, want %d", len(ds), len(status))
	}
	for _, d := range ds {
		if st := status[d.EventID]; st != ubihooks.DeliverySending {
			f.record(at(11*time.Second), outcome(d.ID, "w", st, 1, at(10*time.Second)))
		}
	}
	r.d = f.deliveries(r.hook)
	for i, j := 0, len(r.d)-1; i < j; i, j = i+1, j-1 {
		r.d[i], r.d[j] = r.d[j], r.d[i]
	}
	r.otherFailed = f.deliveries(r.other)[0]
	for _, d := range ds {
		if d.TestID != "" {
			r.testFailed, _ = f.delivery(d.ID)
		}
	}
	return r
}

// redeliver calls RedeliverMany on r's project with now = +1h.
func (r *redeliverFx) redeliver(fl ubihooks.RedeliverFilter) (int, bool) {
	r.t.Helper()
	fl.ProjectID = r.p.ID
	n, more, err := r.s.RedeliverMany(r.ctx, fl, at(time.Hour))
	r.must(err)
	return n, more
}

// statuses returns the current status of each delivery.
func (r *redeliverFx) statuses(ds ...*ubihooks.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		got, _ := r.delivery(d.ID)
		out[i] = string(got.Status)
	}
	return out
}

func testRedeliverMany(t *testing.T, s suite) {
	s.run(t, "RedeliverMany", func(t *testing.T, f *fx) {
		r := newRedeliverFx(f)
		sameList(t, "statuses before", r.statuses(r.d...), []string{"failed", "succeeded", "failed", "failed", "pending", "sending"})
		hook := r.hook.ID
		all := ubihooks.RedeliverFilter{WebhookID: hook, Status: "failed", Until: at(time.Hour), Limit: 2}

		dry := all
		dry.DryRun = true
		if n, more := r.redeliver(dry); n != 3 || !more {
			t.Errorf("dry run = %d, more %v; want 3 (every match), true (over the limit of 2)", n, more)
		}
		sameList(t, "statuses after a dry run", r.statuses(r.d...), []string{"failed", "succeeded", "failed", "failed", "pending", "sending"})

		if n, more := r.redeliver(all); n != 2 || !more {
			t.Errorf("first call = %d, more %v; want 2, true", n, more)
		}
		sameList(t, "statuses after the first call (oldest first)", r.statuses(r.d...),
			[]string{"pending", "succeeded", "pending", "failed", "pending", "sending"})
		got, as := f.delivery(r.d[0].ID)
		if got.EventID != r.d[0].EventID || !got.NextAttemptAt.Equal(at(time.Hour)) || !got.CompletedAt.IsZero() ||
			got.Attempts != 1 || got.RetryBase != 1 || len(as) != 1 || got.LastError != r.d[0].LastError {
			t.Errorf("redelivered: event %s, next attempt %v, completed %v, attempts %d, retry base %d, %d in its history; "+
				"want %s, %v, zero, 1, 1, 1", got.EventID, got.NextAttemptAt, got.CompletedAt, got.Attempts, got.RetryBase, len(as),
				r.d[0].EventID, at(time.Hour))
		}
		if n, more := r.redeliver(all); n != 1 || more {
			t.Errorf("second call = %d, more %v; want 1, false", n, more)
		}
		if n, more := r.redeliver(all); n != 0 || more {
			t.Errorf("third call = %d, more %v; want 0, false", n, more)
		}
		sameList(t, "statuses at the end", r.statuses(r.d...), []string{"pending", "succeeded", "pending", "pending", "pending", "sending"})
		sameList(t, "other webhook and test untouched", r.statuses(r.otherFailed, r.testFailed), []string{"failed", "failed"})

		// The redeliveries are due at once (with the retry of +4s), with the same events and
		// a fresh retry schedule.
		ds := f.claim("w2", 10, at(time.Hour))
		if claimed := sortedStrings(ids(ds, deliveryID)); !sameSet(claimed, r.d[0].ID, r.d[2].ID, r.d[3].ID, r.d[4].ID) {
			t.Errorf("claimed %v, want the three redelivered and the retry", claimed)
		}
		for _, d := range ds {
			if d.Event == nil || d.Event.ID != d.EventID || d.ID != r.d[4].ID && d.RetryBase != d.Attempts {
				t.Errorf("claimed redelivery %s: event %v, attempts %d, retry base %d", d.ID, d.Event, d.Attempts, d.RetryBase)
			}
		}
	})
	s.run(t, "RedeliverManyBounds", func(t *testing.T, f *fx) {
		r := newRedeliverFx(f)
		hook := r.hook.ID
		// [since, until): a delivery created at since is in, one created at until is out.
		if n, _ := r.redeliver(ubihooks.RedeliverFilter{WebhookID: hook, Status: "failed", Since: at(time.Second), Until: at(3 * time.Second), Limit: 10}); n != 1 {
			t.Errorf("[+1s, +3s) redelivered %d, want 1 (+2s)", n)
		}
		if n, _ := r.redeliver(ubihooks.RedeliverFilter{WebhookID: hook, Status: "succeeded", Since: at(time.Second), Until: at(time.Hour), Limit: 10}); n != 1 {
			t.Errorf("succeeded since +1s redelivered %d, want 1", n)
		}
		sameList(t, "statuses", r.statuses(r.d...), []string{"failed", "pending", "pending", "failed", "pending", "sending"})
		if n, more, err := f.s.RedeliverMany(f.ctx, ubihooks.RedeliverFilter{ProjectID: f.project("other").ID, Status: "failed", Limit: 10}, at(time.Hour)); n != 0 || more || err != nil {
			t.Errorf("another project: %d, more %v, %v; want 0, false, nil", n, more, err)
		}
		// Without a webhook: every webhook of the project, never a test.
		if n, more := r.redeliver(ubihooks.RedeliverFilter{Status: "failed", Limit: 10}); n != 3 || more {
			t.Errorf("project-wide = %d, more %v; want 3 (hook's +0s, +3s, other's), false", n, more)
		}
		sameList(t, "other webhook, test", r.statuses(r.otherFailed, r.testFailed), []string{"pending", "failed"})
		for _, st := range []string{"pending", "sending", "", "cancelled"} {
			_, _, err := f.s.RedeliverMany(f.ctx, ubihooks.RedeliverFilter{ProjectID: f.p.ID, Status: st, Limit: 10}, at(time.Hour))
			wantCode(t, "RedeliverMany(status "+st+")", err, ubihooks.EINVALID)
		}
		_, _, err := f.s.RedeliverMany(f.ctx, ubihooks.RedeliverFilter{ProjectID: f.p.ID, Status: "failed"}, at(time.Hour))
		wantCode(t, "RedeliverMany(limit 0)", err, ubihooks.EINVALID)
		sameList(t, "sending untouched", r.statuses(r.d[5]), []string{"sending"})
	})
	s.run(t, "RedeliverManyWakes", func(t *testing.T, f *fx) {
		r := newRedeliverFx(f)
		got := make(chan ubihooks.Channel, 100)
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		f.s.Subscribe(ctx, func(c ubihooks.Channel) {
			select {
			case got <- c:
			default:
			}
		})
		// Wake-ups are hints, and a listener may start late: each call redelivers one
		// more (failing them all again when none is left), until one is heard.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			n, _ := r.redeliver(ubihooks.RedeliverFilter{Status: "failed", Limit: 1})
			if n == 0 {
				var outs []ubihooks.Outcome
				for _, d := range f.claim("w2", 100, at(time.Hour)) {
					outs = append(outs, outcome(d.ID, "w2", ubihooks.DeliveryFailed, d.Attempts+1, at(time.Hour)))
				}
				f.record(at(time.Hour), outs...)
				continue
			}
			timer := time.NewTimer(100 * time.Millisecond)
			select {
			case c := <-got:
				timer.Stop()
				if c == ubihooks.ChannelDeliveries {
					return
				}
			case <-timer.C:
			}
		}
		t.Fatal("no wake-up on ubihooks_deliveries within 10s of redeliveries")
	})
}

func sameSet(got []string, want ...string) bool {
	w := sortedStrings(want)
	if len(got) != len(w) {
		return false
	}
	for i := range w {
		if got[i] != w[i] {
			return false
		}
	}
	return true
}
