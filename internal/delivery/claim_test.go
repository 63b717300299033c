package delivery

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// countingClaimStore counts the claims that reach the store.
type countingClaimStore struct {
	ubihooks.Store
	claims atomic.Int64
}

func (s *countingClaimStore) ClaimDeliveries(ctx context.Context, c ubihooks.DeliveryClaim) ([]*ubihooks.Delivery, error) {
	s.claims.Add(1)
	return s.Store.ClaimDeliveries(ctx, c)
}

// TestEmptyClaimGap: after a claim that found nothing, slots freed in a stream (as sends
// end under load) start a claim no more than once per emptyClaimGap — not one per slot
// freed — and still do start one, so that what became pending meanwhile is not left for
// the next poll.
func TestEmptyClaimGap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	st := &countingClaimStore{Store: e.Store}
	eng := e.start(func(c *Config) {
		c.Store = st
		c.PollInterval = time.Hour // no poll during the test: only freed slots claim
	})
	deadline := time.Now().Add(10 * time.Second)
	for st.claims.Load() == 0 { // the first claim, at start, finds nothing
		if time.Now().After(deadline) {
			t.Fatal("the engine made no claim at start")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond) // let it settle into its wait
	before := st.claims.Load()
	start := time.Now()
	signals := 0
	for time.Since(start) < 300*time.Millisecond {
		eng.signalFreed()
		signals++
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	time.Sleep(5 * time.Millisecond) // a claim started at the end is counted
	got := st.claims.Load() - before
	most := int64(elapsed/emptyClaimGap) + 2
	t.Logf("%d freed-slot signals in %v: %d claims (at most %d allowed)", signals, elapsed.Round(time.Millisecond), got, most)
	if got > most {
		t.Errorf("%d claims in %v of freed slots after empty claims; want at most %d (one per %v)", got, elapsed, most, emptyClaimGap)
	}
	if got < 3 {
		t.Errorf("%d claims in %v of freed slots; want freed slots to keep claiming every %v", got, elapsed, emptyClaimGap)
	}
}
