package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// TestConcurrentEmitsShareOneEmission: EmitEvents calls made while an emission runs are
// emitted together, in one transaction; when one of them fails in its statements, every
// call runs again alone, so that the failing call gets its own error and the others their
// own deliveries, once each.
func TestConcurrentEmitsShareOneEmission(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, p, o, v, w := newHookedStore(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The database refuses one project name: a call with it fails in its statements.
	_, err := st.DB().ExecContext(ctx, `CREATE TRIGGER reject_event BEFORE INSERT ON events WHEN NEW.project_name = 'reject'
		BEGIN SELECT RAISE(ABORT, 'event rejected'); END`)
	must(err)
	event := func(i int, project string) *ubihooks.Event {
		return &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: p.ID, ProjectName: project, Type: ubihooks.EventDeploymentCompleted,
			ObjectType: ubihooks.ObjectDeployment, ObjectID: o.ID, ObjectName: "d", VersionID: v.ID, VersionName: "v1",
			RequestID: fmt.Sprint("r", i), Status: "completed", CreatedAt: now}
	}
	type result struct {
		n   int
		err error
	}
	emit := func(e *ubihooks.Event, at time.Time) chan result {
		c := make(chan result, 1)
		go func() {
			n, err := st.EmitEvents(ctx, []*ubihooks.Event{e}, at)
			c <- result{n, err}
		}()
		return c
	}

	// The first call's emission waits for the held writer; the next ones queue behind it.
	sig := sqlstore.WriterSignals(st)
	release := sqlstore.LockWriter(st)
	first := emit(event(0, "p"), now)
	waitQueued(t, sig, 1)
	const calls = 20
	const bad = 7
	var results []chan result
	var events []*ubihooks.Event
	for i := 1; i <= calls; i++ {
		name := "p"
		if i == bad {
			name = "reject"
		}
		e := event(i, name)
		events = append(events, e)
		results = append(results, emit(e, now.Add(time.Duration(i)*time.Second)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for sqlstore.EmitsQueued(st) < calls {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", sqlstore.EmitsQueued(st), calls)
		}
		time.Sleep(time.Millisecond)
	}
	release()

	if r := <-first; r.err != nil || r.n != 1 {
		t.Errorf("first call = %d, %v; want 1 delivery", r.n, r.err)
	}
	for i, c := range results {
		r := <-c
		if i+1 == bad {
			if r.err == nil || !strings.Contains(r.err.Error(), "event rejected") {
				t.Errorf("rejected call = %d, %v; want its own error", r.n, r.err)
			}
			continue
		}
		if r.err != nil || r.n != 1 {
			t.Errorf("call %d = %d, %v; want 1 delivery", i+1, r.n, r.err)
		}
	}
	if got := sqlstore.CoalescedEmissions(st); got != 1 {
		t.Errorf("%d emissions carried several calls, want 1 (the %d queued calls)", got, calls)
	}
	ds, err := st.ListDeliveries(ctx, ubihooks.DeliveryFilter{ProjectID: p.ID, WebhookID: w.ID, Limit: 100})
	must(err)
	byEvent := map[string]*ubihooks.Delivery{}
	for _, d := range ds {
		if byEvent[d.EventID] != nil {
			t.Errorf("event %s has two deliveries", d.EventID)
		}
		byEvent[d.EventID] = d
	}
	if len(ds) != calls {
		t.Errorf("%d deliveries, want %d (the first call's and the 19 good ones')", len(ds), calls)
	}
	for i, e := range events {
		d := byEvent[e.ID]
		switch {
		case i+1 == bad && d != nil:
			t.Errorf("the rejected event has a delivery")
		case i+1 != bad && d == nil:
			t.Errorf("event of call %d has no delivery", i+1)
		case d != nil && !d.CreatedAt.Equal(now.Add(time.Duration(i+1)*time.Second)):
			// Each call's deliveries carry its own time, not the emission's.
			t.Errorf("delivery of call %d created at %v, want %v", i+1, d.CreatedAt, now.Add(time.Duration(i+1)*time.Second))
		}
	}
}
