package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Statuses that partial indexes are defined on appear as literals in the queries that should
// use those indexes: neither engine can match a partial index against a bound parameter.

const eventColumns = `e.id, e.project_id, e.project_name, e.type, e.object_type, e.object_id, e.object_name, e.version_id,
	e.version_name, e.default_version, e.request_id, e.status, e.result, e.result_size, e.test, e.created_at`

func scanEvent(dst []any) (*ubihooks.Event, []any, func() error) {
	var e ubihooks.Event
	var def, test int
	var result []byte
	var created sql.NullInt64
	dst = append(dst, &e.ID, &e.ProjectID, &e.ProjectName, &e.Type, &e.ObjectType, &e.ObjectID, &e.ObjectName, &e.VersionID,
		&e.VersionName, &def, &e.RequestID, &e.Status, &result, &e.ResultSize, &test, &created)
	return &e, dst, func() error {
		e.DefaultVersion, e.Test = def == 1, test == 1
		if len(result) > 0 {
			e.Result = json.RawMessage(result)
		}
		e.CreatedAt = fromTS(created)
		return nil
	}
}

func resultBytes(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return []byte(r)
}

// insertEvent writes an event, working out in the same statement whether its version is
// the object's default right now (and setting e.DefaultVersion). It reports false when the
// event already existed.
func (s *Store) insertEvent(ctx context.Context, tx execer, e *ubihooks.Event) (bool, error) {
	var def int
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO events (id, project_id, project_name, type, object_type, object_id, object_name,
		version_id, version_name, default_version, request_id, status, result, result_size, test, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,
			COALESCE((SELECT 1 FROM objects WHERE id = ? AND default_version_id = ?), 0), ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING RETURNING default_version`),
		e.ID, e.ProjectID, e.ProjectName, string(e.Type), string(e.ObjectType), e.ObjectID, e.ObjectName, e.VersionID,
		e.VersionName, e.ObjectID, e.VersionID, e.RequestID, e.Status, resultBytes(e.Result), e.ResultSize, b2i(e.Test),
		ts(e.CreatedAt)).Scan(&def)
	if err == sql.ErrNoRows {
		return false, nil // emitted before
	}
	if err != nil {
		return false, s.translate("insert event", err)
	}
	e.DefaultVersion = def == 1
	return true, nil
}

const deliveryInsertColumns = `(id, project_id, event_id, webhook_id, test_id, url, host, headers, timeout_ms, retry, include_result,
	status, attempts, next_attempt_at, created_at, updated_at)`

// insertDeliveries writes deliveries in multi-row statements; (event, webhook) duplicates
// are skipped. It returns how many rows were inserted.
func (s *Store) insertDeliveries(ctx context.Context, tx execer, ds []*ubihooks.Delivery) (int, error) {
	const chunk = 500
	total := 0
	for len(ds) > 0 {
		n := min(chunk, len(ds))
		batch := ds[:n]
		ds = ds[n:]
		var b strings.Builder
		b.WriteString(`INSERT INTO deliveries ` + deliveryInsertColumns + ` VALUES `)
		args := make([]any, 0, n*16)
		for i, d := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + placeholders(16) + ")")
			headers, err := ubihooks.MarshalHeaders(d.Headers)
			if err != nil {
				return 0, err
			}
			args = append(args, d.ID, d.ProjectID, d.EventID, nullStr(d.WebhookID), nullStr(d.TestID), d.URL, ubihooks.HostOf(d.URL), headers,
				d.Timeout.Milliseconds(), b2i(d.Retry), b2i(d.IncludeResult), string(ubihooks.DeliveryPending), 0,
				ts(d.NextAttemptAt), ts(d.CreatedAt), ts(d.CreatedAt))
		}
		b.WriteString(` ON CONFLICT (event_id, webhook_id) DO NOTHING`)
		res, err := tx.ExecContext(ctx, s.q(b.String()), args...)
		if err != nil {
			return 0, s.translate("insert deliveries", err)
		}
		k, _ := res.RowsAffected()
		total += int(k)
	}
	return total, nil
}

// CreateWebhookTest records a test with its event and delivery.
func (s *Store) CreateWebhookTest(ctx context.Context, t *ubihooks.WebhookTest, e *ubihooks.Event, d *ubihooks.Delivery) error {
	err := s.tx(ctx, func(tx execer) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO webhook_tests (id, project_id, status, error_message, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`), t.ID, t.ProjectID, string(t.Status), t.ErrorMessage, ts(t.CreatedAt), ts(t.CreatedAt)); err != nil {
			return s.translate("create test", err)
		}
		if _, err := s.insertEvent(ctx, tx, e); err != nil {
			return err
		}
		_, err := s.insertDeliveries(ctx, tx, []*ubihooks.Delivery{d})
		return err
	})
	if err == nil {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
	return err
}

