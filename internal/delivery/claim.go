package delivery

import (
	"context"
	"time"

	"github.com/ubihooks/ubihooks"
)

// claimLoop claims due deliveries whenever there may be some and room for them: at once
// again after a full claim, when woken (new deliveries, a freed slot), and otherwise after
// PollInterval or when the next retry is due, whichever comes first. After a claim that
// found nothing, freed slots alone start the next one no sooner than emptyClaimGap later:
// what is pending then was announced (Notify wakes at once) or became due with time.
func (e *Engine) claimLoop() {
	defer close(e.claimDone)
	idle := time.NewTimer(0)
	defer idle.Stop()
	for {
		n, full, asked := e.claimOnce()
		e.TestSignals.Claimed.Signal(n)
		if e.claimCtx.Err() != nil {
			return
		}
		if n > 0 && full {
			continue // more is probably due
		}
		var empty time.Time // when a claim that asked the store found nothing
		if n == 0 && asked {
			empty = time.Now()
		}
		wait := e.cfg.PollInterval
		if n < 0 { // store error: back off
			wait = time.Second
		} else if n == 0 && e.idle() {
			// Idle: wake exactly when the next retry is due, if that is sooner than a poll.
			// (Due deliveries that were not claimed wait for a saturated host: a send ending
			// wakes the engine for those.)
			if next, err := e.cfg.Store.NextDeliveryDue(e.claimCtx); err == nil {
				if d := next.Sub(e.cfg.NowFunc()); d > 0 {
					wait = min(wait, d)
				}
			}
		}
		deadline := time.Now().Add(wait)
		idle.Reset(wait)
		held := false // freed slots wait for the timer (see emptyClaimGap)
	waiting:
		for {
			select {
			case <-e.claimCtx.Done():
				return
			case <-e.wake:
			case <-e.freed:
				if empty.IsZero() {
					break waiting
				}
				if held {
					continue
				}
				// A freed slot after an empty claim: claim when the gap has passed (or at
				// the deadline, if sooner), not once per slot freed meanwhile.
				gap := time.Until(empty.Add(emptyClaimGap))
				if gap <= 0 {
					break waiting
				}
				if gap < time.Until(deadline) {
					idle.Reset(gap)
				}
				held = true
				continue
			case <-idle.C:
				e.TestSignals.Polled.Signal(struct{}{})
			}
			break
		}
	}
}

// emptyClaimGap is the least time between a claim that found nothing and the next one
// that only freed slots start. Under load, slots free up thousands of times a second;
// with no delivery pending (new ones are dispatched at emission), a claim each time would
// cost a query each time for nothing. A retry that falls due meanwhile waits this long at
// most.
const emptyClaimGap = 20 * time.Millisecond

// idle reports whether the engine holds no delivery at all.
func (e *Engine) idle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held == 0
}

