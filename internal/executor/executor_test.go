package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/executor"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

const rqWait = 20 * time.Second

// TestExecutorDeploymentRequestEvents: a completed request delivers started, completed and
// finished once each (with the result where include_result is set); a failing backend
// gives started, failed, finished and an error_message; a request cancelled while pending
// gives finished only; webhooks on another version stay silent.
func TestExecutorDeploymentRequestEvents(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	model := e.modelServer(func(in any) (any, error) {
		x := rqInt(in, "x")
		if x < 0 {
			return nil, errors.New("negative input")
		}
		return map[string]any{"y": 2 * x}, nil
	})
	e.deployment("dep", "x", "y")
	e.version("dep", "v1", model.URL, 0) // the default version
	e.version("dep", "v2", model.URL, 0)
	e.version("dep", "ext", "", 0) // no backend: requests wait for an external runtime
	e.hooks("d1", "deployment", "dep", "v1", false, "started", "failed")
	e.hooks("d1", "deployment", "dep", "v1", true, "completed", "finished")
	e.hooks("d2", "deployment", "dep", "v2", true) // silent: no v2 request
	e.hooks("dx", "deployment", "dep", "ext", false)
	e.hook("ddef-completed", "deployment", "dep", "", "completed", true)

	ok := e.mustObj("POST", "/deployments/dep/versions/v1/requests", rqObj{"x": 3}, 200)
	rqCheckModel(t, "DeploymentRequestCreateResponse", ok)
	if ok["status"] != "completed" || rqNormalize(ok["result"]) == nil || ok["result"].(rqObj)["y"] != 6.0 || ok["error_message"] != nil {
		t.Fatalf("direct request: %v, want completed with result {y: 6}", ok)
	}
	okID := ok["id"].(string)

	bad := e.mustObj("POST", "/deployments/dep/requests", rqObj{"x": -1}, 200) // default version v1
	rqCheckModel(t, "DeploymentRequestCreateResponse", bad)
	msg, _ := bad["error_message"].(string)
	if bad["status"] != "failed" || bad["result"] != nil || !strings.Contains(msg, "500") {
		t.Fatalf("failing backend: %v, want failed with an error_message naming the 500", bad)
	}
	badID := bad["id"].(string)
	got := e.mustObj("GET", "/deployments/dep/requests/"+badID, nil, 200)
	rqCheckModel(t, "DeploymentRequestSingleDetail", got)
	if got["status"] != "failed" || got["error_message"] != msg || got["version"] != "v1" {
		t.Errorf("GET failed request: %v", got)
	}

	pending := e.mustList("POST", "/deployments/dep/versions/ext/requests/batch", []any{rqObj{"x": 1}}, 201)
	cancelID := pending[0]["id"].(string)
	e.waitIdle(e.executor(), time.Now()) // the executor must leave it alone
	if r := e.mustObj("GET", "/deployments/dep/requests/"+cancelID, nil, 200); r["status"] != "pending" {
		t.Fatalf("request of a version without backend: %v, want pending", r)
	}
	c := e.mustObj("PATCH", "/deployments/dep/requests/"+cancelID, rqObj{"status": "cancelled"}, 200)
	if c["status"] != "cancelled" {
		t.Fatalf("cancel: %v", c)
	}

	// A direct request that nobody runs fails at its timeout, without ever starting.
	late := e.mustObj("POST", "/deployments/dep/versions/ext/requests?timeout=1", rqObj{"x": 2}, 200)
	if m, _ := late["error_message"].(string); late["status"] != "failed" || !strings.Contains(m, "timeout") {
		t.Fatalf("direct request to a version without runtime: %v, want failed at its timeout", late)
	}
	lateID := late["id"].(string)

	var wants []rqWant
	result := map[string]any{"y": 6}
	wants = append(wants, rqWants("deployment", "dep", "v1", okID, "completed", result,
		"d1:started", "d1+r:completed", "d1+r:finished", "ddef+r:completed")...)
	wants = append(wants, rqWants("deployment", "dep", "v1", badID, "failed", nil,
		"d1:started", "d1:failed", "d1+r:finished")...)
	wants = append(wants, rqWants("deployment", "dep", "ext", cancelID, "cancelled", nil, "dx:finished")...)
	wants = append(wants, rqWants("deployment", "dep", "ext", lateID, "failed", nil, "dx:failed", "dx:finished")...)
	for i := range wants { // hook names: <prefix>-<kind>
		wants[i].hook += "-" + wants[i].kind
	}
	e.recv.expect(rqWait, []string{okID, badID, cancelID, lateID}, wants)
}

