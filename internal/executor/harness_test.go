package executor_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sort"
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
	"github.com/ubihooks/ubihooks/internal/secret"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// rqObj is a JSON object under construction.
type rqObj = map[string]any

const rqProject = "rq-proj"

// rqEnvOptions tunes the executor of an rqEnv.
type rqEnvOptions struct {
	Concurrency    int
	Lease          time.Duration
	RescueInterval time.Duration
	// NoExecutor leaves the executor to the test (StartExecutor).
	NoExecutor bool
}

// rqEnv wires the pieces as cmd/ubihooks/serve.go does: SQLite store, service, delivery
// engine and executor sharing the SSRF-guarded client (127.0.0.0/8 allowed), commits
// waking the executor (requests) or the engine (deliveries), and the API over httptest.
// Webhooks point at a receiver that verifies every signature.
type rqEnv struct {
	t      *testing.T
	opts   rqEnvOptions
	store  *sqlstore.Store
	svc    *service.Service
	client *http.Client
	engine *delivery.Engine
	exec   atomic.Pointer[executor.Executor]
	api    *httptest.Server
	token  string
	recv   *rqReceiver
	nexec  atomic.Int32

	mu      sync.Mutex
	execs   []*executor.Executor
	servers []*httptest.Server
}

func newRQEnv(t *testing.T, opts rqEnvOptions) *rqEnv {
	t.Helper()
	ctx := context.Background()
	e := &rqEnv{t: t, opts: opts}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ubihooks.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	e.store = st
	t.Cleanup(e.close)
	key := make([]byte, secret.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secret.New(key)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = service.New(service.Config{Store: st, Box: box})
	if err := e.svc.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	allow, err := delivery.ParseNetworks("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	e.client = delivery.NewClient(delivery.NewTransport(delivery.TransportConfig{AllowNetworks: allow}))
	e.engine = delivery.NewEngine(delivery.Config{Store: st, Client: e.client, SignerFunc: e.svc.Signer,
		OpenHeadersFunc: e.svc.OpenHeaders, Owner: "rq-engine", MaxPerHost: 64, PollInterval: 100 * time.Millisecond})
	st.OnCommit(func(_ context.Context, channel string) {
		if channel == sqlstore.ChannelRequests {
			if x := e.exec.Load(); x != nil {
				x.Notify()
			}
			return
		}
		e.engine.Notify()
	})
	e.api = httptest.NewServer(api.New(api.Config{Service: e.svc, Version: "test", RequestRetention: time.Hour}))
	if err := e.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !opts.NoExecutor {
		e.StartExecutor(opts)
	}
	if e.token, err = e.svc.CreateToken(ctx, rqProject, "rq-org", "rq"); err != nil {
		t.Fatal(err)
	}
	e.recv = newRQReceiver(t, e.publicKey())
	return e
}

// StartExecutor starts an executor (with its own owner id) and makes commits wake it.
func (e *rqEnv) StartExecutor(opts rqEnvOptions) *executor.Executor {
	n := e.nexec.Add(1)
	x := executor.New(executor.Config{Service: e.svc, Client: e.client, Owner: fmt.Sprintf("rq-exec-%d", n),
		Concurrency: opts.Concurrency, Lease: opts.Lease, RescueInterval: opts.RescueInterval, PollInterval: 100 * time.Millisecond})
	x.Start(context.Background())
	e.exec.Store(x)
	e.mu.Lock()
	e.execs = append(e.execs, x)
	e.mu.Unlock()
	return x
}

// close stops the executors and the engine, then closes the servers and the store.
func (e *rqEnv) close() {
	e.mu.Lock()
	execs, servers := e.execs, e.servers
	e.mu.Unlock()
	for _, x := range execs {
		e.StopExecutor(x, 5*time.Second) // stopping twice is harmless
	}
	if e.engine != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.engine.Stop(sctx)
	}
	if e.api != nil {
		e.api.Close()
	}
	if e.recv != nil {
		e.recv.srv.Close()
	}
	for _, s := range servers {
		s.Close()
	}
	if err := e.store.Close(); err != nil {
		e.t.Errorf("close store: %v", err)
	}
}

// StopExecutor stops x, giving running requests grace to finish (0: a hard stop).
func (e *rqEnv) StopExecutor(x *executor.Executor, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if grace <= 0 {
		cancel()
	}
	x.Stop(ctx)
	e.exec.CompareAndSwap(x, nil)
}

// publicKey fetches the published signing key the way a receiver would.
func (e *rqEnv) publicKey() ed25519.PublicKey {
	e.t.Helper()
	res, err := http.Get(e.api.URL + api.BasePath + "/signing-keys/active.pem")
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

// rqResp is an API answer.
type rqResp struct {
	method, path string
	status       int
	body         []byte
}

func (r rqResp) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.method, r.path, r.status, r.body)
}

// do calls the API under /projects/rq-proj. body: nil, a string (sent as is, with ctype
// or application/json) or a value to marshal.
func (e *rqEnv) do(method, path string, body any, ctype string) rqResp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	full := api.BasePath + "/projects/" + rqProject + path
	req, err := http.NewRequest(method, e.api.URL+full, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype == "" {
		ctype = "application/json"
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Token "+e.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return rqResp{method: method, path: path, status: res.StatusCode, body: b}
}

// must calls the API and fails the test unless it answers want; it returns the decoded body.
func (e *rqEnv) must(method, path string, body any, want int) any {
	e.t.Helper()
	r := e.do(method, path, body, "")
	if r.status != want {
		e.t.Fatalf("%s: want %d", r, want)
	}
	var v any
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &v); err != nil {
			e.t.Fatalf("%s: not JSON: %v", r, err)
		}
	}
	return v
}

