// Package delivery is the delivery engine: it claims due deliveries in batches with a
// lease (or takes them as they are emitted), signs and sends them concurrently within
// per-destination bounds, records their outcomes in batches and reschedules failures by
// its retry policy; a rescuer returns the deliveries of a crashed engine to the queue.
// Outbound HTTP itself (the SSRF-safe transport, the classification of a call) is package
// outbound's.
package delivery

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// Config configures an Engine. Store, Client, SignerFunc, OpenHeadersFunc and Owner are
// required; zero values of the others take the documented defaults, and negative ones are
// invalid.
type Config struct {
	// Store holds the deliveries.
	Store ubihooks.Store
	// Client sends the webhooks; use outbound.NewClient(outbound.NewTransport(...)) for the
	// SSRF guard.
	Client *http.Client
	// SignerFunc returns the active signing key and its key id; webhooks are signed with
	// RFC 9421 (package httpsig).
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
	// flushed; with a smaller bound sends stand still, now and then, for records. Together
	// the two bound what a crash can leave sent but unrecorded, i.e. sent again by the next
	// engine: at most MaxInFlight + MaxUnrecorded.
	MaxUnrecorded int
	// Prefetch is how many claimed deliveries may wait for a free send slot (default
	// 2 × MaxInFlight; one host's at most 3 × MaxPerHost of them). Claims run ahead of the
	// sends: a send that ends starts the next waiting delivery at once, instead of after the
	// next claim's trip through the database, whose writer may be busy with other work; under
	// load that trip takes milliseconds, and with only MaxPerHost waiting a host's sends
	// would run dry now and then. A crash leaves these leased, unattempted, until their
	// leases expire (a graceful stop hands them back).
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
	// FlushInterval bounds how long an outcome waits to be recorded with others (default: the
	// store's RecordFlushInterval when it has one, else 2ms: under load a batch fills before
	// that; at low load, longer waits only hold slots).
	FlushInterval time.Duration
	// Retry is the retry policy of webhooks with retry: true.
	Retry RetryPolicy
	// UserAgent is sent with every webhook (default "ubihooks").
	UserAgent string
	// Logger receives failed attempts and store errors (default: discarded).
	Logger *slog.Logger
	// NowFunc is the engine's clock (default time.Now).
	NowFunc func() time.Time
	// OnRecordFunc, when set, is called after outcomes are recorded, with a copy of them; up
	// to three calls may run at once.
	OnRecordFunc func([]ubihooks.Outcome)
	// Observer, when set, learns of each recorded attempt and each delivery that finished
	// (for metrics); nil observes nothing.
	Observer Observer
}

// Observer learns what an engine recorded, for metrics. Its methods are called as outcomes
// are recorded, from up to three goroutines at once; they must be cheap and must not block.
type Observer interface {
	// Attempt reports a recorded attempt: its error class ("" when the receiver accepted
	// it, else one of the ubihooks.Class… constants) and how long its HTTP call took.
	Attempt(errorClass string, d time.Duration)
	// DeliveryFinished reports a delivery that reached a final state, with one of the
	// Outcome… names.
	DeliveryFinished(outcome string)
	// StoreWrite reports one write transaction of the engine that committed: op is
	// StoreClaim or StoreRecord, n the deliveries it claimed or the outcomes it recorded,
	// d how long it took.
	StoreWrite(op string, n int, d time.Duration)
}

// The writes that Observer.StoreWrite reports.
const (
	// StoreClaim: a claim of due deliveries.
	StoreClaim = "claim"
	// StoreRecord: a batch of outcomes recorded.
	StoreRecord = "record"
)

// The outcomes that Observer.DeliveryFinished reports.
const (
	// OutcomeSucceeded: a receiver accepted the delivery (2xx or 3xx).
	OutcomeSucceeded = "succeeded"
	// OutcomeFailed: the delivery failed for good (retries exhausted, retry off, or gone).
	OutcomeFailed = "failed"
	// OutcomeRefusedByPolicy: the delivery failed because its last attempt's destination
	// resolved to an address the SSRF guard does not allow.
	OutcomeRefusedByPolicy = "refused_by_policy"
)

// Stats is what an engine holds now.
type Stats struct {
	// Sending counts the HTTP calls in flight.
	Sending int
	// Waiting counts the claimed deliveries that wait for a send slot.
	Waiting int
	// Stuck counts the destinations (host:port) that answer nothing: their backlogs are
	// deferred until a send to them gets an answer.
	Stuck int
}

