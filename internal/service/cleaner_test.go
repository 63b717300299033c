package service_test

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// cleanerStores returns the stores to run the retention test on: SQLite always, and
// PostgreSQL when UBIHOOKS_TEST_POSTGRES_URL is set (required under CI).
func cleanerStores(t *testing.T) map[string]func(t *testing.T) *sqlstore.Store {
	stores := map[string]func(t *testing.T) *sqlstore.Store{
		"sqlite": func(t *testing.T) *sqlstore.Store { return ubihookstest.NewStore(t, sqlite.Options{}) },
	}
	if base := ubihookstest.PostgresBase(t); base != "" {
		stores["postgres"] = func(t *testing.T) *sqlstore.Store {
			st, err := postgres.Open(context.Background(), ubihookstest.PostgresSchema(t, base), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st.Store
		}
	}
	return stores
}

// TestCleanerBoundsTables runs ten days of steady load (requests, events, deliveries with
// attempts, webhook tests) with a two-day retention: after the first days every table stops
// growing, although the cleaner removes at most 7 rows per statement.
func TestCleanerBoundsTables(t *testing.T) {
	for name, open := range cleanerStores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := open(t)
			box, _ := secret.New(bytes.Repeat([]byte{3}, secret.KeySize))
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			svc := service.New(service.Config{Store: st, Box: box, NowFunc: func() time.Time { return clock }})
			p, err := svc.CreateProject(ctx, "p", "org", nil)
			if err != nil {
				t.Fatal(err)
			}
			o, err := svc.CreateObject(ctx, p.ID, ubihooks.ObjectDeployment, ubihooks.ObjectCreate{Name: "d", InputType: "plain", OutputType: "plain"})
			if err != nil {
				t.Fatal(err)
			}
			v, err := svc.CreateVersion(ctx, o, ubihooks.VersionCreate{Version: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateWebhook(ctx, p.ID, ubihooks.WebhookCreate{Name: "w", ObjectType: "deployment", ObjectName: "d",
				Event: "deployment_request_finished", URL: "http://receiver.example/hook"}); err != nil {
				t.Fatal(err)
			}
			cleaner := svc.NewCleaner(service.CleanerConfig{Retention: 48 * time.Hour, Batch: 7})
			const perDay = 40
			tables := []string{"deliveries", "attempts", "events", "webhook_tests", "requests"}
			var history []map[string]int
			for day := 0; day < 10; day++ {
				clock = time.Date(2026, 1, 1+day, 12, 0, 0, 0, time.UTC)
				inputs := make([]stdjson.RawMessage, perDay)
				for i := range inputs {
					inputs[i] = stdjson.RawMessage(`"hello"`)
				}
				rs, err := svc.CreateRequests(ctx, service.CreateRequestsParams{Project: p, Object: o, Version: v, Inputs: inputs, Batch: true, Timeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					if _, err := svc.Transition(ctx, service.TransitionParams{Request: r, From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestCompleted, Result: stdjson.RawMessage(`"ok"`)}); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < 5; i++ {
					if _, err := svc.CreateWebhookTest(ctx, p, ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "d",
						Event: "deployment_request_completed", URL: "http://receiver.example/test"}); err != nil {
						t.Fatal(err)
					}
				}
				// Deliver everything in two attempts: a failure retried at once, then a success
				// (the first attempt is kept in the delivery's row, the second in attempts).
				for {
					ds, err := st.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 100, Lease: time.Minute, Now: clock})
					if err != nil {
						t.Fatal(err)
					}
					if len(ds) == 0 {
						break
					}
					var outs []ubihooks.Outcome
					for _, d := range ds {
						o := ubihooks.Outcome{DeliveryID: d.ID, Owner: "w1", Status: ubihooks.DeliverySucceeded,
							Attempt: ubihooks.Attempt{StartedAt: clock, StatusCode: 204}}
						if d.Attempts == 0 {
							o.Status, o.NextAttemptAt = ubihooks.DeliveryPending, clock
							o.Attempt.StatusCode, o.Attempt.ErrorClass, o.Attempt.Error = 500, "status", "HTTP 500"
						}
						outs = append(outs, o)
					}
					if err := st.RecordOutcomes(ctx, outs, clock); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := cleaner.RunOnce(ctx); err != nil {
					t.Fatal(err)
				}
				counts := map[string]int{}
				for _, tbl := range tables {
					var n int
					if err := st.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tbl).Scan(&n); err != nil {
						t.Fatal(err)
					}
					counts[tbl] = n
				}
				history = append(history, counts)
			}
			// Per day: 40 requests, each with two events (completed, finished) of which one has a
			// webhook, so 40 deliveries with a second attempt each in attempts; 5 tests, each with
			// an event and a delivery. With a 48h retention at most 3 days are kept.
			limits := map[string]int{"requests": 3 * perDay, "deliveries": 3 * (perDay + 5), "attempts": 3 * (perDay + 5),
				"events": 3 * (2*perDay + 5), "webhook_tests": 3 * 5}
			last := history[len(history)-1]
			for _, tbl := range tables {
				if last[tbl] == 0 || last[tbl] > limits[tbl] {
					t.Errorf("%s: %d rows after 10 days, want between 1 and %d", tbl, last[tbl], limits[tbl])
				}
				if history[5][tbl] != last[tbl] {
					t.Errorf("%s keeps growing: %d rows on day 6, %d on day 10", tbl, history[5][tbl], last[tbl])
				}
			}
			t.Logf("%s rows per day: %v", name, history)
		})
	}
}

