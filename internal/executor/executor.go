// Package executor runs requests against their version's backend and reports every status
// transition (with its webhook events) through the service.
//
// A deployment version with a backend_url is an HTTP backend: the executor POSTs the
// request's input there (a JSON object for structured input, a text/plain body for plain
// input) and the response is the result (JSON for structured output, the body as a string
// for plain output). A non-2xx answer, a timeout or an unreachable backend fails the
// request with an error_message. A version without backend_url is an external runtime:
// its requests wait for a worker that claims them through the runtime API.
//
// Pipelines run step by step: each step is a deployment request of its own (with its own
// events), and each step's output feeds the next through the attachments' field mappings.
//
// Requests are claimed with a lease that the executor renews while they run; after a
// crash, the rescuer returns expired leases to the queue, so no request stays processing.
package executor

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// MaxResultBytes bounds a backend's answer.
const MaxResultBytes = 32 << 20

// Config configures an Executor. Zero values take the documented defaults.
type Config struct {
	// Service records the requests' transitions and resolves their versions.
	Service *service.Service
	// Store holds the requests: the executor rescues and renews leases and reads a pipeline
	// request's status between steps through it. It defaults to the service's store.
	Store ubihooks.RequestStore
	// Client calls backends; use the SSRF-guarded client of the delivery package.
	Client *http.Client
	// Owner names this executor in leases (unique per process).
	Owner string
	// Concurrency bounds the requests this executor runs at once (default 64); each version
	// is also bounded by its maximum_instances.
	Concurrency int
	// Lease is how long a claimed request stays with this executor between renewals
	// (default 90s; renewed every Lease/3 while the request runs).
	Lease time.Duration
	// RescueInterval is how often expired leases are returned to the queue (default 10s).
	RescueInterval time.Duration
	// PollInterval is the longest an idle executor waits before looking for work (500ms);
	// Notify wakes it at once.
	PollInterval time.Duration
	// Logger receives the errors of background work (default: discarded).
	Logger *slog.Logger
	// Observer, when set, learns of each run this executor finished (for metrics); nil
	// observes nothing.
	Observer Observer
}

// Observer learns what an executor did, for metrics. Its method is called from the runs'
// goroutines; it must be cheap and must not block.
type Observer interface {
	// RequestFinished reports a run whose end was recorded, with the request's new status
	// ("completed" or "failed"). Runs cut by a stop, and results that could not be
	// recorded (the request was cancelled meanwhile), are not reported.
	RequestFinished(status string)
}

// Stats is what an executor holds now.
type Stats struct {
	// Running counts the requests running.
	Running int
	// Queued counts the claimed requests that wait for a slot of their version.
	Queued int
}

