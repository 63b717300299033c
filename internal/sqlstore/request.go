package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

const requestColumns = `r.id, r.project_id, p.name, o.type, r.object_id, o.name, r.version_id, v.name, r.status, r.input, r.result,
	r.error_message, r.timeout_ms, r.batch, COALESCE(r.parent_id, ''), r.sequence, r.origin, r.attempts, COALESCE(r.lease_owner, ''),
	r.lease_expires_at, r.created_at, r.started_at, r.completed_at`

const requestFrom = ` FROM requests r JOIN objects o ON o.id = r.object_id JOIN versions v ON v.id = r.version_id
	JOIN projects p ON p.id = r.project_id `

func scanRequest(row interface{ Scan(...any) error }) (*ubihooks.Request, error) {
	var r ubihooks.Request
	var input, result []byte
	var timeoutMS int64
	var batch int
	var lease, created, started, completed sql.NullInt64
	if err := row.Scan(&r.ID, &r.ProjectID, &r.ProjectName, &r.ObjectType, &r.ObjectID, &r.ObjectName, &r.VersionID, &r.VersionName,
		&r.Status, &input, &result, &r.ErrorMessage, &timeoutMS, &batch, &r.ParentID, &r.Sequence, &r.Origin, &r.Attempts,
		&r.LeaseOwner, &lease, &created, &started, &completed); err != nil {
		return nil, err
	}
	if len(input) > 0 {
		r.Input = json.RawMessage(input)
	}
	if len(result) > 0 {
		r.Result = json.RawMessage(result)
	}
	r.Timeout = time.Duration(timeoutMS) * time.Millisecond
	r.Batch = batch == 1
	r.LeaseExpiresAt, r.CreatedAt, r.StartedAt, r.CompletedAt = fromTS(lease), fromTS(created), fromTS(started), fromTS(completed)
	return &r, nil
}

func (s *Store) queryRequests(ctx context.Context, db execer, where string, args ...any) ([]*ubihooks.Request, error) {
	rows, err := db.QueryContext(ctx, s.q(`SELECT `+requestColumns+requestFrom+where), args...)
	if err != nil {
		return nil, s.translate("query requests", err)
	}
	defer rows.Close()
	out := []*ubihooks.Request{}
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, s.translate("query requests", err)
		}
		out = append(out, r)
	}
	return out, s.translate("query requests", rows.Err())
}

