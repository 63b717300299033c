package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func eventID(d *ubihooks.Delivery) string { return d.EventID }

// withDefault returns a copy of e as the store records it.
func withDefault(e *ubihooks.Event, def bool) *ubihooks.Event {
	c := *e
	c.DefaultVersion = def
	return &c
}

// checkDelivery compares the state fields of a delivery read back from the store.
func checkDelivery(t *testing.T, what string, got *ubihooks.Delivery, status ubihooks.DeliveryStatus, attempts int, owner string) {
	t.Helper()
	if got.Status != status || got.Attempts != attempts || got.LeaseOwner != owner {
		t.Errorf("%s: status %s, attempts %d, lease owner %q; want %s, %d, %q", what, got.Status, got.Attempts, got.LeaseOwner, status, attempts, owner)
	}
	if owner == "" && !got.LeaseExpiresAt.IsZero() {
		t.Errorf("%s: not leased but LeaseExpiresAt = %v", what, got.LeaseExpiresAt)
	}
	if final := status == ubihooks.DeliverySucceeded || status == ubihooks.DeliveryFailed; final == got.CompletedAt.IsZero() {
		t.Errorf("%s: status %s with CompletedAt %v", what, status, got.CompletedAt)
	}
}

func testEmitEvents(t *testing.T, s suite) {
	s.run(t, "FanOut", func(t *testing.T, f *fx) {
		o, v1 := f.deployment("dep")
		v2 := f.version(o, "v2", "")
		other, otherV := f.deployment("other")
		unbound := f.webhook(o, nil, "unbound", "completed", func(w *ubihooks.Webhook) {
			w.Headers = append(w.Headers, ubihooks.Header{Key: "Authorization", Value: "leak?", Protected: true, Sealed: []byte("sealed")})
			w.IncludeResult, w.Retry, w.Timeout = true, false, 12*time.Second
		})
		hooks := []*ubihooks.Webhook{
			unbound,
			f.webhook(o, v2, "bound-v2", "completed"),
			f.webhook(o, nil, "disabled", "completed", func(w *ubihooks.Webhook) { w.Enabled = false }),
			f.webhook(o, v2, "disabled-v2", "completed", func(w *ubihooks.Webhook) { w.Enabled = false }),
			f.webhook(o, nil, "failed-event", "failed"),
			f.webhook(other, nil, "other-object", "completed"),
		}
		check := func(what string, want map[string]int) {
			t.Helper()
			for _, w := range hooks {
				if n := len(f.deliveries(w)); n != want[w.Name] {
					t.Errorf("%s: webhook %s has %d deliveries, want %d", what, w.Name, n, want[w.Name])
				}
			}
		}

		e1 := f.event(o, v1, "completed", base)
		if n := f.emit(base, e1); n != 1 {
			t.Errorf("emit on default version v1: %d deliveries, want 1", n)
		}
		check("e1 on default v1", map[string]int{"unbound": 1})
		ds := f.deliveries(unbound)
		if len(ds) != 1 {
			t.Fatalf("unbound: %d deliveries, want 1", len(ds))
		}
		// The delivery is a snapshot of the webhook, carrying its event.
		d := ds[0]
		want := &ubihooks.Delivery{ID: d.ID, ProjectID: f.p.ID, EventID: e1.ID, WebhookID: unbound.ID, WebhookName: "unbound",
			URL: unbound.URL, Host: "hooks.example.com", Headers: storedHeaders(unbound.Headers), Timeout: 12 * time.Second, IncludeResult: true,
			Status: ubihooks.DeliveryPending, NextAttemptAt: base, CreatedAt: base, UpdatedAt: base, Event: withDefault(e1, true)}
		same(t, "delivery", d, want)

		// Emitting the same event again, even as a new struct, is a no-op.
		if n := f.emit(at(time.Second), e1); n != 0 {
			t.Errorf("re-emit of e1: %d deliveries, want 0", n)
		}
		again := *e1
		if n := f.emit(at(time.Second), &again); n != 0 {
			t.Errorf("re-emit of a copy of e1: %d deliveries, want 0", n)
		}
		check("after re-emits", map[string]int{"unbound": 1})

		// A non-default version reaches only the webhooks bound to it.
		e2 := f.event(o, v2, "completed", at(2*time.Second))
		if n := f.emit(at(2*time.Second), e2); n != 1 {
			t.Errorf("emit on non-default v2: %d deliveries, want 1", n)
		}
		check("e2 on v2", map[string]int{"unbound": 1, "bound-v2": 1})
		if ds := f.deliveries(hooks[1]); len(ds) == 1 {
			same(t, "event of bound-v2's delivery", ds[0].Event, withDefault(e2, false))
		}

		// Later edits of the webhook do not change existing deliveries.
		unbound.URL, unbound.UpdatedAt = "https://moved.example.com/", at(3*time.Second)
		f.must(f.s.UpdateWebhook(f.ctx, unbound))
		if got, _ := f.delivery(d.ID); got.URL != want.URL {
			t.Errorf("delivery URL changed to %q after a webhook update, want the snapshot %q", got.URL, want.URL)
		}

		// Unbound webhooks follow the object's current default version.
		o.DefaultVersion, o.UpdatedAt = "v2", at(4*time.Second)
		f.must(f.s.UpdateObject(f.ctx, o))
		e3 := f.event(o, v2, "completed", at(5*time.Second))
		if n := f.emit(at(5*time.Second), e3); n != 2 {
			t.Errorf("emit on v2 after it became the default: %d deliveries, want 2", n)
		}
		e4 := f.event(o, v1, "completed", at(6*time.Second))
		if n := f.emit(at(6*time.Second), e4); n != 0 {
			t.Errorf("emit on v1 after it stopped being the default: %d deliveries, want 0", n)
		}
		check("after the default changed", map[string]int{"unbound": 2, "bound-v2": 2})
		if ds := f.deliveries(unbound); len(ds) == 2 {
			same(t, "event of the new delivery", ds[0].Event, withDefault(e3, true))
			if ds[0].URL != "https://moved.example.com/" {
				t.Errorf("new delivery URL = %q, want the webhook's current URL", ds[0].URL)
			}
		}

		// One call, several events: the count is the total.
		if n := f.emit(at(7*time.Second), f.event(o, v2, "failed", at(7*time.Second)), f.event(other, otherV, "completed", at(7*time.Second)),
			f.event(o, v2, "started", at(7*time.Second))); n != 2 {
			t.Errorf("batch emit: %d deliveries, want 2", n)
		}
		check("after the batch", map[string]int{"unbound": 2, "bound-v2": 2, "failed-event": 1, "other-object": 1})
	})
	s.run(t, "ConcurrentCalls", func(t *testing.T, f *fx) {
		// Concurrent calls (which a store may emit together) are each answered with their
		// own deliveries; an event given twice in a call is emitted once; a caller that left
		// before its emission emits nothing.
		o, v1 := f.deployment("dep")
		v2 := f.version(o, "v2", "")
		other, otherV := f.deployment("other")
		a := f.webhook(o, nil, "a", "completed")
		b := f.webhook(o, v2, "b", "completed")
		c := f.webhook(other, nil, "c", "failed")
		gone, cancel := context.WithCancel(f.ctx)
		cancel()
		const calls = 60
		type call struct {
			ctx    context.Context
			events []*ubihooks.Event
			now    time.Time
			want   int
			n      int
			err    error
		}
		cs := make([]*call, calls)
		want := map[string]int{}
		for i := range cs {
			cl := &call{ctx: f.ctx, now: at(time.Duration(i) * time.Millisecond)}
			switch i % 4 {
			case 0:
				cl.events, cl.want = []*ubihooks.Event{f.event(o, v1, "completed", cl.now)}, 1 // a
			case 1:
				cl.events, cl.want = []*ubihooks.Event{f.event(o, v2, "completed", cl.now), f.event(other, otherV, "failed", cl.now)}, 2 // b, c
			case 2:
				e := f.event(other, otherV, "failed", cl.now)
				cl.events, cl.want = []*ubihooks.Event{e, e}, 1 // c, once
			case 3:
				cl.events = []*ubihooks.Event{f.event(o, v1, "failed", cl.now)} // nobody listens
			}
			if i%15 == 14 {
				cl.ctx, cl.want = gone, 0
			} else {
				want["a"] += map[int]int{0: 1}[i%4]
				want["b"] += map[int]int{1: 1}[i%4]
				want["c"] += map[int]int{1: 1, 2: 1}[i%4]
			}
			cs[i] = cl
		}
		var wg sync.WaitGroup
		for _, cl := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl.n, cl.err = f.s.EmitEvents(cl.ctx, cl.events, cl.now)
			}()
		}
		wg.Wait()
		made := map[string]time.Time{} // event ID → its call's time
		for i, cl := range cs {
			if cl.ctx == gone {
				if !errors.Is(cl.err, context.Canceled) || cl.n != 0 {
					t.Errorf("call %d of a caller gone = %d, %v; want 0, context.Canceled", i, cl.n, cl.err)
				}
				continue
			}
			if cl.err != nil || cl.n != cl.want {
				t.Errorf("call %d = %d, %v; want %d deliveries", i, cl.n, cl.err, cl.want)
			}
			for _, e := range cl.events {
				made[e.ID] = cl.now
			}
		}
		for _, w := range []*ubihooks.Webhook{a, b, c} {
			ds := f.deliveries(w)
			if len(ds) != want[w.Name] {
				t.Errorf("webhook %s has %d deliveries, want %d", w.Name, len(ds), want[w.Name])
			}
			for _, d := range ds {
				if when, ok := made[d.EventID]; !ok {
					t.Errorf("webhook %s: a delivery of event %s, which no answered call emitted", w.Name, d.EventID)
				} else if !d.CreatedAt.Equal(when) || !d.NextAttemptAt.Equal(when) {
					t.Errorf("webhook %s: delivery created %v, due %v; want its call's time %v", w.Name, d.CreatedAt, d.NextAttemptAt, when)
				}
			}
		}
	})
	s.run(t, "NothingToDo", func(t *testing.T, f *fx) {
		if n := f.emit(base); n != 0 {
			t.Errorf("empty emit: %d deliveries", n)
		}
		o, v := f.deployment("dep")
		if n := f.emit(base, f.event(o, v, "completed", base)); n != 0 {
			t.Errorf("emit without webhooks: %d deliveries", n)
		}
		if due, err := f.s.NextDeliveryDue(f.ctx); err != nil || !due.IsZero() {
			t.Errorf("NextDeliveryDue = %v, %v; want zero", due, err)
		}
	})
}

