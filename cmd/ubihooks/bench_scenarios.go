package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/service"
)

// gateReceivers stand for receivers that are down and come back: while down, every call
// hangs until its sender gives up (the webhook's timeout), as a receiver behind a dead
// backend does; once open, each call is counted and answered 204 at once (the calls that
// were hanging included).
type gateReceivers struct {
	servers []*http.Server
	urls    []string
	open    chan struct{}
	opened  sync.Once
	count   atomic.Int64
	first   atomic.Int64 // unix ns of the first answered call
}

func newGateReceivers(n int) *gateReceivers {
	g := &gateReceivers{open: make(chan struct{})}
	for i := 0; i < n; i++ {
		srv, addr := serveLocal(http.HandlerFunc(g.handle))
		g.servers = append(g.servers, srv)
		g.urls = append(g.urls, fmt.Sprintf("http://%s/backlog/%d", addr, i))
	}
	return g
}

func (g *gateReceivers) handle(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-g.open:
	case <-r.Context().Done():
		return
	}
	g.first.CompareAndSwap(0, time.Now().UnixNano())
	g.count.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (g *gateReceivers) openUp() { g.opened.Do(func() { close(g.open) }) }

func (g *gateReceivers) close() {
	g.openUp()
	for _, s := range g.servers {
		s.Close()
	}
}

// latencyRecorder collects latencies (ms) of a phase.
type latencyRecorder struct {
	mu  sync.Mutex
	lat []float64
}

func (l *latencyRecorder) add(ms float64) { l.mu.Lock(); l.lat = append(l.lat, ms); l.mu.Unlock() }

func (l *latencyRecorder) quantiles(qs ...float64) []float64 {
	l.mu.Lock()
	s := append([]float64(nil), l.lat...)
	l.mu.Unlock()
	sort.Float64s(s)
	out := make([]float64, len(qs))
	for i, q := range qs {
		out[i] = quantile(s, q)
	}
	return out
}

func (l *latencyRecorder) len() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.lat) }

// every runs fn every d in a goroutine counted by wg, until ctx is done.
func every(ctx context.Context, wg *sync.WaitGroup, d time.Duration, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// emitBatch records the events of object o created at at, in one transaction.
func (w *benchWorld) emitBatch(ctx context.Context, st ubihooks.Store, o *ubihooks.Object, v *ubihooks.Version, n int, at time.Time) error {
	events := make([]*ubihooks.Event, n)
	for i := range events {
		events[i] = &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: w.project.ID, ProjectName: w.project.Name,
			Type: ubihooks.EventDeploymentCompleted, ObjectType: ubihooks.ObjectDeployment, ObjectID: o.ID,
			ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name, RequestID: ubihooks.NewID(), Status: "completed", CreatedAt: at}
	}
	_, err := st.EmitEvents(ctx, events, at)
	return err
}

