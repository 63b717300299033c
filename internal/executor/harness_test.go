package executor_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/executor"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// rqObj is a JSON object under construction.
type rqObj = ubihookstest.Obj

const rqProject = "rq-proj"

// rqEnvOptions tunes the executor of an rqEnv.
type rqEnvOptions struct {
	Concurrency    int
	Lease          time.Duration
	RescueInterval time.Duration
	// NoExecutor leaves the executor to the test (StartExecutor).
	NoExecutor bool
}

// rqEnv wires the pieces as cmd/ubihooks/serve.go does, on a ubihookstest.Env: SQLite
// store, service, delivery engine and executors sharing the SSRF-guarded client
// (127.0.0.0/8 allowed), commits waking the executors (requests) or the engine
// (deliveries), and the API over httptest. The service, the engine and the receiver's
// verifier share the Env's clock. Webhooks point at a receiver that verifies every
// signature.
type rqEnv struct {
	t      *testing.T
	opts   rqEnvOptions
	env    *ubihookstest.Env
	store  *sqlstore.Store
	svc    *service.Service
	client *http.Client
	engine *delivery.Engine
	api    *ubihookstest.API // paths below /projects/rq-proj
	recv   *rqReceiver
	nexec  atomic.Int32

	mu    sync.Mutex
	execs []*executor.Executor
}

func newRQEnv(t *testing.T, opts rqEnvOptions) *rqEnv {
	t.Helper()
	env := ubihookstest.New(t, ubihookstest.Options{Project: rqProject, Organization: "rq-org",
		SQLite: sqlite.Options{Synchronous: "NORMAL"}})
	e := &rqEnv{t: t, opts: opts, env: env, store: env.Store, svc: env.Service}
	allow, err := outbound.ParseNetworks("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	e.client = outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: allow}))
	e.engine = delivery.NewEngine(delivery.Config{Store: env.Store, Client: e.client, SignerFunc: e.svc.Signer,
		OpenHeadersFunc: e.svc.OpenHeaders, Owner: "rq-engine", MaxPerHost: 64, PollInterval: 100 * time.Millisecond,
		NowFunc: env.Clock.Now, OnRecordFunc: func([]ubihooks.Outcome) { env.Changed.Signal() }})
	root := env.ServeAPI(api.New(api.Config{Service: e.svc, Version: "test", RequestRetention: time.Hour}), api.BasePath)
	e.api = root.Project(rqProject)
	env.Run(e.engine, ubihooks.ChannelDeliveries)
	if !opts.NoExecutor {
		e.StartExecutor(opts)
	}
	e.recv = newRQReceiver(e, e.publicKey(root.URL))
	return e
}

// StartExecutor starts an executor (with its own owner id and its test signals armed)
// and makes commits wake it.
func (e *rqEnv) StartExecutor(opts rqEnvOptions) *executor.Executor {
	n := e.nexec.Add(1)
	x := executor.New(executor.Config{Service: e.svc, Store: e.store, Client: e.client, Owner: fmt.Sprintf("rq-exec-%d", n),
		Concurrency: opts.Concurrency, Lease: opts.Lease, RescueInterval: opts.RescueInterval, PollInterval: 100 * time.Millisecond})
	x.TestSignals.Init()
	e.env.Run(x, ubihooks.ChannelRequests)
	e.mu.Lock()
	e.execs = append(e.execs, x)
	e.mu.Unlock()
	return x
}

// executor returns the executor started last.
func (e *rqEnv) executor() *executor.Executor {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.execs) == 0 {
		e.t.Fatal("no executor started")
	}
	return e.execs[len(e.execs)-1]
}

// StopExecutor stops x, giving running requests grace to finish (0: a hard stop), and
// returns Stop's error.
func (e *rqEnv) StopExecutor(x *executor.Executor, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if grace <= 0 {
		cancel()
	}
	return x.Stop(ctx)
}

// waitRuns waits until x has finished a run of each request, and returns how each ended.
func (e *rqEnv) waitRuns(x *executor.Executor, ids ...string) map[string]executor.Finish {
	e.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[string]executor.Finish{}
	for len(got) < len(want) {
		f := x.TestSignals.Finished.WaitFor(e.t, rqWait, func(f executor.Finish) bool {
			_, seen := got[f.RequestID]
			return want[f.RequestID] && !seen
		})
		got[f.RequestID] = f
	}
	return got
}

