package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// fakeDispatcher takes up to places deliveries, and remembers what it was handed.
type fakeDispatcher struct {
	mu         sync.Mutex
	places     int
	taken      int
	returned   []string
	dispatched []*ubihooks.Delivery
}

func (d *fakeDispatcher) Lease() (string, time.Duration) { return "dispatcher", time.Minute }

func (d *fakeDispatcher) Take(string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.taken >= d.places {
		return false
	}
	d.taken++
	return true
}

func (d *fakeDispatcher) Return(hosts []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.taken -= len(hosts)
	d.returned = append(d.returned, hosts...)
}

func (d *fakeDispatcher) Dispatch(ds []*ubihooks.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dispatched = append(d.dispatched, ds...)
}

// testDispatch: with a dispatcher, an emission leases the deliveries it has places for to
// it in the same transaction and hands them over (with their event) after the commit; the
// rest stay pending for claims.
func testDispatch(t *testing.T, s suite) {
	s.run(t, "LeasedAtEmission", func(t *testing.T, f *fx) {
		disp := &fakeDispatcher{places: 2}
		f.s.SetDispatcher(disp)
		o, v := f.deployment("dep")
		var hooks []*ubihooks.Webhook
		for _, name := range []string{"a", "b", "c"} {
			hooks = append(hooks, f.webhook(o, nil, name, "completed", func(w *ubihooks.Webhook) { w.Timeout = 7 * time.Second }))
		}
		e := f.event(o, v, "completed", base)
		if n := f.emit(base, e); n != 3 {
			t.Fatalf("emit: %d deliveries, want 3", n)
		}
		if len(disp.dispatched) != 2 || disp.taken != 2 || len(disp.returned) != 0 {
			t.Fatalf("dispatched %d (taken %d, returned %d), want 2 (2, 0)", len(disp.dispatched), disp.taken, len(disp.returned))
		}
		leased := map[string]bool{}
		for _, d := range disp.dispatched {
			leased[d.ID] = true
			if d.Status != ubihooks.DeliverySending || d.LeaseOwner != "dispatcher" || !d.LeaseExpiresAt.Equal(base.Add(time.Minute)) {
				t.Errorf("dispatched %s: %s, leased to %q until %v; want sending, to dispatcher until %v", d.ID, d.Status, d.LeaseOwner,
					d.LeaseExpiresAt, base.Add(time.Minute))
			}
			if d.Event == nil || d.Event.ID != e.ID || !d.Event.DefaultVersion || d.Timeout != 7*time.Second || d.Host != "hooks.example.com" ||
				d.EventID != e.ID || d.ProjectID != f.p.ID || d.Attempts != 0 {
				t.Errorf("dispatched %s lacks what sending needs: %+v", d.ID, d)
			}
			stored, _ := f.delivery(d.ID)
			if stored.Status != ubihooks.DeliverySending || stored.LeaseOwner != "dispatcher" || stored.URL != d.URL || stored.WebhookID != d.WebhookID {
				t.Errorf("stored %s: %s, leased to %q, url %s; want sending, to dispatcher, %s", d.ID, stored.Status, stored.LeaseOwner, stored.URL, d.URL)
			}
		}
		// The one without a place waits for a claim; the dispatched ones are not claimed.
		claimed := f.claim("engine", 10, base)
		if len(claimed) != 1 || leased[claimed[0].ID] {
			t.Fatalf("claim after dispatch: %d deliveries, want the 1 not dispatched", len(claimed))
		}
		// The dispatcher records outcomes as a claimer would.
		var outs []ubihooks.Outcome
		for _, d := range disp.dispatched {
			outs = append(outs, outcome(d.ID, "dispatcher", ubihooks.DeliverySucceeded, 1, at(time.Second)))
		}
		f.record(at(time.Second), outs...)
		for _, d := range disp.dispatched {
			if got, as := f.delivery(d.ID); got.Status != ubihooks.DeliverySucceeded || len(as) != 1 {
				t.Errorf("dispatched %s after its outcome: %s with %d attempts, want succeeded with 1", d.ID, got.Status, len(as))
			}
		}
		// Emitting the same event again makes nothing and takes no place.
		if n := f.emit(base, e); n != 0 || disp.taken != 2 || len(disp.dispatched) != 2 {
			t.Errorf("emitting again: %d deliveries, %d places taken, %d dispatched; want 0, 2, 2", n, disp.taken, len(disp.dispatched))
		}
		for _, w := range hooks {
			if n := len(f.deliveries(w)); n != 1 {
				t.Errorf("webhook %s has %d deliveries, want 1", w.Name, n)
			}
		}
	})
}

// testSubscribe: a commit that makes work due wakes subscribers, on the channel of that
// work. Wake-ups are hints (on a shared database they include other stores' commits, and
// a listener may start late), so the suite repeats the commit until the wake-up arrives.
func testSubscribe(t *testing.T, s suite) {
	s.run(t, "WakesOnCommit", func(t *testing.T, f *fx) {
		got := make(chan ubihooks.Channel, 100)
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		f.s.Subscribe(ctx, func(c ubihooks.Channel) {
			select {
			case got <- c:
			default:
			}
		})
		o, v := f.deployment("dep")
		f.webhook(o, nil, "hook", "completed")
		wait := func(want ubihooks.Channel, commit func()) {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				commit()
				timer := time.NewTimer(100 * time.Millisecond)
			drain:
				for {
					select {
					case c := <-got:
						if c == want {
							timer.Stop()
							return
						}
					case <-timer.C:
						break drain
					}
				}
			}
			t.Fatalf("no wake-up on %s within 10s of commits that made such work due", want)
		}
		wait(ubihooks.ChannelDeliveries, func() { f.emit(base, f.event(o, v, "completed", base)) })
		wait(ubihooks.ChannelRequests, func() { f.request(v, base) })
	})
}