// Stats returns what the executor holds now; it is safe to call at any time.
func (e *Executor) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	queued := 0
	for _, q := range e.queued {
		queued += len(q)
	}
	return Stats{Running: e.runningLocked(), Queued: queued}
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	c.Concurrency = cmp.Or(c.Concurrency, 64)
	c.Lease = cmp.Or(c.Lease, 90*time.Second)
	c.RescueInterval = cmp.Or(c.RescueInterval, 10*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, 500*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports the first setting an executor cannot run with.
func (c Config) validate() error {
	switch {
	case c.Service == nil:
		return errors.New("executor: Config.Service is required")
	case c.Store == nil:
		return errors.New("executor: Config.Store is required")
	case c.Client == nil:
		return errors.New("executor: Config.Client is required")
	case c.Owner == "":
		return errors.New("executor: Config.Owner is required")
	case c.Concurrency < 1:
		return fmt.Errorf("executor: Concurrency must be at least 1, got %d", c.Concurrency)
	case c.Lease < 3*time.Millisecond:
		return fmt.Errorf("executor: Lease must be at least 3ms (it is renewed every third), got %s", c.Lease)
	case c.RescueInterval <= 0:
		return fmt.Errorf("executor: RescueInterval must be positive, got %s", c.RescueInterval)
	case c.PollInterval <= 0:
		return fmt.Errorf("executor: PollInterval must be positive, got %s", c.PollInterval)
	}
	return nil
}

// TestSignals are the events an Executor reports to its tests, so that they wait for what
// happened instead of sleeping. Production code never arms them; see testsignal.
type TestSignals struct {
	// Claimed follows every claim round, also one that claimed nothing (the executor is
	// idle until the next wake-up or poll).
	Claimed testsignal.Signal[Claim]
	// Finished follows the end of every run of a claimed request, once its slot is free.
	Finished testsignal.Signal[Finish]
	// Rescued follows every rescue run, with the number of expired leases it returned.
	Rescued testsignal.Signal[int]
	// Renewed follows every lease renewal, with the number of leases it extended.
	Renewed testsignal.Signal[int]
}

// Init arms every signal. Call it before Start.
func (s *TestSignals) Init() {
	s.Claimed.Init()
	s.Finished.Init()
	s.Rescued.Init()
	s.Renewed.Init()
}

// Claim is one claim round.
type Claim struct {
	// Began is when the round asked the store for work, read from the wall clock (not the
	// service's clock), so that a test can tell a round that began after its own action.
	Began time.Time
	// IDs are the requests claimed, in claim order; none when there was nothing to run.
	IDs []string
	// Running is the number of runs in progress after the round: each of them is started
	// and calls its backend (a claimed request may wait for a slot of its version instead).
	Running int
}

// Finish is the end of a run of a request.
type Finish struct {
	RequestID string
	// Status is the final status recorded; empty when nothing was recorded: a stop cut the
	// run (the request goes back to the queue, or after a hard stop its lease expires, and
	// it runs again), or the request was no longer processing under this executor
	// (cancelled meanwhile: Err is ECONFLICT).
	Status ubihooks.RequestStatus
	// Err is why the end was not recorded.
	Err error
	// Running is the number of runs in progress once this one freed its slot and the next
	// request queued for the version, if any, started.
	Running int
}

// Executor claims pending requests and runs them.
type Executor struct {
	// TestSignals are armed by tests before Start.
	TestSignals TestSignals

	cfg   Config
	svc   *service.Service
	wake  chan struct{}
	freed chan struct{}

	mu         sync.Mutex
	running    map[string]*ubihooks.Request   // claimed (running or queued), by request id
	perVersion map[string]int                 // running requests per version
	limits     map[string]int                 // version id → maximum_instances
	queued     map[string][]*ubihooks.Request // claimed but waiting for a slot of their version
	cut        []string                       // runs a stop cut before they had a result
	started    bool

	ctx        context.Context // runs requests; canceled to cut them
	stop       context.CancelFunc
	claimCtx   context.Context // canceled to stop claiming
	stopClaims context.CancelFunc
	done       chan struct{}
	active     sync.WaitGroup
	stopOnce   sync.Once
}

// New returns an executor; Start runs it.
func New(cfg Config) *Executor {
	cfg = cfg.withDefaults()
	return &Executor{cfg: cfg, svc: cfg.Service, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1),
		running: map[string]*ubihooks.Request{}, perVersion: map[string]int{}, limits: map[string]int{},
		queued: map[string][]*ubihooks.Request{}}
}

// Notify wakes the executor: requests are pending.
func (e *Executor) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Start runs the executor in the background until Stop; ctx is not watched. It fails on an
// invalid configuration, and when the executor was started before: an Executor runs once.
func (e *Executor) Start(ctx context.Context) error {
	if err := e.cfg.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("executor: already started")
	}
	e.started = true
	e.ctx, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	e.claimCtx, e.stopClaims = context.WithCancel(e.ctx)
	e.done = make(chan struct{})
	go e.loop()
	return nil
}

// Stop stops claiming and starts no more runs: the requests it claimed that still wait for
// a slot of their version go back to the queue, unattempted. It lets running requests
// finish until ctx ends, then cuts the rest and hands them back the same way. A stop with
// a ctx already done is a hard stop: the runs it cuts stay leased, as after a crash, until
// their leases expire and another executor runs them again. It returns once every
// goroutine of the executor has ended, with an error when it had to cut runs or could not
// hand requests back. Stopping again, or stopping an executor that never started, does
// nothing.
func (e *Executor) Stop(ctx context.Context) error {
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil
	}
	var err error
	e.stopOnce.Do(func() { err = e.shutdown(ctx) })
	return err
}

