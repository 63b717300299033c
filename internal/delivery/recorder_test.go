package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
)

// recordCall is one call of a scripted store's RecordOutcomes: the test answers it.
type recordCall struct {
	batch  []ubihooks.Outcome
	answer chan error
}

// scriptedRecorder is a recorder whose record calls go to calls (or succeed at once when
// calls is nil), with its signals armed.
type scriptedRecorder struct {
	*recorder
	calls    chan recordCall
	recorded chan []ubihooks.Outcome // what recordedFunc got
	abort    chan struct{}
}

func newScriptedRecorder(t *testing.T, flush time.Duration, scripted bool) *scriptedRecorder {
	t.Helper()
	s := &scriptedRecorder{recorded: make(chan []ubihooks.Outcome, 10000), abort: make(chan struct{})}
	if scripted {
		s.calls = make(chan recordCall)
	}
	s.recorder = &recorder{
		recordFunc: func(_ context.Context, batch []ubihooks.Outcome, _ time.Time) error {
			if s.calls == nil {
				return nil
			}
			c := recordCall{batch, make(chan error)}
			s.calls <- c
			return <-c.answer
		},
		recordedFunc:  func(batch []ubihooks.Outcome) { s.recorded <- batch },
		flushInterval: flush, now: time.Now, logger: slog.New(slog.DiscardHandler),
		in: make(chan ubihooks.Outcome, 64), aborted: s.abort, done: make(chan struct{}), signals: &recorderTestSignals{},
	}
	s.signals.Init()
	go s.run()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			t.Error("the recorder still runs at the end of the test")
		}
	})
	return s
}

func (s *scriptedRecorder) call(t *testing.T) recordCall {
	t.Helper()
	select {
	case c := <-s.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no record call within 5s")
		return recordCall{}
	}
}

func (s *scriptedRecorder) close(t *testing.T) {
	t.Helper()
	close(s.in)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the recorder did not finish within 5s of its input's end")
	}
}

func outcome(i int) ubihooks.Outcome { return ubihooks.Outcome{DeliveryID: fmt.Sprintf("d%d", i)} }

func ids(batch []ubihooks.Outcome) string {
	s := ""
	for _, o := range batch {
		s += o.DeliveryID + " "
	}
	return s
}

// TestRecorderRecordsEachOnce: under a stream of outcomes every one is recorded exactly
// once, in batches no larger than the hold-back bound.
func TestRecorderRecordsEachOnce(t *testing.T) {
	t.Parallel()
	r := newScriptedRecorder(t, time.Millisecond, false)
	const n = 3000
	for i := range n {
		r.add(outcome(i))
	}
	r.close(t)
	close(r.recorded)
	seen := map[string]int{}
	for batch := range r.recorded {
		if len(batch) == 0 || len(batch) > 4*maxRecordBatch {
			t.Errorf("a batch of %d outcomes, want 1 to %d", len(batch), 4*maxRecordBatch)
		}
		for _, o := range batch {
			seen[o.DeliveryID]++
		}
	}
	for i := range n {
		if id := outcome(i).DeliveryID; seen[id] != 1 {
			t.Errorf("%s recorded %d times, want once", id, seen[id])
		}
	}
}

// TestRecorderSlots: up to recordConcurrency batches are on their way at once; a due
// batch then waits, growing, until a slot frees, and goes at once.
func TestRecorderSlots(t *testing.T) {
	t.Parallel()
	r := newScriptedRecorder(t, time.Millisecond, true)
	var calls []recordCall
	for i := range recordConcurrency {
		r.add(outcome(i))
		c := r.call(t)
		if got, want := ids(c.batch), ids([]ubihooks.Outcome{outcome(i)}); got != want {
			t.Fatalf("call %d records %s, want %s", i+1, got, want)
		}
		calls = append(calls, c)
	}
	r.add(outcome(10))
	r.add(outcome(11))
	r.signals.SlotsBusy.WaitFor(t, 5*time.Second, func(n int) bool { return n == 2 })
	select {
	case c := <-r.calls:
		t.Fatalf("a record call beyond the %d slots began with %s", recordConcurrency, ids(c.batch))
	default:
	}
	calls[0].answer <- nil
	c := r.call(t)
	if got, want := ids(c.batch), "d10 d11 "; got != want {
		t.Errorf("the held batch goes as %s, want %s", got, want)
	}
	for _, c := range append(calls[1:], c) {
		c.answer <- nil
	}
	r.close(t)
	if got := len(r.recorded); got != recordConcurrency+1 {
		t.Errorf("%d batches reported recorded, want %d", got, recordConcurrency+1)
	}
}

