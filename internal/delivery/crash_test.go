package delivery

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// stallingRecorder records until stall is closed. From then on each RecordOutcomes waits
// for the crash and then fails without writing, as a disk that stopped answering before
// the process died. A stalled call is a change for the env's waits.
type stallingRecorder struct {
	ubihooks.Store
	stall, crashed chan struct{}
	change         func()
	stalled        atomic.Int64 // calls waiting for the crash
}

func (s *stallingRecorder) RecordOutcomes(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	select {
	case <-s.stall:
	default:
		return s.Store.RecordOutcomes(ctx, outcomes, now)
	}
	s.stalled.Add(1)
	s.change()
	<-s.crashed
	return errors.New("the process is gone")
}

// TestCrash emits N events, crashes the engine (Abort) mid-flight, and starts a new engine
// on the reopened database whose rescuer returns the expired leases. Every accepted
// delivery arrives at least once; duplicates come only from deliveries that were in flight
// at the crash (at most MaxInFlight + MaxUnrecorded of the crashed engine: the deliveries it
// had claimed ahead, up to Prefetch, were never sent), each with the event id of its first
// arrival.
func TestCrash(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		handlerTime time.Duration // how long the receiver takes per request
		stall       bool          // the crashed engine's records stall before the crash
	}{
		{name: "slow receiver", handlerTime: 50 * time.Millisecond},
		{name: "stalled recorder", handlerTime: 2 * time.Millisecond, stall: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testCrash(t, tt.handlerTime, tt.stall)
		})
	}
}

func testCrash(t *testing.T, handlerTime time.Duration, stall bool) {
	const (
		n           = 300
		maxInFlight = 16
		lease       = 2 * time.Second
	)
	e := setup(t)
	rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(handlerTime):
		case <-r.Context().Done(): // the crashed engine hung up
		}
	})
	w := e.hook(rc.URL+"/", retry(true), timeoutSecs(1))
	want := map[string]string{} // request id → event id
	for range n {
		id := e.complete()
		want[id] = ubihooks.EventID(id, ubihooks.EventDeploymentCompleted)
	}

	recorder := &stallingRecorder{stall: make(chan struct{}), crashed: make(chan struct{}), change: e.Changed.Signal}
	first := e.start(func(c *Config) {
		c.MaxInFlight, c.MaxUnrecorded, c.MaxPerHost, c.BatchSize, c.Lease = maxInFlight, maxInFlight, maxInFlight, 8, lease
		c.Prefetch = maxInFlight
		recorder.Store = c.Store
		c.Store = recorder
	})
	e.Until(30*time.Second, "a third of the deliveries", func() bool { return rc.Count() >= n/3 })
	if stall {
		// The records stop (the sends go on until the outcomes waiting for them reach
		// their bound): the crash leaves sent deliveries unrecorded.
		close(recorder.stall)
		e.Until(10*time.Second, "a record call to stall", func() bool { return recorder.stalled.Load() > 0 })
	}
	close(recorder.crashed)
	first.Abort()
	atAbort := rc.Count()
	if atAbort >= n {
		t.Fatalf("all %d deliveries arrived before the crash; the test needs some left", atAbort)
	}

	// What the crashed engine left leased: the deliveries in flight at the crash.
	inFlight := map[string]bool{}
	rows, err := e.Store.DB().Query(`SELECT event_id FROM deliveries WHERE status = ?`, string(ubihooks.DeliverySending))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		inFlight[id] = true
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(inFlight) > 3*maxInFlight {
		t.Errorf("the crashed engine held %d unrecorded leases, more than MaxInFlight + MaxUnrecorded + Prefetch = %d", len(inFlight), 3*maxInFlight)
	}

	// A new process: the database reopened, a new engine whose rescuer hands the expired
	// leases back.
	e.Reopen()
	e.start(func(c *Config) { c.Lease, c.RescueInterval = lease, 100*time.Millisecond })
	e.Until(30*time.Second, "every delivery to succeed", func() bool {
		var done int
		if err := e.Store.DB().QueryRow(`SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? AND status = ?`, w.ID,
			string(ubihooks.DeliverySucceeded)).Scan(&done); err != nil {
			t.Fatal(err)
		}
		return done == n
	})

	all := rc.Arrivals()
	firstID := map[string]string{} // request id → event id of its first arrival
	perEvent := map[string]int{}
	for _, a := range all {
		reqID, _ := a.Payload["request_id"].(string)
		id := a.ID()
		if want[reqID] != id {
			t.Errorf("arrival for request %s has event id %q, want %s", reqID, id, want[reqID])
		}
		if f, ok := firstID[reqID]; ok && f != id {
			t.Errorf("duplicate for request %s has event id %s, its first arrival %s", reqID, id, f)
		}
		firstID[reqID] = id
		if got := a.Header.Get("Idempotency-Key"); got != id {
			t.Errorf("arrival for %s: Idempotency-Key %q, want %s", reqID, got, id)
		}
		perEvent[id]++
	}
	if len(perEvent) != n {
		t.Errorf("%d distinct event ids arrived, want %d", len(perEvent), n)
	}
	// An event may arrive again after an attempt that failed (the receiver, slowed by a
	// loaded machine, answered after the timeout) and was retried: that is no duplicate of
	// the crash. Beyond those, only the deliveries in flight at the crash may arrive twice.
	failed := map[string]int{} // event id → failed attempts recorded
	rows, err = e.Store.DB().Query(`SELECT x.event_id, COUNT(*) FROM (
			SELECT d.event_id FROM deliveries d JOIN attempts a ON a.delivery_id = d.id WHERE d.webhook_id = ? AND a.error_class <> ''
			UNION ALL
			SELECT d.event_id FROM deliveries d WHERE d.webhook_id = ? AND d.first_error_class <> ''
		) x GROUP BY x.event_id`, w.ID, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		failed[id] = n
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	dups, retried := 0, 0
	for id, c := range perEvent {
		extra := c - 1 - failed[id]
		retried += failed[id]
		if extra <= 0 {
			continue
		}
		dups += extra
		if !inFlight[id] || extra > 1 {
			t.Errorf("event %s arrived %d times after %d failed attempts; in flight at the crash: %v", id, c, failed[id], inFlight[id])
		}
	}
	if dups > 2*maxInFlight {
		t.Errorf("%d duplicates, want at most MaxInFlight + MaxUnrecorded = %d", dups, 2*maxInFlight)
	}
	t.Logf("%d arrivals before the crash, %d leases in flight at the crash, %d duplicates, %d failed attempts retried, %d arrivals in all",
		atAbort, len(inFlight), dups, retried, len(all))
}
