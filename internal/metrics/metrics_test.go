package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ubihooks/ubihooks"
)

// scrape serves m and parses its text exposition.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.Reader(rec.Body))
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

func TestMetricsRecording(t *testing.T) {
	t.Parallel()
	m := New()
	fams := scrape(t, m)
	for _, o := range outcomes {
		if v := value(t, fams, "ubihooks_deliveries_finished_total", map[string]string{"outcome": o}); v != 0 {
			t.Errorf("outcome %s starts at %v, want 0", o, v)
		}
	}
	m.DeliveryFinished("succeeded")
	m.DeliveryFinished("succeeded")
	m.DeliveryFinished("refused_by_policy")
	m.Attempt("", 20*time.Millisecond)
	m.Attempt(ubihooks.ClassHTTPStatus, 2*time.Second)
	m.RequestFinished("completed")
	m.HTTPRequest("GET /projects/{project_name}", 200, time.Millisecond)
	m.HTTPRequest("unmatched", 404, time.Millisecond)
	m.StoreWrite("record", 40, 3*time.Millisecond)
	m.StoreWrite("record", 2, time.Millisecond)
	m.StoreWrite("claim", 128, 2*time.Millisecond)
	m.WebhookHealthChange(&ubihooks.WebhookHealthChange{Kind: ubihooks.WebhookDisabled})
	fams = scrape(t, m)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "succeeded"}, 2},
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "failed"}, 0},
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "refused_by_policy"}, 1},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "none"}, 1},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "http_status"}, 1},
		{"ubihooks_delivery_attempt_duration_seconds", nil, 2},
		{"ubihooks_executor_requests_finished_total", map[string]string{"status": "completed"}, 1},
		{"ubihooks_http_requests_total", map[string]string{"route": "GET /projects/{project_name}", "code": "200"}, 1},
		{"ubihooks_http_requests_total", map[string]string{"route": "unmatched", "code": "404"}, 1},
		{"ubihooks_http_request_duration_seconds", map[string]string{"route": "unmatched"}, 1},
		{"ubihooks_store_write_duration_seconds", map[string]string{"op": "record"}, 2},
		{"ubihooks_store_write_duration_seconds", map[string]string{"op": "claim"}, 1},
		{"ubihooks_store_write_batch_size", map[string]string{"op": "record"}, 2},
		{"ubihooks_webhook_health_changes_total", map[string]string{"change": "disabled"}, 1},
		{"ubihooks_webhook_health_changes_total", map[string]string{"change": "recovered"}, 0},
	} {
		if got := value(t, fams, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_start_time_seconds"] == nil && fams["process_cpu_seconds_total"] == nil {
		t.Errorf("the Go and process collectors are missing")
	}
}

func TestMetricsGauges(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := New()
	var limit int
	m.Watch(Gauges{
		DeliveryQueueFunc: func(_ context.Context, at time.Time, l int) (ubihooks.DeliveryQueue, error) {
			limit = l
			if !at.Equal(now) {
				t.Errorf("queue read at %v, want %v", at, now)
			}
			return ubihooks.DeliveryQueue{Due: 3, Unfinished: 7, OldestDue: now.Add(-90 * time.Second), Parked: 6}, nil
		},
		EngineFunc:   func() (int, int, int) { return 4, 2, 8 },
		ExecutorFunc: func() (int, int) { return 5, 1 },
		NowFunc:      func() time.Time { return now },
	})
	fams := scrape(t, m)
	for name, want := range map[string]float64{
		"ubihooks_deliveries_due": 3, "ubihooks_deliveries_pending": 7, "ubihooks_oldest_due_delivery_age_seconds": 90,
		"ubihooks_sends_in_flight": 4, "ubihooks_sends_waiting": 2, "ubihooks_executor_requests_running": 5,
		"ubihooks_executor_requests_queued": 1, "ubihooks_deliveries_parked": 6, "ubihooks_destinations_stuck": 8,
	} {
		if got := value(t, fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if limit != QueueCountLimit {
		t.Errorf("queue limit %d, want %d", limit, QueueCountLimit)
	}
}

// TestMetricsStoreDown: a failing store leaves the queue gauges out; the rest is served.
func TestMetricsStoreDown(t *testing.T) {
	t.Parallel()
	m := New()
	m.Watch(Gauges{
		DeliveryQueueFunc: func(context.Context, time.Time, int) (ubihooks.DeliveryQueue, error) {
			return ubihooks.DeliveryQueue{}, errors.New("database is down")
		},
		EngineFunc: func() (int, int, int) { return 1, 0, 0 },
	})
	fams := scrape(t, m)
	if fams["ubihooks_deliveries_due"] != nil {
		t.Errorf("ubihooks_deliveries_due served although the store failed")
	}
	if got := value(t, fams, "ubihooks_sends_in_flight", nil); got != 1 {
		t.Errorf("ubihooks_sends_in_flight = %v, want 1", got)
	}
	var names []string
	for n := range fams {
		names = append(names, n)
	}
	if !strings.Contains(strings.Join(names, " "), "ubihooks_delivery_attempts_total") {
		t.Errorf("counters missing from a scrape with a failing store: %v", names)
	}
}
