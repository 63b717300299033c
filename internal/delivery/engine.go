// Package delivery is the delivery engine: it claims due deliveries in batches with a
// lease (or takes them as they are emitted), signs and sends them concurrently within
// per-destination bounds, records their outcomes in batches and reschedules failures by
// its retry policy; a rescuer returns the deliveries of a crashed engine to the queue.
// Outbound HTTP itself (the SSRF-safe transport, the classification of a call) is package
// outbound's.
package delivery

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	Store ubihooks.Store
	// Client sends the webhooks; use outbound.NewClient(outbound.NewTransport(...)) for the SSRF guard.
	Client *http.Client
	// SignerFunc returns the active signing key and its key id.
	SignerFunc func(ctx context.Context) (ed25519.PrivateKey, string, error)
	// OpenHeadersFunc decrypts protected header values, only for sending.
	OpenHeadersFunc func([]ubihooks.Header) ([]ubihooks.Header, error)
	// Owner names this engine in leases (unique per process).
	Owner string
	// BatchSize is the most deliveries claimed per query (default 128).
	BatchSize int
	// MaxInFlight bounds concurrent sends of this engine (default 256).
	MaxInFlight int
	// MaxUnrecorded bounds the deliveries that were sent and wait for their outcome to be
	// recorded (default 4 × MaxInFlight). Recording in batches overlaps with sending, and
	// under load an outcome waits some milliseconds for the writer and for its commit to be
	// flushed; with a smaller bound (2 × was measured) sends stand still, now and then, for
	// records. Together the two bound what a crash can leave sent but unrecorded, i.e. sent
	// again by the next engine: at most MaxInFlight + MaxUnrecorded.
	MaxUnrecorded int
	// Prefetch is how many claimed deliveries may wait for a free send slot (default
	// 2 × MaxInFlight; one host's at most 3 × MaxPerHost of them). Claims run ahead of the
	// sends: a send that ends starts the next waiting delivery at once, instead of after the
	// next claim's trip through the database, whose writer may be busy with other work; under
	// load that trip takes milliseconds, and a host's sends ran dry, now and then, with only
	// MaxPerHost waiting. A crash leaves these leased, unattempted, until their leases expire
	// (a graceful stop hands them back).
	Prefetch int
	// MaxPerHost bounds concurrent sends to one destination (host:port), so that one slow
	// or dead receiver cannot take every slot (default 32).
	MaxPerHost int
	// Lease is how long a claimed delivery stays with this engine before the rescuer may
	// give it to another (default 90s: above the 30s maximum timeout with room to record).
	Lease time.Duration
	// PollInterval is the longest an idle engine waits before looking for due deliveries
	// (default 500ms); new work wakes it at once through Notify.
	PollInterval time.Duration
	// RescueInterval is how often expired leases are returned to the queue (default 10s).
	RescueInterval time.Duration
	// FlushInterval bounds how long an outcome waits to be recorded with others (default 2ms:
	// under load a batch fills before that; at low load, longer waits only hold slots).
	FlushInterval time.Duration
	// Retry is the retry policy of webhooks with retry: true.
	Retry RetryPolicy
	// UserAgent is sent with every webhook.
	UserAgent string
	Logger    *slog.Logger
	NowFunc   func() time.Time
	// OnRecordFunc, when set, is called after outcomes are recorded (tests); up to three
	// calls may run at once.
	OnRecordFunc func([]ubihooks.Outcome)
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 128
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.MaxUnrecorded <= 0 {
		c.MaxUnrecorded = 4 * c.MaxInFlight
	}
	if c.MaxPerHost <= 0 {
		c.MaxPerHost = 32
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 2 * c.MaxInFlight
	}
	if c.Lease <= 0 {
		c.Lease = 90 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.RescueInterval <= 0 {
		c.RescueInterval = 10 * time.Second
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 2 * time.Millisecond
	}
	if c.Retry.Schedule == nil {
		c.Retry = DefaultRetryPolicy()
	}
	if c.UserAgent == "" {
		c.UserAgent = "ubihooks"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
}

// Engine sends deliveries: claim a batch with a lease → sign → send concurrently →
// classify → record outcomes in batches → reschedule. A rescuer returns deliveries whose
// lease expired (a crashed engine) to the queue. Deliveries are at-least-once: a crash
// between a send and its record sends again, with the same event id.
type Engine struct {
	cfg    Config
	sender sender

	wake     chan struct{}
	freed    chan struct{}
	recorder *recorder
	rescuer  *rescuer

	mu       sync.Mutex
	q        hostQueue // deliveries waiting for a send slot; places taken per host
	backlogs backlogs  // stuck hosts and their backlogs' deferrals
	held     int       // claimed deliveries not yet recorded or released (waiting, sending or sent)
	released []string  // leases given back by a graceful stop
	closing  bool      // stopping: no new sends
	running  bool      // started: Take may take deliveries

	claimCtx    context.Context // canceled to stop claiming
	stopClaim   context.CancelFunc
	sendCtx     context.Context // canceled to cut in-flight sends
	cancelSends context.CancelFunc
	aborted     chan struct{}

	claimDone chan struct{}
	sends     sync.WaitGroup
	started   bool
	stopOnce  sync.Once

	// TestSignals tell tests what the engine did; arm them with Init before Start.
	TestSignals TestSignals
}

// TestSignals are the events an Engine reports to tests (see package testsignal).
type TestSignals struct {
	Recorder recorderTestSignals
}

// Init arms every signal.
func (ts *TestSignals) Init() {
	ts.Recorder.Init()
}

// NewEngine returns an engine; Start runs it.
func NewEngine(cfg Config) *Engine {
	cfg.defaults()
	e := &Engine{cfg: cfg, sender: newSender(cfg), wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		q: newHostQueue(cfg.MaxPerHost, hostCap(cfg)), backlogs: newBacklogs(), aborted: make(chan struct{})}
	e.recorder = &recorder{recordFunc: e.record, recordedFunc: e.recorded, flushInterval: cfg.FlushInterval,
		now: cfg.NowFunc, logger: cfg.Logger, in: make(chan ubihooks.Outcome, cfg.MaxInFlight+cfg.MaxUnrecorded),
		aborted: e.aborted, done: make(chan struct{}), signals: &e.TestSignals.Recorder}
	e.rescuer = newRescuer(rescuerConfig{Store: cfg.Store, Interval: cfg.RescueInterval, NotifyFunc: e.Notify,
		Logger: cfg.Logger, NowFunc: cfg.NowFunc})
	return e
}

// Notify wakes an idle engine: new deliveries are due.
func (e *Engine) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the claimer, the recorder and the rescuer in the background.
func (e *Engine) Start(ctx context.Context) error {
	if e.started {
		return errors.New("delivery: engine already started")
	}
	if err := e.rescuer.Start(ctx); err != nil {
		return err
	}
	e.started = true
	base := context.WithoutCancel(ctx)
	e.claimCtx, e.stopClaim = context.WithCancel(base)
	e.sendCtx, e.cancelSends = context.WithCancel(base)
	e.claimDone = make(chan struct{})
	e.mu.Lock()
	e.running = true
	e.mu.Unlock()
	go e.claimLoop()
	go e.recorder.run()
	return nil
}

// Stop shuts the engine down gracefully: it stops claiming, lets in-flight sends finish
// until ctx ends, then cuts the rest and returns their deliveries to the queue unattempted,
// and records every outcome before returning.
func (e *Engine) Stop(ctx context.Context) error {
	if !e.started {
		return nil
	}
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.closing = true
		e.mu.Unlock()
		e.stopClaim()
		<-e.claimDone
		_ = e.rescuer.Stop(context.WithoutCancel(ctx)) // a rescue under way is cut: it waits for nothing
		// Deliveries still waiting for a slot go back to the queue unattempted.
		e.mu.Lock()
		waiting := e.q.drain()
		for _, p := range waiting {
			e.released = append(e.released, p.d.ID)
		}
		e.held -= len(waiting)
		e.mu.Unlock()
		done := make(chan struct{})
		go func() { e.sends.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			e.cancelSends()
			<-done
		}
		close(e.recorder.in)
		<-e.recorder.done
		e.mu.Lock()
		ids := e.released
		e.mu.Unlock()
		if len(ids) > 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := e.cfg.Store.ReleaseDeliveries(rctx, e.cfg.Owner, ids, e.cfg.NowFunc()); err != nil {
				e.cfg.Logger.Error("release deliveries on shutdown; their leases will expire instead", "count", len(ids), "err", err)
			}
		}
		e.cancelSends()
	})
	return nil
}