func (e *rqEnv) mustObj(method, path string, body any, want int) rqObj {
	e.t.Helper()
	m, ok := e.must(method, path, body, want).(rqObj)
	if !ok {
		e.t.Fatalf("%s %s: body is not an object", method, path)
	}
	return m
}

func (e *rqEnv) mustList(method, path string, body any, want int) []rqObj {
	e.t.Helper()
	a, ok := e.must(method, path, body, want).([]any)
	if !ok {
		e.t.Fatalf("%s %s: body is not an array", method, path)
	}
	out := make([]rqObj, len(a))
	for i, x := range a {
		if out[i], ok = x.(rqObj); !ok {
			e.t.Fatalf("%s %s: item %d is not an object", method, path, i)
		}
	}
	return out
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

// waitStatus polls a request until it has one of the statuses.
func (e *rqEnv) waitStatus(path string, timeout time.Duration, statuses ...string) rqObj {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := e.mustObj("GET", path, nil, 200)
		for _, s := range statuses {
			if r["status"] == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("GET %s: status %v, want one of %v after %s", path, r["status"], statuses, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rqDelivery is one webhook call that the receiver accepted.
type rqDelivery struct {
	hook    string
	payload rqObj
}

// rqReceiver is a webhook receiver: it verifies each signature with the public httpsig
// package, and counts deliveries per webhook by payload id.
type rqReceiver struct {
	t        *testing.T
	srv      *httptest.Server
	verifier *httpsig.Verifier

	mu     sync.Mutex
	counts map[string]map[string]int // webhook → payload id → deliveries
	first  map[string]map[string]rqObj
	total  int
	bad    []string
}

func newRQReceiver(t *testing.T, pub ed25519.PublicKey) *rqReceiver {
	r := &rqReceiver{t: t, verifier: &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub}},
		counts: map[string]map[string]int{}, first: map[string]map[string]rqObj{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *rqReceiver) url(hook string) string { return r.srv.URL + "/hook/" + hook }

func (r *rqReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	hook := strings.TrimPrefix(req.URL.Path, "/hook/")
	fail := func(msg string) {
		r.mu.Lock()
		r.bad = append(r.bad, hook+": "+msg)
		r.mu.Unlock()
		http.Error(w, msg, http.StatusUnauthorized)
	}
	if _, err := r.verifier.Verify(req, body); err != nil {
		fail("signature: " + err.Error())
		return
	}
	var p rqObj
	if err := json.Unmarshal(body, &p); err != nil {
		fail("payload is not a JSON object: " + string(body))
		return
	}
	id, _ := p["id"].(string)
	if id == "" {
		fail("payload without id: " + string(body))
		return
	}
	r.mu.Lock()
	if r.counts[hook] == nil {
		r.counts[hook], r.first[hook] = map[string]int{}, map[string]rqObj{}
	}
	r.counts[hook][id]++
	if r.counts[hook][id] == 1 {
		r.first[hook][id] = p
	}
	r.total++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Total is the number of deliveries accepted so far.
func (r *rqReceiver) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// snapshot returns every delivery with its count.
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
	return counts, first, append([]string(nil), r.bad...)
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

// expect waits until every wanted delivery arrived, lets the system settle, then checks
// that the deliveries for the given requests are exactly the wanted ones, each delivered
// once, with the right payload.
func (r *rqReceiver) expect(timeout time.Duration, requests []string, wants []rqWant) {
	r.t.Helper()
	ids := make([]string, len(wants)) // event ids, computed once
	for i, w := range wants {
		ids[i] = service.EventID(w.request, ubihooks.EventType(w.event()))
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
	deadline := time.Now().Add(timeout)
	for {
		if n, _ := missing(false); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			n, m := missing(true)
			if len(m) > 20 {
				m = append(m[:20], "…")
			}
			r.t.Fatalf("after %s, %d deliveries are missing:\n  %s", timeout, n, strings.Join(m, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything extra or duplicated would arrive now
	counts, first, bad := r.snapshot()
	for _, b := range bad {
		r.t.Errorf("receiver refused a delivery: %s", b)
	}
	inScope := map[string]bool{}
	for _, id := range requests {
		inScope[id] = true
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

// rqIDs returns the ids of a list of requests, sorted.
func rqIDs(rs []rqObj) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i], _ = r["id"].(string)
	}
	sort.Strings(out)
	return out
}

// modelServer starts a tiny model server: fn maps the decoded input (a string for
// text/plain) to the result (a string is answered as text/plain), or to an error
// (answered 500). It is closed after the executors stop.
func (e *rqEnv) modelServer(fn func(in any) (any, error)) *httptest.Server {
	return e.server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var in any = string(b)
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			if err := json.Unmarshal(b, &in); err != nil {
				http.Error(w, "bad json", http.StatusBadRequest)
				return
			}
		}
		out, err := fn(in)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if s, ok := out.(string); ok {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}))
}

// server starts an httptest server that is closed after the executors stop.
func (e *rqEnv) server(h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	e.mu.Lock()
	e.servers = append(e.servers, srv)
	e.mu.Unlock()
	return srv
}

// rqInt reads an int field of a structured input.
func rqInt(in any, field string) int {
	m, _ := in.(map[string]any)
	f, _ := m[field].(float64)
	return int(f)
}