// Stats returns what the engine holds now; it is safe to call at any time.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{Sending: e.q.sending, Waiting: e.q.nWaiting, Stuck: len(e.backlogs.deferred)}
}

// RecordFlusher is a store that says how long outcomes should wait to be recorded together:
// a store whose every statement costs a round trip and a plan (PostgreSQL) records fewer,
// larger batches; the wait delays only the outcome's record, never the send.
type RecordFlusher interface {
	RecordFlushInterval() time.Duration
}

func (c Config) withDefaults() Config {
	c.BatchSize = cmp.Or(c.BatchSize, 128)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, 256)
	c.MaxUnrecorded = cmp.Or(c.MaxUnrecorded, 4*c.MaxInFlight)
	c.MaxPerHost = cmp.Or(c.MaxPerHost, 32)
	c.Prefetch = cmp.Or(c.Prefetch, 2*c.MaxInFlight)
	c.Lease = cmp.Or(c.Lease, 90*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, 500*time.Millisecond)
	c.RescueInterval = cmp.Or(c.RescueInterval, 10*time.Second)
	if f, ok := c.Store.(RecordFlusher); ok && c.FlushInterval == 0 {
		c.FlushInterval = f.RecordFlushInterval()
	}
	c.FlushInterval = cmp.Or(c.FlushInterval, 2*time.Millisecond)
	if c.Retry.Schedule == nil {
		c.Retry = DefaultRetryPolicy()
	}
	c.UserAgent = cmp.Or(c.UserAgent, "ubihooks")
	c.Logger = cmp.Or(c.Logger, slog.New(slog.DiscardHandler))
	if c.NowFunc == nil {
		c.NowFunc = time.Now
	}
	return c
}

func (c Config) validate() error {
	var missing []string
	if c.Store == nil {
		missing = append(missing, "Store")
	}
	if c.Client == nil {
		missing = append(missing, "Client")
	}
	if c.SignerFunc == nil {
		missing = append(missing, "SignerFunc")
	}
	if c.OpenHeadersFunc == nil {
		missing = append(missing, "OpenHeadersFunc")
	}
	if c.Owner == "" {
		missing = append(missing, "Owner")
	}
	if len(missing) > 0 {
		return fmt.Errorf("delivery: engine config lacks %s", strings.Join(missing, ", "))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"BatchSize", int64(c.BatchSize)}, {"MaxInFlight", int64(c.MaxInFlight)}, {"MaxUnrecorded", int64(c.MaxUnrecorded)},
		{"Prefetch", int64(c.Prefetch)}, {"MaxPerHost", int64(c.MaxPerHost)}, {"Lease", int64(c.Lease)},
		{"PollInterval", int64(c.PollInterval)}, {"RescueInterval", int64(c.RescueInterval)}, {"FlushInterval", int64(c.FlushInterval)}} {
		if f.v < 0 {
			return fmt.Errorf("delivery: engine config: %s is negative", f.name)
		}
	}
	return nil
}

// Engine sends deliveries: claim a batch with a lease (or take the deliveries dispatched
// to it as they are emitted) → sign → send concurrently → classify → record outcomes in
// batches → reschedule. Its rescuer returns deliveries whose lease expired (a crashed
// engine) to the queue. Deliveries are at-least-once: a crash between a send and its
// record sends again, with the same event id.
//
// Its parts share the engine's state under one mutex: the hostQueue of deliveries waiting
// for a send slot, the backlogs of stuck hosts, and the count of deliveries held. The
// claim loop (claim.go) and Dispatch (dispatch.go) fill the queue, the send loops
// (sender.go) empty it, and the recorder (recorder.go) writes the outcomes.
type Engine struct {
	cfg      Config
	sender   sender
	recorder *recorder
	rescuer  *rescuer
	wake     chan struct{} // Notify: new deliveries are due
	freed    chan struct{} // a send slot or a hold was freed: claims may find room

	mu       sync.Mutex
	q        hostQueue // deliveries waiting for a send slot; places taken per host
	backlogs backlogs  // stuck hosts and their backlogs' deferrals
	held     int       // claimed deliveries not yet recorded or released (waiting, sending or sent)
	released []string  // leases given back by a graceful stop
	expiring []string  // waited so long that their leases would end during the attempt: handed back by the claim loop
	started  bool      // Start ran: Take may take deliveries
	closing  bool      // stopping: no new sends

	claimCtx    context.Context // canceled to stop claiming
	stopClaim   context.CancelFunc
	sendCtx     context.Context // canceled to cut in-flight sends
	cancelSends context.CancelFunc
	aborted     chan struct{} // closed by Abort: nothing more is recorded
	claimDone   chan struct{} // closed when the claim loop has returned
	sends       sync.WaitGroup
	stopOnce    sync.Once

	// TestSignals tell tests what the engine did; arm them with Init before Start.
	TestSignals TestSignals
}

