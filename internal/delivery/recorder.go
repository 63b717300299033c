package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// recordConcurrency is how many record transactions may be on their way at once. One
// waits for the WAL flush of its commit while the next is written (the writer commits them
// in one group when they meet): with one at a time, every send behind MaxUnrecorded would
// wait out each flush.
const recordConcurrency = 3

// maxRecordBatch is how many outcomes a batch takes before it goes without waiting for its
// flush interval. While every record transaction is under way a batch grows on, up to four
// times as many; then the senders are held back.
const maxRecordBatch = 256

// recorder writes the outcomes of attempts in batches: a batch goes when it is full or has
// waited flushInterval for company, and a record slot is free (up to recordConcurrency
// batches are on their way at once). A failing store is retried with a backoff; outcomes
// are never dropped except when aborted (then their leases expire and the deliveries are
// sent again).
type recorder struct {
	recordFunc    func(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error
	recordedFunc  func(batch []ubihooks.Outcome) // after a batch was recorded; up to recordConcurrency calls at once
	flushInterval time.Duration
	now           func() time.Time
	logger        *slog.Logger

	in      chan ubihooks.Outcome // closed when no more outcomes come
	aborted <-chan struct{}       // closed to drop what is not recorded yet
	done    chan struct{}         // closed when run has returned
	signals *recorderTestSignals
}

// recorderTestSignals are the events a recorder reports to tests.
type recorderTestSignals struct {
	// Recorded reports the size of each batch recorded.
	Recorded testsignal.Signal[int]
	// SlotsBusy reports the size of a batch that is due but waits, because every record
	// transaction is under way: when it becomes due, and as it grows while it waits.
	SlotsBusy testsignal.Signal[int]
}

// Init arms every signal.
func (ts *recorderTestSignals) Init() {
	ts.Recorded.Init()
	ts.SlotsBusy.Init()
}

// add hands o to the recorder; it blocks while the recorder holds the senders back, and
// drops o when aborted.
func (r *recorder) add(o ubihooks.Outcome) {
	select {
	case r.in <- o:
	case <-r.aborted:
	}
}

// run records what comes in until in is closed and everything is recorded, or until
// aborted; then it closes done.
func (r *recorder) run() {
	var inFlight sync.WaitGroup
	defer func() {
		inFlight.Wait()
		close(r.done)
	}()
	slots := make(chan struct{}, recordConcurrency)
	var batch []ubihooks.Outcome
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	due := false // the batch's flush interval has passed
	flush := func() {
		b := batch
		batch, due = nil, false
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			r.record(b)
			<-slots
		}()
	}
	waiting := func() { // a due batch waits for a slot
		if due && len(slots) == cap(slots) {
			r.signals.SlotsBusy.Signal(len(batch))
		}
	}
	for {
		if len(batch) == 0 {
			o, ok := <-r.in
			if !ok {
				return
			}
			// Small at first: a batch of a quiet moment holds a few outcomes, and an
			// Outcome is large; a busy one grows as it fills.
			batch = append(make([]ubihooks.Outcome, 0, 16), o)
			timer.Reset(r.flushInterval)
			continue
		}
		// A batch goes when it is full or its interval has passed, and a slot is free;
		// until a slot is free it goes on growing.
		var slot chan struct{}
		if due || len(batch) >= maxRecordBatch {
			slot = slots
		}
		in := r.in
		if len(batch) >= 4*maxRecordBatch {
			in = nil // every slot busy for long: hold the senders back
		}
		select {
		case o, ok := <-in:
			if !ok {
				slots <- struct{}{}
				flush()
				return
			}
			batch = append(batch, o)
			waiting()
		case <-timer.C:
			due = true
			waiting()
		case slot <- struct{}{}:
			timer.Stop()
			flush()
		}
	}
}

// record writes batch, retrying with a growing backoff until it is written or the
// recorder is aborted.
func (r *recorder) record(batch []ubihooks.Outcome) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-r.aborted:
			return
		default:
		}
		err := r.recordFunc(context.Background(), batch, r.now())
		if err == nil {
			r.recordedFunc(batch)
			r.signals.Recorded.Signal(len(batch))
			return
		}
		r.logger.Error("record outcomes; retrying", "count", len(batch), "err", err)
		select {
		case <-r.aborted:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// record writes outcomes to the store.
func (e *Engine) record(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	start := time.Now()
	err := e.cfg.Store.RecordOutcomes(ctx, outcomes, now)
	if obs := e.cfg.Observer; obs != nil && err == nil {
		obs.StoreWrite(StoreRecord, len(outcomes), time.Since(start))
	}
	return err
}

// recorded frees the holds of deliveries whose outcomes were recorded, and wakes the
// engine when one of them is due again.
func (e *Engine) recorded(batch []ubihooks.Outcome) {
	e.done(len(batch))
	if e.cfg.OnRecordFunc != nil {
		e.cfg.OnRecordFunc(append([]ubihooks.Outcome(nil), batch...))
	}
	for _, o := range batch {
		if o.Status == ubihooks.DeliveryPending {
			e.Notify()
			break
		}
	}
	if obs := e.cfg.Observer; obs != nil {
		observe(obs, batch)
	}
}

// observe reports a recorded batch to obs.
func observe(obs Observer, batch []ubihooks.Outcome) {
	for _, o := range batch {
		obs.Attempt(o.Attempt.ErrorClass, o.Attempt.Duration)
		switch {
		case o.Status == ubihooks.DeliverySucceeded:
			obs.DeliveryFinished(OutcomeSucceeded)
		case o.Status != ubihooks.DeliveryFailed:
		case o.Attempt.ErrorClass == ubihooks.ClassRefusedByPolicy:
			obs.DeliveryFinished(OutcomeRefusedByPolicy)
		default:
			obs.DeliveryFinished(OutcomeFailed)
		}
	}
}
