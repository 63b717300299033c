package sqlstore_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// plan returns SQLite's query plan of query, one line per step.
func plan(t *testing.T, st *sqlstore.Store, query string, args []any) []string {
	t.Helper()
	rows, err := st.DB().QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, query)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notUsed int
		var detail string
		if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeliveryLookupsUseIndexes: the listings of a webhook's deliveries (filtered or not,
// paged or not), the lookups by event or request across a project, and the selection of
// a bulk redelivery read through indexes (migration 0006), never scanning a table; a
// webhook's listing comes out of its index in order, with no sort.
func TestDeliveryLookupsUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "plan.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A delivery for the cursor (a test's: it needs no webhook).
	if err := sqlstore.ExecTx(ctx, st, `INSERT INTO events (id, project_id, project_name, type, object_type, object_id, object_name,
		version_id, version_name, default_version, request_id, status, created_at) VALUES ('e', 'p', 'p', 't', 'deployment', 'o', 'o',
		'v', 'v', 1, 'r', 'completed', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.ExecTx(ctx, st, `INSERT INTO deliveries (id, project_id, event_id, url, host, headers, timeout_ms, retry,
		include_result, status, next_attempt_at, created_at, updated_at) VALUES ('d', 'p', 'e', 'u', 'h', '', 1, 0, 0, 'failed', 1, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	const (
		byWebhook = "deliveries_webhook_created (webhook_id=?"
		byEvent   = "sqlite_autoindex_deliveries_2 (event_id=?" // the unique key on (event_id, webhook_id)
		byRequest = byEvent                                     // a request's event ids are derived from its id
	)
	for _, c := range []struct {
		name   string
		f      ubihooks.DeliveryFilter
		via    string // a step of the plan has this
		sorted bool   // comes out of an index in order
	}{
		{"webhook", ubihooks.DeliveryFilter{WebhookID: "w"}, byWebhook, true},
		{"webhook, page", ubihooks.DeliveryFilter{WebhookID: "w", Before: "d"}, byWebhook + " AND (created_at,id)<(?,?))", true},
		{"webhook, status, page", ubihooks.DeliveryFilter{WebhookID: "w", Status: "failed", Before: "d"}, byWebhook, true},
		{"webhook, event", ubihooks.DeliveryFilter{WebhookID: "w", EventID: "e"}, byEvent, false},
		{"webhook, request", ubihooks.DeliveryFilter{WebhookID: "w", RequestID: "r"}, byRequest, false},
		{"project, event", ubihooks.DeliveryFilter{EventID: "e"}, byEvent, false},
		{"project, event, status, page", ubihooks.DeliveryFilter{EventID: "e", Status: "failed", Before: "d"}, byEvent, false},
		{"project, request", ubihooks.DeliveryFilter{RequestID: "r"}, byRequest, false},
		{"project, request, status, page", ubihooks.DeliveryFilter{RequestID: "r", Status: "pending", Before: "d"}, byRequest, false},
	} {
		c.f.ProjectID, c.f.Limit = "p", 50
		query, args, err := sqlstore.DeliveryListSQL(ctx, st, c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		steps := plan(t, st, query, args)
		for _, s := range steps {
			if strings.HasPrefix(s, "SCAN ") || c.sorted && strings.Contains(s, "TEMP B-TREE") {
				t.Errorf("%s: the plan %q has %q", c.name, steps, s)
			}
		}
		if !slices.ContainsFunc(steps, func(s string) bool { return strings.Contains(s, c.via) }) {
			t.Errorf("%s: the plan %q does not search %s", c.name, steps, c.via)
		}
	}
	for name, f := range map[string]ubihooks.RedeliverFilter{
		"webhook":           {WebhookID: "w"},
		"webhook and times": {WebhookID: "w", Since: time.Unix(1, 0), Until: time.Unix(2, 0)},
	} {
		f.ProjectID, f.Status, f.Limit = "p", "failed", 1000
		query, args := sqlstore.RedeliverSQL(st, f)
		steps := plan(t, st, query, args)
		if !strings.Contains(steps[0], byWebhook) {
			t.Errorf("redeliver, %s: the plan %q does not search %s", name, steps, byWebhook)
		}
		for _, s := range steps {
			if strings.HasPrefix(s, "SCAN ") || strings.Contains(s, "TEMP B-TREE") {
				t.Errorf("redeliver, %s: the plan %q has %q", name, steps, s)
			}
		}
	}
}
