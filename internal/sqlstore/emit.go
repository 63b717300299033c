package sqlstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Emission is on the path of every event: its statements are few and multi-row, whatever
// the number of events (a request's completion emits two, a busy server's concurrent
// EmitEvents calls are emitted together, see emitQueue).

// emitItem is one event to emit at its caller's time, and the number of deliveries made
// for it.
type emitItem struct {
	e   *ubihooks.Event
	now time.Time
	n   int
}

// emitChunk bounds the events (and the webhooks matched for them) of one statement; a
// delivery row has 16 parameters, so its chunk stays well below either engine's limit.
const (
	emitChunk     = 200
	deliveryChunk = 500
)

// emit records events (all at now) and fans them out inside tx; see emitItems.
func (s *Store) emit(ctx context.Context, tx execer, em *emission, events []*ubihooks.Event, now time.Time) (int, error) {
	items := make([]emitItem, len(events))
	for i, e := range events {
		items[i] = emitItem{e: e, now: now}
	}
	return s.emitItems(ctx, tx, em, items)
}

// emitItems records events and fans them out inside tx, in three multi-row statements for
// any number of events: the events (each event's version is the object's default or not
// as of this statement; an event stored before is skipped: its fan-out happened then), the
// webhooks matching them, and one delivery per matching webhook: a snapshot of where the
// webhook pointed when the event happened. With a dispatcher, deliveries it has places for
// are written leased to it (see Dispatcher). A webhook that ubihooks disabled gets its
// delivery parked; one that its user disabled gets none.
func (s *Store) emitItems(ctx context.Context, tx execer, em *emission, items []emitItem) (int, error) {
	em.reset()
	for i := range items {
		items[i].n = 0
	}
	fresh, err := s.insertEvents(ctx, tx, items)
	if err != nil || len(fresh) == 0 {
		return 0, err
	}
	targets, err := s.matchWebhooks(ctx, tx, fresh)
	if err != nil {
		return 0, err
	}
	var ds []*ubihooks.Delivery
	for _, it := range fresh {
		e := it.e
		var ev *ubihooks.Event // the payload's source, not shared with the caller
		at := time.UnixMicro(it.now.UnixMicro()).UTC()
		for _, t := range targets[fanOutKey{e.ObjectID, string(e.Type)}] {
			if t.versionID != e.VersionID && (t.versionID != "" || !e.DefaultVersion) {
				continue
			}
			if ev == nil {
				c := *e
				ev = &c
			}
			d := &ubihooks.Delivery{ID: ubihooks.NewID(), ProjectID: t.projectID, EventID: e.ID, WebhookID: t.id, URL: t.url,
				Host: t.host, Headers: slices.Clone(t.headers), Timeout: t.timeout, Retry: t.retry, IncludeResult: t.include,
				Status: ubihooks.DeliveryPending, NextAttemptAt: at, CreatedAt: at, UpdatedAt: at, Event: ev}
			switch {
			case !t.enabled: // disabled by ubihooks: kept, not sent
				d.Status = ubihooks.DeliveryParked
			case em.take(d.Host):
				d.Status, d.LeaseOwner = ubihooks.DeliverySending, em.owner
				d.LeaseExpiresAt = time.UnixMicro(em.leaseUntil.UnixMicro()).UTC()
				em.out = append(em.out, d)
			case em != nil:
				em.pending++
			}
			ds = append(ds, d)
			it.n++
		}
	}
	if err := s.insertFanOut(ctx, tx, ds); err != nil {
		return 0, err
	}
	return len(ds), nil
}