// TestExecutorRequestDefaultVersion: a webhook without version follows the default
// version, also after the default changes; a webhook on v2 stays silent for v1 requests.
func TestExecutorRequestDefaultVersion(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	model := e.modelServer(func(in any) (any, error) { return map[string]any{"y": rqInt(in, "x") + 1}, nil })
	e.deployment("dep", "x", "y")
	e.version("dep", "v1", model.URL, 0)
	e.version("dep", "v2", model.URL, 0)
	e.hook("def-finished", "deployment", "dep", "", "finished", false)
	e.hook("v2-finished", "deployment", "dep", "v2", "finished", false)

	run := func(path string) string {
		r := e.mustObj("POST", path, rqObj{"x": 1}, 200)
		if r["status"] != "completed" {
			t.Fatalf("POST %s: %v", path, r)
		}
		return r["id"].(string)
	}
	r1 := run("/deployments/dep/versions/v1/requests")
	r2 := run("/deployments/dep/versions/v2/requests")
	d := e.mustObj("PATCH", "/deployments/dep", rqObj{"default_version": "v2"}, 200)
	if d["default_version"] != "v2" {
		t.Fatalf("PATCH default_version: %v", d)
	}
	r3 := run("/deployments/dep/versions/v1/requests")
	r4 := run("/deployments/dep/versions/v2/requests")
	r5 := run("/deployments/dep/requests") // the default version: now v2
	if g := e.mustObj("GET", "/deployments/dep/requests/"+r5, nil, 200); g["version"] != "v2" {
		t.Fatalf("request to the default version ran on %v, want v2", g["version"])
	}
	var wants []rqWant
	wants = append(wants, rqWants("deployment", "dep", "v1", r1, "completed", nil, "def-finished:finished")...)
	wants = append(wants, rqWants("deployment", "dep", "v2", r2, "completed", nil, "v2-finished:finished")...)
	// r3 (v1, no longer the default): no delivery at all.
	wants = append(wants, rqWants("deployment", "dep", "v2", r4, "completed", nil, "def-finished:finished", "v2-finished:finished")...)
	wants = append(wants, rqWants("deployment", "dep", "v2", r5, "completed", nil, "def-finished:finished", "v2-finished:finished")...)
	e.recv.expect(rqWait, []string{r1, r2, r3, r4, r5}, wants)
}