// waitIdle waits for a claim round of x that began after since: a request committed
// before since that x could run would have been claimed by it.
func (e *rqEnv) waitIdle(x *executor.Executor, since time.Time) executor.Claim {
	e.t.Helper()
	x.Notify()
	return x.TestSignals.Claimed.WaitFor(e.t, rqWait, func(c executor.Claim) bool { return c.Began.After(since) })
}

// publicKey fetches the published signing key the way a receiver would.
func (e *rqEnv) publicKey(base string) ed25519.PublicKey {
	e.t.Helper()
	res, err := http.Get(base + "/signing-keys/active.pem")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	pub, err := httpsig.ParsePublicKeyPEM(b)
	if err != nil {
		e.t.Fatalf("signing key: %v (%s)", err, b)
	}
	return pub
}

// do calls the API under /projects/rq-proj. body: nil, a string (sent as is, with ctype
// or application/json) or a value to marshal.
func (e *rqEnv) do(method, path string, body any, ctype string) ubihookstest.Response {
	e.t.Helper()
	return e.api.Do(method, path, body, ctype)
}

// must calls the API and fails the test unless it answers want; it returns the decoded body.
func (e *rqEnv) must(method, path string, body any, want int) any {
	e.t.Helper()
	return e.api.Must(method, path, body, want)
}

func (e *rqEnv) mustObj(method, path string, body any, want int) rqObj {
	e.t.Helper()
	return e.api.MustObj(method, path, body, want)
}

func (e *rqEnv) mustList(method, path string, body any, want int) []rqObj {
	e.t.Helper()
	return e.api.MustList(method, path, body, want)
}

// deployment creates a structured deployment with int fields in → out ("" fields: plain).
func (e *rqEnv) deployment(name, in, out string) {
	e.t.Helper()
	body := rqObj{"name": name, "input_type": "plain", "output_type": "plain"}
	if in != "" {
		body["input_type"], body["input_fields"] = "structured", []rqObj{{"name": in, "data_type": "int"}}
	}
	if out != "" {
		body["output_type"], body["output_fields"] = "structured", []rqObj{{"name": out, "data_type": "int"}}
	}
	e.must("POST", "/deployments", body, 201)
}

// version creates a deployment version; backend "" makes an external-runtime version.
func (e *rqEnv) version(deployment, name, backend string, maxInstances int) {
	e.t.Helper()
	body := rqObj{"version": name}
	if backend != "" {
		body["backend_url"] = backend
	}
	if maxInstances > 0 {
		body["maximum_instances"] = maxInstances
	}
	e.must("POST", "/deployments/"+deployment+"/versions", body, 201)
}

// hook creates a webhook at the receiver (URL …/hook/<name>); version "" follows the
// default version.
func (e *rqEnv) hook(name, objectType, object, version, kind string, includeResult bool) {
	e.t.Helper()
	body := rqObj{"name": name, "object_type": objectType, "object_name": object, "url": e.recv.url(name),
		"event": objectType + "_request_" + kind, "include_result": includeResult}
	if version != "" {
		body["version"] = version
	}
	e.must("POST", "/webhooks", body, 201)
}

// hooks creates one webhook per event kind, named <prefix>-<kind>.
func (e *rqEnv) hooks(prefix, objectType, object, version string, includeResult bool, kinds ...string) {
	e.t.Helper()
	if len(kinds) == 0 {
		kinds = []string{"started", "completed", "failed", "finished"}
	}
	for _, k := range kinds {
		e.hook(prefix+"-"+k, objectType, object, version, k, includeResult)
	}
}