// TestCleanerLifecycle: Start refuses an invalid configuration and a second start, runs a
// pass at once (removing what expired) and another on Notify or at each Interval; Stop is
// harmless before Start and when repeated.
func TestCleanerLifecycle(t *testing.T) {
	t.Parallel()
	env := ubihookstest.New(t, ubihookstest.Options{})
	ctx, svc := env.Ctx, env.Service
	for name, cfg := range map[string]service.CleanerConfig{
		"negative retention": {Retention: -time.Hour},
		"negative interval":  {Interval: -time.Second},
		"negative batch":     {Batch: -1},
	} {
		c := svc.NewCleaner(cfg)
		if err := c.Start(ctx); err == nil {
			_ = c.Stop(ctx)
			t.Errorf("%s: Start = nil, want an error", name)
		}
		if err := c.Stop(ctx); err != nil {
			t.Errorf("%s: Stop after a failed Start = %v, want nil", name, err)
		}
	}

	// Ten requests finish now; the cleaner starts three days later with a two-day retention.
	o := env.Object(ubihooks.ObjectDeployment, "d", "v1")
	inputs := make([]stdjson.RawMessage, 10)
	for i := range inputs {
		inputs[i] = stdjson.RawMessage(`{}`)
	}
	rs, err := svc.CreateRequests(ctx, service.CreateRequestsParams{Project: env.Project, Object: o, Version: env.Version(o, "v1"), Inputs: inputs, Batch: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if _, err := svc.Transition(ctx, service.TransitionParams{Request: r, From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestCompleted, Result: stdjson.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	env.Clock.Advance(72 * time.Hour)

	c := svc.NewCleaner(service.CleanerConfig{Retention: 48 * time.Hour, Interval: time.Hour})
	c.TestSignals.Init()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start = %v, want nil", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err == nil {
		t.Error("second Start = nil, want an error")
	}
	if pass := c.TestSignals.Ran.Wait(t, 10*time.Second); pass.Err != nil || pass.Rows < len(rs) {
		t.Errorf("first pass = %+v, want at least the %d expired requests removed", pass, len(rs))
	}
	if c.TestSignals.Ran.Pending() {
		t.Error("a second pass ran before the interval or a Notify")
	}
	c.Notify()
	if pass := c.TestSignals.Ran.Wait(t, 10*time.Second); pass.Err != nil || pass.Rows != 0 {
		t.Errorf("pass after Notify = %+v, want nothing left to remove", pass)
	}
	for i := 0; i < 2; i++ {
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop #%d = %v, want nil", i+1, err)
		}
	}
	if n, err := svc.ListRequests(ctx, ubihooks.RequestFilter{ProjectID: env.Project.ID, ObjectID: o.ID, Limit: 100}); err != nil || len(n) != 0 {
		t.Errorf("requests left: %d (%v), want none", len(n), err)
	}

	// Without Notify, passes follow each other at Interval.
	fast := svc.NewCleaner(service.CleanerConfig{Interval: time.Millisecond})
	fast.TestSignals.Init()
	if err := fast.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		fast.TestSignals.Ran.Wait(t, 10*time.Second)
	}
	if err := fast.Stop(ctx); err != nil {
		t.Error(err)
	}
}