// TestPipelineRequestEvents: a pipeline of two deployments (a → b, with the field mapping
// y → z between them) delivers pipeline_* events with pipeline_* payload keys, and each
// step's deployment request delivers its own deployment events.
func TestPipelineRequestEvents(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	a := e.modelServer(func(in any) (any, error) { return map[string]any{"y": rqInt(in, "x") + 1}, nil })
	b := e.modelServer(func(in any) (any, error) {
		z := rqInt(in, "z")
		if z == 0 {
			return nil, errors.New("division by zero")
		}
		return map[string]any{"w": 10 * z}, nil
	})
	e.twoStepPipeline(a.URL, b.URL, "v1")
	e.hooks("pipe", "pipeline", "pipe", "", false, "started", "failed")
	e.hooks("pipe", "pipeline", "pipe", "pv1", true, "completed", "finished")
	e.hooks("sa", "deployment", "step-a", "", true)
	e.hooks("sb", "deployment", "step-b", "v1", false)

	check := func(r rqObj, status string) (id string, steps []string) {
		t.Helper()
		rqCheckModel(t, "PipelineRequestCreateResponse", r)
		got := e.mustObj("GET", "/pipelines/pipe/requests/"+r["id"].(string), nil, 200)
		rqCheckModel(t, "PipelineRequestSingleDetail", got)
		if r["status"] != status || got["status"] != status || got["pipeline"] != "pipe" || got["version"] != "pv1" {
			t.Fatalf("pipeline request: %v / GET %v, want %s", r, got, status)
		}
		items, _ := got["deployment_requests"].([]any)
		if len(items) != 2 {
			t.Fatalf("deployment_requests: %v, want 2 steps", got["deployment_requests"])
		}
		for i, it := range items {
			st := it.(rqObj)
			want := rqObj{"sequence_id": fmt.Sprint(i), "pipeline_object": []string{"a", "b"}[i], "deployment": []string{"step-a", "step-b"}[i], "version": "v1"}
			for k, v := range want {
				if st[k] != v {
					t.Errorf("step %d: %s = %#v, want %#v", i, k, st[k], v)
				}
			}
			steps = append(steps, st["id"].(string))
			// A step is a deployment request of its own.
			dr := e.mustObj("GET", "/deployments/"+st["deployment"].(string)+"/requests/"+st["id"].(string), nil, 200)
			rqCheckModel(t, "DeploymentRequestSingleDetail", dr)
			if dr["status"] != st["status"] {
				t.Errorf("step %d: GET as a deployment request: %v, want status %v", i, dr, st["status"])
			}
		}
		return r["id"].(string), steps
	}

	ok := e.mustObj("POST", "/pipelines/pipe/requests", rqObj{"x": 4}, 200)
	if rqNormalize(ok["result"]).(map[string]any)["w"] != 50.0 {
		t.Fatalf("pipeline result: %v, want {w: 50}", ok["result"])
	}
	okID, okSteps := check(ok, "completed")
	fail := e.mustObj("POST", "/pipelines/pipe/versions/pv1/requests", rqObj{"x": -1}, 200) // b gets z = 0
	if m, _ := fail["error_message"].(string); !strings.Contains(m, "step b") {
		t.Errorf("failed pipeline error_message %q, want it to name step b", m)
	}
	failID, failSteps := check(fail, "failed")
	if st := e.mustObj("GET", "/pipelines/pipe/requests/"+failID, nil, 200)["deployment_requests"].([]any); st[0].(rqObj)["status"] != "completed" || st[1].(rqObj)["status"] != "failed" {
		t.Errorf("failed pipeline steps: %v, want completed then failed", st)
	}

	hk := func(prefix string, res bool, kinds ...string) []string {
		var out []string
		for _, k := range kinds {
			h := prefix + "-" + k
			if res {
				h += "+r"
			}
			out = append(out, h+":"+k)
		}
		return out
	}
	var wants []rqWant
	wants = append(wants, rqWants("pipeline", "pipe", "pv1", okID, "completed", map[string]any{"w": 50},
		append(hk("pipe", false, "started"), hk("pipe", true, "completed", "finished")...)...)...)
	wants = append(wants, rqWants("deployment", "step-a", "v1", okSteps[0], "completed", map[string]any{"y": 5},
		hk("sa", true, "started", "completed", "finished")...)...)
	wants = append(wants, rqWants("deployment", "step-b", "v1", okSteps[1], "completed", nil,
		hk("sb", false, "started", "completed", "finished")...)...)
	wants = append(wants, rqWants("pipeline", "pipe", "pv1", failID, "failed", nil,
		append(hk("pipe", false, "started", "failed"), hk("pipe", true, "finished")...)...)...)
	wants = append(wants, rqWants("deployment", "step-a", "v1", failSteps[0], "completed", map[string]any{"y": 0},
		hk("sa", true, "started", "completed", "finished")...)...)
	wants = append(wants, rqWants("deployment", "step-b", "v1", failSteps[1], "failed", nil,
		hk("sb", false, "started", "failed", "finished")...)...)
	e.recv.expect(rqWait, append([]string{okID, failID}, append(okSteps, failSteps...)...), wants)
}

// TestExperimentRequestEvents: an experiment is a version of training-base-deployment; a
// webhook with version = the experiment's name hears its runs, and only its runs.
func TestExperimentRequestEvents(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	trainer := e.modelServer(func(in any) (any, error) { return "trained:" + fmt.Sprint(in), nil })
	const dep = "training-base-deployment"
	e.deployment(dep, "", "") // plain input and output
	e.version(dep, "exp-1", trainer.URL, 0)
	e.version(dep, "exp-2", trainer.URL, 0)
	e.hooks("exp1", "deployment", dep, "exp-1", true, "started", "completed", "finished")
	e.hooks("exp2", "deployment", dep, "exp-2", true)

	runs := e.mustList("POST", "/deployments/"+dep+"/versions/exp-1/requests/batch", []any{"epochs=3"}, 201)
	if len(runs) != 1 || runs[0]["status"] != "pending" {
		t.Fatalf("batch: %v", runs)
	}
	rqCheckModel(t, "DeploymentRequestBatchCreate", runs[0])
	id := runs[0]["id"].(string)
	e.waitRuns(e.executor(), id)
	done := e.mustObj("GET", "/deployments/"+dep+"/versions/exp-1/requests/"+id, nil, 200)
	if done["status"] != "completed" || done["result"] != "trained:epochs=3" {
		t.Fatalf("training run: %v", done)
	}
	e.recv.expect(rqWait, []string{id}, rqWants("deployment", dep, "exp-1", id, "completed", "trained:epochs=3",
		"exp1-started:started", "exp1-completed+r:completed", "exp1-finished+r:finished"))
}

