package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ubihooks/ubihooks/internal/metrics"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/postgres"
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
)

// benchConfig is the configuration of `ubihooks bench`.
type benchConfig struct {
	Events       int
	Webhooks     int
	Receivers    int
	Concurrency  int
	Emitters     int
	Database     string
	Replicas     int
	StallTimeout time.Duration
	NoStall      bool
	Metrics      bool
	Synchronous  string
	CPUProfile   string
	MemProfile   string
	Unrecorded   int
	Prefetch     int
	Flush        time.Duration
	PerHost      int
	Scenario     string
	Deliveries   int
	Rate         float64
	Duration     time.Duration
}

// webhookOptions are the settings of the bench's webhooks.
type webhookOptions struct {
	timeout time.Duration
	retry   bool
}

// bench measures delivery throughput and latency: a raw baseline (sign + POST the same
// payload with the same concurrency, no persistence) against ubihooks end to end (events
// fanned out through the store, claimed, signed, sent and recorded), all in one process
// and one run so that both see the same machine.
func (m *Main) bench(ctx context.Context, args []string) error {
	var c benchConfig
	fs := m.newFlagSet("bench")
	fs.IntVar(&c.Events, "events", 5000, "events to emit at full load (half load emits half as many)")
	fs.IntVar(&c.Webhooks, "webhooks", 4, "webhooks per event (the fan-out)")
	fs.IntVar(&c.Receivers, "receivers", 4, "local receivers the webhooks are spread over")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "concurrent sends, for the baseline and the engine alike")
	fs.IntVar(&c.Emitters, "emitters", 16, "concurrent emitters at full load (like API clients or request executors)")
	fs.StringVar(&c.Database, "database", "", "database to benchmark: empty for a temporary SQLite file, or a postgres:// URL")
	fs.IntVar(&c.Replicas, "replicas", 1, "engines (replicas) sharing the database, each with its own pool (PostgreSQL)")
	fs.DurationVar(&c.StallTimeout, "stall-timeout", 2*time.Second, "webhook timeout of the receiver that never answers (stall scenario)")
	fs.BoolVar(&c.NoStall, "no-stall", false, "skip the stall scenario")
	fs.BoolVar(&c.Metrics, "metrics", true, "record Prometheus metrics as serve does (--metrics=false: without, to see their cost)")
	fs.IntVar(&c.PerHost, "max-per-host", 0, "engine MaxPerHost (default: a quarter of --concurrency)")
	fs.IntVar(&c.Unrecorded, "max-unrecorded", 0, "engine MaxUnrecorded (default: the engine's)")
	fs.IntVar(&c.Prefetch, "prefetch", 0, "engine Prefetch (default: the engine's)")
	fs.DurationVar(&c.Flush, "flush-interval", 0, "engine FlushInterval (default: the engine's)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write an allocation profile (pprof allocs: every allocation of the run, sampled) to this file when the bench ends")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile to this file: of the end-to-end phases (and the second raw baseline between them), or of the drain (--scenario backlog)")
	fs.StringVar(&c.Synchronous, "sqlite-synchronous", "", "SQLite PRAGMA synchronous (default: the server's, FULL)")
	fs.StringVar(&c.Scenario, "scenario", "burst", "burst (full and half load, stall), backlog (a queue drained after its receivers' outage) or sustained (a paced load)")
	fs.IntVar(&c.Deliveries, "deliveries", 1_000_000, "backlog: deliveries queued while their receivers are down (spread over --webhooks)")
	fs.Float64Var(&c.Rate, "rate", 0, "sustained: deliveries/s offered (0: search for the highest rate with p99 under 50 ms and no backlog growth)")
	fs.DurationVar(&c.Duration, "duration", 0, "sustained: how long the rate is offered (default 5m, or 10s per step of a search)")
	if err := m.parse(fs, args); err != nil {
		return err
	}
	if c.PerHost <= 0 {
		c.PerHost = max(1, c.Concurrency/4)
	}
	if c.Events < 10 || c.Webhooks < 1 || c.Receivers < 1 || c.Concurrency < 1 || c.Replicas < 1 {
		return fmt.Errorf("bench: events >= 10 and webhooks, receivers, concurrency, replicas >= 1")
	}
	if c.Rate < 0 || c.Duration < 0 {
		return fmt.Errorf("bench: --rate and --duration must not be negative")
	}
	if c.Duration == 0 {
		c.Duration = 5 * time.Minute
		if c.Rate == 0 {
			c.Duration = 10 * time.Second
		}
	}
	if c.MemProfile != "" {
		f, err := os.Create(c.MemProfile)
		if err != nil {
			return err
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(m.Stderr, "bench: memprofile: %v\n", err)
			}
			f.Close()
		}()
	}
	switch c.Scenario {
	case "burst":
	case "backlog":
		return m.benchBacklog(ctx, c)
	case "sustained":
		return m.benchSustained(ctx, c)
	default:
		return fmt.Errorf("bench: --scenario %q: use burst, backlog or sustained", c.Scenario)
	}
	out := m.Stdout
	fmt.Fprintf(out, "ubihooks bench: %d events x %d webhooks over %d receivers, concurrency %d (%d per host), %d replica(s), database %s\n",
		c.Events, c.Webhooks, c.Receivers, c.Concurrency, c.PerHost, c.Replicas, benchDBName(c.Database))

	recv := newBenchReceivers(c.Receivers)
	defer recv.close()

	// (a) Raw baseline, measured before and after the full-load run and averaged: on a
	// shared machine the speed drifts, and the two bracket the run they are compared with.
	cpu0 := cpuSeconds()
	rawBefore, err := rawBaseline(ctx, recv, c)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "raw baseline:   %8.0f sends/s   (%d sends, cpu %.2fs)\n", rawBefore, c.Events*c.Webhooks, cpuSeconds()-cpu0)

	// (b) End to end.
	w, err := newBenchWorld(ctx, c, recv, webhookOptions{timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer w.close()
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 = cpuSeconds()
	claimed0 := w.claims.claimed.Load()
	full, err := w.run(ctx, c.Events, 0, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "full load:      %8.0f deliveries/s   p50 %.1f ms   p99 %.1f ms   (cpu %.2fs; %d of %d claimed, the rest dispatched at emission)\n",
		full.perSecond, full.p50, full.p99, cpuSeconds()-cpu0, w.claims.claimed.Load()-claimed0, c.Events*c.Webhooks)
	cpu0 = cpuSeconds()
	rawAfter, err := rawBaseline(ctx, recv, c)
	if err != nil {
		return err
	}
	raw := (rawBefore + rawAfter) / 2
	fmt.Fprintf(out, "raw baseline:   %8.0f sends/s   (again, after the full load; cpu %.2fs); mean %.0f\n", rawAfter, cpuSeconds()-cpu0, raw)
	rate := full.perSecond / 2 / float64(c.Webhooks) // events/s at half load
	cpu0 = cpuSeconds()
	half, err := w.run(ctx, c.Events/2, rate, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "half load:      %8.0f deliveries/s   p50 %.1f ms   p99 %.1f ms   (%.0f events/s offered, cpu %.2fs)\n",
		half.perSecond, half.p50, half.p99, rate, cpuSeconds()-cpu0)

	if !c.NoStall {
		stall := newStallReceiver()
		defer stall.close()
		if err := w.addWebhook(ctx, "bench-stall", stall.url, c.StallTimeout, false); err != nil {
			return err
		}
		cpu0 = cpuSeconds()
		st, err := w.run(ctx, c.Events/2, rate, stall)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "stall scenario: fast receivers p50 %.1f ms   p99 %.1f ms (no-stall p99 %.1f ms, ratio %.2f); stalled receiver held %d calls open, max %d at once (cpu %.2fs)\n",
			st.p50, st.p99, half.p99, st.p99/math.Max(half.p99, 0.001), stall.total.Load(), stall.peak.Load(), cpuSeconds()-cpu0)
	}
	fmt.Fprintf(out, "peak RSS %.0f MiB, total cpu %.2fs\n", peakRSSMiB(), cpuSeconds())
	fmt.Fprintf(out, "deliveries_per_s=%.0f raw_per_s=%.0f ratio=%.2f p50_ms=%.1f p99_ms=%.1f\n",
		full.perSecond, raw, full.perSecond/raw, half.p50, half.p99)
	return nil
}

