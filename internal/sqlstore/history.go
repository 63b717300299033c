package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

// The delivery history: listing, reading and redelivering what was sent. Listings are
// served by deliveries_webhook_created (webhook_id, created_at, id) and the unique key on
// (event_id, webhook_id) (migration 0006).

// ListDeliveries lists the deliveries that match f, newest first by (created_at, id).
func (s *Store) ListDeliveries(ctx context.Context, f ubihooks.DeliveryFilter) ([]*ubihooks.Delivery, error) {
	where, args, err := s.deliveryListWhere(ctx, f)
	if err != nil {
		return nil, err
	}
	return s.queryDeliveries(ctx, s.r, where, args...)
}

// deliveryListWhere returns the WHERE, ORDER BY and LIMIT clauses of a listing, with their
// arguments.
func (s *Store) deliveryListWhere(ctx context.Context, f ubihooks.DeliveryFilter) (string, []any, error) {
	if f.Limit <= 0 {
		return "", nil, ubihooks.Errorf(ubihooks.EINVALID, "list deliveries: limit must be positive, got %d", f.Limit)
	}
	conds, args := []string{"d.project_id = ?"}, []any{f.ProjectID}
	switch {
	case f.WebhookID != "" && f.RequestID != "":
		// Not through the webhook's index: a request has a few events, and SQLite (which
		// keeps no statistics) would otherwise read the webhook's whole history for them.
		conds, args = append(conds, "d.webhook_id || '' = ?"), append(args, f.WebhookID)
	case f.WebhookID != "":
		conds, args = append(conds, "d.webhook_id = ?"), append(args, f.WebhookID)
	default:
		conds = append(conds, "d.webhook_id IS NOT NULL") // not webhook tests
	}
	switch {
	case f.Status == string(ubihooks.DeliveryParked):
		// As a literal, so that the parked deliveries' partial index serves it: a webhook
		// disabled for days may have parked a few among millions of deliveries.
		conds = append(conds, "d.status = 'parked'")
	case f.Status != "":
		conds, args = append(conds, "d.status = ?"), append(args, f.Status)
	}
	if f.EventID != "" {
		conds, args = append(conds, "d.event_id = ?"), append(args, f.EventID)
	}
	if f.RequestID != "" {
		// A request's event ids are derived from its id (ubihooks.EventID), so its
		// deliveries are found through the (event_id, webhook_id) key, and events need no
		// index on request_id (one index less to write per event).
		marks := make([]string, len(ubihooks.EventTypes))
		for i, t := range ubihooks.EventTypes {
			marks[i] = "?"
			args = append(args, ubihooks.EventID(f.RequestID, t))
		}
		conds = append(conds, "d.event_id IN ("+strings.Join(marks, ", ")+")")
	}
	if f.Before != "" {
		// The cursor is read first: a row-value comparison with a subquery would list
		// nothing, silently, once the cursor's delivery expired.
		var created sql.NullInt64
		err := s.r.QueryRowContext(ctx, s.q(`SELECT created_at FROM deliveries WHERE project_id = ? AND id = ?`),
			f.ProjectID, f.Before).Scan(&created)
		if err == sql.ErrNoRows {
			return "", nil, ubihooks.Errorf(ubihooks.EINVALID,
				"before: delivery %q not found (it may have expired); list again without before", f.Before)
		}
		if err != nil {
			return "", nil, s.translate("list deliveries: cursor", err)
		}
		conds, args = append(conds, "(d.created_at, d.id) < (?, ?)"), append(args, created.Int64, f.Before)
	}
	return `WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY d.created_at DESC, d.id DESC LIMIT ` + varLimit, append(args, f.Limit), nil
}

// GetDelivery finds a delivery with its attempts.
func (s *Store) GetDelivery(ctx context.Context, projectID, id string) (*ubihooks.Delivery, []*ubihooks.Attempt, error) {
	ds, err := s.queryDeliveries(ctx, s.r, `WHERE d.project_id = ? AND d.id = ?`, projectID, id)
	if err != nil {
		return nil, nil, err
	}
	if len(ds) == 0 {
		return nil, nil, notFound("delivery", id)
	}
	attempts, err := s.queryAttempts(ctx, `d.id = ?`, id)
	if err != nil {
		return nil, nil, err
	}
	return ds[0], attempts, nil
}

// redeliverSet makes finished deliveries pending again at a time (bound twice: next attempt,
// update), followed by the conditions that select them. Their attempts so far stay counted
// (they stay in their history); their retry schedule starts over from them.
const redeliverSet = `UPDATE deliveries SET status = 'pending', retry_base = attempts, next_attempt_at = ?, updated_at = ?,
	completed_at = NULL WHERE `