// TestRuntimeRequestClaimReport: an external runtime claims a request of a version
// without backend (→ processing, started), reports its result (→ completed, finished);
// a wrong lease token is a 409 that changes nothing.
func TestRuntimeRequestClaimReport(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	e.deployment("ext-dep", "x", "y")
	e.version("ext-dep", "worker", "", 0)
	e.version("ext-dep", "http", "http://127.0.0.1:1/", 0)
	e.hooks("rt", "deployment", "ext-dep", "worker", true)
	base := "/deployments/ext-dep/versions/worker"
	if r := e.do("POST", "/deployments/ext-dep/versions/http/runtime/claim", nil, ""); r.Status != http.StatusBadRequest {
		t.Errorf("claim on a version with backend_url: %s, want 400", r)
	}

	created := e.mustList("POST", base+"/requests/batch", []any{rqObj{"x": 7}}, 201)
	id := created[0]["id"].(string)
	e.waitIdle(e.executor(), time.Now()) // the executor must leave it to the runtime
	if r := e.mustObj("GET", base+"/requests/"+id, nil, 200); r["status"] != "pending" {
		t.Fatalf("before the claim: %v, want pending", r)
	}
	claimed := e.mustList("POST", base+"/runtime/claim?limit=5", nil, 200)
	if len(claimed) != 1 || claimed[0]["id"] != id || rqInt(claimed[0]["input"], "x") != 7 {
		t.Fatalf("claim: %v", claimed)
	}
	token, _ := claimed[0]["lease_token"].(string)
	if token == "" {
		t.Fatalf("claim without lease_token: %v", claimed[0])
	}
	if again := e.mustList("POST", base+"/runtime/claim", nil, 200); len(again) != 0 {
		t.Fatalf("second claim: %v, want nothing", again)
	}
	if r := e.mustObj("GET", base+"/requests/"+id, nil, 200); r["status"] != "processing" || r["time_started"] == nil {
		t.Fatalf("after the claim: %v, want processing", r)
	}
	e.recv.expect(rqWait, []string{id}, rqWants("deployment", "ext-dep", "worker", id, "processing", nil, "rt-started:started"))

	wrong := e.do("POST", base+"/runtime/requests/"+id, rqObj{"lease_token": token + "x", "status": "completed", "result": rqObj{"y": 1}}, "")
	if wrong.Status != http.StatusConflict || !strings.Contains(string(wrong.Body), `"error"`) {
		t.Fatalf("report with a wrong lease token: %s, want 409", wrong)
	}
	if r := e.mustObj("GET", base+"/requests/"+id, nil, 200); r["status"] != "processing" {
		t.Fatalf("after a refused report: %v, want processing", r)
	}
	done := e.mustObj("POST", base+"/runtime/requests/"+id, rqObj{"lease_token": token, "status": "completed", "result": rqObj{"y": 49}}, 200)
	if done["status"] != "completed" || rqNormalize(done["result"]).(map[string]any)["y"] != 49.0 {
		t.Fatalf("report: %v", done)
	}
	if again := e.do("POST", base+"/runtime/requests/"+id, rqObj{"lease_token": token, "status": "failed"}, ""); again.Status != http.StatusConflict {
		t.Errorf("second report: %s, want 409", again)
	}
	e.recv.expect(rqWait, []string{id}, rqWants("deployment", "ext-dep", "worker", id, "completed", map[string]any{"y": 49},
		"rt-started:started", "rt-completed+r:completed", "rt-finished+r:finished"))
}