// claimOnce claims what fits in the free places (send slots, and the prefetch behind them)
// and starts the sends that have a slot. It returns how many were claimed (-1 on a store
// error), whether the claim was full, and whether it asked the store at all.
func (e *Engine) claimOnce() (int, bool, bool) {
	now := e.cfg.NowFunc()
	e.mu.Lock()
	expiring := e.expiring
	e.expiring = nil
	e.mu.Unlock()
	if len(expiring) > 0 {
		e.cfg.Logger.Info("handed back deliveries whose leases would end during their attempt", "count", len(expiring))
		e.releaseOver(expiring, now)
	}
	e.mu.Lock()
	room := min(e.cfg.MaxInFlight+e.cfg.Prefetch-e.q.places(),
		e.cfg.MaxInFlight+e.cfg.MaxUnrecorded+e.cfg.Prefetch-e.held)
	busyEngine := e.q.sending+e.q.nWaiting > 0
	busy := e.q.saturated()
	// A host takes no more than its cap: more would only wait here while other hosts'
	// deliveries wait in the queue.
	exclude := e.q.fullSending()
	// Stuck hosts get only their free slots, in claims of their own once their deferral ends.
	stuck, probes := e.backlogs.stuckHosts(&e.q, now)
	exclude = append(exclude, stuck...)
	e.mu.Unlock()
	e.deferBacklogs(e.claimCtx, busy)
	limit := min(room, e.cfg.BatchSize)
	// While the engine is busy, wait until a few places are free: a claim costs a write
	// transaction, and claiming one delivery per freed slot would spend more on claims than
	// on sending. An idle engine claims whatever fits.
	if limit <= 0 || (busyEngine && limit < max(1, min(e.cfg.MaxInFlight, e.cfg.Prefetch, e.cfg.BatchSize)/4)) {
		return 0, false, false
	}
	// A stop does not cut a claim on its way: its commit may have gone through (leasing the
	// deliveries) when the cancellation lost its answer, and the deliveries would stay
	// leased to a stopped engine until their leases expire. Answered, they are handed back.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.claimCtx), claimTimeout)
	defer cancel()
	began := time.Now()
	ds, err := e.cfg.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: e.cfg.Owner, Limit: limit, Lease: e.cfg.Lease, Now: now, ExcludeHosts: exclude})
	if err != nil {
		e.cfg.Logger.Error("claim deliveries", "err", err)
		return -1, false, true
	}
	if obs := e.cfg.Observer; obs != nil {
		obs.StoreWrite(StoreClaim, len(ds), time.Since(began))
	}
	full := len(ds) == limit
	for _, p := range probes {
		n := min(p.slots, limit-len(ds))
		if n <= 0 {
			break
		}
		more, err := e.cfg.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: e.cfg.Owner, Host: p.host, Limit: n, Lease: e.cfg.Lease, Now: now})
		if err != nil {
			e.cfg.Logger.Error("claim deliveries", "host", p.host, "err", err)
			break
		}
		ds = append(ds, more...)
		e.mu.Lock()
		e.backlogs.probed(p.host, now)
		e.mu.Unlock()
	}
	bodies := payloads(ds)
	e.mu.Lock()
	claimed, over := e.enqueueLocked(ds, bodies)
	start := e.takeAllLocked()
	e.mu.Unlock()
	e.startSends(start)
	e.releaseOver(over, now)
	return claimed, full, true
}

// enqueueLocked adds claimed (or dispatched) deliveries to the waiting ones, each with its
// payload (bodies[i] is ds[i]'s). It returns how many it took, and the ids of those over
// their host's bound or that came while stopping, for release. e.mu is held.
func (e *Engine) enqueueLocked(ds []*ubihooks.Delivery, bodies [][]byte) (int, []string) {
	var over []string
	taken := 0
	for i, d := range ds {
		if e.closing {
			// Released by the caller at once: a stop may have released what it held already.
			over = append(over, d.ID)
			continue
		}
		if !e.q.push(prepared{d, bodies[i]}) {
			over = append(over, d.ID)
			continue
		}
		e.held++
		taken++
	}
	return taken, over
}

// releaseOver returns deliveries that were over their host's bound, came while the
// engine was stopping, or waited too long for their leases (handBack), to the queue,
// unattempted.
func (e *Engine) releaseOver(over []string, now time.Time) {
	if len(over) == 0 {
		return
	}
	// Not cut short by a stop that begins meanwhile: the leases would stay until they expire.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.claimCtx), 10*time.Second)
	defer cancel()
	if err := e.cfg.Store.ReleaseDeliveries(ctx, e.cfg.Owner, over, now); err != nil {
		e.cfg.Logger.Error("release deliveries; their leases will expire instead", "count", len(over), "err", err)
	}
}

// claimTimeout bounds a claim, which a stop waits for.
const claimTimeout = 10 * time.Second

// hostCap is the most deliveries to one host that may be sending or waiting: its send
// slots, and up to three times as many waiting — enough to keep its sends going while
// claims and emitting transactions wait for the writer, and no more: the rest would only
// wait here while other hosts' deliveries wait in the queue.
func hostCap(cfg Config) int { return cfg.MaxPerHost + min(3*cfg.MaxPerHost, cfg.Prefetch) }

// payloads renders the payload of each delivery, before e.mu is taken: an event's
// deliveries to several webhooks share one rendering.
func payloads(ds []*ubihooks.Delivery) [][]byte {
	type key struct {
		event         *ubihooks.Event
		includeResult bool
	}
	bodies := make([][]byte, len(ds))
	rendered := make(map[key][]byte, len(ds))
	for i, d := range ds {
		k := key{d.Event, d.IncludeResult}
		body, ok := rendered[k]
		if !ok {
			body = d.Event.Payload(d.IncludeResult)
			rendered[k] = body
		}
		bodies[i] = body
	}
	return bodies
}
