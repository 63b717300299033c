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
)

// MaxResultBytes bounds a backend's answer.
const MaxResultBytes = 32 << 20

// Config configures an Executor. Zero values take the documented defaults.
type Config struct {
	Service *service.Service
	// Client calls backends; use the SSRF-guarded client of the delivery package.
	Client *http.Client
	Owner  string
	// Concurrency bounds the requests this executor runs at once (default 64); each version
	// is also bounded by its maximum_instances.
	Concurrency int
	// Lease is how long a claimed request stays with this executor between renewals
	// (default 90s; renewed every Lease/3 while the request runs).
	Lease time.Duration
	// RescueInterval is how often expired leases are returned to the queue (default 10s).
	RescueInterval time.Duration
	// PollInterval is the longest an idle executor waits before looking for work (500ms).
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Executor claims pending requests and runs them.
type Executor struct {
	cfg   Config
	svc   *service.Service
	wake  chan struct{}
	freed chan struct{}

	mu         sync.Mutex
	running    map[string]*ubihooks.Request   // claimed (running or queued), by request id
	perVersion map[string]int                 // running requests per version
	limits     map[string]int                 // version id → maximum_instances
	queued     map[string][]*ubihooks.Request // claimed but waiting for a slot of their version

	ctx        context.Context // runs requests; canceled to cut them
	stop       context.CancelFunc
	claimCtx   context.Context // canceled to stop claiming
	stopClaims context.CancelFunc
	done       chan struct{}
	active     sync.WaitGroup
}

// New returns an executor; Start runs it.
func New(cfg Config) *Executor {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 90 * time.Second
	}
	if cfg.RescueInterval <= 0 {
		cfg.RescueInterval = 10 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
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

// Start runs the executor in the background.
func (e *Executor) Start(ctx context.Context) {
	e.ctx, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	e.claimCtx, e.stopClaims = context.WithCancel(e.ctx)
	e.done = make(chan struct{})
	go e.loop()
}

// Stop stops claiming, lets running requests finish until ctx ends, then abandons the rest:
// their leases expire and another executor runs them again.
func (e *Executor) Stop(ctx context.Context) {
	if e.stop == nil {
		return
	}
	finished := make(chan struct{})
	go func() {
		<-e.done
		e.active.Wait()
		close(finished)
	}()
	e.stopClaims()
	select {
	case <-finished:
	case <-ctx.Done():
		e.stop()
		<-finished
	}
	e.stop()
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
	n, err := e.svc.Store().RescueRequests(e.ctx, e.svc.Now())
	if err != nil && e.ctx.Err() == nil {
		e.cfg.Logger.Error("rescue requests", "err", err)
	}
	if n > 0 {
		e.cfg.Logger.Info("rescued requests with expired leases", "count", n)
	}
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
		return
	}
	if _, err := e.svc.Store().ExtendRequestLeases(e.ctx, e.cfg.Owner, ids, e.svc.Now().Add(e.cfg.Lease)); err != nil && e.ctx.Err() == nil {
		e.cfg.Logger.Error("renew request leases", "err", err)
	}
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
	rs, err := e.svc.ClaimRequests(e.claimCtx, ubihooks.RequestClaim{Owner: e.cfg.Owner, Limit: limit, Lease: e.cfg.Lease, ExcludeVersions: busy})
	if err != nil {
		if e.claimCtx.Err() == nil {
			e.cfg.Logger.Error("claim requests", "err", err)
		}
		return 0, false
	}
	for _, r := range rs {
		limit := e.limit(r)
		e.mu.Lock()
		e.running[r.ID] = r
		if e.perVersion[r.VersionID] >= limit {
			// Only the first claims of a version overshoot, before its limit is known.
			e.queued[r.VersionID] = append(e.queued[r.VersionID], r)
			e.mu.Unlock()
			continue
		}
		e.start(r)
		e.mu.Unlock()
	}
	return len(rs), len(rs) == limit
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
	_, v, err := e.svc.ResolveVersion(e.ctx, r.ProjectID, t, r.ObjectName, r.VersionName)
	if err != nil {
		return 1
	}
	e.learn(v)
	return max(v.Concurrency, 1)
}

func (e *Executor) finished(r *ubihooks.Request) {
	e.mu.Lock()
	delete(e.running, r.ID)
	if e.perVersion[r.VersionID]--; e.perVersion[r.VersionID] <= 0 {
		delete(e.perVersion, r.VersionID)
	}
	if q := e.queued[r.VersionID]; len(q) > 0 && e.ctx.Err() == nil {
		e.queued[r.VersionID] = q[1:]
		if len(q) == 1 {
			delete(e.queued, r.VersionID)
		}
		e.start(q[0])
	}
	e.mu.Unlock()
	select {
	case e.freed <- struct{}{}:
	default:
	}
}

// run executes one claimed request and records its end.
func (e *Executor) run(r *ubihooks.Request) {
	defer e.active.Done()
	defer e.finished(r)
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
		return // shutting down hard: the lease expires and the request runs again
	}
	to, msg := ubihooks.RequestCompleted, ""
	if err != nil {
		to, msg = ubihooks.RequestFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
			msg = fmt.Sprintf("the request did not finish within its timeout of %s", r.Timeout)
		}
	}
	_, terr := e.svc.Transition(context.WithoutCancel(e.ctx), r, e.cfg.Owner, []ubihooks.RequestStatus{ubihooks.RequestProcessing}, to, result, msg)
	if terr != nil && ubihooks.ErrorCode(terr) != ubihooks.ECONFLICT { // ECONFLICT: cancelled meanwhile
		e.cfg.Logger.Error("record request result", "request", r.ID, "err", terr)
	}
}