// benchBacklog: N deliveries queue up while their receivers are down (every call hangs
// until the webhook's timeout, so the engine finds the destinations stuck and defers
// their backlogs), then the receivers come back and the backlog drains. Meanwhile a
// healthy receiver of another deployment gets fresh events, whose latency must not wait
// behind the backlog, and the API answers webhook GETs.
func (m *Main) benchBacklog(ctx context.Context, c benchConfig) error {
	out := m.Stdout
	if c.Deliveries < c.Webhooks {
		return fmt.Errorf("bench: --deliveries must be at least --webhooks")
	}
	events := c.Deliveries / c.Webhooks
	total := events * c.Webhooks
	fmt.Fprintf(out, "ubihooks bench --scenario backlog: %d deliveries (%d events x %d webhooks) queued while their %d receivers are down, then drained; concurrency %d (%d per host), %d replica(s), database %s\n",
		total, events, c.Webhooks, c.Receivers, c.Concurrency, c.PerHost, c.Replicas, benchDBName(c.Database))

	// The raw loop, on receivers of its own, over a sample of the same size class.
	recv := newBenchReceivers(c.Receivers)
	defer recv.close()
	rc := c
	rc.Events = min(events, 25000)
	raw, err := rawBaseline(ctx, recv, rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "raw baseline:     %8.0f sends/s   (%d sends)\n", raw, rc.Events*rc.Webhooks)

	gate := newGateReceivers(c.Receivers)
	defer gate.close()
	fresh := newBenchReceivers(1)
	defer fresh.close()
	w, err := newBenchWorld(ctx, c, &benchReceivers{urls: gate.urls}, webhookOptions{timeout: 2 * time.Second, retry: true})
	if err != nil {
		return err
	}
	defer w.close()
	fo, err := w.svc.CreateObject(ctx, w.project.ID, ubihooks.ObjectDeployment, ubihooks.ObjectCreate{Name: "fresh", InputType: "plain", OutputType: "plain"})
	if err != nil {
		return err
	}
	fv, err := w.svc.CreateVersion(ctx, fo, ubihooks.VersionCreate{Version: "v1"})
	if err != nil {
		return err
	}
	secs := 10
	if _, err := w.svc.CreateWebhook(ctx, w.project.ID, ubihooks.WebhookCreate{Name: "fresh", ObjectType: "deployment", ObjectName: "fresh",
		URL: fresh.urls[0], Event: string(ubihooks.EventDeploymentCompleted), Timeout: &secs}); err != nil {
		return err
	}

	// Queue: batches of 500 events, from a few emitters.
	start := time.Now()
	const batch = 500
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			st := w.stores[g%len(w.stores)]
			for {
				i := next.Add(batch) - batch
				if i >= int64(events) {
					return
				}
				n := int(min(int64(batch), int64(events)-i))
				if err := w.emitBatch(ctx, st, w.object, w.version, n, time.Now().UTC()); err != nil {
					errc <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return fmt.Errorf("queue: %w", err)
	default:
	}
	queued := time.Since(start)
	q, err := w.stores[0].DeliveryQueue(ctx, time.Now().Add(time.Hour), math.MaxInt32)
	if err != nil {
		return err
	}
	rssQueued := peakRSSMiB()
	fmt.Fprintf(out, "queued:           %d deliveries in %.1fs (%.0f/s), %d unfinished in the store; peak RSS %.0f MiB\n",
		total, queued.Seconds(), float64(total)/queued.Seconds(), q.Unfinished, rssQueued)

	// The API, for webhook GETs during the drain.
	tok, err := w.svc.CreateToken(ctx, service.TokenCreate{Project: w.project.Name, Name: "bench"})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	apiSrv := &http.Server{Handler: api.New(api.Config{Service: w.svc, Version: version(), RequestRetention: time.Hour})}
	go apiSrv.Serve(ln) //nolint:errcheck
	defer apiSrv.Close()
	getURL := fmt.Sprintf("http://%s%s/projects/%s/webhooks/bench-0", ln.Addr(), api.BasePath, w.project.Name)

	// Drain, with fresh events (20/s) and API GETs (20/s) meanwhile.
	fresh.expect(math.MaxInt32)
	var apiLat latencyRecorder
	dctx, stop := context.WithCancel(ctx)
	var side sync.WaitGroup
	// Fresh events, one per transaction as a request's end is.
	every(dctx, &side, 50*time.Millisecond, func() { _ = w.emitBatch(dctx, w.stores[0], fo, fv, 1, time.Now().UTC()) })
	client := &http.Client{Timeout: 10 * time.Second}
	every(dctx, &side, 50*time.Millisecond, func() {
		req, _ := http.NewRequestWithContext(dctx, http.MethodGet, getURL, nil)
		req.Header.Set("Authorization", "Token "+tok.Secret)
		t0 := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			apiLat.add(float64(time.Since(t0).Microseconds()) / 1000)
		}
	})
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			stop()
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			stop()
			return err
		}
		defer pprof.StopCPUProfile() // after the drain, which is all that is profiled
	}
	back := time.Now()
	gate.openUp()
	deadline := time.After(time.Duration(max(10, total/500)) * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	for gate.count.Load() < int64(total) {
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-deadline:
			stop()
			return fmt.Errorf("bench: only %d of %d backlog deliveries arrived", gate.count.Load(), total)
		case <-tick.C:
		}
	}
	tick.Stop()
	drained := time.Since(back)
	if c.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	stop()
	side.Wait()
	first := time.Unix(0, gate.first.Load()).Sub(back)
	drainPerS := float64(total) / drained.Seconds()
	fresh.mu.Lock()
	freshLat := append([]float64(nil), fresh.lat...)
	fresh.mu.Unlock()
	sort.Float64s(freshLat)
	freshP50, freshP99 := quantile(freshLat, 0.5), quantile(freshLat, 0.99)
	api := apiLat.quantiles(0.5, 0.99)
	rssDrain := peakRSSMiB()
	dbMB := w.databaseMiB(ctx)
	// The raw loop again, as the burst measures it on both sides of its full load: a drain
	// lasts minutes, and a shared machine drifts meanwhile, so the ratio is to the mean of the
	// loop before and after it.
	rawBefore := raw
	rawAfter, err := rawBaseline(ctx, recv, rc)
	if err != nil {
		return err
	}
	raw = (rawBefore + rawAfter) / 2
	fmt.Fprintf(out, "raw baseline:     %8.0f sends/s   (again, after the drain); mean %.0f\n", rawAfter, raw)
	fmt.Fprintf(out, "drained:          %d deliveries in %.1fs after the receivers came back (first answer after %.1fs): %.0f/s, %.2f x the raw loop; peak RSS %.0f MiB\n",
		total, drained.Seconds(), first.Seconds(), drainPerS, drainPerS/raw, rssDrain)
	fmt.Fprintf(out, "fresh events:     %d to a healthy receiver during the drain: p50 %.1f ms   p99 %.1f ms\n", len(freshLat), freshP50, freshP99)
	fmt.Fprintf(out, "API webhook GET:  %d during the drain: p50 %.1f ms   p99 %.1f ms\n", apiLat.len(), api[0], api[1])
	fmt.Fprintf(out, "database:         %.0f MiB\n", dbMB)
	fmt.Fprintf(out, "deliveries=%d queue_s=%.1f peak_rss_queued_mb=%.0f peak_rss_mb=%.0f drain_s=%.1f drain_per_s=%.0f raw_per_s=%.0f raw_before_per_s=%.0f raw_after_per_s=%.0f drain_ratio=%.2f fresh_p50_ms=%.1f fresh_p99_ms=%.1f api_p99_ms=%.1f db_mb=%.0f\n",
		total, queued.Seconds(), rssQueued, rssDrain, drained.Seconds(), drainPerS, raw, rawBefore, rawAfter, drainPerS/raw, freshP50, freshP99, api[1], dbMB)
	return nil
}

