package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ubihooks/ubihooks"
)

// hourUS is an hour in the stores' time unit (microseconds).
const hourUS = int64(time.Hour / time.Microsecond)

// WebhookStats sums up the deliveries of a project's webhooks created since `since`, and
// their attempts, in one statement (one snapshot, one round trip, whatever the number of
// webhooks). Its rows are of three kinds, told apart by the first column:
//
//	'w'  one per webhook: its id, name and the status of its newest delivery of the window;
//	'c'  deliveries counted by webhook, status and hour of creation (n: the hour from since);
//	'a'  the newest StatsSampleSize attempts of each webhook: n the start, t the duration.
//
// Every part reaches deliveries through deliveries_webhook (webhook_id, created_at), and
// attempts through attempts_delivery (a delivery's first attempt is in its own row): the
// cost is that of the window's deliveries.
func (s *Store) WebhookStats(ctx context.Context, projectID string, since time.Time, webhookName string) ([]*ubihooks.WebhookStats, error) {
	hooks, hookArgs := `w.project_id = ?`, []any{projectID}
	if webhookName != "" {
		hooks += ` AND w.name = ?`
		hookArgs = append(hookArgs, webhookName)
	}
	window := ` FROM webhooks w JOIN deliveries d ON d.webhook_id = w.id AND d.created_at >= ?`
	var args []any
	add := func(a ...any) { args = append(args, a...) }
	add(ts(since))
	add(hookArgs...)
	add(ts(since), hourUS, ts(since))
	add(hookArgs...)
	add(ts(since))
	add(hookArgs...)
	add(ts(since))
	add(hookArgs...)
	add(ubihooks.StatsSampleSize)
	rows, err := s.r.QueryContext(ctx, s.q(`
		SELECT 'w', w.id, w.name, COALESCE((SELECT d.status FROM deliveries d WHERE d.webhook_id = w.id AND d.created_at >= ?
			ORDER BY d.created_at DESC, d.id DESC LIMIT 1), ''), CAST(0 AS BIGINT), CAST(0 AS BIGINT)
		FROM webhooks w WHERE `+hooks+`
		UNION ALL
		SELECT 'c', b.webhook_id, '', b.status, b.hour, COUNT(*) FROM (
			SELECT d.webhook_id, d.status, (d.created_at - ?) / CAST(? AS BIGINT) AS hour`+window+` WHERE `+hooks+`
		) b GROUP BY b.webhook_id, b.status, b.hour
		UNION ALL
		SELECT 'a', x.webhook_id, '', '', x.started_at, x.duration_us FROM (
			SELECT y.webhook_id, y.started_at, y.duration_us,
				ROW_NUMBER() OVER (PARTITION BY y.webhook_id ORDER BY y.started_at DESC, y.delivery_id DESC, y.number DESC) AS rn
			FROM (
				SELECT d.webhook_id, d.id AS delivery_id, a.number, a.started_at, a.duration_us`+window+`
				JOIN attempts a ON a.delivery_id = d.id WHERE `+hooks+`
				UNION ALL
				SELECT d.webhook_id, d.id, 0, d.first_started_at, d.first_duration_us`+window+`
				WHERE `+hooks+` AND d.first_started_at IS NOT NULL
			) y
		) x WHERE x.rn <= CAST(? AS BIGINT)`), args...)
	if err != nil {
		return nil, s.translate("webhook stats", err)
	}
	defer rows.Close()
	byID := map[string]*ubihooks.WebhookStats{}
	hours := map[string]map[int64]*ubihooks.StatsBucket{}
	samples := map[string][]time.Duration{}
	get := func(id string) *ubihooks.WebhookStats {
		st := byID[id]
		if st == nil {
			st = &ubihooks.WebhookStats{WebhookID: id}
			byID[id] = st
		}
		return st
	}
	for rows.Next() {
		var kind, id, name, status string
		var n, v int64
		if err := rows.Scan(&kind, &id, &name, &status, &n, &v); err != nil {
			return nil, s.translate("webhook stats", err)
		}
		st := get(id)
		switch kind {
		case "w":
			st.WebhookName, st.LastStatus = name, status
		case "c":
			hour := hours[id][n]
			if hour == nil && (status == string(ubihooks.DeliverySucceeded) || status == string(ubihooks.DeliveryFailed)) {
				if hours[id] == nil {
					hours[id] = map[int64]*ubihooks.StatsBucket{}
				}
				hour = &ubihooks.StatsBucket{Start: since.Add(time.Duration(n) * time.Hour)}
				hours[id][n] = hour
			}
			switch ubihooks.DeliveryStatus(status) {
			case ubihooks.DeliverySucceeded:
				st.Succeeded += int(v)
				hour.Succeeded += int(v)
			case ubihooks.DeliveryFailed:
				st.Failed += int(v)
				hour.Failed += int(v)
			case ubihooks.DeliveryParked:
				st.Parked += int(v)
			default: // pending or sending
				st.Pending += int(v)
			}
		case "a":
			samples[id] = append(samples[id], time.Duration(v)*time.Microsecond)
			if at := time.UnixMicro(n).UTC(); at.After(st.LastAttemptAt) {
				st.LastAttemptAt = at
			}
		default:
			return nil, fmt.Errorf("sqlstore: webhook stats: unexpected row kind %q", kind)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate("webhook stats", err)
	}
	out := make([]*ubihooks.WebhookStats, 0, len(byID))
	for id, st := range byID {
		st.SuccessRate = ubihooks.SuccessRate(st.Succeeded, st.Failed)
		ds := samples[id]
		slices.Sort(ds)
		st.Attempts, st.P50, st.P95 = len(ds), ubihooks.DurationPercentile(ds, 50), ubihooks.DurationPercentile(ds, 95)
		st.Buckets = []ubihooks.StatsBucket{}
		for _, b := range hours[id] {
			st.Buckets = append(st.Buckets, *b)
		}
		slices.SortFunc(st.Buckets, func(a, b ubihooks.StatsBucket) int { return a.Start.Compare(b.Start) })
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *ubihooks.WebhookStats) int { return cmp.Compare(a.WebhookName, b.WebhookName) })
	return out, nil
}