// Redeliver makes a finished or parked delivery pending again.
func (s *Store) Redeliver(ctx context.Context, projectID, id string, now time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q(redeliverSet+`project_id = ? AND id = ? AND status IN ('succeeded', 'failed', 'parked')`),
		ts(now), ts(now), projectID, id)
	if err != nil {
		return s.translate("redeliver", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var status string
		err := s.r.QueryRowContext(ctx, s.q(`SELECT status FROM deliveries WHERE project_id = ? AND id = ?`), projectID, id).Scan(&status)
		if err == sql.ErrNoRows {
			return notFound("delivery", id)
		}
		if err != nil {
			return s.translate("redeliver", err)
		}
		return ubihooks.Errorf(ubihooks.ECONFLICT, "delivery %s is still %s; it can be redelivered once it has succeeded or failed (or while it is parked)", id, status)
	}
	s.notify(ctx, ubihooks.ChannelDeliveries)
	return nil
}

// RedeliverMany makes up to f.Limit finished deliveries that match f pending again, oldest
// first, and tells whether more match.
func (s *Store) RedeliverMany(ctx context.Context, f ubihooks.RedeliverFilter, now time.Time) (int, bool, error) {
	if !ubihooks.DeliveryStatus(f.Status).Redeliverable() {
		return 0, false, ubihooks.Errorf(ubihooks.EINVALID, "redeliver: status must be succeeded, failed or parked, got %q", f.Status)
	}
	if f.Limit <= 0 {
		return 0, false, ubihooks.Errorf(ubihooks.EINVALID, "redeliver: limit must be positive, got %d", f.Limit)
	}
	where, args := redeliverWhere(f)
	if f.DryRun {
		var n int
		if err := s.r.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM deliveries WHERE `+where), args...).Scan(&n); err != nil {
			return 0, false, s.translate("redeliver: count", err)
		}
		return n, n > f.Limit, nil
	}
	var n int
	var more bool
	err := s.tx(ctx, func(tx execer) error {
		// The selection is a materialized CTE: as a sub-select of the UPDATE, PostgreSQL
		// may plan it as the inner side of a nested loop and run it once per row, each run
		// locking (and so changing) the next rows past LIMIT. The outer status check skips
		// a delivery that changed meanwhile (another redelivery) on engines that re-check
		// the rows they update.
		uargs := append(append([]any{}, args...), f.Limit, ts(now), ts(now))
		res, err := tx.ExecContext(ctx, s.q(`WITH picked AS MATERIALIZED (`+s.redeliverPick(where)+`)
			`+redeliverSet+`id IN (SELECT id FROM picked) AND status = '`+f.Status+`'`), uargs...)
		if err != nil {
			return s.translate("redeliver many", err)
		}
		k, _ := res.RowsAffected()
		// What was redelivered is pending now: whatever still matches is left for later.
		var left int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE `+where+` LIMIT 1) AS x`),
			args...).Scan(&left); err != nil {
			return s.translate("redeliver many: more", err)
		}
		n, more = int(k), left > 0
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	if n > 0 {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
	return n, more, nil
}

// redeliverWhere returns the conditions on deliveries that select what f redelivers, with
// their arguments.
//
// The status is written as a literal, so that the parked deliveries' partial index is used:
// RedeliverMany checked that it is one of the states it may change.
func redeliverWhere(f ubihooks.RedeliverFilter) (string, []any) {
	status := "1 = 0" // nothing: only the states RedeliverMany may change are written out
	if ubihooks.DeliveryStatus(f.Status).Redeliverable() {
		status = "status = '" + f.Status + "'"
	}
	conds, args := []string{"project_id = ?", status}, []any{f.ProjectID}
	if f.WebhookID != "" {
		conds, args = append(conds, "webhook_id = ?"), append(args, f.WebhookID)
	} else {
		conds = append(conds, "webhook_id IS NOT NULL") // not webhook tests
	}
	if !f.Since.IsZero() {
		conds, args = append(conds, "created_at >= ?"), append(args, ts(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "created_at < ?"), append(args, ts(f.Until))
	}
	return strings.Join(conds, " AND "), args
}

// redeliverPick selects, oldest first, up to a limit (its last argument) of the deliveries
// that match where.
func (s *Store) redeliverPick(where string) string {
	return `SELECT id FROM deliveries WHERE ` + where + ` ORDER BY created_at, id LIMIT ` + varLimit + ` ` + s.d.SkipLocked
}