// Abort stops the engine as a crash would: no more claims, in-flight sends cut, and
// nothing more recorded or released. Their leases expire and the rescuer hands the
// deliveries to another engine. It exists for crash tests.
func (e *Engine) Abort() {
	if !e.started {
		return
	}
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.closing = true
		e.mu.Unlock()
		close(e.aborted)
		e.stopClaim()
		e.cancelSends()
		<-e.claimDone
		_ = e.rescuer.Stop(context.Background())
		e.sends.Wait()
		close(e.recorder.in)
		<-e.recorder.done
	})
}

func (e *Engine) claimLoop() {
	defer close(e.claimDone)
	idle := time.NewTimer(0)
	defer idle.Stop()
	for {
		n, full := e.claimOnce()
		if e.claimCtx.Err() != nil {
			return
		}
		if n > 0 && full {
			continue // more is probably due
		}
		wait := e.cfg.PollInterval
		if n < 0 { // store error: back off
			wait = time.Second
		} else if n == 0 && e.idle() {
			// Idle: wake exactly when the next retry is due, if that is sooner than a poll.
			// (Due deliveries that were not claimed wait for a saturated host: a send ending
			// wakes the engine for those.)
			if next, err := e.cfg.Store.NextDeliveryDue(e.claimCtx); err == nil {
				if d := next.Sub(e.cfg.NowFunc()); d > 0 {
					wait = min(wait, d)
				}
			}
		}
		idle.Reset(wait)
		select {
		case <-e.claimCtx.Done():
			return
		case <-e.wake:
		case <-e.freed:
		case <-idle.C:
		}
	}
}