// insertEvents writes the items' events, working out in the same statement whether each
// event's version is its object's default right now (and setting DefaultVersion). It
// returns the items whose events were new; an event given twice is emitted once.
func (s *Store) insertEvents(ctx context.Context, tx execer, items []emitItem) ([]*emitItem, error) {
	var fresh []*emitItem
	def := map[string]bool{}
	for start := 0; start < len(items); start += emitChunk {
		part := items[start:min(start+emitChunk, len(items))]
		var b strings.Builder
		b.WriteString(`INSERT INTO events (id, project_id, project_name, type, object_type, object_id, object_name, version_id,
			version_name, default_version, request_id, status, result, result_size, test, created_at) VALUES `)
		args := make([]any, 0, len(part)*17)
		for i := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE((SELECT 1 FROM objects WHERE id = ? AND default_version_id = ?), 0),
				?, ?, ?, ?, ?, ?)`)
			e := part[i].e
			args = append(args, e.ID, e.ProjectID, e.ProjectName, string(e.Type), string(e.ObjectType), e.ObjectID, e.ObjectName,
				e.VersionID, e.VersionName, e.ObjectID, e.VersionID, e.RequestID, e.Status, resultBytes(e.Result), e.ResultSize,
				b2i(e.Test), ts(e.CreatedAt))
		}
		b.WriteString(` ON CONFLICT (id) DO NOTHING RETURNING id, default_version`)
		rows, err := tx.QueryContext(ctx, s.q(b.String()), args...)
		if err != nil {
			return nil, s.translate("insert events", err)
		}
		clear(def)
		for rows.Next() {
			var id string
			var d int
			if err := rows.Scan(&id, &d); err != nil {
				rows.Close()
				return nil, s.translate("insert events", err)
			}
			def[id] = d == 1
		}
		if err := rows.Close(); err != nil {
			return nil, s.translate("insert events", err)
		}
		for i := range part {
			d, ok := def[part[i].e.ID]
			if !ok {
				continue // emitted before, or earlier in this call
			}
			delete(def, part[i].e.ID)
			part[i].e.DefaultVersion = d
			fresh = append(fresh, &part[i])
		}
	}
	return fresh, nil
}

// fanOutKey is what a webhook listens to: an object's event.
type fanOutKey struct{ object, event string }

// fanOutTarget is a webhook that an event may be delivered to, as it is right now.
type fanOutTarget struct {
	id, projectID, url, host, versionID string
	headers                             []ubihooks.Header
	timeout                             time.Duration
	retry, include, enabled             bool
}

// matchWebhooks reads the webhooks listening to the fresh events' objects and events:
// enabled ones, and those ubihooks disabled (whose deliveries are parked).
func (s *Store) matchWebhooks(ctx context.Context, tx execer, fresh []*emitItem) (map[fanOutKey][]*fanOutTarget, error) {
	keys := map[fanOutKey]bool{}
	var objects, events []string
	for _, it := range fresh {
		k := fanOutKey{it.e.ObjectID, string(it.e.Type)}
		if keys[k] {
			continue
		}
		keys[k] = true
		if !slices.Contains(objects, k.object) {
			objects = append(objects, k.object)
		}
		if !slices.Contains(events, k.event) {
			events = append(events, k.event)
		}
	}
	out := map[fanOutKey][]*fanOutTarget{}
	for start := 0; start < len(objects); start += emitChunk {
		part := objects[start:min(start+emitChunk, len(objects))]
		args := make([]any, 0, len(part)+len(events))
		for _, o := range part {
			args = append(args, o)
		}
		for _, e := range events {
			args = append(args, e)
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT w.id, w.project_id, w.url, w.host, w.headers, w.timeout_ms, w.retry,
			w.include_result, w.enabled, w.object_id, w.event, COALESCE(w.version_id, '')
			FROM webhooks w WHERE w.object_id IN (`+placeholders(len(part))+`) AND w.event IN (`+placeholders(len(events))+`)
				AND (w.enabled = 1 OR w.disabled_at IS NOT NULL)
			ORDER BY w.id`), args...)
		if err != nil {
			return nil, s.translate("emit: match webhooks", err)
		}
		for rows.Next() {
			t := &fanOutTarget{}
			var k fanOutKey
			var headers []byte
			var timeoutMS int64
			var retry, include, enabled int
			if err := rows.Scan(&t.id, &t.projectID, &t.url, &t.host, &headers, &timeoutMS, &retry, &include, &enabled,
				&k.object, &k.event, &t.versionID); err != nil {
				rows.Close()
				return nil, s.translate("emit: match webhooks", err)
			}
			if !keys[k] {
				continue // an object and an event of two different events
			}
			if t.headers, err = ubihooks.UnmarshalHeaders(headers); err != nil {
				rows.Close()
				return nil, err
			}
			t.timeout = time.Duration(timeoutMS) * time.Millisecond
			t.retry, t.include, t.enabled = retry == 1, include == 1, enabled == 1
			out[k] = append(out[k], t)
		}
		if err := rows.Close(); err != nil {
			return nil, s.translate("emit: match webhooks", err)
		}
	}
	return out, nil
}

