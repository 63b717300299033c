package sqlstore

import (
	"context"
	"time"

	"github.com/ubihooks/ubihooks"
)

// SetDispatcher makes d the taker of new deliveries (nil: every delivery waits for a claim).
func (s *Store) SetDispatcher(d ubihooks.Dispatcher) {
	if d == nil {
		s.dispatcher.Store(nil)
		return
	}
	s.dispatcher.Store(&d)
}

// emission is the dispatch of one emitting transaction: the places taken and the
// deliveries made for them. A transaction function may run more than once (group
// commit); each run starts with reset.
type emission struct {
	d          ubihooks.Dispatcher
	owner      string
	leaseUntil time.Time
	taken      []string // hosts of the places taken
	out        []*ubihooks.Delivery
	pending    int // deliveries left for claims
}

// newEmission returns the dispatch of a transaction that may emit events, or nil when the
// store has no dispatcher.
func (s *Store) newEmission(now time.Time) *emission {
	p := s.dispatcher.Load()
	if p == nil {
		return nil
	}
	owner, lease := (*p).Lease()
	return &emission{d: *p, owner: owner, leaseUntil: now.Add(lease)}
}

// reset undoes a previous run of the transaction function.
func (em *emission) reset() {
	if em == nil {
		return
	}
	if len(em.taken) > 0 {
		em.d.Return(em.taken)
	}
	em.taken, em.out, em.pending = nil, nil, 0
}

// take reserves a place for a delivery to host.
func (em *emission) take(host string) bool {
	if em == nil || !em.d.Take(host) {
		return false
	}
	em.taken = append(em.taken, host)
	return true
}

// finish runs after the transaction: it hands over what was dispatched when it committed,
// and gives the places back when it did not; when deliveries were left pending, it wakes
// the engines to claim them.
func (s *Store) finish(ctx context.Context, em *emission, err error, emitted int) {
	if em == nil {
		if err == nil && emitted > 0 {
			s.notify(ctx, ubihooks.ChannelDeliveries)
		}
		return
	}
	if err != nil {
		em.reset()
		return
	}
	if len(em.out) > 0 {
		em.d.Dispatch(em.out)
	}
	if em.pending > 0 {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
}