// TestConcurrencyThousandRequests: 1,000 batch requests over two versions (b's backend
// fails odd inputs), four webhooks per version: exactly the expected deliveries arrive,
// none missing, none duplicated.
func TestConcurrencyThousandRequests(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := newRQEnv(t, rqEnvOptions{Concurrency: 128})
	okModel := e.modelServer(func(in any) (any, error) { return map[string]any{"y": rqInt(in, "x")}, nil })
	oddFails := e.modelServer(func(in any) (any, error) {
		x := rqInt(in, "x")
		if x%2 == 1 {
			return nil, errors.New("odd input")
		}
		return map[string]any{"y": x}, nil
	})
	e.deployment("conc", "x", "y")
	e.version("conc", "va", okModel.URL, 64)
	e.version("conc", "vb", oddFails.URL, 64)
	e.hooks("va", "deployment", "conc", "va", false)
	e.hooks("vb", "deployment", "conc", "vb", false)

	const perVersion = 500
	inputs := make([]any, perVersion)
	for i := range inputs {
		inputs[i] = rqObj{"x": i}
	}
	var wants []rqWant
	var ids []string
	expected := map[string]int{}
	for _, v := range []string{"va", "vb"} {
		created := e.mustList("POST", "/deployments/conc/versions/"+v+"/requests/batch", inputs, 201)
		if len(created) != perVersion {
			t.Fatalf("batch on %s: %d requests, want %d", v, len(created), perVersion)
		}
		for x, r := range created {
			id := r["id"].(string)
			ids = append(ids, id)
			final := "completed"
			if v == "vb" && x%2 == 1 {
				final = "failed"
			}
			for _, k := range []string{"started", final, "finished"} {
				wants = append(wants, rqWants("deployment", "conc", v, id, final, nil, v+"-"+k+":"+k)...)
				expected[v+"-"+k]++
			}
		}
	}
	t.Logf("expected deliveries per webhook: %v (total %d)", expected, len(wants))
	e.recv.expect(50*time.Second, ids, wants)
	if got := e.recv.Total(); got != len(wants) {
		t.Errorf("receiver got %d deliveries, want %d", got, len(wants))
	}
	counts, _, _ := e.recv.snapshot()
	for h, n := range expected {
		if len(counts[h]) != n {
			t.Errorf("webhook %s: %d distinct events, want %d", h, len(counts[h]), n)
		}
	}
	if n := len(counts["va-failed"]); n != 0 {
		t.Errorf("webhook va-failed got %d events, want none", n)
	}
	for status, want := range map[string]int{"completed": 750, "failed": 250, "pending": 0, "processing": 0} {
		if got := len(e.mustList("GET", "/deployments/conc/requests?limit=1000&status="+status, nil, 200)); got != want {
			t.Errorf("%s requests: %d, want %d", status, got, want)
		}
	}
	t.Logf("1,000 requests and %d deliveries in %s", len(wants), time.Since(start).Round(time.Millisecond))
}

// TestExecutorVersionConcurrency: a version with maximum_instances 2 never has more than 2
// requests at its backend at once, while 10 are queued.
func TestExecutorVersionConcurrency(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{Concurrency: 64})
	// The backend holds every call until the test lets one through, so that the calls of
	// all ten requests could pile up there, were the limit not kept.
	slow := e.env.Backend(ubihookstest.BackendConfig{Hold: ubihookstest.HoldAll,
		Model: func(in any) (any, error) { return map[string]any{"y": rqInt(in, "x")}, nil }})
	e.deployment("lim", "x", "y")
	e.version("lim", "v1", slow.URL, 2)
	inputs := make([]any, 10)
	for i := range inputs {
		inputs[i] = rqObj{"x": i}
	}
	x := e.executor()
	created := e.mustList("POST", "/deployments/lim/requests/batch", inputs, 201)
	ids := make([]string, len(created))
	for i, r := range created {
		ids[i] = r["id"].(string)
	}
	// Step by step: once every run in progress has called the backend (nothing more is on
	// its way), let one call through and wait for its run to end.
	var running int
	for claimed := 0; claimed < len(ids); {
		c := x.TestSignals.Claimed.WaitFor(t, rqWait, func(c executor.Claim) bool { return len(c.IDs) > 0 })
		claimed, running = claimed+len(c.IDs), c.Running
	}
	for range ids {
		slow.WaitHeld(t, rqWait, running)
		slow.Release(1)
		running = x.TestSignals.Finished.Wait(t, rqWait).Running
	}
	for _, id := range ids {
		if r := e.mustObj("GET", "/deployments/lim/requests/"+id, nil, 200); r["status"] != "completed" {
			t.Errorf("request %s: %v, want completed", id, r)
		}
	}
	if p := slow.Peak(); p > 2 {
		t.Errorf("the backend saw %d concurrent requests, want at most maximum_instances = 2", p)
	} else if p < 2 {
		t.Errorf("the backend saw at most %d concurrent request, want 2 (the limit should be used)", p)
	}
	if n := slow.Calls(); n != 10 {
		t.Errorf("backend calls: %d, want 10", n)
	}
}