func testWebhookTests(t *testing.T, s suite) {
	s.run(t, "CreateGet", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		wt, e, d := f.webhookTest(o, v, base)
		got, err := f.s.GetWebhookTest(f.ctx, f.p.ID, wt.ID)
		f.must(err)
		same(t, "webhook test", got, wt)
		_, err = f.s.GetWebhookTest(f.ctx, f.project("other").ID, wt.ID)
		wantCode(t, "GetWebhookTest(other project)", err, ubihooks.ENOTFOUND)
		_, err = f.s.GetWebhookTest(f.ctx, f.p.ID, newID())
		wantCode(t, "GetWebhookTest(missing)", err, ubihooks.ENOTFOUND)

		gd, as := f.delivery(d.ID)
		want := *d
		want.Headers, want.Event = storedHeaders(d.Headers), e
		same(t, "test delivery", gd, &want)
		if len(as) != 0 {
			t.Errorf("new test delivery has %d attempts", len(as))
		}
		ds := f.claim("w", 10, base)
		if len(ds) != 1 || ds[0].ID != d.ID || ds[0].TestID != wt.ID || ds[0].WebhookID != "" || ds[0].Event == nil || !ds[0].Event.Test {
			t.Errorf("claim returned %d deliveries, want the test delivery with its test event", len(ds))
		}
	})
	s.run(t, "Attempts", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		wt, _, d := f.webhookTest(o, v, base)
		other, _, _ := f.webhookTest(o, v, base)
		f.emit(base, f.event(o, v, "completed", base)) // a webhook's delivery, sent with the tests
		attempts := func(projectID, testID string) []*ubihooks.Attempt {
			t.Helper()
			as, err := f.s.ListWebhookTestAttempts(f.ctx, projectID, testID)
			f.must(err)
			return as
		}
		if as := attempts(f.p.ID, wt.ID); as == nil || len(as) != 0 {
			t.Errorf("attempts of a new test = %#v, want empty and non-nil", as)
		}
		if n := len(f.claim("w", 10, base)); n != 3 {
			t.Fatalf("claim: %d deliveries, want 3", n)
		}
		retry := outcome(d.ID, "w", ubihooks.DeliveryPending, 1, at(time.Second))
		f.record(at(time.Second), retry)
		if n := len(f.claim("w", 10, at(time.Minute))); n != 1 {
			t.Fatalf("claim of the retry: %d deliveries, want 1", n)
		}
		done := outcome(d.ID, "w", ubihooks.DeliverySucceeded, 2, at(time.Minute))
		f.record(at(time.Minute), done)
		want := []*ubihooks.Attempt{&retry.Attempt, &done.Attempt}
		got := attempts(f.p.ID, wt.ID)
		if len(got) != 2 {
			t.Fatalf("attempts of the test: %d, want 2", len(got))
		}
		for i := range want {
			same(t, fmt.Sprintf("attempt %d", i+1), got[i], want[i])
		}
		if as := attempts(f.p.ID, other.ID); len(as) != 0 {
			t.Errorf("attempts of a test never sent: %d, want 0", len(as))
		}
		if as := attempts(f.project("other").ID, wt.ID); len(as) != 0 {
			t.Errorf("attempts of the test in another project: %d, want 0", len(as))
		}
		if as := attempts(f.p.ID, newID()); len(as) != 0 {
			t.Errorf("attempts of an unknown test: %d, want 0", len(as))
		}
	})
}

