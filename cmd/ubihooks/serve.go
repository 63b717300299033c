package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/executor"
	"github.com/ubihooks/ubihooks/internal/handler"
	"github.com/ubihooks/ubihooks/internal/metrics"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/web"
)

// serveConfig is the configuration of `ubihooks serve`.
type serveConfig struct {
	dbConfig
	Listen          string
	MetricsListen   string
	AllowNetworks   string
	Retention       time.Duration
	KeyOverlap      time.Duration
	ShutdownTimeout time.Duration
	MaxInFlight     int
	MaxPerHost      int
	Lease           time.Duration
	RescueInterval  time.Duration
	Executors       int
	MaxBodyMemoryMB int
	UI              bool
	SecureCookies   bool

	FailingAfter       int
	DisableAfter       time.Duration
	DisableMinFailures int
	HealthInterval     time.Duration
	OperationsWebhook  string
}

func (m *Main) serveFlags(name string, c *serveConfig) *flag.FlagSet {
	fs := m.newFlagSet(name)
	m.dbFlags(fs, &c.dbConfig)
	m.logFlags(fs, &c.dbConfig)
	m.envFlag(fs, &c.Listen, "listen", "UBIHOOKS_LISTEN", "127.0.0.1:8080", "address of the API")
	m.envFlag(fs, &c.MetricsListen, "metrics-listen", "UBIHOOKS_METRICS_LISTEN", "", "address that serves Prometheus metrics at /metrics instead of the API's address (e.g. 127.0.0.1:9090)")
	m.envFlag(fs, &c.AllowNetworks, "allow-networks", "UBIHOOKS_ALLOW_NETWORKS", "", "comma-separated networks that webhooks and backends may reach although private (e.g. 127.0.0.0/8,10.1.0.0/16)")
	m.envDuration(fs, &c.Retention, "retention", "UBIHOOKS_RETENTION", 30*24*time.Hour, "how long finished deliveries, tests and requests are kept")
	m.envDuration(fs, &c.KeyOverlap, "key-overlap", "UBIHOOKS_KEY_OVERLAP", 7*24*time.Hour, "how long a rotated-out signing key stays published")
	m.envDuration(fs, &c.ShutdownTimeout, "shutdown-timeout", "UBIHOOKS_SHUTDOWN_TIMEOUT", 15*time.Second, "how long in-flight work may finish on SIGTERM before it is released")
	m.envInt(fs, &c.MaxInFlight, "max-in-flight", "UBIHOOKS_MAX_IN_FLIGHT", 256, "concurrent webhook sends per replica")
	m.envInt(fs, &c.MaxPerHost, "max-per-host", "UBIHOOKS_MAX_PER_HOST", 32, "concurrent webhook sends per destination host:port")
	m.envDuration(fs, &c.Lease, "lease", "UBIHOOKS_LEASE", 90*time.Second, "how long a replica holds claimed work before others may rescue it")
	m.envDuration(fs, &c.RescueInterval, "rescue-interval", "UBIHOOKS_RESCUE_INTERVAL", 10*time.Second, "how often expired leases are rescued")
	m.envInt(fs, &c.MaxBodyMemoryMB, "max-body-memory", "UBIHOOKS_MAX_BODY_MEMORY", api.DefaultMaxBodyMemory>>20, "MiB of request bodies held at once; beyond it calls are answered 429 with Retry-After (peak memory grows by up to about 6 times this figure)")
	m.envInt(fs, &c.Executors, "executors", "UBIHOOKS_EXECUTORS", 64, "concurrent requests run per replica (each version is also bounded by its maximum_instances)")
	m.envBool(fs, &c.UI, "ui", "UBIHOOKS_UI", true, "serve the web UI under /ui/ (--ui=false: the API only)")
	def := ubihooks.DefaultWebhookHealthPolicy()
	m.envInt(fs, &c.FailingAfter, "failing-after", "UBIHOOKS_FAILING_AFTER", def.FailingAfter, "report a webhook failing (webhook.failing) after this many failed attempts in a row (0: never)")
	m.envDuration(fs, &c.DisableAfter, "disable-after", "UBIHOOKS_DISABLE_AFTER", def.DisableAfter, "disable a webhook whose every attempt failed for this long (then its events are parked, not sent; 0: never)")
	m.envInt(fs, &c.DisableMinFailures, "disable-min-failures", "UBIHOOKS_DISABLE_MIN_FAILURES", def.MinFailures, "the fewest failed attempts in a row that disable a webhook, however long they lasted")
	m.envDuration(fs, &c.HealthInterval, "health-interval", "UBIHOOKS_HEALTH_INTERVAL", 30*time.Second, "how often webhook health is checked")
	m.envFlag(fs, &c.OperationsWebhook, "operations-webhook", "UBIHOOKS_OPERATIONS_WEBHOOK", "", "URL that receives webhook.failing, webhook.disabled and webhook.recovered as signed JSON POSTs (a private address needs --allow-networks)")
	m.envBool(fs, &c.SecureCookies, "secure-cookies", "UBIHOOKS_SECURE_COOKIES", false, "mark the UI's session cookie Secure even when TLS ends at a proxy in front (it is Secure anyway on TLS connections)")
	return fs
}

