package api_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestBulkRecoveryTenThousand: 10,000 deliveries fail while their receiver is down; once
// it is back, POST …/deliveries/redeliver (a dry run, then calls of at most 1,000 until
// "more" is false) sends every one again through the real engine, and each event arrives
// exactly once with its original id. The figures (calls, time to queue, time until the
// last arrival) are logged, not asserted: go test -v -run TestBulkRecoveryTenThousand.
func TestBulkRecoveryTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 deliveries: not with -short")
	}
	t.Parallel()
	const total = 10000
	e := savedEnv(t)
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	arrived := map[string]int{} // event id → arrivals once the receiver is back
	rcv := e.Receiver(ubihookstest.ReceiverConfig{Respond: func(a *ubihookstest.Arrival, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		arrived[a.ID()]++
		mu.Unlock()
	}})
	e.A.MustDo("POST", "/webhooks", webhook("bulk", set("url", rcv.URL+"/bulk")), 201)

	// 10,000 completed requests of dep's default version, recorded in one transaction.
	o, err := e.Service.GetObject(e.Ctx, e.Project.ID, ubihooks.ObjectDeployment, "dep")
	if err != nil {
		t.Fatal(err)
	}
	v := e.Version(o, "v1")
	since := e.Service.Now()
	events := make([]*ubihooks.Event, total)
	want := map[string]bool{}
	for i := range events {
		id := uuid.NewString()
		events[i] = &ubihooks.Event{ID: ubihooks.EventID(id, ubihooks.EventDeploymentCompleted), ProjectID: e.Project.ID,
			ProjectName: e.Project.Name, Type: ubihooks.EventDeploymentCompleted, ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name,
			VersionID: v.ID, VersionName: v.Name, RequestID: id, Status: "completed", CreatedAt: since}
		want[events[i].ID] = true
	}
	if _, err := e.Store.EmitEvents(e.Ctx, events, since); err != nil {
		t.Fatal(err)
	}
	failed := func() int {
		st, err := e.Service.WebhookStats(e.Ctx, e.Project.ID, time.Hour, "bulk")
		if err != nil {
			t.Fatal(err)
		}
		return st[0].Failed
	}
	t0 := time.Now()
	e.Until(2*time.Minute, "10,000 failed deliveries", func() bool { return failed() == total })
	t.Logf("the outage: %d deliveries failed in %v", total, time.Since(t0).Round(time.Millisecond))

	down.Store(false)
	start := time.Now()
	body := M{"since": since.Format(time.RFC3339Nano)}
	dry := e.A.MustObj("POST", "/webhooks/bulk/deliveries/redeliver", M{"since": body["since"], "dry_run": true}, 200)
	if dry["count"] != float64(total) || dry["more"] != true || dry["limit"] != 1000.0 {
		t.Fatalf("dry run = %v, want a count of %d, more and a limit of 1000", dry, total)
	}
	sum, calls := 0, 0
	for more := true; more; calls++ {
		if calls == 20 {
			t.Fatalf("still more after %d calls (%d redelivered)", calls, sum)
		}
		got := e.A.MustObj("POST", "/webhooks/bulk/deliveries/redeliver", body, 200)
		n, _ := got["count"].(float64)
		sum += int(n)
		more = got["more"] == true
	}
	queued := time.Since(start)
	if sum != total {
		t.Errorf("redelivered %d in %d calls, want %d", sum, calls, total)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(arrived) }
	rcv.Until(t, 2*time.Minute, "every recovered event", func() bool { return count() >= total })
	received := time.Since(start)
	e.Until(time.Minute, "every recovered delivery succeeded", func() bool {
		st, err := e.Service.WebhookStats(e.Ctx, e.Project.ID, time.Hour, "bulk")
		return err == nil && st[0].Succeeded == total
	})
	all := time.Since(start)
	mu.Lock()
	for id, n := range arrived {
		if !want[id] || n != 1 {
			t.Errorf("event %s arrived %d times after the recovery (one of the failed: %v), want once", id, n, want[id])
		}
	}
	mu.Unlock()
	t.Logf("bulk recovery of %d failed deliveries: %d calls (plus a dry run) queued them in %v; the last arrived after %v, all recorded succeeded after %v (%.0f/s)",
		sum, calls, queued.Round(time.Millisecond), received.Round(time.Millisecond), all.Round(time.Millisecond), float64(total)/all.Seconds())
}