// twoStepPipeline creates the deployments step-a (x → y, backend a) and step-b (z → w,
// backend b), both with version v1, and the pipeline "pipe" (x → w) whose version pv1
// runs object "a" (step-a at version aVersion; "" follows the default) and then "b"
// (step-b), mapping x → x, y → z and w → w.
func (e *rqEnv) twoStepPipeline(a, b, aVersion string) {
	e.t.Helper()
	e.deployment("step-a", "x", "y")
	e.version("step-a", "v1", a, 0)
	e.deployment("step-b", "z", "w")
	e.version("step-b", "v1", b, 0)
	field := func(n string) []rqObj { return []rqObj{{"name": n, "data_type": "int"}} }
	e.must("POST", "/pipelines", rqObj{"name": "pipe", "input_type": "structured", "input_fields": field("x"),
		"output_type": "structured", "output_fields": field("w")}, 201)
	attach := func(from, to, src, dst string) rqObj {
		return rqObj{"destination_name": to, "sources": []rqObj{{"source_name": from,
			"mapping": []rqObj{{"source_field_name": src, "destination_field_name": dst}}}}}
	}
	objA := rqObj{"name": "a", "reference_name": "step-a"}
	if aVersion != "" {
		objA["version"] = aVersion
	}
	e.must("POST", "/pipelines/pipe/versions", rqObj{"version": "pv1",
		"objects":     []rqObj{objA, {"name": "b", "reference_name": "step-b"}},
		"attachments": []rqObj{attach("pipeline_start", "a", "x", "x"), attach("a", "b", "y", "z"), attach("b", "pipeline_end", "w", "w")}}, 201)
}

// unfinished lists the deliveries of the given requests' events that are not final yet.
func (e *rqEnv) unfinished(requests map[string]bool) []string {
	ctx := context.Background()
	ws, err := e.store.ListWebhooks(ctx, e.env.Project.ID, ubihooks.WebhookFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, w := range ws {
		ds, err := e.store.ListDeliveries(ctx, ubihooks.DeliveryFilter{ProjectID: w.ProjectID, WebhookID: w.ID, Limit: 1 << 20})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, d := range ds {
			if d.Event != nil && requests[d.Event.RequestID] && d.Status != ubihooks.DeliverySucceeded && d.Status != ubihooks.DeliveryFailed {
				out = append(out, fmt.Sprintf("%s ← %s of %s: %s", w.Name, d.Event.Type, d.Event.RequestID, d.Status))
			}
		}
	}
	return out
}

// rqReceiver is the webhook receiver of an rqEnv (a ubihookstest.Receiver that verifies
// each signature with the public httpsig package); it counts deliveries per webhook by
// payload id.
type rqReceiver struct {
	t  *testing.T
	e  *rqEnv
	rc *ubihookstest.Receiver

	mu     sync.Mutex
	counts map[string]map[string]int // webhook → payload id → deliveries
	first  map[string]map[string]rqObj
	total  int
}

func newRQReceiver(e *rqEnv, pub ed25519.PublicKey) *rqReceiver {
	r := &rqReceiver{t: e.t, e: e, counts: map[string]map[string]int{}, first: map[string]map[string]rqObj{}}
	r.rc = e.env.Receiver(ubihookstest.ReceiverConfig{
		Verifier:  &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub}, Now: e.env.Clock.Now},
		Respond:   ubihookstest.Status(http.StatusNoContent),
		OnArrival: r.record,
	})
	return r
}

func (r *rqReceiver) url(hook string) string { return r.rc.URL + "/hook/" + hook }

// record counts an accepted delivery; the receiver refuses (and reports) the others.
func (r *rqReceiver) record(a *ubihookstest.Arrival) {
	if a.SigErr != nil || a.ID() == "" {
		return
	}
	hook := strings.TrimPrefix(a.Path, "/hook/")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts[hook] == nil {
		r.counts[hook], r.first[hook] = map[string]int{}, map[string]rqObj{}
	}
	r.counts[hook][a.ID()]++
	if r.counts[hook][a.ID()] == 1 {
		r.first[hook][a.ID()] = a.Payload
	}
	r.total++
}

// Total is the number of deliveries accepted so far.
func (r *rqReceiver) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// snapshot returns every delivery with its count, and the receiver's refusals.
func (r *rqReceiver) snapshot() (map[string]map[string]int, map[string]map[string]rqObj, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts, first := map[string]map[string]int{}, map[string]map[string]rqObj{}
	for h, m := range r.counts {
		counts[h], first[h] = map[string]int{}, map[string]rqObj{}
		for id, n := range m {
			counts[h][id], first[h][id] = n, r.first[h][id]
		}
	}
	return counts, first, r.rc.Failures()
}