// healthPolicy checks the webhook health flags.
func (c *serveConfig) healthPolicy() (ubihooks.WebhookHealthPolicy, error) {
	p := ubihooks.WebhookHealthPolicy{FailingAfter: c.FailingAfter, DisableAfter: c.DisableAfter, MinFailures: c.DisableMinFailures}
	switch {
	case c.FailingAfter < 0:
		return p, fmt.Errorf("--failing-after must not be negative, got %d", c.FailingAfter)
	case c.DisableAfter < 0:
		return p, fmt.Errorf("--disable-after must not be negative, got %s", c.DisableAfter)
	case c.DisableMinFailures < 1:
		return p, fmt.Errorf("--disable-min-failures must be at least 1, got %d", c.DisableMinFailures)
	case c.HealthInterval <= 0:
		return p, fmt.Errorf("--health-interval must be positive, got %s", c.HealthInterval)
	}
	if c.OperationsWebhook != "" {
		u, err := ubihooks.NormalizeURL(c.OperationsWebhook)
		if err != nil {
			return p, fmt.Errorf("--operations-webhook: %s", ubihooks.ErrorMessage(err))
		}
		c.OperationsWebhook = u
	}
	return p, nil
}

func (m *Main) serve(ctx context.Context, args []string) error {
	var c serveConfig
	fs := m.serveFlags("serve", &c)
	if err := m.parse(fs, args); err != nil {
		return err
	}
	log, err := c.logger(m.Stderr)
	if err != nil {
		return err
	}
	if c.MaxBodyMemoryMB < 1 {
		return fmt.Errorf("--max-body-memory must be at least 1 (MiB), got %d", c.MaxBodyMemoryMB)
	}
	allow, err := parseAllowNetworks(c.AllowNetworks)
	if err != nil {
		return err
	}
	policy, err := c.healthPolicy()
	if err != nil {
		return err
	}
	// Listen first: a server that cannot serve (its port taken) must not have created a
	// database or a key file on its way to failing.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	defer ln.Close()
	var metricsLn net.Listener
	if c.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", c.MetricsListen); err != nil {
			return fmt.Errorf("listen on %s (--metrics-listen): %w", c.MetricsListen, err)
		}
		defer metricsLn.Close()
	}
	st, svc, closeDB, err := c.open(ctx, log, c.KeyOverlap, openOptions{create: true, lock: true})
	if err != nil {
		return err
	}
	defer closeDB()
	if err := svc.EnsureSigningKey(ctx); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	// Fail now, not at the first delivery, when the encryption key is not this database's.
	if _, _, err := svc.Signer(ctx); err != nil {
		return fmt.Errorf("signing key: %s", ubihooks.ErrorMessage(err))
	}

	transport := outbound.NewTransport(outbound.TransportConfig{AllowNetworks: allow})
	client := outbound.NewClient(transport)
	owner := ownerID()
	met := metrics.New()
	engine := delivery.NewEngine(delivery.Config{
		Store: st, Client: client, SignerFunc: svc.Signer, OpenHeadersFunc: svc.OpenHeaders, Owner: owner,
		MaxInFlight: c.MaxInFlight, MaxPerHost: c.MaxPerHost, Lease: c.Lease, RescueInterval: c.RescueInterval,
		UserAgent: "ubihooks/" + version(), Logger: log.With("component", "delivery"), Observer: met,
	})
	// New deliveries go to this engine as they are emitted, leased to it in the emitting
	// transaction (no claim needed); what it has no room for waits in the queue for claims.
	st.SetDispatcher(engine)
	exec := executor.New(executor.Config{
		Service: svc, Store: st, Client: client, Owner: owner, Concurrency: c.Executors, Lease: c.Lease,
		RescueInterval: c.RescueInterval, Logger: log.With("component", "executor"), Observer: met,
	})
	met.Watch(metrics.Gauges{
		DeliveryQueueFunc: st.DeliveryQueue,
		EngineFunc:        func() (int, int, int) { s := engine.Stats(); return s.Sending, s.Waiting, s.Stuck },
		ExecutorFunc:      func() (int, int) { s := exec.Stats(); return s.Running, s.Queued },
	})
	listenCtx, stopListen := context.WithCancel(context.WithoutCancel(ctx))
	defer stopListen()
	st.Subscribe(listenCtx, func(ch ubihooks.Channel) {
		if ch == ubihooks.ChannelRequests {
			exec.Notify()
			return
		}
		engine.Notify()
	})
	cleaner := svc.NewCleaner(service.CleanerConfig{Retention: c.Retention})
	watcher := svc.NewHealthWatcher(service.HealthConfig{Policy: policy, Interval: c.HealthInterval,
		OperationsURL: c.OperationsWebhook, Client: client, Observe: met.WebhookHealthChange})

	apiHandler := api.New(api.Config{Service: svc, Logger: log.With("component", "api"), Version: version(), RequestRetention: c.Retention,
		MaxBodyMemory: int64(c.MaxBodyMemoryMB) << 20, ObserveFunc: met.HTTPRequest})
	var root http.Handler = apiHandler
	if c.UI {
		ui, err := web.New(web.Config{Service: svc, Logger: log.With("component", "ui"), Version: version(), SecureCookies: c.SecureCookies, ObserveFunc: met.HTTPRequest})
		if err != nil {
			return fmt.Errorf("web UI: %w", err)
		}
		root = web.Mount(apiHandler, ui)
	}
	metricsHandler := met.Handler(log.With("component", "metrics"))
	if metricsLn == nil {
		root = withMetrics(root, metricsHandler)
	}
	probes := &health{store: st, log: log.With("component", "health"), next: root}
	srv := &http.Server{Handler: probes, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	services := []namedService{{"delivery engine", engine}, {"executor", exec}, {"cleaner", cleaner}, {"webhook health", watcher}}
	if err := startServices(ctx, services, log); err != nil {
		return err
	}
	probes.running.Store(true)
	errc := make(chan error, 2)
	// Even the answers that net/http writes before any handler runs are JSON.
	go func() { errc <- srv.Serve(handler.Listener(ln)) }()
	httpServers := []namedService{{"http server", httpService{srv}}}
	addr := ln.Addr().String()
	attrs := []any{"addr", "http://" + addr + "/v2.1"}
	if c.UI {
		attrs = append(attrs, "ui", "http://"+addr+"/ui/")
	}
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metricsHandler)
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { errc <- msrv.Serve(metricsLn) }()
		httpServers = append(httpServers, namedService{"metrics server", httpService{msrv}})
		attrs = append(attrs, "metrics", "http://"+metricsLn.Addr().String()+"/metrics")
	} else {
		attrs = append(attrs, "metrics", "http://"+addr+"/metrics")
	}
	log.Info("ubihooks serving", append(attrs, "database", redactDSN(c.Database), "version", version(), "owner", owner)...)
	if m.OnListenFunc != nil {
		m.OnListenFunc(addr)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	log.Info("shutting down", "timeout", c.ShutdownTimeout)
	probes.running.Store(false) // readiness fails first: load balancers stop sending
	// Waiting direct requests are answered now: one that waited for its run would hold
	// the HTTP drain for as long as its timeout.
	svc.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	// Every part stops at once and drains in parallel within the one grace: the engine and
	// the executor stop claiming and starting work at the signal, not once the parts
	// stopped before them are done, and no part uses up the grace of another.
	shutdownServices(sctx, append(httpServers, services...), log)
	stopListen()
	log.Info("stopped")
	return nil
}

