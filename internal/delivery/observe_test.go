package delivery

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// fakeObserver remembers what it was told.
type fakeObserver struct {
	mu       sync.Mutex
	attempts []string // error classes
	total    time.Duration
	finished []string
	writes   []string       // ops, in order
	written  map[string]int // op → deliveries or outcomes
}

func (f *fakeObserver) Attempt(class string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, class)
	f.total += d
}

func (f *fakeObserver) DeliveryFinished(outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, outcome)
}

func (f *fakeObserver) StoreWrite(op string, n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, op)
	if f.written == nil {
		f.written = map[string]int{}
	}
	f.written[op] += n
}

func TestObserveMetrics(t *testing.T) {
	t.Parallel()
	attempt := func(class string) ubihooks.Attempt {
		return ubihooks.Attempt{ErrorClass: class, Duration: 10 * time.Millisecond}
	}
	batch := []ubihooks.Outcome{
		{Status: ubihooks.DeliverySucceeded, Attempt: attempt("")},
		{Status: ubihooks.DeliveryPending, Attempt: attempt(ubihooks.ClassHTTPStatus)},
		{Status: ubihooks.DeliveryFailed, Attempt: attempt(ubihooks.ClassHTTPStatus)},
		{Status: ubihooks.DeliveryFailed, Attempt: attempt(ubihooks.ClassRefusedByPolicy)},
		{Status: ubihooks.DeliveryFailed, Attempt: attempt(ubihooks.ClassTimeout)},
	}
	var obs fakeObserver
	observe(&obs, batch)
	if want := []string{"", "http_status", "http_status", "refused_by_policy", "timeout"}; !slices.Equal(obs.attempts, want) {
		t.Errorf("attempts: got %q, want %q", obs.attempts, want)
	}
	if obs.total != 50*time.Millisecond {
		t.Errorf("attempt durations: got %v, want 50ms", obs.total)
	}
	if want := []string{OutcomeSucceeded, OutcomeFailed, OutcomeRefusedByPolicy, OutcomeFailed}; !slices.Equal(obs.finished, want) {
		t.Errorf("finished: got %q, want %q", obs.finished, want)
	}
}

// TestMetricsObserver: an engine reports each recorded attempt and each finished delivery
// to its observer, and Stats is readable while it runs.
func TestMetricsObserver(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)
	w := e.hook(rc.URL + "/ok")
	var obs fakeObserver
	eng := e.start(func(c *Config) { c.Observer = &obs })
	e.complete()
	// The observer is told after the store recorded the batch, before Recorded is signaled.
	eng.TestSignals.Recorder.Recorded.Wait(t, 10*time.Second)
	e.waitDone(w, 1, time.Second)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if !slices.Equal(obs.attempts, []string{""}) || !slices.Equal(obs.finished, []string{OutcomeSucceeded}) {
		t.Errorf("observer: attempts %q, finished %q; want [\"\"], [succeeded]", obs.attempts, obs.finished)
	}
	// The outcome's write is reported (claims are, too, when the delivery came by one).
	if obs.written[StoreRecord] != 1 || !slices.Contains(obs.writes, StoreRecord) {
		t.Errorf("observer: store writes %q (%v), want the record of one outcome", obs.writes, obs.written)
	}
	for _, op := range obs.writes {
		if op != StoreRecord && op != StoreClaim {
			t.Errorf("observer: unknown store write %q", op)
		}
	}
	if s := eng.Stats(); s.Sending < 0 || s.Waiting < 0 || s.Stuck != 0 {
		t.Errorf("Stats = %+v", s)
	}
}