func testClaimDeliveries(t *testing.T, s suite) {
	s.run(t, "DueOldestFirstLimit", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed", func(w *ubihooks.Webhook) {
			w.Headers = append(w.Headers, ubihooks.Header{Key: "X-Secret", Protected: true, Sealed: []byte{9, 8, 7}})
		})
		ea, eb, ec := f.event(o, v, "completed", base), f.event(o, v, "completed", base), f.event(o, v, "completed", base)
		efuture := f.event(o, v, "completed", at(time.Hour))
		f.emit(at(2*time.Second), ea)
		f.emit(at(time.Second), eb)
		f.emit(base, ec)
		f.emit(at(time.Hour), efuture)

		if ds := f.claim("w1", 10, at(-time.Microsecond)); len(ds) != 0 {
			t.Errorf("claim before anything is due returned %d deliveries", len(ds))
		}
		ds := f.claim("w1", 2, at(2*time.Second))
		sameList(t, "first claim (limit 2, oldest first)", ids(ds, eventID), []string{ec.ID, eb.ID})
		for _, d := range ds {
			if d.Status != ubihooks.DeliverySending || d.LeaseOwner != "w1" || !d.LeaseExpiresAt.Equal(at(2*time.Second+time.Minute)) {
				t.Errorf("claimed delivery: status %s, owner %q, lease until %v; want sending, w1, %v", d.Status, d.LeaseOwner, d.LeaseExpiresAt, at(2*time.Second+time.Minute))
			}
			if len(d.Headers) != 2 || !d.Headers[1].Protected || string(d.Headers[1].Sealed) != "\x09\x08\x07" || d.Headers[1].Value != "" {
				t.Errorf("claimed delivery headers = %#v, want X-Hook and the sealed X-Secret", d.Headers)
			}
		}
		if len(ds) == 2 {
			same(t, "claimed event", ds[0].Event, withDefault(ec, true))
			same(t, "claimed event", ds[1].Event, withDefault(eb, true))
			got, _ := f.delivery(ds[0].ID)
			checkDelivery(t, "claimed delivery read back", got, ubihooks.DeliverySending, 0, "w1")
		}
		sameList(t, "second claim", ids(f.claim("w2", 10, at(2*time.Second)), eventID), []string{ea.ID})
		if ds := f.claim("w3", 10, at(2*time.Second)); len(ds) != 0 {
			t.Errorf("third claim returned %d deliveries (leased or not due), want 0", len(ds))
		}
		// Leased deliveries stay leased past their due time; only the future one is new.
		sameList(t, "claim an hour later", ids(f.claim("w3", 10, at(time.Hour)), eventID), []string{efuture.ID})
	})
	s.run(t, "ExcludeHosts", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		url := func(u string) func(*ubihooks.Webhook) { return func(w *ubihooks.Webhook) { w.URL = u } }
		f.webhook(o, nil, "a", "completed", url("https://a.example.com/hook"))
		f.webhook(o, nil, "b", "completed", url("https://b.example.com:8443/hook"))
		f.webhook(o, nil, "c", "completed", url("http://c.example.com/"))
		f.emit(base, f.event(o, v, "completed", base))
		claim := func(owner string, exclude ...string) []string {
			t.Helper()
			ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: owner, Limit: 10, Lease: time.Minute, Now: base, ExcludeHosts: exclude})
			f.must(err)
			// Deliveries due at the same moment come in no defined order.
			return sortedStrings(names(ds, func(d *ubihooks.Delivery) string { return d.Host }))
		}
		got := claim("w1", "a.example.com", "c.example.com")
		sameList(t, "claim excluding a and c", got, []string{"b.example.com:8443"})
		sameList(t, "claim excluding b (leased anyway) and an unknown host", claim("w2", "b.example.com:8443", "x.example.com"), []string{"a.example.com", "c.example.com"})
	})
	// With few hosts and with many (a store may look hosts up one by one, or walk the due
	// deliveries), a claim that skips hosts takes the oldest due deliveries of the others,
	// and none that is not due.
	for _, n := range []int{4, 70} {
		s.run(t, "ExcludeHostsOldestFirst/"+strconv.Itoa(n)+"hosts", func(t *testing.T, f *fx) {
			o, v := f.deployment("dep")
			for i := 0; i < n; i++ {
				f.webhook(o, nil, fmt.Sprintf("w%02d", i), "completed", func(w *ubihooks.Webhook) { w.URL = fmt.Sprintf("https://h%02d.example.com/hook", i) })
			}
			var evs []*ubihooks.Event
			for i := 0; i < 3; i++ {
				e := f.event(o, v, "completed", base.Add(time.Duration(i)*time.Second))
				f.emit(base.Add(time.Duration(i)*time.Second), e)
				evs = append(evs, e)
			}
			exclude := []string{"h00.example.com", "h01.example.com"}
			ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: n - 2 + 1, Lease: time.Minute,
				Now: base.Add(1500 * time.Millisecond), ExcludeHosts: exclude})
			f.must(err)
			perEvent := map[string]int{}
			for _, d := range ds {
				if d.Host == exclude[0] || d.Host == exclude[1] {
					t.Errorf("claimed a delivery to skipped host %s", d.Host)
				}
				perEvent[d.EventID]++
			}
			if perEvent[evs[0].ID] != n-2 || perEvent[evs[1].ID] != 1 || perEvent[evs[2].ID] != 0 {
				t.Errorf("claimed per event: %d of the oldest, %d of the next, %d not due; want %d, 1, 0",
					perEvent[evs[0].ID], perEvent[evs[1].ID], perEvent[evs[2].ID], n-2)
			}
			// The rest of what is due, and nothing of the skipped hosts.
			ds, err = f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w2", Limit: 1000, Lease: time.Minute,
				Now: base.Add(1500 * time.Millisecond), ExcludeHosts: exclude})
			f.must(err)
			if len(ds) != n-2-1 {
				t.Errorf("second claim took %d deliveries, want the %d left due", len(ds), n-3)
			}
		})
	}
	// A host's backlog does not hold back another host's newer deliveries: each host with
	// due deliveries gets a share of a claim (when few hosts are pending).
	s.run(t, "ClaimSharesHosts", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "big", "completed", func(w *ubihooks.Webhook) { w.URL = "https://big.example.com/hook" })
		for i := 0; i < 20; i++ {
			f.emit(base, f.event(o, v, "completed", base))
		}
		o2, v2 := f.deployment("fresh")
		f.webhook(o2, nil, "fresh", "completed", func(w *ubihooks.Webhook) { w.URL = "https://fresh.example.com/hook" })
		f.emit(base.Add(time.Second), f.event(o2, v2, "completed", base.Add(time.Second)))
		ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 10, Lease: time.Minute, Now: base.Add(2 * time.Second)})
		f.must(err)
		hosts := map[string]int{}
		for _, d := range ds {
			hosts[d.Host]++
		}
		if len(ds) < 2 || hosts["fresh.example.com"] != 1 {
			t.Errorf("a claim of 10 behind a backlog of 20 older deliveries took %v, want the other host's newer one among them", hosts)
		}
	})
	s.run(t, "ClaimHost", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		url := func(u string) func(*ubihooks.Webhook) { return func(w *ubihooks.Webhook) { w.URL = u } }
		f.webhook(o, nil, "a", "completed", url("https://a.example.com/hook"))
		f.webhook(o, nil, "b", "completed", url("https://b.example.com:8443/hook"))
		for i := 0; i < 3; i++ {
			f.emit(base, f.event(o, v, "completed", base.Add(time.Duration(i)*time.Second)))
		}
		claim := func(owner, host string, limit int) []*ubihooks.Delivery {
			t.Helper()
			ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: owner, Host: host, Limit: limit, Lease: time.Minute, Now: base.Add(time.Minute)})
			f.must(err)
			for _, d := range ds {
				if d.Host != host || d.LeaseOwner != owner || d.Event == nil {
					t.Errorf("claimed for %s: host %s, owner %s, event %v", host, d.Host, d.LeaseOwner, d.Event)
				}
			}
			return ds
		}
		if got := claim("w1", "b.example.com:8443", 2); len(got) != 2 {
			t.Errorf("claimed %d deliveries to b with limit 2, want 2", len(got))
		}
		if got := claim("w2", "b.example.com:8443", 10); len(got) != 1 {
			t.Errorf("claimed %d deliveries to b after two were leased, want the last 1", len(got))
		}
		if got := claim("w3", "x.example.com", 10); len(got) != 0 {
			t.Errorf("claimed %d deliveries to a host no webhook points at", len(got))
		}
		// The other host's deliveries are all still there.
		ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w4", Limit: 10, Lease: time.Minute, Now: base.Add(time.Minute)})
		f.must(err)
		sameList(t, "the main claim after the host claims", names(ds, func(d *ubihooks.Delivery) string { return d.Host }),
			[]string{"a.example.com", "a.example.com", "a.example.com"})
	})
	s.run(t, "DeferHost", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		url := func(u string) func(*ubihooks.Webhook) { return func(w *ubihooks.Webhook) { w.URL = u } }
		f.webhook(o, nil, "slow", "completed", url("http://slow.example.com/hook"))
		f.webhook(o, nil, "fast", "completed", url("http://fast.example.com/hook"))
		f.emit(base, f.event(o, v, "completed", base))
		f.emit(base, f.event(o, v, "completed", base))
		n, err := f.s.DeferDeliveries(f.ctx, "slow.example.com", base.Add(time.Minute), base)
		f.must(err)
		if n != 2 {
			t.Errorf("DeferDeliveries moved %d deliveries, want 2", n)
		}
		hosts := func(ds []*ubihooks.Delivery) []string {
			return sortedStrings(names(ds, func(d *ubihooks.Delivery) string { return d.Host }))
		}
		claimed, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 10, Lease: time.Hour, Now: base})
		f.must(err)
		sameList(t, "claim while slow.example.com is deferred", hosts(claimed), []string{"fast.example.com", "fast.example.com"})
		next, err := f.s.NextDeliveryDue(f.ctx)
		f.must(err)
		if !next.Equal(base.Add(time.Minute)) {
			t.Errorf("next due = %v, want the deferral time %v", next, base.Add(time.Minute))
		}
		claimed, err = f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 10, Lease: time.Hour, Now: base.Add(time.Minute)})
		f.must(err)
		sameList(t, "claim after the deferral", hosts(claimed), []string{"slow.example.com", "slow.example.com"})
	})
	s.run(t, "Concurrent", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		const n = 40
		events := make([]*ubihooks.Event, n)
		for i := range events {
			events[i] = f.event(o, v, "completed", base)
		}
		if got := f.emit(base, events...); got != n {
			t.Fatalf("emit: %d deliveries, want %d", got, n)
		}
		var mu sync.Mutex
		owners := map[string]string{}
		var wg sync.WaitGroup
		for i := range 4 {
			owner := fmt.Sprintf("worker-%d", i)
			wg.Go(func() {
				for {
					ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: owner, Limit: 3, Lease: time.Minute, Now: base})
					if err != nil {
						t.Errorf("%s: ClaimDeliveries: %v", owner, err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						if prev, dup := owners[d.ID]; dup {
							t.Errorf("delivery %s claimed by both %s and %s", d.ID, prev, owner)
						}
						owners[d.ID] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(owners) != n {
			t.Errorf("concurrent claims leased %d distinct deliveries, want %d", len(owners), n)
		}
	})
}

func testRecordOutcomes(t *testing.T, s suite) {
	s.run(t, "States", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		eOK, eRetry := f.event(o, v, "completed", base), f.event(o, v, "completed", base)
		f.emit(base, eOK, eRetry)
		byEvent := map[string]*ubihooks.Delivery{}
		for _, d := range f.claim("w1", 10, base) {
			byEvent[d.EventID] = d
		}
		dOK, dRetry := byEvent[eOK.ID], byEvent[eRetry.ID]
		if dOK == nil || dRetry == nil {
			t.Fatalf("claim returned %d deliveries, want both", len(byEvent))
		}
		ok, retry := outcome(dOK.ID, "w1", ubihooks.DeliverySucceeded, 1, base), outcome(dRetry.ID, "w1", ubihooks.DeliveryPending, 1, base)
		f.record(at(time.Second), ok, retry)

		got, as := f.delivery(dOK.ID)
		checkDelivery(t, "succeeded delivery", got, ubihooks.DeliverySucceeded, 1, "")
		if !got.CompletedAt.Equal(at(time.Second)) || !got.UpdatedAt.Equal(at(time.Second)) || got.LastStatusCode != 200 || got.LastError != "" {
			t.Errorf("succeeded delivery: completed %v, updated %v, last status %d, last error %q; want %v, %v, 200, \"\"",
				got.CompletedAt, got.UpdatedAt, got.LastStatusCode, got.LastError, at(time.Second), at(time.Second))
		}
		if len(as) != 1 {
			t.Fatalf("succeeded delivery has %d attempts, want 1", len(as))
		}
		same(t, "attempt", as[0], &ok.Attempt)

		got, _ = f.delivery(dRetry.ID)
		checkDelivery(t, "retried delivery", got, ubihooks.DeliveryPending, 1, "")
		if !got.NextAttemptAt.Equal(at(30*time.Second)) || got.LastStatusCode != 503 || got.LastError != "HTTP 503" {
			t.Errorf("retried delivery: next attempt %v, last status %d, last error %q; want %v, 503, \"HTTP 503\"",
				got.NextAttemptAt, got.LastStatusCode, got.LastError, at(30*time.Second))
		}
		if due, err := f.s.NextDeliveryDue(f.ctx); err != nil || !due.Equal(at(30*time.Second)) {
			t.Errorf("NextDeliveryDue = %v, %v; want %v", due, err, at(30*time.Second))
		}
		if ds := f.claim("w2", 10, at(29*time.Second)); len(ds) != 0 {
			t.Errorf("claim before the retry is due returned %d deliveries", len(ds))
		}
		ds := f.claim("w2", 10, at(30*time.Second))
		if len(ds) != 1 || ds[0].ID != dRetry.ID || ds[0].Attempts != 1 {
			t.Fatalf("claim of the retry returned %d deliveries, want %s with 1 attempt", len(ds), dRetry.ID)
		}
		fail := outcome(dRetry.ID, "w2", ubihooks.DeliveryFailed, 2, at(30*time.Second))
		f.record(at(31*time.Second), fail)
		got, as = f.delivery(dRetry.ID)
		checkDelivery(t, "failed delivery", got, ubihooks.DeliveryFailed, 2, "")
		if got.LastError != "connection refused" || got.LastStatusCode != 0 || !got.CompletedAt.Equal(at(31*time.Second)) {
			t.Errorf("failed delivery: last error %q, last status %d, completed %v", got.LastError, got.LastStatusCode, got.CompletedAt)
		}
		if len(as) != 2 {
			t.Fatalf("failed delivery has %d attempts, want 2", len(as))
		}
		same(t, "attempt 1", as[0], &retry.Attempt)
		same(t, "attempt 2", as[1], &fail.Attempt)
		if due, err := f.s.NextDeliveryDue(f.ctx); err != nil || !due.IsZero() {
			t.Errorf("NextDeliveryDue with nothing pending = %v, %v; want zero", due, err)
		}
		f.must(f.s.RecordOutcomes(f.ctx, nil, at(time.Hour)))
	})
	s.run(t, "LostLease", func(t *testing.T, f *fx) {
		d := reclaimed(t, f)
		stale := outcome(d.ID, "w1", ubihooks.DeliverySucceeded, 1, base)
		f.record(at(2*time.Minute+time.Second), stale)
		got, as := f.delivery(d.ID)
		checkDelivery(t, "after w1's stale outcome", got, ubihooks.DeliverySending, 0, "w2")
		if len(as) != 1 {
			t.Fatalf("stale outcome: %d attempts stored, want 1", len(as))
		}
		same(t, "stale attempt", as[0], &stale.Attempt)

		current := outcome(d.ID, "w2", ubihooks.DeliverySucceeded, 2, at(2*time.Minute))
		f.record(at(3*time.Minute), current)
		got, _ = f.delivery(d.ID)
		checkDelivery(t, "after w2's outcome", got, ubihooks.DeliverySucceeded, 1, "")
		// A late outcome for a finished delivery keeps only its attempt too.
		f.record(at(4*time.Minute), outcome(d.ID, "w2", ubihooks.DeliveryFailed, 3, at(3*time.Minute)))
		got, as = f.delivery(d.ID)
		checkDelivery(t, "after a late outcome", got, ubihooks.DeliverySucceeded, 1, "")
		if len(as) != 3 {
			t.Errorf("%d attempts, want 3", len(as))
		}
		for i, a := range as {
			if a.Number != i+1 {
				t.Errorf("attempt %d has Number %d", i, a.Number)
			}
		}
	})
	s.run(t, "OneCallTwoOutcomes", func(t *testing.T, f *fx) {
		// An outcome that lost its lease and the outcome of the delivery's next claim arrive
		// in one call: each keeps its attempt, and the current one sets the state.
		d := reclaimed(t, f)
		stale := outcome(d.ID, "w1", ubihooks.DeliveryPending, 1, base)
		current := outcome(d.ID, "w2", ubihooks.DeliverySucceeded, 2, at(2*time.Minute))
		f.record(at(3*time.Minute), stale, current)
		got, as := f.delivery(d.ID)
		checkDelivery(t, "after both outcomes", got, ubihooks.DeliverySucceeded, 1, "")
		if len(as) != 2 {
			t.Fatalf("%d attempts stored, want 2", len(as))
		}
		same(t, "attempt 1", as[0], &stale.Attempt)
		same(t, "attempt 2", as[1], &current.Attempt)
	})
	s.run(t, "TestStatus", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		okT, _, okD := f.webhookTest(o, v, base)
		failT, _, failD := f.webhookTest(o, v, base)
		retryT, _, retryD := f.webhookTest(o, v, base)
		if ds := f.claim("w1", 10, base); len(ds) != 3 {
			t.Fatalf("claimed %d test deliveries, want 3", len(ds))
		}
		f.record(at(time.Second), outcome(okD.ID, "w1", ubihooks.DeliverySucceeded, 1, base),
			outcome(failD.ID, "w1", ubihooks.DeliveryFailed, 1, base), outcome(retryD.ID, "w1", ubihooks.DeliveryPending, 1, base))
		for _, c := range []struct {
			wt     *ubihooks.WebhookTest
			status ubihooks.TestStatus
			msg    string
			upd    time.Time
		}{
			{okT, ubihooks.TestCompleted, "", at(time.Second)},
			{failT, ubihooks.TestFailed, "connection refused", at(time.Second)},
			{retryT, ubihooks.TestPending, "", base},
		} {
			got, err := f.s.GetWebhookTest(f.ctx, f.p.ID, c.wt.ID)
			f.must(err)
			want := *c.wt
			want.Status, want.ErrorMessage, want.UpdatedAt = c.status, c.msg, c.upd
			same(t, "test "+string(c.status), got, &want)
		}
	})
	s.run(t, "WebhookDeletedMeanwhile", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		gone, keep := f.webhook(o, nil, "gone", "completed"), f.webhook(o, nil, "keep", "completed")
		f.emit(base, f.event(o, v, "completed", base))
		ds := f.claim("w1", 10, base)
		if len(ds) != 2 {
			t.Fatalf("claimed %d deliveries, want 2", len(ds))
		}
		f.must(f.s.DeleteWebhook(f.ctx, f.p.ID, gone.Name))
		var outs []ubihooks.Outcome
		for _, d := range ds {
			outs = append(outs, outcome(d.ID, "w1", ubihooks.DeliverySucceeded, 1, base))
		}
		if err := f.s.RecordOutcomes(f.ctx, outs, at(time.Second)); err != nil {
			t.Fatalf("RecordOutcomes with a deleted webhook's delivery: %v", err)
		}
		kept := f.deliveries(keep)
		if len(kept) != 1 {
			t.Fatalf("keep has %d deliveries, want 1", len(kept))
		}
		checkDelivery(t, "delivery of the remaining webhook", kept[0], ubihooks.DeliverySucceeded, 1, "")
		for _, d := range ds {
			if d.WebhookID == gone.ID {
				_, _, err := f.s.GetDelivery(f.ctx, f.p.ID, d.ID)
				wantCode(t, "GetDelivery(of deleted webhook)", err, ubihooks.ENOTFOUND)
			}
		}
	})
}