// withMetrics serves GET (and HEAD) /metrics with metrics ahead of next, which serves
// everything else.
func withMetrics(next, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			metrics.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// httpService stops the HTTP server as a background service: Shutdown closes the
// listener and waits for the requests in progress.
type httpService struct{ srv *http.Server }

func (httpService) Start(context.Context) error { return nil }

func (h httpService) Stop(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// shutdownServices stops services all at once, each within ctx, and logs when each
// stopped, and which did not stop cleanly. (startServices stops those it started in
// reverse order instead: nothing is in flight then.)
func shutdownServices(ctx context.Context, services []namedService, log *slog.Logger) {
	var wg sync.WaitGroup
	start := time.Now()
	for _, s := range services {
		wg.Go(func() {
			if err := s.svc.Stop(ctx); err != nil {
				log.Warn(s.name+" shutdown", "err", err, "took", time.Since(start).Round(time.Millisecond))
				return
			}
			log.Info(s.name+" stopped", "took", time.Since(start).Round(time.Millisecond))
		})
	}
	wg.Wait()
}

// backgroundService is the one lifecycle of what serve runs beside its HTTP server (the
// delivery engine, the executor, the cleaner).
type backgroundService interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// namedService is a background service with the name its log lines give it.
type namedService struct {
	name string
	svc  backgroundService
}

// startServices starts services in order. When one fails, those already started are
// stopped in reverse, and its error is returned.
func startServices(ctx context.Context, services []namedService, log *slog.Logger) error {
	for i, s := range services {
		if err := s.svc.Start(ctx); err != nil {
			stopServices(ctx, services[:i], log)
			return fmt.Errorf("start the %s: %w", s.name, err)
		}
	}
	return nil
}

// stopServices stops services in reverse order, each within ctx, and logs what did not
// stop cleanly.
func stopServices(ctx context.Context, services []namedService, log *slog.Logger) {
	for _, s := range slices.Backward(services) {
		if err := s.svc.Stop(ctx); err != nil {
			log.Warn(s.name+" shutdown", "err", err)
		}
	}
}

// redactDSN hides a password in a database URL for logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
