// Package metrics owns ubihooks' Prometheus metrics: their definitions on a registry of
// their own (no package globals, no default registerer), the small recording methods that
// the delivery engine, the executor and the HTTP handlers call through their observer
// hooks, and a collector that reads gauges at scrape time. No other package imports
// Prometheus: cmd/ubihooks wires a *Metrics into the others' observer fields.
//
// Labels are bounded: outcomes, error classes, statuses and route patterns only, never
// webhook names, URLs, hosts or ids.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ubihooks/ubihooks"
)

// QueueCountLimit caps the counts of due and unfinished deliveries that a scrape asks the
// store for, so that a scrape stays cheap however large a backlog grows: the gauges
// saturate at it.
const QueueCountLimit = 100_000

// queueTimeout bounds the store query of a scrape.
const queueTimeout = 5 * time.Second

// Metrics holds the registry and the collectors recorded into. Its methods are safe for
// concurrent use; a nil *Metrics is not usable (leave the observer fields nil instead).
type Metrics struct {
	// Registry holds every metric of this Metrics, the Go and process collectors included.
	Registry *prometheus.Registry

	deliveriesFinished *prometheus.CounterVec
	attempts           *prometheus.CounterVec
	attemptDuration    prometheus.Histogram
	requestsFinished   *prometheus.CounterVec
	httpRequests       *prometheus.CounterVec
	httpDuration       *prometheus.HistogramVec
	healthChanges      *prometheus.CounterVec
	storeWrite         *prometheus.HistogramVec
	storeBatch         *prometheus.HistogramVec

	// The counters of the known label values, resolved once: the delivery path counts
	// without hashing labels. Written only by New, then read-only.
	finishedBy map[string]prometheus.Counter
	attemptsBy map[string]prometheus.Counter
	writeBy    map[string][2]prometheus.Observer // duration, batch size
}

// The label values known in advance; their series exist (at 0) from the start, so that
// rate() and alerts see them before the first event.
var (
	outcomes     = []string{"succeeded", "failed", "refused_by_policy"}
	errorClasses = []string{"none", ubihooks.ClassHTTPStatus, ubihooks.ClassTimeout, ubihooks.ClassDNS, ubihooks.ClassConnect,
		ubihooks.ClassTLS, ubihooks.ClassRefusedByPolicy, ubihooks.ClassOther}
	storeOps        = []string{"claim", "record"}
	requestStatuses = []string{string(ubihooks.RequestCompleted), string(ubihooks.RequestFailed)}
)