// reclaimed makes a delivery that w1 claimed at base, whose lease the rescuer ended two
// minutes later, and that w2 then claimed: w1's outcome comes after it lost the lease.
func reclaimed(t *testing.T, f *fx) *ubihooks.Delivery {
	t.Helper()
	o, v := f.deployment("dep")
	f.webhook(o, nil, "hook", "completed")
	f.emit(base, f.event(o, v, "completed", base))
	d := f.claim("w1", 1, base)[0]
	if n, err := f.s.RescueDeliveries(f.ctx, at(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("RescueDeliveries = %d, %v; want 1", n, err)
	}
	if ds := f.claim("w2", 1, at(2*time.Minute)); len(ds) != 1 || ds[0].ID != d.ID {
		t.Fatalf("w2 could not claim the rescued delivery")
	}
	return d
}

func testLeases(t *testing.T, s suite) {
	s.run(t, "Release", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		f.emit(base, f.event(o, v, "completed", base), f.event(o, v, "completed", base), f.event(o, v, "completed", base))
		ds := f.claim("w1", 3, base)
		if len(ds) != 3 {
			t.Fatalf("claimed %d, want 3", len(ds))
		}
		all := ids(ds, deliveryID)
		f.must(f.s.ReleaseDeliveries(f.ctx, "w2", all, at(time.Second)))
		if got := f.claim("w3", 10, at(time.Second)); len(got) != 0 {
			t.Errorf("another owner's release freed %d deliveries", len(got))
		}
		f.must(f.s.ReleaseDeliveries(f.ctx, "w1", all[:2], at(time.Second)))
		f.must(f.s.ReleaseDeliveries(f.ctx, "w1", nil, at(time.Second)))
		for _, id := range all[:2] {
			got, as := f.delivery(id)
			checkDelivery(t, "released delivery", got, ubihooks.DeliveryPending, 0, "")
			if len(as) != 0 {
				t.Errorf("released delivery has %d attempts, want 0", len(as))
			}
		}
		got := f.claim("w3", 10, at(time.Second))
		if len(got) != 2 {
			t.Errorf("after release: claimed %d, want the 2 released deliveries", len(got))
		}
		d, _ := f.delivery(all[2])
		checkDelivery(t, "unreleased delivery", d, ubihooks.DeliverySending, 0, "w1")
	})
	s.run(t, "Rescue", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		f.emit(base, f.event(o, v, "completed", base), f.event(o, v, "completed", base))
		a := f.claim("w1", 1, base)               // lease until +60s
		b := f.claim("w2", 1, at(30*time.Second)) // lease until +90s
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("claims returned %d and %d deliveries", len(a), len(b))
		}
		if n, err := f.s.RescueDeliveries(f.ctx, at(59*time.Second)); err != nil || n != 0 {
			t.Errorf("RescueDeliveries before any lease expired = %d, %v; want 0", n, err)
		}
		if n, err := f.s.RescueDeliveries(f.ctx, at(61*time.Second)); err != nil || n != 1 {
			t.Errorf("RescueDeliveries after w1's lease expired = %d, %v; want 1", n, err)
		}
		got, _ := f.delivery(a[0].ID)
		checkDelivery(t, "rescued delivery", got, ubihooks.DeliveryPending, 0, "")
		got, _ = f.delivery(b[0].ID)
		checkDelivery(t, "delivery with a live lease", got, ubihooks.DeliverySending, 0, "w2")
		sameList(t, "claim after rescue", ids(f.claim("w3", 10, at(61*time.Second)), deliveryID), []string{a[0].ID})
	})
	s.run(t, "NextDeliveryDue", func(t *testing.T, f *fx) {
		due := func() time.Time {
			t.Helper()
			d, err := f.s.NextDeliveryDue(f.ctx)
			f.must(err)
			return d
		}
		if d := due(); !d.IsZero() {
			t.Errorf("NextDeliveryDue on an empty store = %v, want zero", d)
		}
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		f.emit(at(5*time.Second), f.event(o, v, "completed", base))
		f.emit(at(2*time.Second), f.event(o, v, "completed", base))
		f.emit(at(9*time.Second), f.event(o, v, "completed", base))
		if d := due(); !d.Equal(at(2 * time.Second)) {
			t.Errorf("NextDeliveryDue = %v, want %v", d, at(2*time.Second))
		}
		f.claim("w", 1, at(2*time.Second))
		if d := due(); !d.Equal(at(5 * time.Second)) {
			t.Errorf("NextDeliveryDue after a claim = %v, want %v (leased deliveries do not count)", d, at(5*time.Second))
		}
		ds := f.claim("w", 10, at(10*time.Second))
		if d := due(); !d.IsZero() {
			t.Errorf("NextDeliveryDue with everything leased = %v, want zero", d)
		}
		f.record(at(10*time.Second), outcome(ds[0].ID, "w", ubihooks.DeliveryPending, 1, at(10*time.Second)))
		if d := due(); !d.Equal(at(40 * time.Second)) {
			t.Errorf("NextDeliveryDue after a retry = %v, want %v", d, at(40*time.Second))
		}
	})
}

