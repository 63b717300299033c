package delivery

import (
	"time"

	"github.com/ubihooks/ubihooks"
)

// The engine is its store's dispatcher: a transaction that emits events leases the new
// deliveries to the engine at once, for the places Take reserved, and hands them over
// with Dispatch after its commit, so that they need neither a claim nor a read of what
// was claimed. What the engine has no place for stays pending, for claims. Dispatched
// deliveries fall under the same bounds as claimed ones.

// Lease returns the owner and length of the leases of dispatched deliveries.
func (e *Engine) Lease() (string, time.Duration) { return e.cfg.Owner, e.cfg.Lease }

// Take reserves a place for a new delivery to host, if the engine has room for it now: a
// free place among the sends and the prefetch, and host neither at its bound nor stuck.
// The engine takes nothing before Start or once stopping.
func (e *Engine) Take(host string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.started || e.closing || e.q.places() >= e.cfg.MaxInFlight+e.cfg.Prefetch ||
		e.held >= e.cfg.MaxInFlight+e.cfg.MaxUnrecorded+e.cfg.Prefetch {
		return false
	}
	if e.backlogs.stuck(host) || e.q.full(host) {
		return false
	}
	e.q.reserve(host)
	e.held++
	return true
}

// Return gives back places that Take reserved, one per host given, for deliveries that
// were not made after all.
func (e *Engine) Return(hosts []string) {
	e.mu.Lock()
	e.unreserveLocked(hosts)
	e.mu.Unlock()
	e.signalFreed()
}

func (e *Engine) unreserveLocked(hosts []string) {
	for _, h := range hosts {
		e.q.unreserve(h)
		e.held--
	}
}

// Dispatch takes new deliveries leased to the engine, for which Take reserved places, and
// starts those that may be sent now. Their payloads are rendered before the engine's
// lock is taken.
func (e *Engine) Dispatch(ds []*ubihooks.Delivery) {
	hosts := make([]string, len(ds))
	for i, d := range ds {
		hosts[i] = d.Host
	}
	bodies := payloads(ds)
	e.mu.Lock()
	e.unreserveLocked(hosts)
	_, over := e.enqueueLocked(ds, bodies)
	start := e.takeAllLocked()
	e.mu.Unlock()
	e.startSends(start)
	e.releaseOver(over, e.cfg.NowFunc())
}
