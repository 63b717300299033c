package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// TestFirstAttemptInDeliveryRow: a delivery's first attempt is kept in its own row, so a
// delivery that succeeds at once writes nothing to attempts; a retry's attempt goes there,
// numbered after the first, and the history lists both in order.
func TestFirstAttemptInDeliveryRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, p, o, v, _ := newHookedStore(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 2 {
		e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: p.ID, ProjectName: "p", Type: ubihooks.EventDeploymentCompleted,
			ObjectType: ubihooks.ObjectDeployment, ObjectID: o.ID, ObjectName: "d", VersionID: v.ID, VersionName: "v1",
			RequestID: fmt.Sprint("r", i), Status: "completed", CreatedAt: now}
		if _, err := st.EmitEvents(ctx, []*ubihooks.Event{e}, now); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := st.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 10, Lease: time.Minute, Now: now})
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim = %d deliveries, %v; want 2", len(ds), err)
	}
	once, retried := ds[0], ds[1]
	first := ubihooks.Attempt{StartedAt: now, Duration: time.Millisecond, StatusCode: 204, ResponseBody: "ok"}
	failed := ubihooks.Attempt{StartedAt: now, Duration: 2 * time.Millisecond, StatusCode: 503, ErrorClass: ubihooks.ClassHTTPStatus,
		Error: "HTTP 503", ResponseBody: "busy"}
	if err := st.RecordOutcomes(ctx, []ubihooks.Outcome{
		{DeliveryID: once.ID, WebhookID: once.WebhookID, Owner: "w1", Status: ubihooks.DeliverySucceeded, Attempt: first},
		{DeliveryID: retried.ID, WebhookID: retried.WebhookID, Owner: "w1", Status: ubihooks.DeliveryPending, NextAttemptAt: now, Attempt: failed},
	}, now); err != nil {
		t.Fatal(err)
	}
	rowsIn := func() int {
		t.Helper()
		var n int
		if err := st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM attempts`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rowsIn(); n != 0 {
		t.Errorf("attempts holds %d rows after two first attempts, want 0 (they are kept in the deliveries' rows)", n)
	}
	later := now.Add(time.Second)
	if ds, err := st.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "w2", Limit: 10, Lease: time.Minute, Now: later}); err != nil || len(ds) != 1 {
		t.Fatalf("claim of the retry = %d deliveries, %v; want 1", len(ds), err)
	}
	second := ubihooks.Attempt{StartedAt: later, Duration: 3 * time.Millisecond, StatusCode: 200, ResponseBody: "done"}
	if err := st.RecordOutcomes(ctx, []ubihooks.Outcome{{DeliveryID: retried.ID, WebhookID: retried.WebhookID, Owner: "w2",
		Status: ubihooks.DeliverySucceeded, Attempt: second}}, later); err != nil {
		t.Fatal(err)
	}
	var number int
	if err := st.DB().QueryRowContext(ctx, `SELECT number FROM attempts WHERE delivery_id = ?`, retried.ID).Scan(&number); err != nil || number != 2 {
		t.Errorf("the retry's attempt in attempts: number %d, %v; want 2", number, err)
	}
	for _, c := range []struct {
		d    *ubihooks.Delivery
		want []ubihooks.Attempt
	}{{once, []ubihooks.Attempt{first}}, {retried, []ubihooks.Attempt{failed, second}}} {
		_, as, err := st.GetDelivery(ctx, p.ID, c.d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) != len(c.want) {
			t.Fatalf("delivery %s: %d attempts, want %d", c.d.ID, len(as), len(c.want))
		}
		for i, a := range as {
			w := c.want[i]
			w.DeliveryID, w.Number = c.d.ID, i+1
			if *a != w {
				t.Errorf("delivery %s attempt %d = %+v, want %+v", c.d.ID, i+1, *a, w)
			}
		}
	}
}