// TestLeaseRescueRequest: a request claimed by an executor that stops hard is run again by
// another executor once its lease expires, and completes; started is delivered once.
func TestLeaseRescueRequest(t *testing.T) {
	t.Parallel()
	opts := rqEnvOptions{NoExecutor: true, Lease: 10 * time.Second, RescueInterval: 100 * time.Millisecond}
	e := newRQEnv(t, opts)
	// The first call hangs until the first executor is cut off; the second one answers.
	backend := e.env.Backend(ubihookstest.BackendConfig{Hold: func(n int) bool { return n == 1 },
		Model: func(any) (any, error) { return map[string]any{"y": 42}, nil }})
	e.deployment("dep", "x", "y")
	e.version("dep", "v1", backend.URL, 0)
	e.hooks("lease", "deployment", "dep", "v1", true)

	first := e.StartExecutor(opts)
	id := e.mustList("POST", "/deployments/dep/requests/batch", []any{rqObj{"x": 1}}, 201)[0]["id"].(string)
	backend.WaitHeld(t, rqWait, 1) // the first executor called the backend
	e.recv.expect(rqWait, []string{id}, rqWants("deployment", "dep", "v1", id, "processing", nil, "lease-started:started"))
	stopped := time.Now()
	// A hard stop: the request stays processing under its lease.
	if err := e.StopExecutor(first, 0); err == nil {
		t.Error("a hard stop with a request running returned nil, want the abandoned request reported")
	}
	if r := e.mustObj("GET", "/deployments/dep/requests/"+id, nil, 200); r["status"] != "processing" {
		t.Fatalf("after a hard stop: %v, want processing", r)
	}

	// The lease expires (the shared clock moves past it), and the next executor's first
	// rescue returns the request to the queue.
	e.env.Clock.Advance(2 * opts.Lease)
	second := e.StartExecutor(opts)
	if n := second.TestSignals.Rescued.WaitFor(t, rqWait, func(n int) bool { return n > 0 }); n != 1 {
		t.Errorf("rescued %d requests, want 1", n)
	}
	e.waitRuns(second, id)
	done := e.mustObj("GET", "/deployments/dep/requests/"+id, nil, 200)
	if done["status"] != "completed" || rqNormalize(done["result"]).(map[string]any)["y"] != 42.0 {
		t.Fatalf("rescued request: %v", done)
	}
	t.Logf("rescued and completed %s after the hard stop", time.Since(stopped).Round(time.Millisecond))
	if n := backend.Calls(); n != 2 {
		t.Errorf("backend calls: %d, want 2 (the cut one and the rescued one)", n)
	}
	r, err := e.store.GetRequest(context.Background(), e.env.Project.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Attempts != 2 {
		t.Errorf("attempts: %d, want 2", r.Attempts)
	}
	e.recv.expect(rqWait, []string{id}, rqWants("deployment", "dep", "v1", id, "completed", map[string]any{"y": 42},
		"lease-started:started", "lease-completed+r:completed", "lease-finished+r:finished"))
}

// TestPipelineRequestCancelStopsSteps: a pipeline request cancelled while its first step
// runs gets no further steps; it delivers started and finished (cancelled) only, and the
// running step finishes as a deployment request of its own.
func TestPipelineRequestCancelStopsSteps(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{})
	// Step a's backend holds its call until the test lets it through.
	a := e.env.Backend(ubihookstest.BackendConfig{Hold: ubihookstest.HoldAll,
		Model: func(any) (any, error) { return map[string]any{"y": 1}, nil }})
	b := e.modelServer(func(in any) (any, error) { return map[string]any{"w": 1}, nil })
	e.twoStepPipeline(a.URL, b.URL, "")
	e.hooks("pipe", "pipeline", "pipe", "", false)
	e.hooks("sa", "deployment", "step-a", "", false)
	e.hooks("sb", "deployment", "step-b", "", false)

	id := e.mustList("POST", "/pipelines/pipe/requests/batch", []any{rqObj{"x": 1}}, 201)[0]["id"].(string)
	path := "/pipelines/pipe/requests/" + id
	a.WaitHeld(t, rqWait, 1) // step a runs
	var stepA string
	if st, _ := e.mustObj("GET", path, nil, 200)["deployment_requests"].([]any); len(st) == 1 && st[0].(rqObj)["status"] == "processing" {
		stepA = st[0].(rqObj)["id"].(string)
	} else {
		t.Fatalf("while step a runs: deployment_requests %v, want step a processing", st)
	}
	if c := e.mustObj("PATCH", path, rqObj{"status": "cancelled"}, 200); c["status"] != "cancelled" {
		t.Fatalf("cancel: %v", c)
	}
	a.Release(1)
	// The run of the pipeline request ends: step a finished, and no step followed.
	if f := e.waitRuns(e.executor(), id)[id]; f.Status != "" || ubihooks.ErrorCode(f.Err) != ubihooks.ECONFLICT {
		t.Errorf("the run of the cancelled pipeline request ended %+v, want its end refused (conflict)", f)
	}
	if r := e.mustObj("GET", "/deployments/step-a/requests/"+stepA, nil, 200); r["status"] != "completed" {
		t.Errorf("step a: %v, want completed", r)
	}
	got := e.mustObj("GET", path, nil, 200)
	if st, _ := got["deployment_requests"].([]any); got["status"] != "cancelled" || len(st) != 1 {
		t.Errorf("cancelled pipeline request: %v, want cancelled with only step a", got)
	}
	if n := b.Calls(); n != 0 {
		t.Errorf("step b ran %d times after the pipeline request was cancelled", n)
	}
	var wants []rqWant
	wants = append(wants, rqWants("pipeline", "pipe", "pv1", id, "cancelled", nil, "pipe-started:started", "pipe-finished:finished")...)
	wants = append(wants, rqWants("deployment", "step-a", "v1", stepA, "completed", nil, "sa-started:started", "sa-completed:completed", "sa-finished:finished")...)
	e.recv.expect(rqWait, []string{id, stepA}, wants)
	counts, _, _ := e.recv.snapshot()
	for _, k := range []string{"started", "completed", "failed", "finished"} {
		if n := len(counts["sb-"+k]); n != 0 {
			t.Errorf("sb-%s got %d deliveries: step b should never have run", k, n)
		}
	}
}