// CreateRequests inserts pending requests in one transaction.
func (s *Store) CreateRequests(ctx context.Context, rs []*ubihooks.Request) error {
	err := s.tx(ctx, func(tx execer) error {
		for _, r := range rs {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO requests (id, project_id, object_type, object_id, version_id, status, input,
				error_message, timeout_ms, batch, parent_id, sequence, origin, attempts, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, 0, ?)`),
				r.ID, r.ProjectID, string(r.ObjectType), r.ObjectID, r.VersionID, string(r.Status), []byte(r.Input),
				r.Timeout.Milliseconds(), b2i(r.Batch), nullStr(r.ParentID), r.Sequence, r.Origin, ts(r.CreatedAt)); err != nil {
				return s.translate("create request", err)
			}
		}
		return nil
	})
	if err == nil {
		s.notify(ctx, ubihooks.ChannelRequests)
	}
	return err
}

// GetRequest finds a request.
func (s *Store) GetRequest(ctx context.Context, projectID, id string) (*ubihooks.Request, error) {
	rs, err := s.queryRequests(ctx, s.r, `WHERE r.project_id = ? AND r.id = ?`, projectID, id)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, notFound("request", id)
	}
	return rs[0], nil
}

// ListRequests lists requests matching f, newest first.
func (s *Store) ListRequests(ctx context.Context, f ubihooks.RequestFilter) ([]*ubihooks.Request, error) {
	where := `WHERE r.project_id = ?`
	args := []any{f.ProjectID}
	if f.ObjectID != "" {
		where += ` AND r.object_id = ?`
		args = append(args, f.ObjectID)
	}
	if f.VersionID != "" {
		where += ` AND r.version_id = ?`
		args = append(args, f.VersionID)
	}
	if f.Status != "" {
		where += ` AND r.status = ?`
		args = append(args, string(f.Status))
	}
	if f.ParentID != "" {
		where += ` AND r.parent_id = ? ORDER BY r.sequence`
		args = append(args, f.ParentID)
	} else {
		where += ` AND r.parent_id IS NULL ORDER BY r.created_at DESC, r.id DESC`
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	where += ` LIMIT ? OFFSET ?`
	args = append(args, limit, f.Offset)
	return s.queryRequests(ctx, s.r, where, args...)
}

// TransitionRequest changes a request's status and emits its events atomically.
func (s *Store) TransitionRequest(ctx context.Context, t ubihooks.RequestTransition) (*ubihooks.Request, int, error) {
	var after *ubihooks.Request
	var n int
	em := s.newEmission(t.Now)
	err := s.tx(ctx, func(tx execer) error {
		em.reset()
		rs, err := s.queryRequests(ctx, tx, `WHERE r.project_id = ? AND r.id = ?`, t.ProjectID, t.RequestID)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return notFound("request", t.RequestID)
		}
		before := rs[0]
		if !slices.Contains(t.From, before.Status) {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "request %s is %s and cannot become %s", before.ID, before.Status, t.To)
		}
		if t.Owner != "" && before.LeaseOwner != t.Owner {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "request %s is no longer leased by this worker", before.ID)
		}
		var started, completed any = ts(before.StartedAt), nil
		if t.To == ubihooks.RequestProcessing || (t.To.Final() && before.StartedAt.IsZero() && t.To != ubihooks.RequestCancelled) {
			started = ts(t.Now)
		}
		if t.To.Final() {
			completed = ts(t.Now)
		}
		// The WHERE repeats the checks above so that the update is a compare-and-set even where
		// the SELECT does not lock the row (PostgreSQL, READ COMMITTED).
		res, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET status = ?, result = ?, error_message = ?, started_at = ?, completed_at = ?,
			lease_owner = CASE WHEN ? = 1 THEN NULL ELSE lease_owner END, lease_expires_at = CASE WHEN ? = 1 THEN NULL ELSE lease_expires_at END
			WHERE id = ? AND status = ? AND COALESCE(lease_owner, '') = ?`), string(t.To), t.Result, t.ErrorMessage, started, completed,
			b2i(t.To.Final()), b2i(t.To.Final()), before.ID, string(before.Status), before.LeaseOwner)
		if err != nil {
			return s.translate("transition request", err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "request %s changed concurrently and cannot become %s", before.ID, t.To)
		}
		if n, err = s.emit(ctx, tx, em, t.Events(before), t.Now); err != nil {
			return err
		}
		rs, err = s.queryRequests(ctx, tx, `WHERE r.id = ?`, before.ID)
		if err != nil {
			return err
		}
		after = rs[0]
		return nil
	})
	s.finish(ctx, em, err, n)
	if err != nil {
		return nil, 0, err
	}
	return after, n, nil
}