func (e *Executor) shutdown(ctx context.Context) error {
	hard := ctx.Err() != nil // no grace at all: the cut runs are left to their leases (see Stop)
	finished := make(chan struct{})
	go func() {
		<-e.done
		e.active.Wait()
		close(finished)
	}()
	e.stopClaims()
	e.mu.Lock()
	running := len(e.running)
	e.mu.Unlock()
	e.cfg.Logger.Info("stopping: waiting for the running requests", "running", running)
	select {
	case <-finished:
	case <-ctx.Done():
		select {
		case <-finished: // finished as the grace ran out: nothing cut
		default:
			e.stop()
			<-finished
		}
	}
	e.stop()
	// Every goroutine has ended: what is left is claimed but was never started, or was cut.
	e.mu.Lock()
	var back []string
	for v, q := range e.queued {
		for _, r := range q {
			back = append(back, r.ID)
			delete(e.running, r.ID)
		}
		delete(e.queued, v)
	}
	cut := e.cut
	e.mu.Unlock()
	if !hard {
		back = append(back, cut...)
	}
	if len(back) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := e.cfg.Store.ReleaseRequests(rctx, e.cfg.Owner, back, e.svc.Now())
		cancel()
		if err != nil {
			e.cfg.Logger.Error("release requests on shutdown; their leases will expire instead", "count", len(back), "err", err)
			left := len(back)
			if hard {
				left += len(cut)
			}
			return fmt.Errorf("executor: stopped with %d claimed requests unfinished, their leases expire and they run again: %w", left, err)
		}
	}
	switch {
	case len(cut) > 0 && hard:
		return fmt.Errorf("executor: stopped with %d claimed requests unfinished, their leases expire and they run again: %w", len(cut), ctx.Err())
	case len(cut) > 0:
		return fmt.Errorf("executor: stopped with %d requests cut before their end, handed back to the queue: %w", len(cut), ctx.Err())
	}
	return nil
}

func (e *Executor) loop() {
	defer close(e.done)
	rescue := time.NewTicker(e.cfg.RescueInterval)
	defer rescue.Stop()
	renew := time.NewTicker(e.cfg.Lease / 3)
	defer renew.Stop()
	e.rescue()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for e.claimCtx.Err() == nil {
		n, full := e.claimOnce()
		if n > 0 && full {
			continue
		}
		timer.Reset(e.cfg.PollInterval)
		select {
		case <-e.claimCtx.Done():
			return
		case <-e.wake:
		case <-e.freed:
		case <-timer.C:
		case <-rescue.C:
			e.rescue()
		case <-renew.C:
			e.renew()
		}
	}
}

func (e *Executor) rescue() {
	n, err := e.cfg.Store.RescueRequests(e.ctx, e.svc.Now())
	if err != nil && e.ctx.Err() == nil {
		e.cfg.Logger.Error("rescue requests", "err", err)
	}
	if n > 0 {
		e.cfg.Logger.Info("rescued requests with expired leases", "count", n)
	}
	e.TestSignals.Rescued.Signal(n)
}

