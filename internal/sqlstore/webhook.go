package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/ubihooks/ubihooks"
)

const webhookColumns = `w.id, w.project_id, w.name, o.type, w.object_id, o.name, COALESCE(w.version_id, ''), COALESCE(v.name, ''),
	w.url, w.headers, w.event, w.description, w.labels, w.timeout_ms, w.enabled, w.retry, w.include_result, w.created_at, w.updated_at,
	w.disabled_reason, w.disabled_at, w.failing_since, w.consecutive_failures`

const webhookFrom = ` FROM webhooks w JOIN objects o ON o.id = w.object_id LEFT JOIN versions v ON v.id = w.version_id `

func scanWebhook(row interface{ Scan(...any) error }) (*ubihooks.Webhook, error) {
	var w ubihooks.Webhook
	var headers []byte
	var labels sql.NullString
	var timeoutMS int64
	var enabled, retry, include int
	var created, updated, disabledAt, failingSince sql.NullInt64
	if err := row.Scan(&w.ID, &w.ProjectID, &w.Name, &w.ObjectType, &w.ObjectID, &w.ObjectName, &w.VersionID, &w.Version,
		&w.URL, &headers, &w.Event, &w.Description, &labels, &timeoutMS, &enabled, &retry, &include, &created, &updated,
		&w.DisabledReason, &disabledAt, &failingSince, &w.ConsecutiveFailures); err != nil {
		return nil, err
	}
	w.DisabledAt, w.FailingSince = fromTS(disabledAt), fromTS(failingSince)
	var err error
	if w.Headers, err = ubihooks.UnmarshalHeaders(headers); err != nil {
		return nil, err
	}
	if w.Labels, err = parseLabels(labels); err != nil {
		return nil, err
	}
	w.Timeout = time.Duration(timeoutMS) * time.Millisecond
	w.Enabled, w.Retry, w.IncludeResult = enabled == 1, retry == 1, include == 1
	w.CreatedAt, w.UpdatedAt = fromTS(created), fromTS(updated)
	return &w, nil
}

// CreateWebhook inserts a webhook.
func (s *Store) CreateWebhook(ctx context.Context, w *ubihooks.Webhook) error {
	headers, err := ubihooks.MarshalHeaders(w.Headers)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, s.q(`INSERT INTO webhooks (id, project_id, name, object_id, version_id, event, url, host, headers,
		description, labels, timeout_ms, enabled, retry, include_result, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		w.ID, w.ProjectID, w.Name, w.ObjectID, nullStr(w.VersionID), string(w.Event), w.URL, ubihooks.HostOf(w.URL), headers, w.Description,
		labelsText(w.Labels), w.Timeout.Milliseconds(), b2i(w.Enabled), b2i(w.Retry), b2i(w.IncludeResult), ts(w.CreatedAt), ts(w.UpdatedAt))
	if err != nil && s.d.IsUnique(err) {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "a webhook named %q already exists in this project", w.Name)
	}
	return s.translate("create webhook", err)
}

// GetWebhook finds a webhook by name.
func (s *Store) GetWebhook(ctx context.Context, projectID, name string) (*ubihooks.Webhook, error) {
	w, err := scanWebhook(s.r.QueryRowContext(ctx, s.q(`SELECT `+webhookColumns+webhookFrom+`WHERE w.project_id = ? AND w.name = ?`), projectID, name))
	if err == sql.ErrNoRows {
		return nil, notFound("webhook", name)
	}
	if err != nil {
		return nil, s.translate("get webhook", err)
	}
	return w, nil
}

// ListWebhooks lists the webhooks matching f. Type, object name and event filter in SQL; labels in Go
// with f.Match, so that both stores agree on label semantics exactly.
func (s *Store) ListWebhooks(ctx context.Context, projectID string, f ubihooks.WebhookFilter) ([]*ubihooks.Webhook, error) {
	query := `SELECT ` + webhookColumns + webhookFrom + `WHERE w.project_id = ?`
	args := []any{projectID}
	if f.ObjectType != "" {
		query += ` AND o.type = ?`
		args = append(args, string(f.ObjectType))
	}
	if f.ObjectName != "" {
		query += ` AND o.name = ?`
		args = append(args, f.ObjectName)
	}
	if f.Event != "" {
		query += ` AND w.event = ?`
		args = append(args, string(f.Event))
	}
	rows, err := s.r.QueryContext(ctx, s.q(query+` ORDER BY w.name`), args...)
	if err != nil {
		return nil, s.translate("list webhooks", err)
	}
	defer rows.Close()
	out := []*ubihooks.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, s.translate("list webhooks", err)
		}
		if f.Match(w) {
			out = append(out, w)
		}
	}
	return out, s.translate("list webhooks", rows.Err())
}

// UpdateWebhook writes the mutable fields of a webhook. Its run of failures is the store's
// to keep, except that it starts over when w's FailingSince is zero (a re-enable).
func (s *Store) UpdateWebhook(ctx context.Context, w *ubihooks.Webhook) error {
	headers, err := ubihooks.MarshalHeaders(w.Headers)
	if err != nil {
		return err
	}
	reset := b2i(w.FailingSince.IsZero() && w.ConsecutiveFailures == 0)
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE webhooks SET name = ?, event = ?, url = ?, host = ?, headers = ?, description = ?, labels = ?,
		timeout_ms = ?, enabled = ?, retry = ?, include_result = ?, updated_at = ?, disabled_reason = ?, disabled_at = ?,
		failing_since = CASE WHEN CAST(? AS INTEGER) = 1 THEN NULL ELSE failing_since END,
		consecutive_failures = CASE WHEN CAST(? AS INTEGER) = 1 THEN 0 ELSE consecutive_failures END WHERE id = ?`),
		w.Name, string(w.Event), w.URL, ubihooks.HostOf(w.URL), headers, w.Description, labelsText(w.Labels), w.Timeout.Milliseconds(),
		b2i(w.Enabled), b2i(w.Retry), b2i(w.IncludeResult), ts(w.UpdatedAt), w.DisabledReason, ts(w.DisabledAt), reset, reset, w.ID)
	if err != nil && s.d.IsUnique(err) {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "a webhook named %q already exists in this project", w.Name)
	}
	if err != nil {
		return s.translate("update webhook", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", w.Name)
	}
	return nil
}

// DeleteWebhook deletes a webhook; its deliveries cascade.
func (s *Store) DeleteWebhook(ctx context.Context, projectID, name string) error {
	res, err := s.w.ExecContext(ctx, s.q(`DELETE FROM webhooks WHERE project_id = ? AND name = ?`), projectID, name)
	if err != nil {
		return s.translate("delete webhook", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound("webhook", name)
	}
	return nil
}