func benchDBName(db string) string {
	if db == "" {
		return "sqlite (temporary file)"
	}
	return redactDSN(db)
}

// benchReceivers are local receivers that record each delivery's latency from the event's
// timestamp (when it was emitted) to its receipt.
type benchReceivers struct {
	servers []*http.Server
	urls    []string
	mu      sync.Mutex
	lat     []float64 // ms
	arrived []int64   // when each of lat arrived (Unix ns: no pointers for the GC to scan)
	count   atomic.Int64
	done    chan struct{}
	want    int64
}

func newBenchReceivers(n int) *benchReceivers {
	r := &benchReceivers{}
	for i := 0; i < n; i++ {
		srv, addr := serveLocal(http.HandlerFunc(r.handle))
		r.servers = append(r.servers, srv)
		r.urls = append(r.urls, fmt.Sprintf("http://%s/hook/%d", addr, i))
	}
	return r
}

// serveLocal serves h on a free loopback port and returns the server and its address.
func serveLocal(h http.Handler) (*http.Server, net.Addr) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln) //nolint:errcheck
	return srv, ln.Addr()
}

func (r *benchReceivers) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	now := time.Now()
	var p struct {
		Timestamp time.Time `json:"timestamp"`
	}
	if json.Unmarshal(body, &p) == nil && !p.Timestamp.IsZero() {
		r.mu.Lock()
		r.lat = append(r.lat, float64(now.Sub(p.Timestamp).Microseconds())/1000)
		r.arrived = append(r.arrived, now.UnixNano())
		r.mu.Unlock()
	}
	if n := r.count.Add(1); n == r.want && r.done != nil {
		close(r.done)
	}
	w.WriteHeader(http.StatusNoContent)
}