// runDeployment calls the version's backend.
func (e *Executor) runDeployment(ctx context.Context, r *ubihooks.Request) (json.RawMessage, error) {
	o, v, err := e.svc.ResolveVersion(ctx, r.ProjectID, ubihooks.ObjectDeployment, r.ObjectName, r.VersionName)
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
	var obj map[string]any
	if json.Unmarshal(out, &obj) != nil {
		return nil, errors.New("the backend's answer is not a JSON object, but the deployment has structured output")
	}
	return bytes.TrimSpace(out), nil
}

// runPipeline runs a pipeline request's steps in order.
func (e *Executor) runPipeline(ctx context.Context, r *ubihooks.Request) (json.RawMessage, error) {
	o, v, err := e.svc.ResolveVersion(ctx, r.ProjectID, ubihooks.ObjectPipeline, r.ObjectName, r.VersionName)
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
		if cur, err := e.svc.Store().GetRequest(ctx, r.ProjectID, r.ID); err == nil &&
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
			_, err := e.svc.Transition(ctx, s, "", []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing},
				ubihooks.RequestFailed, nil, "interrupted: the pipeline request was restarted")
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
	d, v, err := e.svc.ResolveVersion(ctx, parent.ProjectID, ubihooks.ObjectDeployment, step.Object.ReferenceName, version)
	if err != nil {
		return nil, errors.New(ubihooks.ErrorMessage(err))
	}
	child, err := e.svc.CreateChildRequest(ctx, parent, d, v, i, step.Object.Name, input)
	if err != nil {
		return nil, err
	}
	if _, err := service.ValidateInput(d, input, -1); err != nil {
		_, _ = e.svc.Transition(ctx, child, "", []ubihooks.RequestStatus{ubihooks.RequestPending}, ubihooks.RequestFailed, nil, ubihooks.ErrorMessage(err))
		return nil, errors.New(ubihooks.ErrorMessage(err))
	}
	if _, err := e.svc.Transition(ctx, child, "", []ubihooks.RequestStatus{ubihooks.RequestPending}, ubihooks.RequestProcessing, nil, ""); err != nil {
		return nil, err
	}
	out, callErr := e.call(ctx, d, v, child.ID, input)
	to, msg := ubihooks.RequestCompleted, ""
	if callErr != nil {
		to, msg = ubihooks.RequestFailed, callErr.Error()
		if errors.Is(callErr, context.DeadlineExceeded) {
			msg = fmt.Sprintf("the request did not finish within its timeout of %s", parent.Timeout)
		}
	}
	if _, err := e.svc.Transition(context.WithoutCancel(ctx), child, "", []ubihooks.RequestStatus{ubihooks.RequestProcessing}, to, out, msg); err != nil {
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
