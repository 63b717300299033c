package sqlstore

import (
	"context"
	"strings"
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

// fanOut makes the deliveries of event e (inserted just now) in tx: one per matching
// enabled webhook, leased to the dispatcher where it has a place, and a parked one per
// matching webhook that ubihooks disabled. It returns how many.
func (s *Store) fanOut(ctx context.Context, tx execer, em *emission, e *ubihooks.Event, now time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT w.id, w.project_id, w.url, w.host, w.headers, w.timeout_ms, w.retry, w.include_result,
		w.enabled FROM webhooks w WHERE w.object_id = ? AND w.event = ? AND (w.enabled = 1 OR w.disabled_at IS NOT NULL)
			AND (w.version_id = ? OR (w.version_id IS NULL AND CAST(? AS INTEGER) = 1))`),
		e.ObjectID, string(e.Type), e.VersionID, b2i(e.DefaultVersion))
	if err != nil {
		return 0, s.translate("emit: match webhooks", err)
	}
	type target struct {
		d       *ubihooks.Delivery
		headers []byte
	}
	var targets []target
	for rows.Next() {
		d := &ubihooks.Delivery{EventID: e.ID, Status: ubihooks.DeliveryPending}
		var headers []byte
		var timeoutMS int64
		var retry, include, enabled int
		if err := rows.Scan(&d.WebhookID, &d.ProjectID, &d.URL, &d.Host, &headers, &timeoutMS, &retry, &include, &enabled); err != nil {
			rows.Close()
			return 0, s.translate("emit: match webhooks", err)
		}
		if err := decodeTarget(d, headers, timeoutMS, retry, include); err != nil {
			rows.Close()
			return 0, err
		}
		if enabled == 0 { // disabled by ubihooks: kept, not sent
			d.Status = ubihooks.DeliveryParked
		}
		targets = append(targets, target{d, headers})
	}
	if err := rows.Close(); err != nil {
		return 0, s.translate("emit: match webhooks", err)
	}
	if len(targets) == 0 {
		return 0, nil
	}
	at := time.UnixMicro(now.UnixMicro()).UTC() // as stored
	ev := *e                                    // the payload's source, not shared with the caller
	args := make([]any, 0, len(targets)*18)
	for _, t := range targets {
		d := t.d
		d.ID, d.NextAttemptAt, d.CreatedAt, d.UpdatedAt, d.Event = ubihooks.NewID(), at, at, at, &ev
		var owner, until any
		switch {
		case d.Status == ubihooks.DeliveryParked:
		case em.take(d.Host):
			d.Status, d.LeaseOwner, d.LeaseExpiresAt = ubihooks.DeliverySending, em.owner, time.UnixMicro(em.leaseUntil.UnixMicro()).UTC()
			owner, until = em.owner, ts(em.leaseUntil)
			em.out = append(em.out, d)
		default:
			em.pending++
		}
		args = append(args, d.ID, d.ProjectID, d.EventID, d.WebhookID, d.URL, d.Host, t.headers, d.Timeout.Milliseconds(),
			b2i(d.Retry), b2i(d.IncludeResult), string(d.Status), ts(at), owner, until, ts(at), ts(at))
	}
	row := "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO deliveries (id, project_id, event_id, webhook_id, url, host, headers,
		timeout_ms, retry, include_result, status, attempts, next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
		VALUES `+strings.TrimSuffix(strings.Repeat(row+", ", len(targets)), ", ")), args...); err != nil {
		return 0, s.translate("emit: fan out", err)
	}
	return len(targets), nil
}