// renew extends the leases of the running requests.
func (e *Executor) renew() {
	e.mu.Lock()
	ids := make([]string, 0, len(e.running))
	for id := range e.running {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if len(ids) == 0 {
		e.TestSignals.Renewed.Signal(0)
		return
	}
	n, err := e.cfg.Store.ExtendRequestLeases(e.ctx, e.cfg.Owner, ids, e.svc.Now().Add(e.cfg.Lease))
	if err != nil && e.ctx.Err() == nil {
		e.cfg.Logger.Error("renew request leases", "err", err)
	}
	e.TestSignals.Renewed.Signal(n)
}

func (e *Executor) claimOnce() (int, bool) {
	e.mu.Lock()
	free := e.cfg.Concurrency - len(e.running)
	var busy []string
	for v, n := range e.perVersion {
		if lim, ok := e.limits[v]; ok && n >= lim {
			busy = append(busy, v)
		}
	}
	e.mu.Unlock()
	if free <= 0 {
		return 0, false
	}
	limit := min(free, 32)
	began := time.Now()
	rs, err := e.svc.ClaimRequests(e.claimCtx, ubihooks.RequestClaim{Owner: e.cfg.Owner, Limit: limit, Lease: e.cfg.Lease, ExcludeVersions: busy})
	if err != nil {
		if e.claimCtx.Err() == nil {
			e.cfg.Logger.Error("claim requests", "err", err)
		}
		return 0, false
	}
	defer e.signalClaim(began, rs)
	for _, r := range rs {
		limit := e.limit(r)
		e.mu.Lock()
		e.running[r.ID] = r
		if e.perVersion[r.VersionID] >= limit || e.claimCtx.Err() != nil {
			// Only the first claims of a version overshoot, before its limit is known; a
			// stop starts nothing more and hands the queued requests back.
			e.queued[r.VersionID] = append(e.queued[r.VersionID], r)
			e.mu.Unlock()
			continue
		}
		e.start(r)
		e.mu.Unlock()
	}
	return len(rs), len(rs) == limit
}

// signalClaim reports a claim round to the tests.
func (e *Executor) signalClaim(began time.Time, rs []*ubihooks.Request) {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	e.mu.Lock()
	running := e.runningLocked()
	e.mu.Unlock()
	e.TestSignals.Claimed.Signal(Claim{Began: began, IDs: ids, Running: running})
}

// start runs r; e.mu is held.
func (e *Executor) start(r *ubihooks.Request) {
	e.perVersion[r.VersionID]++
	e.active.Add(1)
	go e.run(r)
}

// limit returns the concurrency limit of r's version, looking it up the first time.
func (e *Executor) limit(r *ubihooks.Request) int {
	e.mu.Lock()
	lim, ok := e.limits[r.VersionID]
	e.mu.Unlock()
	if ok {
		return lim
	}
	t := r.ObjectType
	_, v, err := e.svc.ResolveVersion(e.ctx, service.ObjectRef{ProjectID: r.ProjectID, Type: t, Name: r.ObjectName}, r.VersionName)
	if err != nil {
		return 1
	}
	e.learn(v)
	return max(v.Concurrency, 1)
}

// finished frees r's slot, starts the next request queued for its version unless the
// executor is stopping, and returns the number of runs in progress then.
func (e *Executor) finished(r *ubihooks.Request) int {
	e.mu.Lock()
	delete(e.running, r.ID)
	if e.perVersion[r.VersionID]--; e.perVersion[r.VersionID] <= 0 {
		delete(e.perVersion, r.VersionID)
	}
	if q := e.queued[r.VersionID]; len(q) > 0 && e.claimCtx.Err() == nil {
		e.queued[r.VersionID] = q[1:]
		if len(q) == 1 {
			delete(e.queued, r.VersionID)
		}
		e.start(q[0])
	}
	running := e.runningLocked()
	e.mu.Unlock()
	select {
	case e.freed <- struct{}{}:
	default:
	}
	return running
}

// runningLocked returns the number of runs in progress; e.mu is held.
func (e *Executor) runningLocked() int {
	n := 0
	for _, c := range e.perVersion {
		n += c
	}
	return n
}

// run executes one claimed request and records its end.
func (e *Executor) run(r *ubihooks.Request) {
	defer e.active.Done()
	var f Finish
	defer func() {
		f.Running = e.finished(r)
		e.TestSignals.Finished.Signal(f)
	}()
	ctx, cancel := context.WithTimeout(e.ctx, r.Timeout)
	defer cancel()
	var result json.RawMessage
	var err error
	if r.ObjectType == ubihooks.ObjectPipeline {
		result, err = e.runPipeline(ctx, r)
	} else {
		result, err = e.runDeployment(ctx, r)
	}
	if e.ctx.Err() != nil {
		// Cut by a stop: it hands the request back (or, stopping hard, the lease expires)
		// and the request runs again.
		e.mu.Lock()
		e.cut = append(e.cut, r.ID)
		e.mu.Unlock()
		f = Finish{RequestID: r.ID, Err: e.ctx.Err()}
		return
	}
	to, msg := ubihooks.RequestCompleted, ""
	if err != nil {
		to, msg = ubihooks.RequestFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
			msg = r.TimeoutMessage()
		}
	}
	_, terr := e.svc.Transition(context.WithoutCancel(e.ctx), service.TransitionParams{Request: r, Owner: e.cfg.Owner, From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: to, Result: result, ErrorMessage: msg})
	if terr != nil && ubihooks.ErrorCode(terr) != ubihooks.ECONFLICT { // ECONFLICT: cancelled meanwhile
		e.cfg.Logger.Error("record request result", "request", r.ID, "err", terr)
	}
	if terr != nil {
		to = ""
	} else if e.cfg.Observer != nil {
		e.cfg.Observer.RequestFinished(string(to))
	}
	f = Finish{RequestID: r.ID, Status: to, Err: terr}
}