// expect resets the counters for a phase of n deliveries.
func (r *benchReceivers) expect(n int) {
	r.mu.Lock()
	r.lat, r.arrived = r.lat[:0], r.arrived[:0]
	r.mu.Unlock()
	r.count.Store(0)
	r.want = int64(n)
	r.done = make(chan struct{})
}

func (r *benchReceivers) close() {
	for _, s := range r.servers {
		s.Close()
	}
}

// stallReceiver never answers: every call to it runs to the webhook's timeout.
type stallReceiver struct {
	srv        *http.Server
	url        string
	open, peak atomic.Int64
	total      atomic.Int64
	stop       chan struct{}
	stopOnce   sync.Once
}

func newStallReceiver() *stallReceiver {
	s := &stallReceiver{stop: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the body first: only then does the server notice when the sender gives up.
		_, _ = io.Copy(io.Discard, r.Body)
		n := s.open.Add(1)
		s.total.Add(1)
		for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
		}
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		s.open.Add(-1)
	})}
	go s.srv.Serve(ln) //nolint:errcheck
	s.url = fmt.Sprintf("http://%s/stall", ln.Addr())
	return s
}

func (s *stallReceiver) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	s.srv.Close()
}

func benchClient(c benchConfig) *http.Client {
	allow, _ := outbound.ParseNetworks("127.0.0.0/8")
	return outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: allow, MaxIdleConnsPerHost: c.Concurrency}))
}

// rawBaseline signs and POSTs the same payload to the same receivers with the same
// concurrency, without any persistence: the ceiling of what a webhook sender can do here.
func rawBaseline(ctx context.Context, recv *benchReceivers, c benchConfig) (float64, error) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	client := benchClient(c)
	total := c.Events * c.Webhooks
	recv.expect(total)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for g := 0; g < c.Concurrency; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			signer := httpsig.Signer{Key: priv}
			for {
				i := next.Add(1) - 1
				if i >= int64(total) || ctx.Err() != nil {
					return
				}
				ev := benchEvent(i)
				body := ev.Payload(false)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, recv.urls[int(i)%len(recv.urls)], nil)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "ubihooks/"+version())
				if err := signer.Sign(req, body); err != nil {
					firstErr.Store(err)
					return
				}
				resp, err := client.Do(req)
				if err != nil {
					firstErr.Store(err)
					return
				}
				outbound.ReadBody(resp)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("raw baseline: %w", err)
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

