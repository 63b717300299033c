package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// historyFx is a project's delivery history in every state, for the listing cases:
//
//	+0s  e0 completed → hook: failed
//	+1s  e1 completed → hook: succeeded
//	     (webhook "other", on another host, is created)
//	+2s  e2 completed → hook: pending; other: sending
//	+3s  e3 completed → hook, other: pending
//	+4s  e4, e5, e6 completed, emitted together (one creation time) → hook, other: pending
//	+5s  fin: finished, of e3's request → "finished": pending
//	+6s  a webhook test (no webhook) whose dummy event has e3's request ID
type historyFx struct {
	*fx
	hook, other, finished *ubihooks.Webhook
	e                     []*ubihooks.Event // e0 … e6
	fin, test             *ubihooks.Event
}

func newHistoryFx(f *fx) *historyFx {
	f.t.Helper()
	h := &historyFx{fx: f}
	o, v := f.deployment("dep")
	h.hook = f.webhook(o, nil, "hook", "completed")
	h.finished = f.webhook(o, nil, "finished", "finished")
	for i := range 7 {
		h.e = append(h.e, f.event(o, v, "completed", at(time.Duration(min(i, 4))*time.Second)))
	}
	f.emit(base, h.e[0])
	f.record(at(time.Second), outcome(f.claim("w", 10, base)[0].ID, "w", ubihooks.DeliveryFailed, 1, base))
	f.emit(at(time.Second), h.e[1])
	f.record(at(2*time.Second), outcome(f.claim("w", 10, at(time.Second))[0].ID, "w", ubihooks.DeliverySucceeded, 1, at(time.Second)))
	h.other = f.webhook(o, nil, "other", "completed", func(w *ubihooks.Webhook) { w.URL = "https://other.example.com/hook" })
	f.emit(at(2*time.Second), h.e[2])
	f.emit(at(3*time.Second), h.e[3])
	ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w", Limit: 1, Lease: time.Minute, Now: at(2 * time.Second),
		Host: "other.example.com"})
	f.must(err)
	if len(ds) != 1 || ds[0].EventID != h.e[2].ID {
		f.t.Fatalf("claimed %d deliveries to other, want e2's", len(ds))
	}
	f.emit(at(4*time.Second), h.e[4], h.e[5], h.e[6])
	h.fin = f.event(o, v, "finished", at(5*time.Second))
	h.fin.RequestID = h.e[3].RequestID
	h.fin.ID = ubihooks.EventID(h.fin.RequestID, h.fin.Type)
	f.emit(at(5*time.Second), h.fin)
	wt := &ubihooks.WebhookTest{ID: newID(), ProjectID: f.p.ID, Status: ubihooks.TestPending, CreatedAt: at(6 * time.Second), UpdatedAt: at(6 * time.Second)}
	h.test = f.event(o, v, "completed", at(6*time.Second))
	h.test.RequestID, h.test.Test = h.e[3].RequestID, true
	f.must(f.s.CreateWebhookTest(f.ctx, wt, h.test, &ubihooks.Delivery{ID: newID(), ProjectID: f.p.ID, EventID: h.test.ID, TestID: wt.ID,
		URL: "https://hooks.example.com/test", Timeout: time.Second, NextAttemptAt: at(6 * time.Second), CreatedAt: at(6 * time.Second)}))
	return h
}

// list lists with the filter of the fixture's project, failing the test on error.
func (h *historyFx) list(fl ubihooks.DeliveryFilter) []*ubihooks.Delivery {
	h.t.Helper()
	if fl.ProjectID == "" {
		fl.ProjectID = h.p.ID
	}
	if fl.Limit == 0 {
		fl.Limit = 100
	}
	ds, err := h.s.ListDeliveries(h.ctx, fl)
	h.must(err)
	return ds
}

// events returns the indexes of the deliveries' events among e0 … e6 ("fin", "test"
// otherwise), in order.
func (h *historyFx) events(ds []*ubihooks.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		switch d.EventID {
		case h.fin.ID:
			out[i] = "fin"
		case h.test.ID:
			out[i] = "test"
		default:
			out[i] = fmt.Sprint(slices.IndexFunc(h.e, func(e *ubihooks.Event) bool { return e.ID == d.EventID }))
		}
	}
	return out
}