func testDeleteExpired(t *testing.T, s suite) {
	s.run(t, "EventGoesWhole", func(t *testing.T, f *fx) {
		// One event, two webhooks: one delivery finished long ago, the other recently.
		// Neither goes until both have expired; then both go, with the event.
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook-a", "completed")
		f.webhook(o, nil, "hook-b", "completed")
		f.emit(base, f.event(o, v, "completed", base))
		ds := f.claim("w", 10, base)
		if len(ds) != 2 {
			t.Fatalf("claimed %d deliveries, want 2", len(ds))
		}
		f.record(at(time.Second), outcome(ds[0].ID, "w", ubihooks.DeliverySucceeded, 1, base))
		f.record(at(3*time.Hour), outcome(ds[1].ID, "w", ubihooks.DeliveryFailed, 1, base))
		exists := func(id string) bool {
			_, _, err := f.s.GetDelivery(f.ctx, f.p.ID, id)
			if err != nil && !ubihooks.IsNotFound(err) {
				t.Fatal(err)
			}
			return err == nil
		}
		n, err := f.s.DeleteExpired(f.ctx, at(2*time.Hour), 100)
		f.must(err)
		if n != 0 || !exists(ds[0].ID) || !exists(ds[1].ID) {
			t.Errorf("cut-off between the two finishes: removed %d rows (old delivery kept: %v, recent: %v), want nothing removed",
				n, exists(ds[0].ID), exists(ds[1].ID))
		}
		n, err = f.s.DeleteExpired(f.ctx, at(4*time.Hour), 100)
		f.must(err)
		if n != 3 || exists(ds[0].ID) || exists(ds[1].ID) {
			t.Errorf("cut-off after both: removed %d rows (old delivery kept: %v, recent: %v), want both deliveries and the event",
				n, exists(ds[0].ID), exists(ds[1].ID))
		}
	})
	s.run(t, "Batches", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		// Finished long ago: three webhook deliveries and a test; finished recently: one.
		for range 3 {
			f.emit(base, f.event(o, v, "completed", base))
		}
		oldTest, _, _ := f.webhookTest(o, v, base)
		recent := f.event(o, v, "completed", base)
		f.emit(base, recent)
		ds := f.claim("w", 10, base)
		if len(ds) != 5 {
			t.Fatalf("claimed %d deliveries, want 5", len(ds))
		}
		var old []string
		var recentID string
		for i, d := range ds {
			if d.EventID == recent.ID {
				recentID = d.ID
				f.record(at(3*time.Hour), outcome(d.ID, "w", ubihooks.DeliverySucceeded, 1, base))
				continue
			}
			status := ubihooks.DeliverySucceeded
			if i%2 == 1 {
				status = ubihooks.DeliveryFailed
			}
			f.record(at(time.Second), outcome(d.ID, "w", status, 1, base))
			old = append(old, d.ID)
		}
		// Never expire: pending work.
		pendingTest, _, pendingTestD := f.webhookTest(o, v, base)
		pendingE := f.event(o, v, "completed", base)
		f.emit(base, pendingE)
		var pendingD string
		for _, d := range f.deliveries(w) {
			if d.EventID == pendingE.ID {
				pendingD = d.ID
			}
		}
		// Requests: three finished long ago, one recently, one pending.
		var oldReqs []string
		for i := range 3 {
			r := f.request(v, base)
			f.transition(r, ubihooks.RequestPending, []ubihooks.RequestStatus{ubihooks.RequestCompleted, ubihooks.RequestFailed, ubihooks.RequestCancelled}[i], at(time.Second))
			oldReqs = append(oldReqs, r.ID)
		}
		recentReq := f.request(v, base)
		f.transition(recentReq, ubihooks.RequestPending, ubihooks.RequestCompleted, at(3*time.Hour))
		pendingReq := f.request(v, base)

		remaining := func(all []string, exists func(string) bool) int {
			n := 0
			for _, id := range all {
				if exists(id) {
					n++
				}
			}
			return n
		}
		deliveryExists := func(id string) bool {
			_, _, err := f.s.GetDelivery(f.ctx, f.p.ID, id)
			if err != nil && !ubihooks.IsNotFound(err) {
				t.Fatal(err)
			}
			return err == nil
		}
		requestExists := func(id string) bool {
			_, err := f.s.GetRequest(f.ctx, f.p.ID, id)
			if err != nil && !ubihooks.IsNotFound(err) {
				t.Fatal(err)
			}
			return err == nil
		}
		before := at(2 * time.Hour)
		n, err := f.s.DeleteExpired(f.ctx, before, 2)
		f.must(err)
		if n < 4 || n > 8 {
			t.Errorf("first DeleteExpired(batch 2) removed %d rows, want 4..8 (2 deliveries, 2 requests, at most 2 events and 1 test)", n)
		}
		if got := remaining(old, deliveryExists); got != 2 {
			t.Errorf("after one batch: %d of 4 old finished deliveries remain, want 2", got)
		}
		if got := remaining(oldReqs, requestExists); got != 1 {
			t.Errorf("after one batch: %d of 3 old finished requests remain, want 1", got)
		}
		for i := 0; ; i++ {
			if i == 10 {
				t.Fatalf("DeleteExpired still removing rows after 10 batches")
			}
			n, err := f.s.DeleteExpired(f.ctx, before, 2)
			f.must(err)
			if n > 8 {
				t.Errorf("DeleteExpired(batch 2) removed %d rows, more than 2 of each of 4 kinds", n)
			}
			if n == 0 {
				break
			}
		}
		if got := remaining(old, deliveryExists); got != 0 {
			t.Errorf("%d old finished deliveries remain", got)
		}
		if got := remaining(oldReqs, requestExists); got != 0 {
			t.Errorf("%d old finished requests remain", got)
		}
		_, err = f.s.GetWebhookTest(f.ctx, f.p.ID, oldTest.ID)
		wantCode(t, "GetWebhookTest(old finished)", err, ubihooks.ENOTFOUND)

		for what, id := range map[string]string{"recent finished": recentID, "pending": pendingD, "pending test": pendingTestD.ID} {
			d, _, err := f.s.GetDelivery(f.ctx, f.p.ID, id)
			if err != nil {
				t.Errorf("%s delivery was removed: %v", what, err)
			} else if d.Event == nil {
				t.Errorf("%s delivery lost its event", what)
			}
		}
		if _, err := f.s.GetWebhookTest(f.ctx, f.p.ID, pendingTest.ID); err != nil {
			t.Errorf("pending test was removed: %v", err)
		}
		for what, id := range map[string]string{"recent finished": recentReq.ID, "pending": pendingReq.ID} {
			if !requestExists(id) {
				t.Errorf("%s request was removed", what)
			}
		}
	})
}