func benchEvent(i int64) *ubihooks.Event {
	return &ubihooks.Event{ID: ubihooks.NewID(), ProjectName: "bench", Type: ubihooks.EventDeploymentCompleted,
		ObjectType: ubihooks.ObjectDeployment, ObjectID: "00000000-0000-0000-0000-000000000001", ObjectName: "bench",
		VersionID: "00000000-0000-0000-0000-000000000002", VersionName: "v1", RequestID: ubihooks.NewID(),
		Status: "completed", CreatedAt: time.Now()}
}

// benchWorld is ubihooks end to end: store(s), service, engine(s) and webhooks.
type benchWorld struct {
	c       benchConfig
	recv    *benchReceivers
	dir     string
	stores  []ubihooks.Store
	pgs     []*postgres.DB
	svc     *service.Service
	engines []*delivery.Engine
	project *ubihooks.Project
	object  *ubihooks.Object
	version *ubihooks.Version
	cancel  context.CancelFunc
	claims  *claimCounter
}

// claimCounter passes what the engines observe on (to the metrics, when they are on) and
// counts the deliveries that reached an engine by a claim; the others were dispatched to it
// at emission, which costs the store a write less.
type claimCounter struct {
	next    delivery.Observer // nil: no metrics
	claimed atomic.Int64
}

func (c *claimCounter) Attempt(class string, d time.Duration) {
	if c.next != nil {
		c.next.Attempt(class, d)
	}
}

func (c *claimCounter) DeliveryFinished(outcome string) {
	if c.next != nil {
		c.next.DeliveryFinished(outcome)
	}
}

func (c *claimCounter) StoreWrite(op string, n int, d time.Duration) {
	if op == delivery.StoreClaim {
		c.claimed.Add(int64(n))
	}
	if c.next != nil {
		c.next.StoreWrite(op, n, d)
	}
}