// databaseMiB is the size of the bench's database: the SQLite files, or PostgreSQL's.
func (w *benchWorld) databaseMiB(ctx context.Context) float64 {
	if len(w.pgs) > 0 {
		var n int64
		if err := w.pgs[0].Pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
			return -1
		}
		return float64(n) / (1 << 20)
	}
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(filepath.Join(w.dir, "bench.db"+suffix)); err == nil {
			n += fi.Size()
		}
	}
	return float64(n) / (1 << 20)
}

// sustainedResult is one paced run.
type sustainedResult struct {
	rate                float64 // deliveries/s offered
	delivered           int
	p50, p99, p999      float64
	startQueue, endQueu int
	maxQueue            int
	grew                bool
	// The seconds of the run by arrival, and those whose p99 was over 50 ms, worst first
	// (a tail from a few bad seconds has another cause than one spread evenly).
	seconds int
	worst   []slowSecond
}

// slowSecond is one second of a sustained run: its offset from the start, its arrivals
// and their p99.
type slowSecond struct {
	at  int
	n   int
	p99 float64
}

// slowSeconds groups arrivals by the second (from start) they arrived in and returns how
// many seconds there were and those whose p99 is over limit ms, worst first.
func slowSeconds(start time.Time, lat []float64, arrived []int64, limit float64) (int, []slowSecond) {
	by := map[int][]float64{}
	last := 0
	for i, t := range arrived {
		k := int(time.Duration(t-start.UnixNano()) / time.Second)
		by[k] = append(by[k], lat[i])
		last = max(last, k)
	}
	var out []slowSecond
	for k, l := range by {
		sort.Float64s(l)
		if p := quantile(l, 0.99); p > limit {
			out = append(out, slowSecond{at: k, n: len(l), p99: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p99 > out[j].p99 })
	return last + 1, out
}

// benchSustained offers a steady rate (open loop: each event has its scheduled time, and
// latency counts from it, so a backlog cannot hide behind a slow emitter) and reports the
// event→receipt latency and whether the queue grew. With --rate 0 it searches for the
// highest rate whose p99 stays under 50 ms without backlog growth.
func (m *Main) benchSustained(ctx context.Context, c benchConfig) error {
	out := m.Stdout
	fmt.Fprintf(out, "ubihooks bench --scenario sustained: %d webhooks over %d receivers, concurrency %d (%d per host), %d replica(s), database %s\n",
		c.Webhooks, c.Receivers, c.Concurrency, c.PerHost, c.Replicas, benchDBName(c.Database))
	recv := newBenchReceivers(c.Receivers)
	defer recv.close()
	rc := c
	rc.Events = 10000
	raw, err := rawBaseline(ctx, recv, rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "raw baseline:     %8.0f sends/s\n", raw)
	w, err := newBenchWorld(ctx, c, recv, webhookOptions{timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer w.close()
	report := func(r sustainedResult) {
		fmt.Fprintf(out, "rate %6.0f/s for %s: %d delivered   p50 %.1f ms   p99 %.1f ms   p99.9 %.1f ms   queue %d → %d (max %d)%s\n",
			r.rate, c.Duration, r.delivered, r.p50, r.p99, r.p999, r.startQueue, r.endQueu, r.maxQueue, map[bool]string{true: "   BACKLOG GREW", false: ""}[r.grew])
		if len(r.worst) > 0 {
			var b strings.Builder
			for i, s := range r.worst[:min(len(r.worst), 8)] {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%ds %.0f ms (%d)", s.at, s.p99, s.n)
			}
			fmt.Fprintf(out, "  %d of %d seconds had a p99 over 50 ms; worst (second: p99 (arrivals)): %s\n", len(r.worst), r.seconds, b.String())
		}
	}
	if c.Rate > 0 {
		r, err := w.sustain(ctx, c.Rate, c.Duration)
		if err != nil {
			return err
		}
		report(r)
		fmt.Fprintf(out, "rate_per_s=%.0f duration_s=%.0f delivered=%d p50_ms=%.1f p99_ms=%.1f p999_ms=%.1f backlog_grew=%v max_queue=%d raw_per_s=%.0f peak_rss_mb=%.0f\n",
			r.rate, c.Duration.Seconds(), r.delivered, r.p50, r.p99, r.p999, r.grew, r.maxQueue, raw, peakRSSMiB())
		return nil
	}
	// Search: double until a rate fails, then bisect.
	good, bad := 0.0, 0.0
	try := func(rate float64) error {
		r, err := w.sustain(ctx, rate, c.Duration)
		if err != nil {
			return err
		}
		report(r)
		if r.p99 < 50 && !r.grew {
			good = rate
		} else {
			bad = rate
		}
		return nil
	}
	for rate := 1000.0; bad == 0 && rate <= raw*2; rate *= 2 {
		if err := try(rate); err != nil {
			return err
		}
	}
	if bad == 0 {
		bad = good * 2
	}
	for i := 0; i < 3 && good > 0; i++ {
		if err := try(math.Round((good+bad)/2/100) * 100); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "max_rate_per_s=%.0f (p99 < 50 ms, no backlog growth, %s per step) raw_per_s=%.0f peak_rss_mb=%.0f\n", good, c.Duration, raw, peakRSSMiB())
	return nil
}

// sustain offers rate deliveries/s for d and waits for the tail (at most 30 s).
func (w *benchWorld) sustain(ctx context.Context, rate float64, d time.Duration) (sustainedResult, error) {
	r := sustainedResult{rate: rate}
	eventsPerS := rate / float64(w.c.Webhooks)
	n := int(eventsPerS * d.Seconds())
	w.recv.expect(n * w.c.Webhooks)
	queue := func() int {
		q, err := w.stores[0].DeliveryQueue(ctx, time.Now(), math.MaxInt32)
		if err != nil {
			return -1
		}
		return q.Unfinished
	}
	var samples []int
	sctx, stop := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	var smu sync.Mutex
	every(sctx, &sampler, 250*time.Millisecond, func() {
		v := queue()
		smu.Lock()
		samples = append(samples, v)
		smu.Unlock()
	})
	start := time.Now()
	interval := time.Duration(float64(time.Second) / eventsPerS)
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, w.c.Emitters)
	for g := 0; g < w.c.Emitters; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			st := w.stores[g%len(w.stores)]
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				at := start.Add(time.Duration(i) * interval)
				if wait := time.Until(at); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				if err := w.emitBatch(ctx, st, w.object, w.version, 1, at.UTC()); err != nil {
					errc <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	emitted := time.Since(start)
	select {
	case err := <-errc:
		stop()
		return r, fmt.Errorf("emit: %w", err)
	default:
	}
	select {
	case <-w.recv.done:
	case <-ctx.Done():
		stop()
		return r, ctx.Err()
	case <-time.After(30 * time.Second):
	}
	stop()
	sampler.Wait()
	w.recv.mu.Lock()
	lat := append([]float64(nil), w.recv.lat...)
	r.seconds, r.worst = slowSeconds(start, w.recv.lat, w.recv.arrived, 50)
	w.recv.mu.Unlock()
	sort.Float64s(lat)
	r.delivered = len(lat)
	r.p50, r.p99, r.p999 = quantile(lat, 0.5), quantile(lat, 0.99), quantile(lat, 0.999)
	// Deliveries that did not arrive count as infinitely late.
	if missing := n*w.c.Webhooks - len(lat); missing > 0 {
		r.p999 = math.Inf(1)
		if float64(missing) > 0.01*float64(n*w.c.Webhooks) {
			r.p99 = math.Inf(1)
		}
	}
	// The queue over the emission only (the tail drains it by design): it grew when its
	// last quarter holds clearly more than its first (after a warm-up second).
	smu.Lock()
	defer smu.Unlock()
	k := min(len(samples), int(emitted/(250*time.Millisecond)))
	s := samples[:k]
	if len(s) > 8 {
		s = s[4:]
	}
	if len(s) > 0 {
		r.startQueue, r.endQueu = s[0], s[len(s)-1]
		q := max(1, len(s)/4)
		first, last := 0, 0
		for _, v := range s[:q] {
			first += v
		}
		for _, v := range s[len(s)-q:] {
			last += v
		}
		for _, v := range s {
			r.maxQueue = max(r.maxQueue, v)
		}
		r.grew = float64(last)/float64(q) > 2*float64(first)/float64(q)+rate*0.1
	}
	return r, nil
}