// runDeployment calls the version's backend.
func (e *Executor) runDeployment(ctx context.Context, r *ubihooks.Request) (json.RawMessage, error) {
	o, v, err := e.svc.ResolveVersion(ctx, service.ObjectRef{ProjectID: r.ProjectID, Type: ubihooks.ObjectDeployment, Name: r.ObjectName}, r.VersionName)
	if err != nil {
		return nil, fmt.Errorf("the deployment version is gone: %s", ubihooks.ErrorMessage(err))
	}
	e.learn(v)
	return e.call(ctx, o, v, r.ID, r.Input)
}

// learn records a version's concurrency limit for later claims.
func (e *Executor) learn(v *ubihooks.Version) {
	e.mu.Lock()
	e.limits[v.ID] = max(v.Concurrency, 1)
	e.mu.Unlock()
}

// call POSTs input to a backend and returns the result.
func (e *Executor) call(ctx context.Context, o *ubihooks.Object, v *ubihooks.Version, requestID string, input json.RawMessage) (json.RawMessage, error) {
	if v.BackendURL == "" {
		return nil, fmt.Errorf("deployment %s version %s has no backend_url", o.Name, v.Name)
	}
	body, ctype := []byte(input), "application/json"
	if o.InputType == ubihooks.TypePlain {
		var s string
		if err := json.Unmarshal(input, &s); err == nil {
			body, ctype = []byte(s), "text/plain; charset=utf-8"
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.BackendURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("the backend_url of %s %s is not valid", o.Name, v.Name)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "ubihooks/"+ubihooks.Release)
	req.Header.Set("X-Ubihooks-Request-Id", requestID)
	req.Header.Set("X-Ubihooks-Deployment", o.Name)
	req.Header.Set("X-Ubihooks-Version", v.Name)
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		res := outbound.Classify(nil, err, time.Now())
		if res.ErrorClass == ubihooks.ClassTimeout || ctx.Err() == context.DeadlineExceeded {
			return nil, context.DeadlineExceeded
		}
		return nil, fmt.Errorf("the backend could not be reached: %s", res.Error)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, MaxResultBytes+1))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, context.DeadlineExceeded
		}
		return nil, errors.New("the backend's answer was cut off")
	}
	if len(out) > MaxResultBytes {
		return nil, fmt.Errorf("the backend's answer is larger than %d bytes", MaxResultBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := ubihooks.CleanText(string(out), 200)
		return nil, fmt.Errorf("the backend answered %d %s: %s", resp.StatusCode, http.StatusText(resp.StatusCode), snippet)
	}
	if o.OutputType == ubihooks.TypePlain {
		b, _ := json.Marshal(string(out))
		return b, nil
	}
	if !json.Valid(out) {
		return nil, errors.New("the backend's answer is not valid JSON, but the deployment has structured output")
	}
	if o.ValidateResult(out) != nil {
		return nil, errors.New("the backend's answer is not a JSON object, but the deployment has structured output")
	}
	return bytes.TrimSpace(out), nil
}

// runPipeline runs a pipeline request's steps in order.
func (e *Executor) runPipeline(ctx context.Context, r *ubihooks.Request) (json.RawMessage, error) {
	o, v, err := e.svc.ResolveVersion(ctx, service.ObjectRef{ProjectID: r.ProjectID, Type: ubihooks.ObjectPipeline, Name: r.ObjectName}, r.VersionName)
	if err != nil {
		return nil, fmt.Errorf("the pipeline version is gone: %s", ubihooks.ErrorMessage(err))
	}
	e.learn(v)
	if err := e.abandonSteps(ctx, r); err != nil {
		return nil, err
	}
	spec := v.Pipeline
	if spec == nil {
		spec = &ubihooks.PipelineSpec{}
	}
	plan, err := e.svc.PipelinePlan(ctx, o, spec)
	if err != nil {
		return nil, fmt.Errorf("the pipeline version is not valid: %s", ubihooks.ErrorMessage(err))
	}
	if !plan.Ready {
		return nil, errors.New("the pipeline version has no path from pipeline_start to pipeline_end; add objects and attachments")
	}
	data := r.Input
	for i, step := range plan.Steps {
		// A pipeline request cancelled (or rescued by another executor) meanwhile runs no
		// further steps.
		if cur, err := e.cfg.Store.GetRequest(ctx, r.ProjectID, r.ID); err == nil &&
			(cur.Status != ubihooks.RequestProcessing || cur.LeaseOwner != e.cfg.Owner) {
			return nil, fmt.Errorf("the pipeline request is %s: step %s was not run", cur.Status, step.Object.Name)
		}
		in, err := mapFields(data, step.Mapping)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", step.Object.Name, err)
		}
		out, err := e.runStep(ctx, r, i, step, in)
		if err != nil {
			return nil, fmt.Errorf("step %s failed: %w", step.Object.Name, err)
		}
		data = out
	}
	return mapFields(data, plan.EndMapping)
}

