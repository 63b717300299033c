package sqlstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
	waitEmitsQueued(t, st, calls, 5*time.Second)
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

// TestEmitLinger: after an emission that carried several calls (emitters queue faster than
// emissions run), the next emission waits EmitLinger for more calls to join it, and takes
// them together; calls keep their own results.
func TestEmitLinger(t *testing.T) {
	t.Parallel()
	st, p, o, v, _ := newHookedStore(t)
	const linger = time.Second
	sqlstore.SetEmitLinger(st, linger)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	emit := emitter(st, p, o, v, now)
	// Load: a call's emission waits for the held writer while two more queue; those two
	// are emitted together once it is released.
	sig := sqlstore.WriterSignals(st)
	release := holdWriter(t, st)
	first := []chan error{emit(0)}
	waitQueued(t, sig, 1)
	first = append(first, emit(1), emit(2))
	waitEmitsQueued(t, st, 2, linger/2)
	release()
	answered(t, first, 0)
	if got := sqlstore.CoalescedEmissions(st); got != 1 {
		t.Fatalf("%d emissions carried several calls, want 1", got)
	}
	// Calls made now find the emission lingering: they queue, and go together.
	began := time.Now()
	var next []chan error
	for i := 3; i < 6; i++ {
		next = append(next, emit(i))
	}
	waitEmitsQueued(t, st, 3, linger/2)
	answered(t, next, 3)
	if got := sqlstore.CoalescedEmissions(st); got != 2 {
		t.Errorf("%d emissions carried several calls, want 2 (the three calls made during the linger, together)", got)
	}
	t.Logf("the calls made during the linger were answered after %v", time.Since(began).Round(time.Millisecond))
}

// TestEmitLeaders: with EmitLeaders 2, a call made while an emission runs starts a second
// one (both wait for the held writer), and the calls made while both run queue for the
// next one, which takes them together.
func TestEmitLeaders(t *testing.T) {
	t.Parallel()
	st, p, o, v, _ := newHookedStore(t)
	sqlstore.SetEmitLeaders(st, 2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	emit := emitter(st, p, o, v, now)
	sig := sqlstore.WriterSignals(st)
	release := holdWriter(t, st)
	// One at a time: two calls made together could both be in the queue when the first
	// leader takes it, and be one emission.
	calls := []chan error{emit(0)}
	waitQueued(t, sig, 1)
	calls = append(calls, emit(1))
	waitQueued(t, sig, 2) // the second emission waits for the writer too, not behind the first
	if got := sqlstore.EmitsQueued(st); got != 0 {
		t.Errorf("%d calls queued with one leader free, want 0", got)
	}
	for i := 2; i < 5; i++ {
		calls = append(calls, emit(i))
	}
	waitEmitsQueued(t, st, 3, 5*time.Second) // both leaders are busy
	release()
	answered(t, calls, 0)
	if got := sqlstore.CoalescedEmissions(st); got != 1 {
		t.Errorf("%d emissions carried several calls, want 1 (the three queued calls, together)", got)
	}
}

// TestEmitBatch: an emission's wait for company (EmitLinger) ends as soon as the queued
// calls carry EmitBatch events; they are emitted together, long before the wait would end.
func TestEmitBatch(t *testing.T) {
	t.Parallel()
	st, p, o, v, _ := newHookedStore(t)
	const linger = 5 * time.Second
	sqlstore.SetEmitLinger(st, linger)
	sqlstore.SetEmitBatch(st, 3)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	emit := emitter(st, p, o, v, now)
	// Load, as in TestEmitLinger: an emission of two calls, after which the leader waits.
	sig := sqlstore.WriterSignals(st)
	release := holdWriter(t, st)
	first := []chan error{emit(0)}
	waitQueued(t, sig, 1)
	first = append(first, emit(1), emit(2))
	waitEmitsQueued(t, st, 2, 5*time.Second)
	release()
	answered(t, first, 0)
	// Three calls (three events, the batch) end the wait: they go at once, together.
	began := time.Now()
	var next []chan error
	for i := 3; i < 6; i++ {
		next = append(next, emit(i))
	}
	for i, c := range next {
		select {
		case err := <-c:
			if err != nil {
				t.Fatalf("call %d: %v", i+3, err)
			}
		case <-time.After(linger / 2):
			t.Fatalf("call %d not answered within %v of a %v wait: the batch did not end it", i+3, linger/2, linger)
		}
	}
	if got := sqlstore.CoalescedEmissions(st); got != 2 {
		t.Errorf("%d emissions carried several calls, want 2 (the three calls of the batch, together)", got)
	}
	t.Logf("the batch's calls were answered after %v", time.Since(began).Round(time.Millisecond))
}

// emitter returns a function that emits one event of o/v (request "r<i>") at now in a
// goroutine of its own, and reports its error (or a count of deliveries other than 1).
func emitter(st *sqlstore.Store, p *ubihooks.Project, o *ubihooks.Object, v *ubihooks.Version, now time.Time) func(i int) chan error {
	return func(i int) chan error {
		c := make(chan error, 1)
		go func() {
			e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: p.ID, ProjectName: "p", Type: ubihooks.EventDeploymentCompleted,
				ObjectType: ubihooks.ObjectDeployment, ObjectID: o.ID, ObjectName: "d", VersionID: v.ID, VersionName: "v1",
				RequestID: fmt.Sprint("r", i), Status: "completed", CreatedAt: now}
			n, err := st.EmitEvents(context.Background(), []*ubihooks.Event{e}, now)
			if err == nil && n != 1 {
				err = fmt.Errorf("%d deliveries, want 1", n)
			}
			c <- err
		}()
		return c
	}
}

// waitEmitsQueued waits up to within for n EmitEvents calls to queue for an emission.
func waitEmitsQueued(t *testing.T, st *sqlstore.Store, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for sqlstore.EmitsQueued(st) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", sqlstore.EmitsQueued(st), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdWriter holds the store's writer until the returned release is called, or the test
// ends: a failed wait must not leave the writer held for the store's Close.
func holdWriter(t *testing.T, st *sqlstore.Store) (release func()) {
	var once sync.Once
	unlock := sqlstore.LockWriter(st)
	release = func() { once.Do(unlock) }
	t.Cleanup(release)
	return release
}

// answered waits for every call's answer; calls are numbered from first in messages.
func answered(t *testing.T, calls []chan error, first int) {
	t.Helper()
	for i, c := range calls {
		if err := <-c; err != nil {
			t.Fatalf("call %d: %v", first+i, err)
		}
	}
}