// GetWebhookTest finds a test.
func (s *Store) GetWebhookTest(ctx context.Context, projectID, id string) (*ubihooks.WebhookTest, error) {
	var t ubihooks.WebhookTest
	var created, updated sql.NullInt64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT id, project_id, status, error_message, created_at, updated_at FROM webhook_tests
		WHERE project_id = ? AND id = ?`), projectID, id).Scan(&t.ID, &t.ProjectID, &t.Status, &t.ErrorMessage, &created, &updated)
	if err == sql.ErrNoRows {
		return nil, notFound("webhook test", id)
	}
	if err != nil {
		return nil, s.translate("get test", err)
	}
	t.CreatedAt, t.UpdatedAt = fromTS(created), fromTS(updated)
	return &t, nil
}

const deliveryColumns = `d.id, d.project_id, d.event_id, COALESCE(d.webhook_id, ''), COALESCE(w.name, ''), COALESCE(d.test_id, ''),
	d.url, d.host, d.headers, d.timeout_ms, d.retry, d.include_result, d.status, d.attempts, d.retry_base, d.next_attempt_at, COALESCE(d.lease_owner, ''),
	d.lease_expires_at, COALESCE(d.last_error, ''), COALESCE(d.last_status_code, 0), d.created_at, d.updated_at, d.completed_at`

const deliveryFrom = ` FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.id = d.event_id `

func scanDelivery(row interface{ Scan(...any) error }) (*ubihooks.Delivery, error) {
	var d ubihooks.Delivery
	var headers []byte
	var timeoutMS int64
	var retry, include int
	var next, lease, created, updated, completed sql.NullInt64
	dst := []any{&d.ID, &d.ProjectID, &d.EventID, &d.WebhookID, &d.WebhookName, &d.TestID, &d.URL, &d.Host, &headers, &timeoutMS, &retry,
		&include, &d.Status, &d.Attempts, &d.RetryBase, &next, &d.LeaseOwner, &lease, &d.LastError, &d.LastStatusCode, &created, &updated, &completed}
	e, dst, finish := scanEvent(dst)
	if err := row.Scan(dst...); err != nil {
		return nil, err
	}
	_ = finish()
	if err := decodeTarget(&d, headers, timeoutMS, retry, include); err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.LeaseExpiresAt = fromTS(next), fromTS(lease)
	d.CreatedAt, d.UpdatedAt, d.CompletedAt = fromTS(created), fromTS(updated), fromTS(completed)
	d.Event = e
	return &d, nil
}

// decodeTarget sets a delivery's target fields from their stored forms.
func decodeTarget(d *ubihooks.Delivery, headers []byte, timeoutMS int64, retry, include int) error {
	var err error
	if d.Headers, err = ubihooks.UnmarshalHeaders(headers); err != nil {
		return err
	}
	d.Timeout = time.Duration(timeoutMS) * time.Millisecond
	d.Retry, d.IncludeResult = retry == 1, include == 1
	return nil
}

func (s *Store) queryDeliveries(ctx context.Context, db execer, where string, args ...any) ([]*ubihooks.Delivery, error) {
	rows, err := db.QueryContext(ctx, s.q(`SELECT `+deliveryColumns+`, `+eventColumns+deliveryFrom+where), args...)
	if err != nil {
		return nil, s.translate("query deliveries", err)
	}
	defer rows.Close()
	out := []*ubihooks.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, s.translate("query deliveries", err)
		}
		out = append(out, d)
	}
	return out, s.translate("query deliveries", rows.Err())
}

// ClaimDeliveries leases due deliveries (of one host, or of all but some) to c.Owner.
func (s *Store) ClaimDeliveries(ctx context.Context, c ubihooks.DeliveryClaim) ([]*ubihooks.Delivery, error) {
	if c.Host != "" {
		return s.claim(ctx, c.Owner, c.Limit, c.Lease, c.Now, ` AND host = ?`, []any{c.Host})
	}
	// Walking the due index oldest first has two costs when a few receivers hold a large
	// backlog: skipping a saturated host means reading its whole backlog, and the other
	// hosts' new deliveries wait behind it. So, when few hosts have pending deliveries,
	// the claim looks each host it does not skip up in the index of pending deliveries
	// by host, takes at most its share of the limit from each (oldest first), and keeps
	// the oldest of those: a cost that grows with the hosts, not with the backlog, and a
	// place in every claim for each host that has due deliveries.
	hosts, err := s.pendingHosts(ctx, claimHostsMax+len(c.ExcludeHosts)+1)
	if err != nil {
		return nil, err
	}
	if len(hosts) <= claimHostsMax+len(c.ExcludeHosts) {
		skip := make(map[string]bool, len(c.ExcludeHosts))
		for _, h := range c.ExcludeHosts {
			skip[h] = true
		}
		claimable := hosts[:0:0]
		for _, h := range hosts {
			if !skip[h] {
				claimable = append(claimable, h)
			}
		}
		if len(claimable) == 0 {
			return nil, nil
		}
		share := (c.Limit + len(claimable) - 1) / len(claimable)
		parts := make([]string, len(claimable))
		args := make([]any, 0, 3*len(claimable))
		for i, h := range claimable {
			parts[i] = `SELECT id FROM (SELECT id FROM deliveries WHERE status = 'pending' AND host = ? AND next_attempt_at <= ?
				ORDER BY next_attempt_at, id LIMIT ` + varLimit + `) q` + strconv.Itoa(i)
			args = append(args, h, ts(c.Now), share)
		}
		return s.claim(ctx, c.Owner, c.Limit, c.Lease, c.Now, ` AND id IN (`+strings.Join(parts, ` UNION ALL `)+`)`, args)
	}
	if len(c.ExcludeHosts) == 0 {
		return s.claim(ctx, c.Owner, c.Limit, c.Lease, c.Now, "", nil)
	}
	where, args := ` AND host NOT IN (`+placeholders(len(c.ExcludeHosts))+`)`, []any{}
	for _, h := range c.ExcludeHosts {
		args = append(args, h)
	}
	return s.claim(ctx, c.Owner, c.Limit, c.Lease, c.Now, where, args)
}

// claimHostsMax is the most hosts whose due deliveries a claim looks up one by one; with
// more hosts pending, it walks the due index instead.
const claimHostsMax = 64

// pendingHosts returns up to limit hosts that have pending deliveries (due or not), in
// order, one index seek each (a loose scan of the pending deliveries by host).
func (s *Store) pendingHosts(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`WITH RECURSIVE h(host, n) AS (
			SELECT (SELECT MIN(host) FROM deliveries WHERE status = 'pending'), 1
			UNION ALL
			SELECT (SELECT MIN(d.host) FROM deliveries d WHERE d.status = 'pending' AND d.host > h.host), h.n + 1
			FROM h WHERE h.host IS NOT NULL AND h.n < CAST(? AS INTEGER))
		SELECT host FROM h WHERE host IS NOT NULL`), limit)
	if err != nil {
		return nil, s.translate("pending hosts", err)
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, s.translate("pending hosts", err)
		}
		hosts = append(hosts, h)
	}
	return hosts, s.translate("pending hosts", rows.Err())
}

// claim leases up to limit due deliveries that also match the extra condition where.
func (s *Store) claim(ctx context.Context, owner string, limit int, lease time.Duration, now time.Time, where string, whereArgs []any) ([]*ubihooks.Delivery, error) {
	var claimed []any
	err := s.txVolatile(ctx, func(tx execer) error {
		args := append([]any{owner, ts(now.Add(lease)), ts(now), ts(now)}, whereArgs...)
		args = append(args, limit)
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE deliveries SET status = 'sending', lease_owner = ?, lease_expires_at = ?, updated_at = ?
			WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?`+where+`
			ORDER BY next_attempt_at, id LIMIT `+varLimit+` `+s.d.SkipLocked+`) RETURNING id`), args...)
		if err != nil {
			return s.translate("claim deliveries", err)
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return s.translate("claim deliveries", err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return s.translate("claim deliveries", err)
		}
		claimed = ids
		return nil
	})
	if err != nil || len(claimed) == 0 {
		return nil, err
	}
	// The rows are leased to owner now: read them outside the write transaction, on the
	// reader pool, so that the single SQLite writer does only the claim itself.
	return s.readClaimed(ctx, owner, now, claimed)
}