// rqWant is one delivery a test expects exactly once.
type rqWant struct {
	hook       string
	objectType string // deployment or pipeline
	object     string
	version    string
	request    string
	kind       string // started, completed, failed, finished
	status     string
	result     any // nil: the payload has no result
}

func (w rqWant) event() string { return w.objectType + "_request_" + w.kind }

func (w rqWant) String() string {
	return fmt.Sprintf("%s ← %s of %s %s/%s request %s", w.hook, w.event(), w.objectType, w.object, w.version, w.request)
}

// expect waits until every wanted delivery arrived and every delivery of the given
// requests' events is final in the store (nothing more will be sent for them), then checks
// that the deliveries for those requests are exactly the wanted ones, each delivered once,
// with the right payload.
func (r *rqReceiver) expect(timeout time.Duration, requests []string, wants []rqWant) {
	r.t.Helper()
	ids := make([]string, len(wants)) // event ids, computed once
	for i, w := range wants {
		ids[i] = ubihooks.EventID(w.request, ubihooks.EventType(w.event()))
	}
	missing := func(describe bool) (n int, out []string) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, w := range wants {
			if r.counts[w.hook][ids[i]] == 0 {
				n++
				if describe {
					out = append(out, w.String())
				}
			}
		}
		return n, out
	}
	if !r.e.env.Changed.Await(timeout, func() bool { n, _ := missing(false); return n == 0 }) {
		n, m := missing(true)
		if len(m) > 20 {
			m = append(m[:20], "…")
		}
		r.t.Fatalf("after %s, %d deliveries are missing:\n  %s", timeout, n, strings.Join(m, "\n  "))
	}
	inScope := map[string]bool{}
	for _, id := range requests {
		inScope[id] = true
	}
	// Anything extra or duplicated has arrived once every delivery is final: a final
	// delivery is not sent again, and a send arrives before its outcome is recorded.
	var open []string
	if !r.e.env.Changed.Await(timeout, func() bool { open = r.e.unfinished(inScope); return len(open) == 0 }) {
		r.t.Fatalf("after %s, %d deliveries are not final:\n  %s", timeout, len(open), strings.Join(open, "\n  "))
	}
	counts, first, bad := r.snapshot()
	for _, b := range bad {
		r.t.Errorf("receiver refused a delivery: %s", b)
	}
	wanted := map[string]rqWant{} // hook + event id
	for i, w := range wants {
		id := ids[i]
		wanted[w.hook+"/"+id] = w
		p := first[w.hook][id]
		if n := counts[w.hook][id]; n != 1 {
			r.t.Errorf("%s: delivered %d times, want once", w, n)
		}
		rqCheckPayload(r.t, w, id, p)
	}
	for hook, m := range counts {
		for id, n := range m {
			p := first[hook][id]
			req, _ := p["request_id"].(string)
			if !inScope[req] {
				continue
			}
			if _, ok := wanted[hook+"/"+id]; !ok {
				r.t.Errorf("unexpected delivery (%d×) to %s: %v", n, hook, p)
			}
		}
	}
}

// rqCheckPayload checks a payload against what the delivery should say.
func rqCheckPayload(t *testing.T, w rqWant, id string, p rqObj) {
	t.Helper()
	pre := w.objectType
	other := "pipeline"
	if pre == "pipeline" {
		other = "deployment"
	}
	want := rqObj{"id": id, "event": w.event(), pre + "_name": w.object, pre + "_version_name": w.version,
		"request_id": w.request, "status": w.status, "project": rqProject}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s: payload %s = %v, want %v (payload %v)", w, k, p[k], v, p)
		}
	}
	for _, k := range []string{pre + "_id", pre + "_version_id", "text", "timestamp"} {
		if s, _ := p[k].(string); s == "" {
			t.Errorf("%s: payload has no %s: %v", w, k, p)
		}
	}
	for k := range p {
		if strings.HasPrefix(k, other+"_") {
			t.Errorf("%s: payload of a %s has key %s: %v", w, pre, k, p)
		}
	}
	res, has := p["result"]
	switch {
	case w.result == nil && has:
		t.Errorf("%s: payload has a result %v, want none", w, res)
	case w.result != nil && !has:
		t.Errorf("%s: payload has no result, want %v", w, w.result)
	case w.result != nil && !reflect.DeepEqual(rqNormalize(w.result), res):
		t.Errorf("%s: payload result %v, want %v", w, res, w.result)
	}
}