// abandonSteps fails the unfinished steps of an earlier, interrupted run of r.
func (e *Executor) abandonSteps(ctx context.Context, r *ubihooks.Request) error {
	steps, err := e.svc.PipelineSteps(ctx, r)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if !s.Status.Final() {
			_, err := e.svc.Transition(ctx, service.TransitionParams{Request: s, From: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing}, To: ubihooks.RequestFailed, ErrorMessage: "interrupted: the pipeline request was restarted"})
			if err != nil && ubihooks.ErrorCode(err) != ubihooks.ECONFLICT {
				return err
			}
		}
	}
	return nil
}

// runStep runs one pipeline step as a deployment request of its own.
func (e *Executor) runStep(ctx context.Context, parent *ubihooks.Request, i int, step service.PlanStep, input json.RawMessage) (json.RawMessage, error) {
	version := ""
	if step.Object.Version != nil {
		version = *step.Object.Version
	}
	d, v, err := e.svc.ResolveVersion(ctx, service.ObjectRef{ProjectID: parent.ProjectID, Type: ubihooks.ObjectDeployment, Name: step.Object.ReferenceName}, version)
	if err != nil {
		return nil, errors.New(ubihooks.ErrorMessage(err))
	}
	child, err := e.svc.CreateChildRequest(ctx, service.ChildRequestParams{Parent: parent, Deployment: d, Version: v, Step: i, ObjectName: step.Object.Name, Input: input})
	if err != nil {
		return nil, err
	}
	if _, err := service.ValidateInput(d, input, -1); err != nil {
		_, _ = e.svc.Transition(ctx, service.TransitionParams{Request: child, From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestFailed, ErrorMessage: ubihooks.ErrorMessage(err)})
		return nil, errors.New(ubihooks.ErrorMessage(err))
	}
	if _, err := e.svc.Transition(ctx, service.TransitionParams{Request: child, From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestProcessing}); err != nil {
		return nil, err
	}
	out, callErr := e.call(ctx, d, v, child.ID, input)
	to, msg := ubihooks.RequestCompleted, ""
	if callErr != nil {
		to, msg = ubihooks.RequestFailed, callErr.Error()
		if errors.Is(callErr, context.DeadlineExceeded) {
			msg = parent.TimeoutMessage()
		}
	}
	if _, err := e.svc.Transition(context.WithoutCancel(ctx), service.TransitionParams{Request: child, From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: to, Result: out, ErrorMessage: msg}); err != nil {
		return nil, err
	}
	if callErr != nil {
		return nil, errors.New(msg)
	}
	return out, nil
}

// mapFields applies an attachment's field mapping to a structured output; without a
// mapping the data passes unchanged.
func mapFields(data json.RawMessage, mapping []ubihooks.PipelineAttachmentField) (json.RawMessage, error) {
	if len(mapping) == 0 {
		return data, nil
	}
	var src map[string]json.RawMessage
	if err := json.Unmarshal(data, &src); err != nil {
		return nil, errors.New("a field mapping needs structured (JSON object) data")
	}
	dst := make(map[string]json.RawMessage, len(mapping))
	for _, m := range mapping {
		v, ok := src[m.SourceFieldName]
		if !ok {
			return nil, fmt.Errorf("field %q is missing from the previous output", m.SourceFieldName)
		}
		dst[m.DestinationFieldName] = v
	}
	return json.Marshal(dst)
}