func testDeliveryQueue(t *testing.T, s suite) {
	s.run(t, "Counts", func(t *testing.T, f *fx) {
		check := func(what string, now time.Time, limit int, want ubihooks.DeliveryQueue) {
			t.Helper()
			got, err := f.s.DeliveryQueue(f.ctx, now, limit)
			if err != nil || got.Due != want.Due || got.Unfinished != want.Unfinished || !got.OldestDue.Equal(want.OldestDue) {
				t.Errorf("%s: DeliveryQueue = %+v, %v; want %+v", what, got, err, want)
			}
		}
		check("empty", base, 10, ubihooks.DeliveryQueue{})
		if _, err := f.s.DeliveryQueue(f.ctx, base, 0); ubihooks.ErrorCode(err) != ubihooks.EINVALID {
			t.Errorf("DeliveryQueue with limit 0: %v, want EINVALID", err)
		}
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		var events []*ubihooks.Event
		for range 4 {
			events = append(events, f.event(o, v, "completed", base))
		}
		f.emit(base, events...)
		check("before due", base.Add(-time.Second), 10, ubihooks.DeliveryQueue{Unfinished: 4})
		check("due", at(time.Second), 10, ubihooks.DeliveryQueue{Due: 4, Unfinished: 4, OldestDue: base})
		check("capped", at(time.Second), 3, ubihooks.DeliveryQueue{Due: 3, Unfinished: 3, OldestDue: base})

		ds := f.claim("w1", 2, at(time.Second))
		if len(ds) != 2 {
			t.Fatalf("claimed %d deliveries, want 2", len(ds))
		}
		check("two sending", at(time.Second), 10, ubihooks.DeliveryQueue{Due: 2, Unfinished: 4, OldestDue: base})
		f.record(at(2*time.Second), outcome(ds[0].ID, "w1", ubihooks.DeliverySucceeded, 1, at(time.Second)),
			outcome(ds[1].ID, "w1", ubihooks.DeliveryPending, 1, at(time.Second)))
		check("one succeeded, one retrying", at(2*time.Second), 10, ubihooks.DeliveryQueue{Due: 2, Unfinished: 3, OldestDue: base})
		check("retry due", at(31*time.Second), 10, ubihooks.DeliveryQueue{Due: 3, Unfinished: 3, OldestDue: base})
	})
}