// rqNormalize round-trips v through JSON so that it compares with decoded payloads.
func rqNormalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// rqWants builds the wanted deliveries of one request: one per (hook, kind) pair, given
// as "hook:kind"; completed and finished of a completed request carry result when the
// hook name ends in "+r" (the suffix is dropped).
func rqWants(objectType, object, version, request, final string, result any, hookKinds ...string) []rqWant {
	var out []rqWant
	for _, hk := range hookKinds {
		hook, kind, _ := strings.Cut(hk, ":")
		withResult := strings.HasSuffix(hook, "+r")
		hook = strings.TrimSuffix(hook, "+r")
		w := rqWant{hook: hook, objectType: objectType, object: object, version: version, request: request, kind: kind, status: final}
		if kind == "started" {
			w.status = "processing"
		}
		if withResult && kind != "started" && final == "completed" {
			w.result = result
		}
		out = append(out, w)
	}
	return out
}

// rqModelRules are the client model rules of request responses
// (/work/ubiops-client-models.md): required keys, strings that may not be empty, dicts.
var rqModelRules = map[string]struct{ required, nonEmpty, dicts []string }{
	"DeploymentRequestCreateResponse": {required: []string{"id", "status"}},
	"DeploymentRequestSingleDetail":   {required: []string{"id", "status", "time_created"}, nonEmpty: []string{"version"}, dicts: []string{"origin"}},
	"DeploymentRequestList":           {required: []string{"id", "status", "time_created"}, nonEmpty: []string{"version"}},
	"DeploymentRequestBatchCreate":    {required: []string{"id", "status", "time_created"}, nonEmpty: []string{"version"}},
	"PipelineRequestCreateResponse":   {required: []string{"id", "status"}, nonEmpty: []string{"version"}},
	"PipelineRequestSingleDetail":     {required: []string{"id", "status", "time_created"}, nonEmpty: []string{"version"}, dicts: []string{"origin"}},
}

// rqCheckModel checks a response object against a client model's rules; pipeline models
// also check their deployment_requests items (id, status and a string sequence_id).
func rqCheckModel(t *testing.T, model string, v rqObj) {
	t.Helper()
	rules, ok := rqModelRules[model]
	if !ok {
		t.Fatalf("unknown model %s", model)
	}
	for _, k := range rules.required {
		if s, ok := v[k].(string); !ok || s == "" {
			t.Errorf("%s: %s must be a non-empty string, got %#v (%v)", model, k, v[k], v)
		}
	}
	if tc, ok := v["time_created"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, tc); err != nil {
			t.Errorf("%s: time_created %q is not ISO 8601", model, tc)
		}
	}
	for _, k := range rules.nonEmpty {
		if x, present := v[k]; present && x != nil {
			if s, ok := x.(string); !ok || s == "" {
				t.Errorf("%s: %s must be null or a non-empty string, got %#v", model, k, x)
			}
		}
	}
	for _, k := range rules.dicts {
		if x := v[k]; x != nil {
			if _, ok := x.(rqObj); !ok {
				t.Errorf("%s: %s must be an object or null, got %#v", model, k, x)
			}
		}
	}
	if strings.HasPrefix(model, "Pipeline") {
		steps, present := v["deployment_requests"]
		if present && steps != nil {
			items, ok := steps.([]any)
			if !ok {
				t.Fatalf("%s: deployment_requests is not a list: %#v", model, steps)
			}
			for i, it := range items {
				m, _ := it.(rqObj)
				for _, k := range []string{"id", "status", "sequence_id"} {
					if _, ok := m[k].(string); !ok {
						t.Errorf("%s: deployment_requests[%d].%s must be a string, got %#v", model, i, k, m[k])
					}
				}
			}
		}
	}
}

// modelServer starts a model backend that answers with fn; it closes after the
// executors and the engine stop.
func (e *rqEnv) modelServer(fn func(in any) (any, error)) *ubihookstest.Backend {
	return e.env.Model(fn)
}

// rqInt reads an int field of a structured input.
func rqInt(in any, field string) int {
	m, _ := in.(map[string]any)
	f, _ := m[field].(float64)
	return int(f)
}