// readClaimed reads what sending needs of just-claimed deliveries: their own columns, and
// each distinct event once (an event's deliveries to several webhooks are usually claimed
// together, and share it). History-only fields (the webhook's name) are left out.
func (s *Store) readClaimed(ctx context.Context, owner string, now time.Time, ids []any) ([]*ubihooks.Delivery, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT id, project_id, event_id, COALESCE(webhook_id, ''), COALESCE(test_id, ''), url, host,
		headers, timeout_ms, retry, include_result, attempts, retry_base, next_attempt_at, lease_expires_at, COALESCE(last_error, ''),
		COALESCE(last_status_code, 0), created_at FROM deliveries WHERE id IN (`+placeholders(len(ids))+`) AND lease_owner = ?
		ORDER BY next_attempt_at, id`), append(ids, owner)...)
	if err != nil {
		return nil, s.translate("read claimed deliveries", err)
	}
	defer rows.Close()
	out := make([]*ubihooks.Delivery, 0, len(ids))
	events := map[string]*ubihooks.Event{}
	var eventIDs []any
	for rows.Next() {
		d := &ubihooks.Delivery{Status: ubihooks.DeliverySending, LeaseOwner: owner}
		var headers []byte
		var timeoutMS int64
		var retry, include int
		var next, lease, created sql.NullInt64
		if err := rows.Scan(&d.ID, &d.ProjectID, &d.EventID, &d.WebhookID, &d.TestID, &d.URL, &d.Host, &headers, &timeoutMS, &retry,
			&include, &d.Attempts, &d.RetryBase, &next, &lease, &d.LastError, &d.LastStatusCode, &created); err != nil {
			return nil, s.translate("read claimed deliveries", err)
		}
		if err := decodeTarget(d, headers, timeoutMS, retry, include); err != nil {
			return nil, err
		}
		d.NextAttemptAt, d.LeaseExpiresAt, d.CreatedAt = fromTS(next), fromTS(lease), fromTS(created)
		d.UpdatedAt = time.UnixMicro(now.UnixMicro()).UTC()
		if _, ok := events[d.EventID]; !ok {
			events[d.EventID] = nil
			eventIDs = append(eventIDs, d.EventID)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate("read claimed deliveries", err)
	}
	rows.Close()
	if len(out) == 0 {
		return out, nil
	}
	erows, err := s.r.QueryContext(ctx, s.q(`SELECT `+eventColumns+` FROM events e WHERE e.id IN (`+placeholders(len(eventIDs))+`)`), eventIDs...)
	if err != nil {
		return nil, s.translate("read claimed events", err)
	}
	defer erows.Close()
	for erows.Next() {
		e, dst, finish := scanEvent(nil)
		if err := erows.Scan(dst...); err != nil {
			return nil, s.translate("read claimed events", err)
		}
		_ = finish()
		events[e.ID] = e
	}
	if err := erows.Err(); err != nil {
		return nil, s.translate("read claimed events", err)
	}
	// Events are deleted only with their deliveries, so each is found; a delivery without
	// one is left out, as the join of the history queries would.
	kept := out[:0]
	for _, d := range out {
		if d.Event = events[d.EventID]; d.Event != nil {
			kept = append(kept, d)
		}
	}
	return kept, nil
}

// DeferDeliveries moves a saturated host's due deliveries to until. Ties are broken by
// id (time-ordered), so the deferred deliveries keep their order.
func (s *Store) DeferDeliveries(ctx context.Context, host string, until, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE deliveries SET next_attempt_at = ?
		WHERE status = 'pending' AND next_attempt_at <= ? AND host = ?`), ts(until), ts(now), host)
	if err != nil {
		return 0, s.translate("defer deliveries", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// RecordOutcomes stores attempts and new delivery states in one transaction, a few
// multi-row statements per chunk of outcomes (not a few per outcome): recording is on the
// path of every delivery.
func (s *Store) RecordOutcomes(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	if len(outcomes) == 0 {
		return nil
	}
	retried := false
	for _, o := range outcomes {
		retried = retried || o.Status == ubihooks.DeliveryPending
	}
	err := s.tx(ctx, func(tx execer) error {
		// Work on a copy: a transaction function may run again (group commit).
		for rest := outcomes; len(rest) > 0; {
			n := chunkOutcomes(rest)
			if err := s.recordChunk(ctx, tx, rest[:n], now); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err == nil && retried {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
	return err
}

// chunkOutcomes returns how many of outs go in the next chunk recorded: at most 100, and
// each delivery once (an outcome whose lease was lost may come with the outcome of the
// delivery's next claim), so that the rows an update returns tell each outcome's fate.
func chunkOutcomes(outs []ubihooks.Outcome) int {
	const chunk = 100
	seen := make(map[string]struct{}, min(chunk, len(outs)))
	for i, o := range outs {
		if _, dup := seen[o.DeliveryID]; dup || i == chunk {
			return i
		}
		seen[o.DeliveryID] = struct{}{}
	}
	return len(outs)
}

// values renders n rows of typed placeholders for a VALUES list; both engines name its
// columns column1, column2, ….
func values(n int, types ...string) string {
	row := make([]string, len(types))
	for i, t := range types {
		row[i] = "CAST(? AS " + t + ")"
	}
	r := "(" + strings.Join(row, ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(r+", ", n), ", ")
}

func (s *Store) recordChunk(ctx context.Context, tx execer, outs []ubihooks.Outcome, now time.Time) error {
	// New states, only where the lease is still the outcome's owner's. A delivery has a
	// lease owner only while it is sending (claims and dispatch set one with that status;
	// outcomes, releases and rescues clear it with the status they set), so the owner
	// alone says so: a status condition would match the partial index on sending
	// deliveries, which a planner then scans whole, with the entries of every delivery
	// sent since the last vacuum, instead of looking each delivery up by its id.
	//
	// The first attempt recorded with its lease (attempts goes from 0 to 1) is kept in the
	// delivery's row (first_*): for most deliveries, the only attempt. The statement
	// returns the deliveries it updated with their new count, which tells which outcomes
	// were kept so; the chunk holds each delivery once (see chunkOutcomes).
	args := make([]any, 0, 1+len(outs)*11)
	args = append(args, ts(now)) // updated_at comes first in the statement
	ids := make([]any, 0, len(outs))
	final := false // a webhook test's delivery ended: the test mirrors it
	for _, o := range outs {
		var completed any
		if o.Status == ubihooks.DeliverySucceeded || o.Status == ubihooks.DeliveryFailed {
			completed = ts(now)
			final = final || o.WebhookID == "" // only a test's delivery has no webhook
		}
		a := o.Attempt
		args = append(args, o.DeliveryID, string(o.Status), ts(o.NextAttemptAt), a.Error, a.StatusCode, completed, o.Owner,
			ts(a.StartedAt), a.Duration.Microseconds(), a.ErrorClass, a.ResponseBody)
		ids = append(ids, o.DeliveryID)
	}
	rows, err := tx.QueryContext(ctx, s.q(`UPDATE deliveries SET status = v.column2, attempts = attempts + 1,
		next_attempt_at = COALESCE(v.column3, deliveries.next_attempt_at), lease_owner = NULL, lease_expires_at = NULL,
		last_error = v.column4, last_status_code = v.column5, completed_at = v.column6, updated_at = CAST(? AS BIGINT),
		first_started_at = CASE WHEN deliveries.attempts = 0 THEN v.column8 ELSE deliveries.first_started_at END,
		first_duration_us = CASE WHEN deliveries.attempts = 0 THEN v.column9 ELSE deliveries.first_duration_us END,
		first_status_code = CASE WHEN deliveries.attempts = 0 THEN v.column5 ELSE deliveries.first_status_code END,
		first_error_class = CASE WHEN deliveries.attempts = 0 THEN v.column10 ELSE deliveries.first_error_class END,
		first_error = CASE WHEN deliveries.attempts = 0 THEN v.column4 ELSE deliveries.first_error END,
		first_response_body = CASE WHEN deliveries.attempts = 0 THEN v.column11 ELSE deliveries.first_response_body END
		FROM (VALUES `+values(len(outs), "TEXT", "TEXT", "BIGINT", "TEXT", "INTEGER", "BIGINT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT")+`) AS v
		WHERE deliveries.id = v.column1 AND deliveries.lease_owner = v.column7
		RETURNING deliveries.id, deliveries.attempts`), args...)
	if err != nil {
		return s.translate("record outcomes", err)
	}
	kept := make(map[string]bool, len(outs)) // outcomes whose attempt the update kept as the first
	for rows.Next() {
		var id string
		var attempts int
		if err := rows.Scan(&id, &attempts); err != nil {
			rows.Close()
			return s.translate("record outcomes", err)
		}
		kept[id] = attempts == 1
	}
	if err := rows.Close(); err != nil {
		return s.translate("record outcomes", err)
	}
	// The other attempts (later ones, and those whose lease was lost) go to attempts,
	// numbered after those already stored; an outcome for a delivery deleted meanwhile (its
	// webhook was) keeps nothing.
	args = args[:0]
	n := 0
	for _, o := range outs {
		if kept[o.DeliveryID] {
			continue
		}
		a := o.Attempt
		args = append(args, o.DeliveryID, ts(a.StartedAt), a.Duration.Microseconds(), a.StatusCode, a.ErrorClass, a.Error, a.ResponseBody)
		n++
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO attempts (delivery_id, number, started_at, duration_us, status_code,
			error_class, error, response_body)
			SELECT v.column1, (SELECT COUNT(*) + 1 FROM attempts a WHERE a.delivery_id = v.column1)
				+ CASE WHEN d.first_started_at IS NULL THEN 0 ELSE 1 END, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7
			FROM (VALUES `+values(n, "TEXT", "BIGINT", "BIGINT", "INTEGER", "TEXT", "TEXT", "TEXT")+`) AS v
			JOIN deliveries d ON d.id = v.column1`), args...); err != nil {
			return s.translate("record attempts", err)
		}
	}
	if err := s.recordRuns(ctx, tx, outs, now); err != nil {
		return err
	}
	if !final {
		return nil
	}
	// A webhook test mirrors its delivery's final state.
	_, err = tx.ExecContext(ctx, s.q(`UPDATE webhook_tests SET
		status = CASE WHEN d.status = 'succeeded' THEN 'completed' ELSE 'failed' END,
		error_message = CASE WHEN d.status = 'failed' THEN COALESCE(d.last_error, '') ELSE '' END, updated_at = CAST(? AS BIGINT)
		FROM deliveries d WHERE d.test_id = webhook_tests.id AND webhook_tests.status = 'pending'
			AND d.status IN ('succeeded', 'failed') AND d.id IN (`+placeholders(len(ids))+`)`), append([]any{ts(now)}, ids...)...)
	return s.translate("record tests", err)
}

// recordRuns extends or ends the runs of failures of the outcomes' webhooks, in one
// statement that writes only the webhooks whose health changes (a healthy webhook's
// successes write nothing), and parks the retries of webhooks that ubihooks disabled.
func (s *Store) recordRuns(ctx context.Context, tx execer, outs []ubihooks.Outcome, now time.Time) error {
	type run struct {
		succeeded bool // an attempt succeeded: the run starts over from it
		failures  int  // failed attempts after the last success (or all, without one)
	}
	runs := map[string]*run{}
	var retried []any
	for _, o := range outs {
		if o.WebhookID == "" {
			continue
		}
		r := runs[o.WebhookID]
		if r == nil {
			r = &run{}
			runs[o.WebhookID] = r
		}
		if o.Status == ubihooks.DeliverySucceeded {
			r.succeeded, r.failures = true, 0
			continue
		}
		r.failures++
		if o.Status == ubihooks.DeliveryPending {
			retried = append(retried, o.DeliveryID)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	// In id order, so that concurrent recorders lock webhook rows in one order.
	ids := slices.Sorted(maps.Keys(runs))
	args := []any{ts(now), ts(now)}
	for _, id := range ids {
		args = append(args, id, b2i(runs[id].succeeded), runs[id].failures)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE webhooks SET
		consecutive_failures = CASE WHEN v.column2 = 1 THEN v.column3 ELSE webhooks.consecutive_failures + v.column3 END,
		failing_since = CASE WHEN v.column3 = 0 THEN NULL
			WHEN v.column2 = 1 OR webhooks.failing_since IS NULL THEN CAST(? AS BIGINT) ELSE webhooks.failing_since END,
		last_success_at = CASE WHEN v.column2 = 1 THEN CAST(? AS BIGINT) ELSE webhooks.last_success_at END
		FROM (VALUES `+values(len(ids), "TEXT", "INTEGER", "INTEGER")+`) AS v
		WHERE webhooks.id = v.column1 AND (v.column3 > 0 OR webhooks.consecutive_failures <> 0 OR webhooks.health <> '')`),
		args...); err != nil {
		return s.translate("record webhook health", err)
	}
	if len(retried) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`UPDATE deliveries SET status = 'parked', updated_at = ?
		WHERE id IN (`+placeholders(len(retried))+`) AND status = 'pending'
			AND webhook_id IN (SELECT id FROM webhooks WHERE enabled = 0 AND disabled_at IS NOT NULL)`), append([]any{ts(now)}, retried...)...)
	return s.translate("park retries", err)
}

// ReleaseDeliveries returns an owner's leased deliveries to pending without an attempt.
func (s *Store) ReleaseDeliveries(ctx context.Context, owner string, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{string(ubihooks.DeliveryPending), ts(now), string(ubihooks.DeliverySending), owner}
	for _, id := range ids {
		args = append(args, id)
	}
	_, err := s.w.ExecContext(ctx, s.q(`UPDATE deliveries SET status = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
		WHERE status = ? AND lease_owner = ? AND id IN (`+placeholders(len(ids))+`)`), args...)
	if err == nil {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
	return s.translate("release deliveries", err)
}

// RescueDeliveries returns deliveries with expired leases to pending.
func (s *Store) RescueDeliveries(ctx context.Context, now time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE deliveries SET status = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ?,
		next_attempt_at = ? WHERE status = 'sending' AND lease_expires_at < ?`),
		string(ubihooks.DeliveryPending), ts(now), ts(now), ts(now))
	if err != nil {
		return 0, s.translate("rescue deliveries", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		s.notify(ctx, ubihooks.ChannelDeliveries)
	}
	return int(n), nil
}

// NextDeliveryDue returns when the next pending delivery is due.
func (s *Store) NextDeliveryDue(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'`)).Scan(&next)
	if err != nil {
		return time.Time{}, s.translate("next due", err)
	}
	return fromTS(next), nil
}

// DeliveryQueue counts the due and the unfinished deliveries, each count capped at limit
// (a LIMIT under the COUNT: a range of a partial index, never the whole table), and finds
// the oldest due one.
func (s *Store) DeliveryQueue(ctx context.Context, now time.Time, limit int) (ubihooks.DeliveryQueue, error) {
	if limit < 1 {
		return ubihooks.DeliveryQueue{}, ubihooks.Errorf(ubihooks.EINVALID, "delivery queue: limit must be positive")
	}
	var q ubihooks.DeliveryQueue
	var pending, sending int
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT
		(SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? LIMIT ?) due),
		(SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = 'pending' LIMIT ?) pending),
		(SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = 'sending' LIMIT ?) sending),
		(SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'),
		(SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = 'parked' LIMIT ?) parked)`), ts(now), limit, limit, limit, limit).
		Scan(&q.Due, &pending, &sending, &oldest, &q.Parked)
	if err != nil {
		return ubihooks.DeliveryQueue{}, s.translate("delivery queue", err)
	}
	q.Unfinished = min(pending+sending, limit)
	if first := fromTS(oldest); !first.IsZero() && !first.After(now) {
		q.OldestDue = first
	}
	return q, nil
}

// ListWebhookTestAttempts lists the attempts of a test's delivery.
func (s *Store) ListWebhookTestAttempts(ctx context.Context, projectID, testID string) ([]*ubihooks.Attempt, error) {
	return s.queryAttempts(ctx, `d.project_id = ? AND d.test_id = ?`, projectID, testID)
}

// queryAttempts lists the attempts of the deliveries (d) that where selects, by delivery,
// in the order they started: the first, kept in the delivery's row, and those in attempts.
// They are numbered in that order from 1.
func (s *Store) queryAttempts(ctx context.Context, where string, args ...any) ([]*ubihooks.Attempt, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT a.delivery_id, a.number, a.started_at, a.duration_us, a.status_code,
			a.error_class, a.error, a.response_body
		FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE `+where+`
		UNION ALL
		SELECT d.id, 0, d.first_started_at, d.first_duration_us, d.first_status_code, d.first_error_class, d.first_error,
			d.first_response_body
		FROM deliveries d WHERE `+where+` AND d.first_started_at IS NOT NULL
		ORDER BY 1, 3, 2`), append(append([]any{}, args...), args...)...)
	if err != nil {
		return nil, s.translate("list attempts", err)
	}
	defer rows.Close()
	attempts := []*ubihooks.Attempt{}
	for rows.Next() {
		a := &ubihooks.Attempt{}
		var started sql.NullInt64
		var durUS int64
		if err := rows.Scan(&a.DeliveryID, &a.Number, &started, &durUS, &a.StatusCode, &a.ErrorClass, &a.Error, &a.ResponseBody); err != nil {
			return nil, s.translate("list attempts", err)
		}
		a.StartedAt, a.Duration = fromTS(started), time.Duration(durUS)*time.Microsecond
		if n := len(attempts); n > 0 && attempts[n-1].DeliveryID == a.DeliveryID {
			a.Number = attempts[n-1].Number + 1
		} else {
			a.Number = 1
		}
		attempts = append(attempts, a)
	}
	return attempts, s.translate("list attempts", rows.Err())
}

