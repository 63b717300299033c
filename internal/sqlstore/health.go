package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/ubihooks/ubihooks"
)

// ApplyWebhookHealth applies a health policy (see ubihooks.Store). It reads the webhooks
// that fail or were reported, decides in Go, and makes each change with a compare-and-set
// on what it read, so that of replicas passing at once exactly one makes (and reports) it.
func (s *Store) ApplyWebhookHealth(ctx context.Context, p ubihooks.WebhookHealthPolicy, now time.Time) ([]*ubihooks.WebhookHealthChange, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var changes []*ubihooks.WebhookHealthChange
	err := s.tx(ctx, func(tx execer) error {
		changes = changes[:0] // the function may run again
		type candidate struct {
			id, health             string
			failures               int
			since, at, lastSuccess time.Time
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, health, consecutive_failures, failing_since, health_at, last_success_at
			FROM webhooks WHERE enabled = 1 AND (consecutive_failures > 0 OR health <> '') ORDER BY created_at, id`)
		if err != nil {
			return s.translate("webhook health", err)
		}
		var cands []candidate
		for rows.Next() {
			var c candidate
			var since, at, last sql.NullInt64
			if err := rows.Scan(&c.id, &c.health, &c.failures, &since, &at, &last); err != nil {
				rows.Close()
				return s.translate("webhook health", err)
			}
			c.since, c.at, c.lastSuccess = fromTS(since), fromTS(at), fromTS(last)
			cands = append(cands, c)
		}
		if err := rows.Close(); err != nil {
			return s.translate("webhook health", err)
		}
		for _, c := range cands {
			var change *ubihooks.WebhookHealthChange
			var err error
			switch {
			case p.DisableAfter > 0 && c.failures >= p.MinFailures && !c.since.IsZero() && !c.since.After(now.Add(-p.DisableAfter)):
				change, err = s.disableWebhook(ctx, tx, p, c.id, c.failures, c.since, now)
			case p.FailingAfter > 0 && c.failures >= p.FailingAfter && c.health == "":
				change, err = s.setHealth(ctx, tx, c.id, "", c.at, "failing", ubihooks.WebhookFailing,
					` AND consecutive_failures >= ?`, []any{p.FailingAfter}, now)
			case c.health != "" && c.lastSuccess.After(c.at):
				change, err = s.setHealth(ctx, tx, c.id, c.health, c.at, "", ubihooks.WebhookRecovered, "", nil, now)
			}
			if err != nil {
				return err
			}
			if change != nil {
				changes = append(changes, change)
			}
		}
		return s.loadChanged(ctx, tx, changes)
	})
	if err != nil {
		return nil, err
	}
	return changes, nil
}

// disableWebhook disables a webhook whose run began at since (unless it changed meanwhile)
// and parks its pending deliveries.
func (s *Store) disableWebhook(ctx context.Context, tx execer, p ubihooks.WebhookHealthPolicy, id string, failures int, since, now time.Time) (*ubihooks.WebhookHealthChange, error) {
	res, err := tx.ExecContext(ctx, s.q(`UPDATE webhooks SET enabled = 0, disabled_reason = ?, disabled_at = ?, health = 'disabled',
		health_at = ?, updated_at = ? WHERE id = ? AND enabled = 1 AND failing_since = ? AND consecutive_failures >= ?`),
		p.DisabledReason(failures, since), ts(now), ts(now), ts(now), id, ts(since), p.MinFailures)
	if err != nil {
		return nil, s.translate("disable webhook", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil // changed meanwhile, or another replica's pass did it
	}
	res, err = tx.ExecContext(ctx, s.q(`UPDATE deliveries SET status = 'parked', updated_at = ? WHERE webhook_id = ? AND status = 'pending'`),
		ts(now), id)
	if err != nil {
		return nil, s.translate("park deliveries", err)
	}
	parked, _ := res.RowsAffected()
	return &ubihooks.WebhookHealthChange{Kind: ubihooks.WebhookDisabled, Webhook: &ubihooks.Webhook{ID: id}, Parked: int(parked), At: now}, nil
}

// setHealth moves a webhook's reported health from (from, at) to to, when cond holds.
func (s *Store) setHealth(ctx context.Context, tx execer, id, from string, at time.Time, to string, kind ubihooks.WebhookHealthKind,
	cond string, condArgs []any, now time.Time) (*ubihooks.WebhookHealthChange, error) {
	where, args := ` AND health_at IS NULL`, []any{to, ts(now), id, from}
	if !at.IsZero() {
		where, args = ` AND health_at = ?`, append(args, ts(at))
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE webhooks SET health = ?, health_at = ? WHERE id = ? AND enabled = 1 AND health = ?`+
		where+cond), append(args, condArgs...)...)
	if err != nil {
		return nil, s.translate("webhook health", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	return &ubihooks.WebhookHealthChange{Kind: kind, Webhook: &ubihooks.Webhook{ID: id}, At: now}, nil
}

// loadChanged reads the changed webhooks as they are now, with their projects' names.
func (s *Store) loadChanged(ctx context.Context, tx execer, changes []*ubihooks.WebhookHealthChange) error {
	for _, c := range changes {
		row := tx.QueryRowContext(ctx, s.q(`SELECT `+webhookColumns+`, p.name`+webhookFrom+`JOIN projects p ON p.id = w.project_id
			WHERE w.id = ?`), c.Webhook.ID)
		w, err := scanWebhook(extraColumn{row, &c.ProjectName})
		if err != nil {
			return s.translate("webhook health: read webhook", err)
		}
		c.Webhook = w
	}
	return nil
}

// extraColumn scans a row of a scanner's columns followed by one more, into dst.
type extraColumn struct {
	row interface{ Scan(...any) error }
	dst any
}

func (e extraColumn) Scan(dst ...any) error { return e.row.Scan(append(dst, e.dst)...) }