// idle reports whether the engine holds no delivery at all.
func (e *Engine) idle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held == 0
}

// claimOnce claims what fits in the free places (send slots, and the prefetch behind them)
// and starts the sends that have a slot. It returns how many were claimed (-1 on a store
// error) and whether the claim was full.
func (e *Engine) claimOnce() (int, bool) {
	now := e.cfg.NowFunc()
	e.mu.Lock()
	room := min(e.cfg.MaxInFlight+e.cfg.Prefetch-e.q.places(),
		e.cfg.MaxInFlight+e.cfg.MaxUnrecorded+e.cfg.Prefetch-e.held)
	busyEngine := e.q.sending+e.q.nWaiting > 0
	busy := e.q.saturated()
	// A host takes no more than its cap: more would only wait here while other hosts'
	// deliveries wait in the queue.
	exclude := e.q.fullSending()
	// Stuck hosts get only their free slots, in claims of their own once their deferral ends.
	stuck, probes := e.backlogs.stuckHosts(&e.q, now)
	exclude = append(exclude, stuck...)
	e.mu.Unlock()
	e.deferBacklogs(e.claimCtx, busy)
	limit := min(room, e.cfg.BatchSize)
	// While the engine is busy, wait until a few places are free: a claim costs a write
	// transaction, and claiming one delivery per freed slot would spend more on claims than
	// on sending. An idle engine claims whatever fits.
	if limit <= 0 || (busyEngine && limit < max(1, min(e.cfg.MaxInFlight, e.cfg.Prefetch, e.cfg.BatchSize)/4)) {
		return 0, false
	}
	ds, err := e.cfg.Store.ClaimDeliveries(e.claimCtx, e.cfg.Owner, limit, e.cfg.Lease, now, exclude)
	if err != nil {
		if e.claimCtx.Err() == nil {
			e.cfg.Logger.Error("claim deliveries", "err", err)
		}
		return -1, false
	}
	full := len(ds) == limit
	for _, p := range probes {
		n := min(p.slots, limit-len(ds))
		if n <= 0 {
			break
		}
		more, err := e.cfg.Store.ClaimHostDeliveries(e.claimCtx, e.cfg.Owner, p.host, n, e.cfg.Lease, now)
		if err != nil {
			if e.claimCtx.Err() == nil {
				e.cfg.Logger.Error("claim deliveries", "host", p.host, "err", err)
			}
			break
		}
		ds = append(ds, more...)
		e.mu.Lock()
		e.backlogs.probed(p.host, now)
		e.mu.Unlock()
	}
	bodies := payloads(ds)
	e.mu.Lock()
	claimed, over := e.enqueueLocked(ds, bodies)
	start := e.takeAllLocked()
	e.mu.Unlock()
	e.startSends(start)
	e.releaseOver(over, now)
	return claimed, full
}

// hostCap is the most deliveries to one host that may be sending or waiting: its send
// slots, and up to three times as many waiting — enough to keep its sends going while
// claims and emitting transactions wait for the writer, and no more: the rest would only
// wait here while other hosts' deliveries wait in the queue.
func hostCap(cfg Config) int { return cfg.MaxPerHost + min(3*cfg.MaxPerHost, cfg.Prefetch) }

// payloads renders the payload of each delivery, before e.mu is taken: an event's
// deliveries to several webhooks share one rendering.
func payloads(ds []*ubihooks.Delivery) [][]byte {
	type key struct {
		event         *ubihooks.Event
		includeResult bool
	}
	bodies := make([][]byte, len(ds))
	rendered := make(map[key][]byte, len(ds))
	for i, d := range ds {
		k := key{d.Event, d.IncludeResult}
		body, ok := rendered[k]
		if !ok {
			body = d.Event.Payload(d.IncludeResult)
			rendered[k] = body
		}
		bodies[i] = body
	}
	return bodies
}

// enqueueLocked adds claimed (or dispatched) deliveries to the waiting ones, each with its
// payload (bodies[i] is ds[i]'s). It returns how many it took, and the ids of those over
// their host's bound, for release. e.mu is held.
func (e *Engine) enqueueLocked(ds []*ubihooks.Delivery, bodies [][]byte) (int, []string) {
	var over []string
	taken := 0
	for i, d := range ds {
		if e.closing {
			e.released = append(e.released, d.ID)
			continue
		}
		if !e.q.push(prepared{d, bodies[i]}) {
			over = append(over, d.ID)
			continue
		}
		e.held++
		taken++
	}
	return taken, over
}