func newBenchWorld(ctx context.Context, c benchConfig, recv *benchReceivers, opts webhookOptions) (*benchWorld, error) {
	w := &benchWorld{c: c, recv: recv}
	box, err := secret.New(bytes.Repeat([]byte{7}, secret.KeySize))
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	for i := 0; i < c.Replicas; i++ {
		var st ubihooks.Store
		if isPostgres(c.Database) {
			pg, err := postgres.OpenDB(ctx, c.Database, postgres.Options{})
			if err != nil {
				return nil, err
			}
			w.pgs = append(w.pgs, pg)
			st = pg
		} else {
			if i == 0 {
				if w.dir, err = os.MkdirTemp("", "ubihooks-bench-*"); err != nil {
					return nil, err
				}
			}
			if st, err = sqlite.Open(ctx, filepath.Join(w.dir, "bench.db"), sqlite.Options{Synchronous: c.Synchronous}); err != nil {
				return nil, err
			}
		}
		w.stores = append(w.stores, st)
	}
	if isPostgres(c.Database) {
		// Start from an empty queue: earlier bench runs may have left rows behind.
		if _, err := w.pgs[0].Pool.Exec(ctx, "TRUNCATE attempts, deliveries, events, webhook_tests, requests"); err != nil {
			return nil, err
		}
	}
	w.svc = service.New(service.Config{Store: w.stores[0], Box: box})
	if err := w.svc.EnsureSigningKey(ctx); err != nil {
		return nil, err
	}
	project := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if w.project, err = w.svc.CreateProject(ctx, project, "bench", nil); err != nil {
		return nil, err
	}
	if w.object, err = w.svc.CreateObject(ctx, w.project.ID, ubihooks.ObjectDeployment, ubihooks.ObjectCreate{Name: "bench", InputType: "plain", OutputType: "plain"}); err != nil {
		return nil, err
	}
	if w.version, err = w.svc.CreateVersion(ctx, w.object, ubihooks.VersionCreate{Version: "v1"}); err != nil {
		return nil, err
	}
	for i := 0; i < c.Webhooks; i++ {
		if err := w.addWebhook(ctx, fmt.Sprintf("bench-%d", i), recv.urls[i%len(recv.urls)], opts.timeout, opts.retry); err != nil {
			return nil, err
		}
	}
	// One registry for the run, as serve has (none when --metrics=false), behind the count
	// of claimed deliveries.
	w.claims = &claimCounter{}
	if c.Metrics {
		w.claims.next = metrics.New()
	}
	for i, st := range w.stores {
		svc := service.New(service.Config{Store: st, Box: box})
		e := delivery.NewEngine(delivery.Config{Store: st, Client: benchClient(c), SignerFunc: svc.Signer, OpenHeadersFunc: svc.OpenHeaders,
			Owner: fmt.Sprintf("bench-%d-%s", i, ubihooks.NewID()), MaxInFlight: c.Concurrency, MaxUnrecorded: c.Unrecorded, Prefetch: c.Prefetch, MaxPerHost: c.PerHost,
			FlushInterval: c.Flush, UserAgent: "ubihooks/" + version(), Observer: w.claims})
		w.engines = append(w.engines, e)
		st.SetDispatcher(e)
		st.Subscribe(lctx, func(ubihooks.Channel) { e.Notify() })
		if err := e.Start(ctx); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *benchWorld) addWebhook(ctx context.Context, name, url string, timeout time.Duration, retry bool) error {
	secs := int(timeout.Seconds())
	_, err := w.svc.CreateWebhook(ctx, w.project.ID, ubihooks.WebhookCreate{Name: name, ObjectType: "deployment", ObjectName: "bench",
		URL: url, Event: string(ubihooks.EventDeploymentCompleted), Timeout: &secs, Retry: &retry})
	return err
}

type phaseResult struct {
	perSecond, p50, p99 float64
}

// run emits n events — as fast as the emitters go when rate is 0, else paced at rate
// events/s — and waits until every delivery to the fast receivers has arrived.
func (w *benchWorld) run(ctx context.Context, n int, rate float64, stall *stallReceiver) (phaseResult, error) {
	w.recv.expect(n * w.c.Webhooks)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, w.c.Emitters)
	emitters := w.c.Emitters
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
		emitters = 1
	}
	for g := 0; g < emitters; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			st := w.stores[g%len(w.stores)]
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				now := time.Now().UTC()
				e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: w.project.ID, ProjectName: w.project.Name,
					Type: ubihooks.EventDeploymentCompleted, ObjectType: ubihooks.ObjectDeployment, ObjectID: w.object.ID,
					ObjectName: w.object.Name, VersionID: w.version.ID, VersionName: w.version.Name, RequestID: ubihooks.NewID(),
					Status: "completed", CreatedAt: now}
				if _, err := st.EmitEvents(ctx, []*ubihooks.Event{e}, now); err != nil {
					errc <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return phaseResult{}, fmt.Errorf("emit: %w", err)
	default:
	}
	select {
	case <-w.recv.done:
	case <-ctx.Done():
		return phaseResult{}, ctx.Err()
	case <-time.After(5 * time.Minute):
		return phaseResult{}, fmt.Errorf("bench: only %d of %d deliveries arrived within 5 minutes", w.recv.count.Load(), w.recv.want)
	}
	elapsed := time.Since(start)
	w.recv.mu.Lock()
	lat := append([]float64(nil), w.recv.lat...)
	w.recv.mu.Unlock()
	sort.Float64s(lat)
	return phaseResult{perSecond: float64(n*w.c.Webhooks) / elapsed.Seconds(), p50: quantile(lat, 0.50), p99: quantile(lat, 0.99)}, nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (w *benchWorld) close() {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, e := range w.engines {
		_ = e.Stop(sctx)
	}
	w.cancel()
	for _, st := range w.stores {
		st.Close()
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}