// New returns metrics on a new registry, with the Go and process collectors registered.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		deliveriesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ubihooks_deliveries_finished_total",
			Help: "Deliveries that reached a final state, by outcome (succeeded, failed, refused_by_policy).",
		}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ubihooks_delivery_attempts_total",
			Help: "Recorded delivery attempts (HTTP calls to receivers), by error class (none when accepted).",
		}, []string{"error_class"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ubihooks_delivery_attempt_duration_seconds",
			Help:    "Duration of recorded delivery attempts, from the start of the call to its classified end.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		requestsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ubihooks_executor_requests_finished_total",
			Help: "Requests this replica's executor ran to an end that it recorded, by status (completed, failed).",
		}, []string{"status"}),
		storeWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ubihooks_store_write_duration_seconds",
			Help:    "Duration of the delivery engine's committed write transactions: claims of due deliveries (op=claim) and batches of recorded outcomes (op=record).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		storeBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ubihooks_store_write_batch_size",
			Help:    "Deliveries claimed (op=claim) or outcomes recorded (op=record) per committed write transaction of the delivery engine.",
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, []string{"op"}),
		healthChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ubihooks_webhook_health_changes_total",
			Help: "Webhook health changes this replica found: failing (a run of failed attempts), disabled (ubihooks disabled the webhook and parks its events), recovered.",
		}, []string{"change"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ubihooks_http_requests_total",
			Help: "HTTP requests answered by the API and the UI, by route pattern (unmatched when none took it) and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ubihooks_http_request_duration_seconds",
			Help:    "Duration of HTTP requests answered by the API and the UI, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	m.finishedBy, m.attemptsBy = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, o := range outcomes {
		m.finishedBy[o] = m.deliveriesFinished.WithLabelValues(o)
	}
	for _, c := range errorClasses {
		m.attemptsBy[c] = m.attempts.WithLabelValues(c)
	}
	for _, s := range requestStatuses {
		m.requestsFinished.WithLabelValues(s)
	}
	m.writeBy = map[string][2]prometheus.Observer{}
	for _, op := range storeOps {
		m.writeBy[op] = [2]prometheus.Observer{m.storeWrite.WithLabelValues(op), m.storeBatch.WithLabelValues(op)}
	}
	for _, k := range ubihooks.WebhookHealthKinds {
		m.healthChanges.WithLabelValues(healthLabel(k))
	}
	m.Registry.MustRegister(m.deliveriesFinished, m.attempts, m.attemptDuration, m.requestsFinished, m.httpRequests, m.httpDuration,
		m.healthChanges, m.storeWrite, m.storeBatch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// DeliveryFinished counts a delivery that reached a final state (delivery.Observer).
func (m *Metrics) DeliveryFinished(outcome string) {
	if c, ok := m.finishedBy[outcome]; ok {
		c.Inc()
		return
	}
	m.deliveriesFinished.WithLabelValues(outcome).Inc()
}

// Attempt counts a recorded attempt and observes its duration (delivery.Observer); an
// empty error class is counted as "none".
func (m *Metrics) Attempt(errorClass string, d time.Duration) {
	if errorClass == "" {
		errorClass = "none"
	}
	if c, ok := m.attemptsBy[errorClass]; ok {
		c.Inc()
	} else {
		m.attempts.WithLabelValues(errorClass).Inc()
	}
	m.attemptDuration.Observe(d.Seconds())
}

// RequestFinished counts a run the executor finished (executor.Observer).
func (m *Metrics) RequestFinished(status string) {
	m.requestsFinished.WithLabelValues(status).Inc()
}

// StoreWrite observes a committed write transaction of the delivery engine
// (delivery.Observer): its duration and the deliveries or outcomes it wrote.
func (m *Metrics) StoreWrite(op string, n int, d time.Duration) {
	o, ok := m.writeBy[op]
	if !ok {
		o = [2]prometheus.Observer{m.storeWrite.WithLabelValues(op), m.storeBatch.WithLabelValues(op)}
	}
	o[0].Observe(d.Seconds())
	o[1].Observe(float64(n))
}

// WebhookHealthChange counts a change of a webhook's health (service.HealthConfig.Observe).
func (m *Metrics) WebhookHealthChange(c *ubihooks.WebhookHealthChange) {
	m.healthChanges.WithLabelValues(healthLabel(c.Kind)).Inc()
}

// healthLabel is the change label of a health change: "failing", "disabled", "recovered".
func healthLabel(k ubihooks.WebhookHealthKind) string {
	return strings.TrimPrefix(string(k), "webhook.")
}

// HTTPRequest counts an answered HTTP request and observes its duration (a
// handler.ObserveFunc). route must be a pattern, never a raw path.
func (m *Metrics) HTTPRequest(route string, status int, d time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// Gauges are the sources of the gauges read at scrape time. Nil functions leave their
// gauges out.
type Gauges struct {
	// DeliveryQueueFunc reads the store's queue (ubihooks.Store.DeliveryQueue).
	DeliveryQueueFunc func(ctx context.Context, now time.Time, limit int) (ubihooks.DeliveryQueue, error)
	// EngineFunc returns the delivery engine's sends in flight, claimed deliveries
	// waiting for a send slot, and stuck destinations.
	EngineFunc func() (sending, waiting, stuck int)
	// ExecutorFunc returns the executor's running requests and claimed requests waiting for
	// a slot of their version.
	ExecutorFunc func() (running, queued int)
	// NowFunc is the clock (default time.Now).
	NowFunc func() time.Time
}

// Watch registers a collector that reads g at each scrape.
func (m *Metrics) Watch(g Gauges) {
	if g.NowFunc == nil {
		g.NowFunc = time.Now
	}
	m.Registry.MustRegister(&gaugeCollector{g: g})
}

var (
	descDue = prometheus.NewDesc("ubihooks_deliveries_due",
		"Pending deliveries whose next attempt is due, in the whole database (capped at 100000).", nil, nil)
	descUnfinished = prometheus.NewDesc("ubihooks_deliveries_pending",
		"Deliveries not finished (pending, due or not, and sending), in the whole database (capped at 100000).", nil, nil)
	descOldestDue = prometheus.NewDesc("ubihooks_oldest_due_delivery_age_seconds",
		"How long the longest-waiting due delivery has been due (0 when none is due).", nil, nil)
	descParked = prometheus.NewDesc("ubihooks_deliveries_parked",
		"Deliveries parked for webhooks that ubihooks disabled (their receivers kept failing): kept, not sent, until the webhook is enabled and they are redelivered (capped at 100000).", nil, nil)
	descSending = prometheus.NewDesc("ubihooks_sends_in_flight",
		"Webhook HTTP calls in flight in this replica's delivery engine.", nil, nil)
	descWaiting = prometheus.NewDesc("ubihooks_sends_waiting",
		"Deliveries this replica claimed that wait for a send slot.", nil, nil)
	descStuck = prometheus.NewDesc("ubihooks_destinations_stuck",
		"Destinations (host:port) that answer nothing, as this replica's engine sees them: their due deliveries are deferred until one answers.", nil, nil)
	descRunning = prometheus.NewDesc("ubihooks_executor_requests_running",
		"Requests running in this replica's executor.", nil, nil)
	descQueued = prometheus.NewDesc("ubihooks_executor_requests_queued",
		"Requests this replica's executor claimed that wait for a slot of their version.", nil, nil)
)

// gaugeCollector reads the gauges at scrape time.
type gaugeCollector struct{ g Gauges }

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDue, descUnfinished, descOldestDue, descParked, descSending, descWaiting, descStuck, descRunning, descQueued} {
		ch <- d
	}
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	if f := c.g.DeliveryQueueFunc; f != nil {
		ctx, cancel := context.WithTimeout(context.Background(), queueTimeout)
		now := c.g.NowFunc()
		q, err := f(ctx, now, QueueCountLimit)
		cancel()
		if err != nil {
			// The rest of the scrape is served (promhttp.ContinueOnError) and the error logged.
			ch <- prometheus.NewInvalidMetric(descDue, err)
		} else {
			gauge(descDue, float64(q.Due))
			gauge(descUnfinished, float64(q.Unfinished))
			age := 0.0
			if !q.OldestDue.IsZero() {
				age = max(0, now.Sub(q.OldestDue).Seconds())
			}
			gauge(descOldestDue, age)
			gauge(descParked, float64(q.Parked))
		}
	}
	if f := c.g.EngineFunc; f != nil {
		sending, waiting, stuck := f()
		gauge(descSending, float64(sending))
		gauge(descWaiting, float64(waiting))
		gauge(descStuck, float64(stuck))
	}
	if f := c.g.ExecutorFunc; f != nil {
		running, queued := f()
		gauge(descRunning, float64(running))
		gauge(descQueued, float64(queued))
	}
}

// Handler serves the registry in the Prometheus exposition formats. A collector that fails
// (the store unreachable) leaves its metrics out of the scrape and is logged to log (nil:
// discarded); the rest is served.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorLog: errorLog{log}, ErrorHandling: promhttp.ContinueOnError})
}

// errorLog adapts a slog.Logger to promhttp.Logger.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) { l.log.Error("metrics scrape", "err", fmt.Sprint(v...)) }