// TestRecorderFullBatch: a full batch goes without waiting for its flush interval; what
// is left when the input ends goes at once.
func TestRecorderFullBatch(t *testing.T) {
	t.Parallel()
	r := newScriptedRecorder(t, time.Hour, true)
	for i := range maxRecordBatch + 3 {
		r.add(outcome(i))
		if i == maxRecordBatch-1 {
			c := r.call(t)
			if len(c.batch) != maxRecordBatch {
				t.Errorf("the full batch has %d outcomes, want %d", len(c.batch), maxRecordBatch)
			}
			c.answer <- nil
		}
	}
	close(r.in)
	c := r.call(t)
	if got, want := ids(c.batch), ids([]ubihooks.Outcome{outcome(256), outcome(257), outcome(258)}); got != want {
		t.Errorf("the last batch records %s, want %s", got, want)
	}
	c.answer <- nil
	<-r.done
	if n := r.signals.Recorded.Wait(t, time.Second) + r.signals.Recorded.Wait(t, time.Second); n != maxRecordBatch+3 {
		t.Errorf("signals report %d outcomes recorded, want %d", n, maxRecordBatch+3)
	}
}

// TestRecorderRetries: a failing store is retried with the same batch until it succeeds,
// and the batch is reported recorded once.
func TestRecorderRetries(t *testing.T) {
	t.Parallel()
	r := newScriptedRecorder(t, time.Millisecond, true)
	r.add(outcome(1))
	for _, err := range []error{errors.New("busy"), errors.New("busy"), nil} {
		c := r.call(t)
		if got := ids(c.batch); got != "d1 " {
			t.Fatalf("call records %s, want d1", got)
		}
		c.answer <- err
	}
	r.close(t)
	if got := len(r.recorded); got != 1 {
		t.Errorf("%d batches reported recorded, want 1", got)
	}
}

// TestRecorderAbort: once aborted, a failed batch is not retried, nothing more is
// recorded, and adding does not block.
func TestRecorderAbort(t *testing.T) {
	t.Parallel()
	r := newScriptedRecorder(t, time.Millisecond, true)
	r.add(outcome(1))
	c := r.call(t)
	close(r.abort)
	c.answer <- errors.New("the process is gone")
	for i := range cap(r.in) + 10 { // more than fit: add must not block
		r.add(outcome(100 + i))
	}
	r.close(t)
	select {
	case c := <-r.calls:
		t.Errorf("a record call after the abort, with %s", ids(c.batch))
	default:
	}
	if got := len(r.recorded); got != 0 {
		t.Errorf("%d batches reported recorded after the abort, want 0", got)
	}
}

// gatedRecorder holds every RecordOutcomes call until open is closed, and counts how many
// are under way at once and the outcomes they hold. A call's start is a change for the
// env's waits.
type gatedRecorder struct {
	ubihooks.Store
	open              chan struct{}
	change            func()
	active, maxAtOnce atomic.Int64
	outcomes          atomic.Int64
}

func (s *gatedRecorder) RecordOutcomes(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	n := s.active.Add(1)
	for {
		m := s.maxAtOnce.Load()
		if n <= m || s.maxAtOnce.CompareAndSwap(m, n) {
			break
		}
	}
	s.outcomes.Add(int64(len(outcomes)))
	s.change()
	<-s.open
	defer s.active.Add(-1)
	return s.Store.RecordOutcomes(ctx, outcomes, now)
}

// TestRecordsOverlap: while one batch of outcomes waits for the database (the writer busy,
// or its commit on its way to disk), the next batches are recorded beside it — up to
// recordConcurrency at once — instead of after it; sends go on meanwhile.
func TestRecordsOverlap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.receiver(nil)
	h := e.hook(r.URL + "/")
	gate := &gatedRecorder{open: make(chan struct{}), change: e.Changed.Signal}
	eng := e.start(func(c *Config) {
		gate.Store = c.Store
		c.Store = gate
		c.FlushInterval = time.Millisecond
	})
	const n = 40
	for i := range n {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v1", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
		if i%10 == 9 {
			e.Until(5*time.Second, "the receiver to get the deliveries so far", func() bool { return r.Count() == i+1 })
			// Past its flush interval the batch goes, while a record slot is free.
			if calls := int64(i+1) / 10; calls <= recordConcurrency {
				e.Until(5*time.Second, fmt.Sprintf("%d record calls", calls), func() bool { return gate.active.Load() >= calls })
			}
		}
	}
	// Every slot busy: the rest waits in a due batch instead of going in a call of its own.
	eng.TestSignals.Recorder.SlotsBusy.WaitFor(t, 5*time.Second, func(held int) bool { return held+int(gate.outcomes.Load()) == n })
	if got := gate.active.Load(); got != recordConcurrency {
		t.Errorf("%d record calls under way while a due batch waits, want %d", got, recordConcurrency)
	}
	close(gate.open)
	e.waitDone(h, n, 10*time.Second)
	if m := gate.maxAtOnce.Load(); m != recordConcurrency {
		t.Errorf("at most %d record calls were under way at once, want %d", m, recordConcurrency)
	}
}