// releaseOver returns deliveries that were over their host's bound to the queue, unattempted.
func (e *Engine) releaseOver(over []string, now time.Time) {
	if len(over) == 0 {
		return
	}
	// Not cut short by a stop that begins meanwhile: the leases would stay until they expire.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.claimCtx), 10*time.Second)
	defer cancel()
	if err := e.cfg.Store.ReleaseDeliveries(ctx, e.cfg.Owner, over, now); err != nil {
		e.cfg.Logger.Error("release deliveries; their leases will expire instead", "count", len(over), "err", err)
	}
}

// The engine is its store's Dispatcher (sqlstore.Dispatcher): emitting transactions lease
// new deliveries to it directly, within the same bounds as claims.

// Lease returns the owner and length of the leases of dispatched deliveries.
func (e *Engine) Lease() (string, time.Duration) { return e.cfg.Owner, e.cfg.Lease }

// Take reserves a place for a new delivery to host, if the engine has room for it now: a
// free place among the sends and the prefetch, and host neither at its bound nor stuck.
func (e *Engine) Take(host string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.running || e.closing || e.q.places() >= e.cfg.MaxInFlight+e.cfg.Prefetch ||
		e.held >= e.cfg.MaxInFlight+e.cfg.MaxUnrecorded+e.cfg.Prefetch {
		return false
	}
	if e.backlogs.stuck(host) || e.q.full(host) {
		return false
	}
	e.q.reserve(host)
	e.held++
	return true
}

// Return gives back places that Take reserved.
func (e *Engine) Return(hosts []string) {
	e.mu.Lock()
	e.unreserveLocked(hosts)
	e.mu.Unlock()
	e.signalFreed()
}

func (e *Engine) unreserveLocked(hosts []string) {
	for _, h := range hosts {
		e.q.unreserve(h)
		e.held--
	}
}

// Dispatch takes new deliveries leased to the engine, for which Take reserved places, and
// starts those that may be sent now.
func (e *Engine) Dispatch(ds []*ubihooks.Delivery) {
	hosts := make([]string, len(ds))
	for i, d := range ds {
		hosts[i] = d.Host
	}
	bodies := payloads(ds)
	e.mu.Lock()
	e.unreserveLocked(hosts)
	_, over := e.enqueueLocked(ds, bodies)
	start := e.takeAllLocked()
	e.mu.Unlock()
	e.startSends(start)
	e.releaseOver(over, e.cfg.NowFunc())
}

// takeLocked takes the next waiting delivery that may be sent now — a send slot free, its
// host below its bound, and not too many outcomes waiting to be recorded — taking hosts in
// turn, and counts its send as started. e.mu is held.
func (e *Engine) takeLocked() (prepared, bool) {
	if e.closing || e.q.nWaiting == 0 || e.q.sending >= e.cfg.MaxInFlight ||
		e.held-e.q.nWaiting >= e.cfg.MaxInFlight+e.cfg.MaxUnrecorded {
		return prepared{}, false
	}
	p, ok := e.q.pop()
	if ok && e.q.perHost[p.d.Host] == 1 { // its host's only send
		e.backlogs.began(p.d.Host, e.cfg.NowFunc())
	}
	return p, ok
}

// takeAllLocked takes every waiting delivery that may be sent now. e.mu is held.
func (e *Engine) takeAllLocked() []prepared {
	var out []prepared
	for {
		p, ok := e.takeLocked()
		if !ok {
			return out
		}
		out = append(out, p)
	}
}

// record writes outcomes to the store.
func (e *Engine) record(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	return e.cfg.Store.RecordOutcomes(ctx, outcomes, now)
}

// recorded frees the holds of deliveries whose outcomes were recorded, and wakes the
// engine when one of them is due again.
func (e *Engine) recorded(batch []ubihooks.Outcome) {
	e.done(len(batch))
	if e.cfg.OnRecordFunc != nil {
		e.cfg.OnRecordFunc(append([]ubihooks.Outcome(nil), batch...))
	}
	for _, o := range batch {
		if o.Status == ubihooks.DeliveryPending {
			e.Notify()
			break
		}
	}
}

// done frees the hold of deliveries whose outcomes were recorded (or that were released).
func (e *Engine) done(n int) {
	e.mu.Lock()
	e.held -= n
	start := e.takeAllLocked() // sends that waited for outcomes to be recorded
	e.mu.Unlock()
	e.startSends(start)
	e.signalFreed()
}

func (e *Engine) signalFreed() {
	select {
	case e.freed <- struct{}{}:
	default:
	}
}