// TestSignals are the events an Engine reports to tests (see package testsignal). Its
// rescuer reports its own.
type TestSignals struct {
	// Claimed reports each pass of the claim loop with how many deliveries it claimed (-1
	// on a store error).
	Claimed testsignal.Signal[int]
	// Polled reports each time the claim loop woke because its poll interval had passed
	// (nothing woke it before).
	Polled testsignal.Signal[struct{}]
	// Closing reports that a graceful Stop has stopped claiming (a claim may still be on its
	// way) and taking dispatched deliveries.
	Closing testsignal.Signal[struct{}]
	// Stopping reports how many sends a graceful Stop waits for.
	Stopping testsignal.Signal[int]
	// Recorder reports the batches of outcomes.
	Recorder recorderTestSignals
}

// Init arms every signal.
func (ts *TestSignals) Init() {
	ts.Claimed.Init()
	ts.Polled.Init()
	ts.Closing.Init()
	ts.Stopping.Init()
	ts.Recorder.Init()
}

// NewEngine returns an engine with cfg's defaults applied; Start checks cfg and runs it.
func NewEngine(cfg Config) *Engine {
	cfg = cfg.withDefaults()
	e := &Engine{cfg: cfg, sender: newSender(cfg), wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		q: newHostQueue(cfg.MaxPerHost, hostCap(cfg)), backlogs: newBacklogs(), aborted: make(chan struct{}),
		claimDone: make(chan struct{})}
	e.recorder = &recorder{recordFunc: e.record, recordedFunc: e.recorded, flushInterval: cfg.FlushInterval,
		now: cfg.NowFunc, logger: cfg.Logger, in: make(chan ubihooks.Outcome, max(0, cfg.MaxInFlight+cfg.MaxUnrecorded)),
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

// Start checks the configuration and runs the claim loop, the recorder and the rescuer in
// the background until Stop (or Abort). ctx gives them its values; its end does not stop
// them. An engine runs once: Start fails on an engine started before, even if stopped
// since.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.cfg.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("delivery: engine already started")
	}
	if err := e.rescuer.Start(ctx); err != nil {
		return err
	}
	base := context.WithoutCancel(ctx)
	e.claimCtx, e.stopClaim = context.WithCancel(base)
	e.sendCtx, e.cancelSends = context.WithCancel(base)
	e.started = true
	go e.claimLoop()
	go e.recorder.run()
	return nil
}

// Stop shuts the engine down gracefully: it stops claiming, lets in-flight sends finish
// until ctx ends, then cuts the rest, and records every outcome; the deliveries it could
// not finish (cut, or still waiting for a send slot) go back to the queue unattempted. It
// returns nil: what was cut is handed back, not lost. Stop is safe to call more than once
// (later calls wait for the first) and before Start.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil
	}
	e.stopOnce.Do(func() { e.stop(ctx) })
	return nil
}

func (e *Engine) stop(ctx context.Context) {
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.stopClaim()
	e.TestSignals.Closing.Signal(struct{}{})
	<-e.claimDone
	_ = e.rescuer.Stop(ctx) // canceled, its run in progress ends at once
	// Deliveries still waiting for a slot go back to the queue unattempted.
	e.mu.Lock()
	e.released = append(e.released, e.expiring...)
	e.expiring = nil
	waiting := e.q.drain()
	for _, p := range waiting {
		e.released = append(e.released, p.d.ID)
	}
	e.held -= len(waiting)
	sending := e.q.sending
	e.mu.Unlock()
	e.cfg.Logger.Info("stopping: waiting for the sends in flight", "sending", sending, "handed_back", len(waiting))
	e.TestSignals.Stopping.Signal(sending)
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
}

// Abort stops the engine as a crash would: no more claims, in-flight sends cut, and
// nothing more recorded or released. Their leases expire and a rescuer hands the
// deliveries to another engine. It exists for crash tests.
func (e *Engine) Abort() {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
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