// TestExecutorLifecycle: Start refuses an invalid configuration and a second start; Stop
// is harmless before Start and when repeated.
func TestExecutorLifecycle(t *testing.T) {
	t.Parallel()
	e := newRQEnv(t, rqEnvOptions{NoExecutor: true})
	ctx := context.Background()
	valid := executor.Config{Service: e.svc, Store: e.store, Client: e.client, Owner: "lifecycle"}
	for name, mod := range map[string]func(*executor.Config){
		"no service":           func(c *executor.Config) { c.Service, c.Store = nil, nil },
		"no client":            func(c *executor.Config) { c.Client = nil },
		"no owner":             func(c *executor.Config) { c.Owner = "" },
		"negative concurrency": func(c *executor.Config) { c.Concurrency = -1 },
		"negative lease":       func(c *executor.Config) { c.Lease = -time.Second },
		"negative poll":        func(c *executor.Config) { c.PollInterval = -time.Second },
		"negative rescue":      func(c *executor.Config) { c.RescueInterval = -time.Second },
	} {
		cfg := valid
		mod(&cfg)
		x := executor.New(cfg)
		if err := x.Start(ctx); err == nil {
			_ = x.Stop(ctx)
			t.Errorf("%s: Start = nil, want an error", name)
		}
		if err := x.Stop(ctx); err != nil {
			t.Errorf("%s: Stop after a failed Start = %v, want nil", name, err)
		}
	}

	x := executor.New(valid)
	if err := x.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start = %v, want nil", err)
	}
	if err := x.Start(ctx); err != nil {
		t.Fatalf("Start = %v", err)
	}
	if err := x.Start(ctx); err == nil {
		t.Error("second Start = nil, want an error")
	}
	for i := 0; i < 2; i++ {
		if err := x.Stop(ctx); err != nil {
			t.Errorf("Stop #%d = %v, want nil", i+1, err)
		}
	}
}