// ClaimRequests leases pending requests and emits their started events.
func (s *Store) ClaimRequests(ctx context.Context, c ubihooks.RequestClaim) ([]*ubihooks.Request, error) {
	var out []*ubihooks.Request
	emitted := 0
	em := s.newEmission(c.Now)
	err := s.tx(ctx, func(tx execer) error {
		out, emitted = nil, 0 // a transaction function may run again (group commit)
		em.reset()
		sub := `SELECT r.id FROM requests r JOIN versions v ON v.id = r.version_id WHERE r.status = 'pending' AND r.parent_id IS NULL`
		args := []any{string(ubihooks.RequestProcessing), c.Owner, ts(c.Now.Add(c.Lease))}
		if c.External {
			sub += ` AND r.version_id = ? AND v.backend_url = '' AND r.object_type = ?`
			args = append(args, c.VersionID, string(ubihooks.ObjectDeployment))
		} else {
			sub += ` AND (v.backend_url <> '' OR r.object_type = ?)`
			args = append(args, string(ubihooks.ObjectPipeline))
		}
		if len(c.ExcludeVersions) > 0 {
			sub += ` AND r.version_id NOT IN (` + placeholders(len(c.ExcludeVersions)) + `)`
			for _, v := range c.ExcludeVersions {
				args = append(args, v)
			}
		}
		// Lock only the request rows: the join must not make claimers skip each other's versions.
		sub += ` ORDER BY r.created_at LIMIT ` + varLimit + ` ` + strings.Replace(s.d.SkipLocked, "FOR UPDATE", "FOR UPDATE OF r", 1)
		args = append(args, c.Limit)
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE requests SET status = ?, lease_owner = ?, lease_expires_at = ?,
			attempts = attempts + 1 WHERE id IN (`+sub+`) RETURNING id`), args...)
		if err != nil {
			return s.translate("claim requests", err)
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return s.translate("claim requests", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return s.translate("claim requests", err)
		}
		if len(ids) == 0 {
			return nil
		}
		// started_at is set once, on the first claim; a rescued request keeps it.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE requests SET started_at = ? WHERE started_at IS NULL AND id IN (`+placeholders(len(ids))+`)`),
			append([]any{ts(c.Now)}, ids...)...); err != nil {
			return s.translate("claim requests", err)
		}
		out, err = s.queryRequests(ctx, tx, `WHERE r.id IN (`+placeholders(len(ids))+`) ORDER BY r.created_at`, ids...)
		if err != nil {
			return err
		}
		started := ubihooks.RequestTransition{To: ubihooks.RequestProcessing, Now: c.Now}
		var events []*ubihooks.Event
		for _, r := range out {
			before := *r
			before.Status = ubihooks.RequestPending
			events = append(events, started.Events(&before)...)
		}
		emitted, err = s.emit(ctx, tx, em, events, c.Now)
		return err
	})
	s.finish(ctx, em, err, emitted)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RescueRequests returns processing requests with expired leases to pending.
func (s *Store) RescueRequests(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE requests SET status = ?, lease_owner = NULL, lease_expires_at = NULL
		WHERE status = 'processing' AND lease_expires_at < ? AND parent_id IS NULL`),
		string(ubihooks.RequestPending), ts(now))
	if err != nil {
		return 0, s.translate("rescue requests", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		s.notify(ctx, ubihooks.ChannelRequests)
	}
	return int(n), nil
}

// ReleaseRequests returns an owner's processing requests to pending without an attempt.
func (s *Store) ReleaseRequests(ctx context.Context, owner string, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{string(ubihooks.RequestPending), string(ubihooks.RequestProcessing), owner}
	for _, id := range ids {
		args = append(args, id)
	}
	// The claim counted an attempt and, on a first claim, set started_at: both are taken
	// back (the right-hand sides read the row as it was). The WHERE is the compare-and-set
	// on the lease: a request finished, rescued or claimed by another owner meanwhile stays.
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE requests SET status = ?, lease_owner = NULL, lease_expires_at = NULL,
		started_at = CASE WHEN attempts <= 1 THEN NULL ELSE started_at END,
		attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
		WHERE status = ? AND lease_owner = ? AND id IN (`+placeholders(len(ids))+`)`), args...)
	if err != nil {
		return s.translate("release requests", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.notify(ctx, ubihooks.ChannelRequests)
	}
	return nil
}

// ExtendRequestLeases renews the leases of an owner's processing requests.
func (s *Store) ExtendRequestLeases(ctx context.Context, owner string, ids []string, until time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{ts(until), string(ubihooks.RequestProcessing), owner}
	for _, id := range ids {
		args = append(args, id)
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE requests SET lease_expires_at = ? WHERE status = ? AND lease_owner = ?
		AND id IN (`+placeholders(len(ids))+`)`), args...)
	if err != nil {
		return 0, s.translate("extend request leases", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
