package delivery

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestLeaseEndingBeforeAttemptHandedBack: deliveries that waited for a slow host so long
// that their leases would end during their attempt are handed back and claimed again with
// a fresh lease, not sent: sent, the rescuer would give them to a claim while in flight
// and the receiver would get them twice.
func TestLeaseEndingBeforeAttemptHandedBack(t *testing.T) {
	t.Parallel()
	const n = 12
	e := setup(t)
	rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(800 * time.Millisecond):
		case <-r.Context().Done():
		}
	})
	w := e.hook(rc.URL+"/", retry(true), timeoutSecs(2))
	for range n {
		e.complete()
	}
	// Two sends at a time and six more waiting: the fourth round would begin 2.4 s after
	// the claim and end after the 3 s lease, which the rescuer returns every 100 ms.
	e.start(func(c *Config) {
		c.MaxInFlight, c.MaxPerHost, c.Prefetch, c.BatchSize = 2, 2, 6, 8
		c.Lease, c.RescueInterval = 3*time.Second, 100*time.Millisecond
	})
	e.Until(60*time.Second, "every delivery to succeed", func() bool {
		for _, d := range e.deliveries(w) {
			if d.Status != ubihooks.DeliverySucceeded {
				return false
			}
		}
		return true
	})
	byID := rc.ByID()
	if len(byID) != n {
		t.Errorf("%d events arrived, want %d", len(byID), n)
	}
	for id, c := range byID {
		if c != 1 {
			t.Errorf("event %s arrived %d times, want once", id, c)
		}
	}
	for _, d := range e.deliveries(w) {
		if d.Attempts != 1 {
			t.Errorf("delivery %s: %d attempts, want 1", d.ID, d.Attempts)
		}
	}
	if !strings.Contains(e.logs.String(), "handed back deliveries whose leases would end during their attempt") {
		t.Error("no delivery was handed back: the test did not make any wait past its lease's margin")
	}
}