// TestExecutorStopHandsBackRequests: requests claimed for a version with maximum_instances
// 1 wait for its slot while one runs; Stop starts none of them, and no request stays
// leased once it returns: the running one either finishes in the grace or is cut when
// the grace runs out, and what did not finish is pending again, with no attempt counted.
func TestExecutorStopHandsBackRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// finish lets the held call through during the grace; otherwise the grace ends
		// while it is held.
		finish bool
	}{
		{name: "RunningFinishes", finish: true},
		{name: "GraceRunsOut", finish: false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newRQEnv(t, rqEnvOptions{NoExecutor: true})
			// The first call is held until the test lets it through; later calls answer.
			backend := e.env.Backend(ubihookstest.BackendConfig{Hold: func(n int) bool { return n == 1 },
				Model: func(in any) (any, error) { return map[string]any{"y": rqInt(in, "x")}, nil }})
			e.deployment("one", "x", "y")
			e.version("one", "v1", backend.URL, 1)
			// Stop logs once it stopped claiming: the test lets the held call through only then.
			stopping := &logWatch{msg: "stopping:", seen: make(chan struct{})}
			x := executor.New(executor.Config{Service: e.svc, Store: e.store, Client: e.client, Owner: "stop-exec",
				PollInterval: 100 * time.Millisecond, Logger: slog.New(stopping)})
			x.TestSignals.Init()
			e.env.Run(x, ubihooks.ChannelRequests)

			created := e.mustList("POST", "/deployments/one/requests/batch", []any{rqObj{"x": 1}, rqObj{"x": 2}, rqObj{"x": 3}, rqObj{"x": 4}}, 201)
			ids := make([]string, len(created))
			for i, r := range created {
				ids[i] = r["id"].(string)
			}
			for claimed := 0; claimed < len(ids); {
				claimed += len(x.TestSignals.Claimed.WaitFor(t, rqWait, func(c executor.Claim) bool { return len(c.IDs) > 0 }).IDs)
			}
			backend.WaitHeld(t, rqWait, 1)

			ctx, cancel := context.WithTimeout(context.Background(), rqWait)
			defer cancel()
			stopped := make(chan error, 1)
			go func() { stopped <- x.Stop(ctx) }()
			select {
			case <-stopping.seen:
			case <-time.After(rqWait):
				t.Fatal("Stop did not log that it stopped claiming")
			}
			if c.finish {
				backend.Release(1)
			} else {
				cancel() // the grace runs out with the call still held
			}
			var err error
			select {
			case err = <-stopped:
			case <-time.After(rqWait):
				t.Fatalf("Stop did not return within %s", rqWait)
			}
			if c.finish && err != nil {
				t.Errorf("Stop = %v, want nil: the running request finished in the grace", err)
			}

			finished, released := 0, 0
			for _, id := range ids {
				r, err := e.store.GetRequest(context.Background(), e.env.Project.ID, id)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case r.Status == ubihooks.RequestCompleted && c.finish:
					finished++
				case r.Status == ubihooks.RequestPending && r.LeaseOwner == "" && r.LeaseExpiresAt.IsZero() &&
					r.Attempts == 0 && r.StartedAt.IsZero():
					released++
				default:
					t.Errorf("request %s after Stop: status %s, lease owner %q until %v, attempts %d, started %v; want pending, no lease, no attempt, not started",
						id, r.Status, r.LeaseOwner, r.LeaseExpiresAt, r.Attempts, r.StartedAt)
				}
			}
			if c.finish && (finished != 1 || released != len(ids)-1) {
				t.Errorf("%d requests completed and %d handed back, want 1 and %d", finished, released, len(ids)-1)
			}
			if !c.finish && released != len(ids) {
				t.Errorf("%d requests handed back, want %d", released, len(ids))
			}
			if n := backend.Calls(); n != 1 {
				t.Errorf("backend calls: %d, want 1 (Stop starts no waiting request)", n)
			}
		})
	}
}

// logWatch is a slog.Handler that closes seen at the first record whose message starts
// with msg.
type logWatch struct {
	msg  string
	seen chan struct{}
	once sync.Once
}

func (h *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (h *logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.msg) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

func (h *logWatch) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logWatch) WithGroup(string) slog.Handler      { return h }