// checkOrder checks that ds is newest first by (created_at, id).
func checkOrder(t *testing.T, what string, ds []*ubihooks.Delivery) {
	t.Helper()
	for i := 1; i < len(ds); i++ {
		a, b := ds[i-1], ds[i]
		if a.CreatedAt.Before(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID <= b.ID {
			t.Errorf("%s: delivery %d (%v, %s) listed before %d (%v, %s): want newest first by (created_at, id)",
				what, i-1, a.CreatedAt, a.ID, i, b.CreatedAt, b.ID)
		}
	}
}

func testDeliveryHistory(t *testing.T, s suite) {
	s.run(t, "ListDeliveries", func(t *testing.T, f *fx) {
		h := newHistoryFx(f)
		all := h.list(ubihooks.DeliveryFilter{WebhookID: h.hook.ID})
		checkOrder(t, "hook's deliveries", all)
		got := h.events(all)
		if len(got) != 7 || !slices.Equal(got[3:], []string{"3", "2", "1", "0"}) || !slices.Equal(sortedStrings(got[:3]), []string{"4", "5", "6"}) {
			t.Errorf("hook's deliveries are of events %q, want 4, 5, 6 (any order: one creation time), then 3, 2, 1, 0", got)
		}
		for _, d := range all {
			if d.Event == nil || d.Event.ID != d.EventID || d.Event.Type != ubihooks.EventDeploymentCompleted || d.Event.RequestID == "" ||
				d.WebhookID != h.hook.ID || d.WebhookName != "hook" {
				t.Errorf("listed delivery %s: event %+v, webhook %s %q; want its event, and hook", d.ID, d.Event, d.WebhookID, d.WebhookName)
			}
		}
		sameList(t, "limit 2", ids(h.list(ubihooks.DeliveryFilter{WebhookID: h.hook.ID, Limit: 2}), deliveryID), ids(all[:2], deliveryID))
		if got := h.events(h.list(ubihooks.DeliveryFilter{WebhookID: h.other.ID})); len(got) != 5 || !slices.Equal(got[3:], []string{"3", "2"}) {
			t.Errorf("other's deliveries are of events %q, want 4, 5, 6 (any order), then 3, 2", got)
		}
		ds, err := f.s.ListDeliveries(f.ctx, ubihooks.DeliveryFilter{ProjectID: f.p.ID, WebhookID: newID(), Limit: 10})
		if err != nil || len(ds) != 0 {
			t.Errorf("ListDeliveries(unknown webhook) = %d deliveries, %v; want none", len(ds), err)
		}
		_, err = f.s.ListDeliveries(f.ctx, ubihooks.DeliveryFilter{ProjectID: f.p.ID, WebhookID: h.hook.ID})
		wantCode(t, "ListDeliveries(limit 0)", err, ubihooks.EINVALID)
	})
	s.run(t, "ListDeliveriesFilters", func(t *testing.T, f *fx) {
		h := newHistoryFx(f)
		hook, other := h.hook.ID, h.other.ID
		for _, c := range []struct {
			name string
			fl   ubihooks.DeliveryFilter
			want []string
		}{
			{"failed", ubihooks.DeliveryFilter{WebhookID: hook, Status: "failed"}, []string{"0"}},
			{"succeeded", ubihooks.DeliveryFilter{WebhookID: hook, Status: "succeeded"}, []string{"1"}},
			{"sending", ubihooks.DeliveryFilter{WebhookID: hook, Status: "sending"}, nil},
			{"other sending", ubihooks.DeliveryFilter{WebhookID: other, Status: "sending"}, []string{"2"}},
			{"event", ubihooks.DeliveryFilter{WebhookID: hook, EventID: h.e[3].ID}, []string{"3"}},
			{"event of no delivery of other", ubihooks.DeliveryFilter{WebhookID: other, EventID: h.e[0].ID}, nil},
			{"request", ubihooks.DeliveryFilter{WebhookID: hook, RequestID: h.e[2].RequestID}, []string{"2"}},
			{"request and status", ubihooks.DeliveryFilter{WebhookID: hook, RequestID: h.e[0].RequestID, Status: "failed"}, []string{"0"}},
			{"request, other status", ubihooks.DeliveryFilter{WebhookID: hook, RequestID: h.e[0].RequestID, Status: "pending"}, nil},
			{"project: event", ubihooks.DeliveryFilter{EventID: h.e[3].ID}, []string{"3", "3"}},
			{"project: request", ubihooks.DeliveryFilter{RequestID: h.e[3].RequestID}, []string{"fin", "3", "3"}},
			{"project: request, pending", ubihooks.DeliveryFilter{RequestID: h.e[2].RequestID, Status: "pending"}, []string{"2"}},
			{"project: a test's event", ubihooks.DeliveryFilter{EventID: h.test.ID}, nil},
			{"another project", ubihooks.DeliveryFilter{ProjectID: f.project("other").ID, EventID: h.e[3].ID}, nil},
		} {
			ds := h.list(c.fl)
			checkOrder(t, c.name, ds)
			sameList(t, c.name, h.events(ds), c.want)
			for _, d := range ds {
				if d.Event == nil || d.Event.RequestID == "" || d.WebhookName == "" {
					t.Errorf("%s: delivery %s without its event or webhook name", c.name, d.ID)
				}
			}
		}
		ds := h.list(ubihooks.DeliveryFilter{RequestID: h.e[3].RequestID})
		if got := names(ds, func(d *ubihooks.Delivery) string { return d.WebhookName }); got[0] != "finished" ||
			!slices.Equal(sortedStrings(got[1:]), []string{"hook", "other"}) {
			t.Errorf("webhooks of the request's deliveries = %q, want finished, then hook and other", got)
		}
	})
	s.run(t, "ListDeliveriesPages", func(t *testing.T, f *fx) {
		h := newHistoryFx(f)
		for _, fl := range []ubihooks.DeliveryFilter{{WebhookID: h.hook.ID}, {WebhookID: h.hook.ID, Status: "pending"}, {RequestID: h.e[3].RequestID}} {
			all := h.list(fl)
			for _, size := range []int{1, 2, 3} {
				var paged []*ubihooks.Delivery
				page := fl
				page.Limit = size
				for range len(all) + 1 {
					ds := h.list(page)
					if len(ds) > size {
						t.Fatalf("%+v: a page of %d, limit %d", page, len(ds), size)
					}
					paged = append(paged, ds...)
					if len(ds) < size {
						break
					}
					page.Before = ds[len(ds)-1].ID
				}
				sameList(t, fmt.Sprintf("%+v in pages of %d", fl, size), ids(paged, deliveryID), ids(all, deliveryID))
			}
		}
		// A cursor that names no delivery of the project is refused, not an empty page.
		other := f.project("other")
		for name, fl := range map[string]ubihooks.DeliveryFilter{
			"unknown delivery":           {ProjectID: f.p.ID, WebhookID: h.hook.ID, Before: newID(), Limit: 10},
			"another project's delivery": {ProjectID: other.ID, Before: h.list(ubihooks.DeliveryFilter{WebhookID: h.hook.ID})[0].ID, Limit: 10},
		} {
			_, err := f.s.ListDeliveries(f.ctx, fl)
			wantCode(t, "ListDeliveries(before: "+name+")", err, ubihooks.EINVALID)
		}
	})
	s.run(t, "GetDelivery", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		e := f.event(o, v, "completed", base)
		f.emit(base, e)
		var want []*ubihooks.Attempt
		for i, status := range []ubihooks.DeliveryStatus{ubihooks.DeliveryPending, ubihooks.DeliveryPending, ubihooks.DeliverySucceeded} {
			now := at(time.Duration(i) * time.Minute)
			ds := f.claim("w", 1, now)
			if len(ds) != 1 {
				t.Fatalf("attempt %d: claimed %d deliveries", i+1, len(ds))
			}
			oc := outcome(ds[0].ID, "w", status, i+1, now)
			oc.NextAttemptAt = at(time.Duration(i+1) * time.Minute)
			f.record(now.Add(time.Second), oc)
			want = append(want, &oc.Attempt)
		}
		d, as := f.delivery(f.deliveries(w)[0].ID)
		checkDelivery(t, "delivery", d, ubihooks.DeliverySucceeded, 3, "")
		if d.WebhookName != "hook" || d.EventID != e.ID {
			t.Errorf("delivery: webhook name %q, event %s; want hook, %s", d.WebhookName, d.EventID, e.ID)
		}
		same(t, "event", d.Event, withDefault(e, true))
		if len(as) != len(want) {
			t.Fatalf("%d attempts, want %d", len(as), len(want))
		}
		for i := range as {
			same(t, fmt.Sprintf("attempt %d", i+1), as[i], want[i])
		}
		_, _, err := f.s.GetDelivery(f.ctx, f.project("other").ID, d.ID)
		wantCode(t, "GetDelivery(other project)", err, ubihooks.ENOTFOUND)
		_, _, err = f.s.GetDelivery(f.ctx, f.p.ID, newID())
		wantCode(t, "GetDelivery(missing)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "Redeliver", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		e := f.event(o, v, "completed", base)
		f.emit(base, e)
		d := f.claim("w", 1, base)[0]
		wantCode(t, "Redeliver(sending)", f.s.Redeliver(f.ctx, f.p.ID, d.ID, at(time.Second)), ubihooks.ECONFLICT)
		f.record(at(time.Second), outcome(d.ID, "w", ubihooks.DeliveryFailed, 1, base))

		f.must(f.s.Redeliver(f.ctx, f.p.ID, d.ID, at(time.Hour)))
		got, as := f.delivery(d.ID)
		if got.Status != ubihooks.DeliveryPending || got.EventID != e.ID || !got.NextAttemptAt.Equal(at(time.Hour)) ||
			!got.CompletedAt.IsZero() || got.LeaseOwner != "" {
			t.Errorf("redelivered: status %s, event %s, next attempt %v, completed %v, owner %q; want pending, %s, %v, zero, \"\"",
				got.Status, got.EventID, got.NextAttemptAt, got.CompletedAt, got.LeaseOwner, e.ID, at(time.Hour))
		}
		if len(as) != 1 || got.Attempts != 1 {
			t.Errorf("redelivered delivery: attempts %d, %d in its history; want 1, 1", got.Attempts, len(as))
		}
		wantCode(t, "Redeliver(pending)", f.s.Redeliver(f.ctx, f.p.ID, d.ID, at(time.Hour)), ubihooks.ECONFLICT)
		if ds := f.claim("w", 1, at(time.Hour-time.Second)); len(ds) != 0 {
			t.Errorf("redelivery claimed before its time")
		}
		ds := f.claim("w", 1, at(time.Hour))
		if len(ds) != 1 || ds[0].ID != d.ID || ds[0].Event == nil || ds[0].Event.ID != e.ID {
			t.Fatalf("claim after redeliver returned %d deliveries, want %s with event %s", len(ds), d.ID, e.ID)
		}
		if ds[0].Attempts != 1 || ds[0].RetryBase != 1 {
			t.Errorf("claimed redelivery: attempts %d, retry base %d; want 1, 1 (its retry schedule starts over)", ds[0].Attempts, ds[0].RetryBase)
		}
		f.record(at(time.Hour+time.Second), outcome(d.ID, "w", ubihooks.DeliverySucceeded, 2, at(time.Hour)))
		if got, as := f.delivery(d.ID); got.Attempts != 2 || len(as) != 2 {
			t.Errorf("after the attempt of the redelivery: attempts %d, %d in its history; want 2, 2", got.Attempts, len(as))
		}
		f.must(f.s.Redeliver(f.ctx, f.p.ID, d.ID, at(2*time.Hour))) // succeeded is finished too
		if n := len(f.deliveries(w)); n != 1 {
			t.Errorf("redelivering created new deliveries: %d, want 1", n)
		}
		wantCode(t, "Redeliver(missing)", f.s.Redeliver(f.ctx, f.p.ID, newID(), at(time.Hour)), ubihooks.ENOTFOUND)
		wantCode(t, "Redeliver(other project)", f.s.Redeliver(f.ctx, f.project("other").ID, d.ID, at(time.Hour)), ubihooks.ENOTFOUND)
	})
}
