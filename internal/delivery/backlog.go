package delivery

import (
	"context"
	"time"
)

// stuckAfter is how long a host's sends may go without an answer before the host counts
// as stuck (a host that answers, however slowly, is merely busy).
const stuckAfter = time.Second

// maxDeferral caps how far a stuck host's backlog is pushed at a time.
const maxDeferral = 30 * time.Second

// deferral is how far a stuck host's backlog was last pushed into the future.
type deferral struct {
	at    time.Time
	delay time.Duration
}

// backlogs tracks which hosts are stuck — saturated, and no send to them answered for
// stuckAfter — and how far their due backlog was pushed into the future: by 1s, then twice
// as far each time the host is still stuck when it comes due again (up to maxDeferral), and
// by 1s again once it answers. Without that the backlog of a receiver that cannot keep up
// (one that answers only at its timeout) would stay due, and every claim would have to
// skip all of it to reach the deliveries to other hosts; pushing it ever further keeps
// each backlogged delivery from being moved again every second. Hosts that are merely busy
// are never deferred. A stuck host stays stuck until a send to it gets an answer; claims
// leave it out, and it gets claims of its own for its free send slots (probes).
//
// It only decides; the engine moves the deliveries in the store. It is not safe for
// concurrent use: the engine's mutex guards it.
type backlogs struct {
	deferred map[string]deferral  // host → its backlog's last deferral; the stuck hosts
	progress map[string]time.Time // host → when a send to it last got an answer (or first began)
}

func newBacklogs() backlogs {
	return backlogs{deferred: map[string]deferral{}, progress: map[string]time.Time{}}
}

// began notes the start of a send to host while nothing else was sent to it: its progress
// is measured from now.
func (b *backlogs) began(host string, now time.Time) { b.progress[host] = now }

// answered notes that a send to host got an answer: the host is no longer stuck.
func (b *backlogs) answered(host string, now time.Time) {
	b.progress[host] = now
	delete(b.deferred, host)
}

// unanswered notes that a send to host ran to its timeout. If nothing from the host
// answered for stuckAfter, it is stuck from now on, even if no claim saw it saturated in
// between (its backlog is then pushed back by the next claim that finds it saturated).
func (b *backlogs) unanswered(host string, now time.Time) {
	if _, stuck := b.deferred[host]; !stuck && now.Sub(b.progress[host]) >= stuckAfter {
		b.deferred[host] = deferral{at: now, delay: time.Second}
	}
}

// idle forgets host's progress: nothing is being sent to it.
func (b *backlogs) idle(host string) { delete(b.progress, host) }

// stuck reports whether host is stuck.
func (b *backlogs) stuck(host string) bool {
	_, ok := b.deferred[host]
	return ok
}

// deferUntil decides for a saturated host whether its due backlog is pushed into the
// future now, and until when; it notes the deferral.
func (b *backlogs) deferUntil(host string, now time.Time) (time.Time, bool) {
	d, stuck := b.deferred[host]
	if now.Sub(b.progress[host]) < stuckAfter || (stuck && now.Before(d.at.Add(d.delay))) {
		return time.Time{}, false
	}
	delay := time.Second
	if stuck {
		delay = min(2*d.delay, maxDeferral)
	}
	b.deferred[host] = deferral{at: now, delay: delay}
	return now.Add(delay), true
}

// prune forgets the deferrals that were not renewed for twice maxDeferral: their hosts were
// neither saturated nor probed since, and the map is not to grow with hosts long gone.
func (b *backlogs) prune(now time.Time) {
	for h, d := range b.deferred {
		if now.Sub(d.at) > 2*maxDeferral {
			delete(b.deferred, h)
		}
	}
}

// probe is a claim of a stuck host's own, for its free send slots.
type probe struct {
	host  string
	slots int
}

// stuckHosts returns the stuck hosts below their cap in q, which the main claim leaves
// out, and the probes of those whose deferral has ended: in the main claim, their re-due
// backlog would come first (it is the oldest) and most of it would be handed back.
func (b *backlogs) stuckHosts(q *hostQueue, now time.Time) (exclude []string, probes []probe) {
	for h, d := range b.deferred {
		if n := q.load(h); n < q.hostCap {
			exclude = append(exclude, h)
			if slots := q.maxPerHost - n; slots > 0 && !now.Before(d.at.Add(d.delay)) {
				probes = append(probes, probe{h, slots})
			}
		}
	}
	return exclude, probes
}

// probed notes that host was probed: it is probed again after the same delay, unless a
// send to it gets an answer meanwhile.
func (b *backlogs) probed(host string, now time.Time) {
	if d, ok := b.deferred[host]; ok {
		b.deferred[host] = deferral{at: now, delay: d.delay}
	}
}

// deferBacklogs pushes the due backlog of the saturated hosts that are stuck into the
// future (see backlogs).
func (e *Engine) deferBacklogs(ctx context.Context, saturated []string) {
	now := e.cfg.NowFunc()
	for _, h := range saturated {
		e.mu.Lock()
		until, ok := e.backlogs.deferUntil(h, now)
		e.mu.Unlock()
		if !ok {
			continue
		}
		if _, err := e.cfg.Store.DeferDeliveries(ctx, h, until, now); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Error("defer deliveries of a saturated host", "host", h, "err", err)
		}
	}
	e.mu.Lock()
	e.backlogs.prune(now)
	e.mu.Unlock()
}