// insertFanOut writes the deliveries of an emission in multi-row statements.
func (s *Store) insertFanOut(ctx context.Context, tx execer, ds []*ubihooks.Delivery) error {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"
	for start := 0; start < len(ds); start += deliveryChunk {
		part := ds[start:min(start+deliveryChunk, len(ds))]
		args := make([]any, 0, len(part)*16)
		for _, d := range part {
			headers, err := ubihooks.MarshalHeaders(d.Headers)
			if err != nil {
				return err
			}
			var owner, until any
			if d.Status == ubihooks.DeliverySending {
				owner, until = d.LeaseOwner, ts(d.LeaseExpiresAt)
			}
			args = append(args, d.ID, d.ProjectID, d.EventID, d.WebhookID, d.URL, d.Host, headers, d.Timeout.Milliseconds(),
				b2i(d.Retry), b2i(d.IncludeResult), string(d.Status), ts(d.NextAttemptAt), owner, until, ts(d.CreatedAt),
				ts(d.UpdatedAt))
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO deliveries (id, project_id, event_id, webhook_id, url, host, headers,
			timeout_ms, retry, include_result, status, attempts, next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
			VALUES `+strings.TrimSuffix(strings.Repeat(row+", ", len(part)), ", ")), args...); err != nil {
			return s.translate("emit: fan out", err)
		}
	}
	return nil
}

// emitQueue makes concurrent EmitEvents calls few emissions: while Dialect.EmitLeaders
// emissions run, the calls that arrive queue, and the next emission takes them all, in the
// few statements of emitItems rather than a few per event. A call that finds fewer
// emissions running starts one at once.
type emitQueue struct {
	mu      sync.Mutex
	queue   []*emitCall
	events  int           // events of the queued calls
	full    chan struct{} // closed when the queue reaches Dialect.EmitBatch events (made by a lingering leader)
	leading int           // leaders running (leadEmissions)

	coalesced atomic.Int64 // emissions of several calls, for tests
}

// emitCall is one EmitEvents call waiting for its emission.
type emitCall struct {
	ctx    context.Context
	events []*ubihooks.Event
	now    time.Time
	n      int
	err    error
	done   chan struct{}
}

// EmitEvents records events and fans them out in one transaction, shared with the calls
// made meanwhile (see emitQueue); each call is answered with its own deliveries' number
// and its own error.
func (s *Store) EmitEvents(ctx context.Context, events []*ubihooks.Event, now time.Time) (int, error) {
	if len(events) == 0 {
		return 0, ctx.Err()
	}
	c := &emitCall{ctx: ctx, events: events, now: now, done: make(chan struct{})}
	q := &s.emits
	q.mu.Lock()
	q.queue = append(q.queue, c)
	q.events += len(events)
	if q.full != nil && q.events >= s.d.EmitBatch {
		close(q.full)
		q.full = nil
	}
	lead := q.leading < max(1, s.d.EmitLeaders)
	if lead {
		q.leading++
	}
	q.mu.Unlock()
	if lead {
		go s.leadEmissions()
	}
	<-c.done
	return c.n, c.err
}

// leadEmissions runs the queued calls, an emission at a time, until none is left; up to
// Dialect.EmitLeaders of them run at once.
func (s *Store) leadEmissions() {
	q := &s.emits
	loaded := false // the last emission carried several calls
	for {
		if loaded && s.d.EmitLinger > 0 {
			s.linger() // let more calls join the next one (see Dialect.EmitLinger)
		}
		q.mu.Lock()
		calls := q.queue
		q.queue, q.events = nil, 0
		if len(calls) == 0 {
			q.leading--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		loaded = len(calls) > 1
		live := calls[:0]
		for _, c := range calls {
			if c.err = c.ctx.Err(); c.err != nil { // left before its turn: not emitted
				close(c.done)
				continue
			}
			live = append(live, c)
		}
		if len(live) > 0 {
			s.emitCalls(live)
		}
	}
}

// linger waits Dialect.EmitLinger, or less: until the queue holds Dialect.EmitBatch events.
func (s *Store) linger() {
	q := &s.emits
	q.mu.Lock()
	if s.d.EmitBatch > 0 && q.events >= s.d.EmitBatch {
		q.mu.Unlock()
		return
	}
	var full chan struct{} // nil without a batch size: the whole wait
	if s.d.EmitBatch > 0 {
		if q.full == nil {
			q.full = make(chan struct{})
		}
		full = q.full
	}
	q.mu.Unlock()
	t := time.NewTimer(s.d.EmitLinger)
	defer t.Stop()
	select {
	case <-t.C:
	case <-full:
	}
}

// emitCalls emits the calls' events in one transaction. When the emission fails in its
// statements (nothing was committed), each call runs again alone, so that a call is
// answered with its own error, not another's; a failure at the commit, whose outcome is
// unknown, answers every call.
func (s *Store) emitCalls(calls []*emitCall) {
	defer func() {
		for _, c := range calls {
			close(c.done)
		}
	}()
	if len(calls) == 1 {
		c := calls[0]
		c.n, c.err = s.emitAlone(c.ctx, c.events, c.now)
		return
	}
	s.emits.coalesced.Add(1)
	var items []emitItem
	latest := calls[0].now
	for _, c := range calls {
		for _, e := range c.events {
			items = append(items, emitItem{e: e, now: c.now})
		}
		if c.now.After(latest) {
			latest = c.now
		}
	}
	// The callers' contexts bound their waits, not the shared transaction.
	ctx := context.WithoutCancel(calls[0].ctx)
	em := s.newEmission(latest)
	var n int
	var inFn error
	err := s.tx(ctx, func(tx execer) error {
		n, inFn = s.emitItems(ctx, tx, em, items)
		return inFn
	})
	s.finish(ctx, em, err, n)
	if err != nil && inFn != nil {
		for _, c := range calls {
			c.n, c.err = s.emitAlone(c.ctx, c.events, c.now)
		}
		return
	}
	i := 0
	for _, c := range calls {
		c.err = err
		for range c.events {
			if err == nil {
				c.n += items[i].n
			}
			i++
		}
	}
}

// emitAlone emits one call's events in a transaction of their own.
func (s *Store) emitAlone(ctx context.Context, events []*ubihooks.Event, now time.Time) (int, error) {
	var n int
	em := s.newEmission(now)
	err := s.tx(ctx, func(tx execer) error {
		var err error
		n, err = s.emit(ctx, tx, em, events, now)
		return err
	})
	s.finish(ctx, em, err, n)
	return n, err
}