// DeleteExpired removes one batch of each kind of expired record (see ubihooks.Store).
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, batch int) (int, error) {
	stmts := []struct {
		sql  string
		args []any
	}{
		// A delivery goes (with its attempts, by cascade) once every delivery of its event
		// finished before the cut-off — an event's history goes as a whole — and then the
		// event with none left. (The outer status check keeps a delivery made pending
		// again meanwhile, by a redelivery, on engines that re-check rows they delete.)
		{`DELETE FROM deliveries WHERE id IN (SELECT d.id FROM events e JOIN deliveries d ON d.event_id = e.id
			WHERE e.created_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.event_id = e.id
				AND (o.status NOT IN ('succeeded', 'failed') OR o.completed_at >= ?))
			ORDER BY e.created_at LIMIT ?) AND status IN ('succeeded', 'failed') AND completed_at < ?`,
			[]any{ts(before), ts(before), batch, ts(before)}},
		{`DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < ?
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT ?)`, []any{ts(before), batch}},
		{`DELETE FROM webhook_tests WHERE id IN (SELECT id FROM webhook_tests WHERE status <> ? AND updated_at < ? LIMIT ?)`,
			[]any{string(ubihooks.TestPending), ts(before), batch}},
		{`DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE status IN ('completed', 'failed', 'cancelled') AND completed_at < ? LIMIT ?)`,
			[]any{ts(before), batch}},
	}
	total := 0
	for _, st := range stmts {
		res, err := s.w.ExecContext(ctx, s.q(st.sql), st.args...)
		if err != nil {
			return total, s.translate("delete expired", err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	return total, nil
}

// ListSigningKeys returns every signing key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*ubihooks.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, key_id, public_key, sealed_private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, s.translate("list signing keys", err)
	}
	defer rows.Close()
	var out []*ubihooks.SigningKey
	for rows.Next() {
		k := &ubihooks.SigningKey{}
		var created, retired sql.NullInt64
		if err := rows.Scan(&k.ID, &k.KeyID, &k.PublicKey, &k.SealedPrivate, &created, &retired); err != nil {
			return nil, s.translate("list signing keys", err)
		}
		k.CreatedAt, k.RetiredAt = fromTS(created), fromTS(retired)
		out = append(out, k)
	}
	return out, s.translate("list signing keys", rows.Err())
}

// AddSigningKey stores k as the active key. With rotate, the active key is retired first;
// without it, ECONFLICT tells that another process already created an active key.
func (s *Store) AddSigningKey(ctx context.Context, k *ubihooks.SigningKey, rotate bool) error {
	return s.tx(ctx, func(tx execer) error {
		if rotate {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE signing_keys SET active = NULL, retired_at = ? WHERE active = 1`), ts(k.CreatedAt)); err != nil {
				return s.translate("retire signing key", err)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO signing_keys (id, key_id, public_key, sealed_private, active, created_at)
			VALUES (?, ?, ?, ?, 1, ?)`), k.ID, k.KeyID, k.PublicKey, k.SealedPrivate, ts(k.CreatedAt))
		if err != nil && s.d.IsUnique(err) {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "an active signing key already exists")
		}
		return s.translate("add signing key", err)
	})
}

// PruneSigningKeys deletes keys retired before `before`.
func (s *Store) PruneSigningKeys(ctx context.Context, before time.Time) error {
	_, err := s.w.ExecContext(ctx, s.q(`DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?`), ts(before))
	return s.translate("prune signing keys", err)
}
