package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	pathpkg "path"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/delivery"
	"github.com/ubihooks/ubihooks/internal/executor"
	"github.com/ubihooks/ubihooks/internal/outbound"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// The request tests run the whole server as cmd/ubihooks/serve.go wires it: SQLite,
// service, delivery engine and executor (sharing the SSRF-guarded client, 127.0.0.0/8
// allowed), commits waking the executor or the engine, and the API over httptest.

const rqProj = "rq-proj"

// rqServer is an Env whose project is rq-proj, running the engine and the executor, with
// a client of the API whose paths are relative to the project and that calls as the
// Python client does.
type rqServer struct {
	*ubihookstest.Env
	api *ubihookstest.API
}

func newRQServer(t *testing.T) *rqServer {
	t.Helper()
	env := ubihookstest.New(t, ubihookstest.Options{Project: rqProj, Organization: "rq-org",
		SQLite: sqlite.Options{Synchronous: "NORMAL"}})
	allow, err := outbound.ParseNetworks("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	client := outbound.NewClient(outbound.NewTransport(outbound.TransportConfig{AllowNetworks: allow}))
	env.Run(delivery.NewEngine(delivery.Config{Store: env.Store, Client: client, SignerFunc: env.Service.Signer,
		OpenHeadersFunc: env.Service.OpenHeaders, Owner: "rq-engine"}), ubihooks.ChannelDeliveries)
	env.Run(executor.New(executor.Config{Service: env.Service, Store: env.Store, Client: client, Owner: "rq-exec",
		PollInterval: 100 * time.Millisecond}), ubihooks.ChannelRequests)
	s := &rqServer{Env: env}
	s.api = env.ServeAPI(api.New(api.Config{Service: env.Service, Version: "test", RequestRetention: time.Hour}), api.BasePath).Project(rqProj)
	s.api.Header = http.Header{"User-Agent": {"UbiOps/python/4.15.0"}}
	return s
}

// waitFinal waits until the request at path (…/requests/<id>) is completed, failed or
// cancelled, woken by the service when it finishes, and returns it as the API shows it.
func (s *rqServer) waitFinal(path string) M {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Service.WaitRequest(ctx, s.Project.ID, pathpkg.Base(path)); err != nil {
		s.T.Fatalf("waiting for %s: %v", path, err)
	}
	r := s.api.MustObj("GET", path, nil, 200)
	switch r["status"] {
	case "completed", "failed", "cancelled":
		return r
	}
	s.T.Fatalf("GET %s: %v after it finished", path, r["status"])
	return nil
}

// rqSetup creates:
//   - "calc" (structured x:int → y:int): "v1" (default; backend y = 2x, 500 for x < 0) and
//     "hold" (no backend: its requests stay pending);
//   - "echo" (plain → plain): "v1" (backend: upper-cased input).
func rqSetup(t *testing.T) *rqServer {
	s := newRQServer(t)
	calc := s.Model(func(in any) (any, error) {
		m, _ := in.(map[string]any)
		x, _ := m["x"].(float64)
		if x < 0 {
			return nil, fmt.Errorf("x must not be negative, got %v", x)
		}
		return map[string]any{"y": 2 * x}, nil
	})
	echo := s.Model(func(in any) (any, error) { return strings.ToUpper(fmt.Sprint(in)), nil })
	s.api.MustObj("POST", "/deployments", M{"name": "calc", "input_type": "structured", "output_type": "structured",
		"input_fields": []M{{"name": "x", "data_type": "int"}}, "output_fields": []M{{"name": "y", "data_type": "int"}}}, 201)
	s.api.MustObj("POST", "/deployments/calc/versions", M{"version": "v1", "backend_url": calc.URL}, 201)
	s.api.MustObj("POST", "/deployments/calc/versions", M{"version": "hold"}, 201)
	s.api.MustObj("POST", "/deployments", M{"name": "echo", "input_type": "plain", "output_type": "plain"}, 201)
	s.api.MustObj("POST", "/deployments/echo/versions", M{"version": "v1", "backend_url": echo.URL}, 201)
	return s
}

// rqModel checks a response object against a request model of the client
// (/work/ubiops-client-models.md): required keys are non-empty strings, version is null
// or non-empty, origin is an object or null, sequence_id of pipeline steps is a string.
func rqModel(t *testing.T, model string, v M) {
	t.Helper()
	required := []string{"id", "status"}
	if !strings.HasSuffix(model, "CreateResponse") {
		required = append(required, "time_created")
	}
	for _, k := range required {
		if s, ok := v[k].(string); !ok || s == "" {
			t.Errorf("%s: %s must be a non-empty string, got %#v in %v", model, k, v[k], v)
		}
	}
	if tc, ok := v["time_created"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, tc); err != nil || !strings.HasSuffix(tc, "Z") {
			t.Errorf("%s: time_created %q is not an ISO 8601 UTC time", model, tc)
		}
	}
	if x, ok := v["version"]; ok && x != nil {
		if s, ok := x.(string); !ok || s == "" {
			t.Errorf("%s: version must be null or a non-empty string, got %#v", model, x)
		}
	}
	if x, ok := v["origin"]; ok && x != nil {
		if _, ok := x.(M); !ok {
			t.Errorf("%s: origin must be an object or null, got %#v", model, x)
		}
	}
	if x, ok := v["labels"]; ok && x != nil {
		if _, ok := x.(M); !ok {
			t.Errorf("%s: labels must be an object or null, got %#v", model, x)
		}
	}
	for _, k := range []string{"success"} {
		if x, ok := v[k]; ok && x != nil {
			if _, ok := x.(bool); !ok {
				t.Errorf("%s: %s must be a boolean, got %#v", model, k, x)
			}
		}
	}
	for _, k := range []string{"timeout", "input_size", "output_size"} {
		if x, ok := v[k]; ok && x != nil {
			if f, ok := x.(float64); !ok || f != float64(int64(f)) {
				t.Errorf("%s: %s must be an integer, got %#v", model, k, x)
			}
		}
	}
	if steps, ok := v["deployment_requests"].([]any); ok {
		for i, st := range steps {
			m, _ := st.(M)
			for _, k := range []string{"id", "status", "sequence_id"} {
				if _, ok := m[k].(string); !ok {
					t.Errorf("%s: deployment_requests[%d].%s must be a string, got %#v", model, i, k, m[k])
				}
			}
		}
	}
}

// rqState is every request of the setup's deployments (id → status), to show that a
// refused call changed nothing.
func (s *rqServer) rqState() map[string]string {
	s.T.Helper()
	out := map[string]string{}
	for _, d := range []string{"calc", "echo"} {
		for _, r := range s.api.MustList("GET", "/deployments/"+d+"/requests?limit=1000", nil, 200) {
			out[r["id"].(string)] = r["status"].(string)
		}
	}
	return out
}

// rqError checks an error answer: the status, a JSON {"error": "..."} body, and the
// message parts.
func rqError(t *testing.T, a ubihookstest.Response, status int, parts ...string) {
	t.Helper()
	if a.Status != status {
		t.Errorf("%s: want %d", a, status)
		return
	}
	var m struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(a.Body, &m); err != nil || m.Error == "" || a.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: want a JSON {\"error\": ...} body (Content-Type %q)", a, a.Header.Get("Content-Type"))
		return
	}
	for _, p := range parts {
		if !strings.Contains(m.Error, p) {
			t.Errorf("%s: error %q does not mention %q", a, m.Error, p)
		}
	}
}

// TestRequestDirectAndBatch: direct requests answer completed with the result or failed
// with error_message; batches answer at once with pending ids; get, list by status,
// cancel by PATCH and by .../requests/cancel; plain input as text/plain and as a JSON
// string.
func TestRequestDirectAndBatch(t *testing.T) {
	t.Parallel()
	s := rqSetup(t)

	ok := s.api.MustObj("POST", "/deployments/calc/requests", M{"x": 21}, 200)
	rqModel(t, "DeploymentRequestCreateResponse", ok)
	if ok["status"] != "completed" || !reflect.DeepEqual(ok["result"], M{"y": 42.0}) || ok["error_message"] != nil ||
		ok["deployment"] != "calc" || ok["version"] != "v1" || ok["success"] != true || ok["timeout"] != 300.0 {
		t.Errorf("direct request: %v, want completed with result {y: 42}", ok)
	}
	okID := ok["id"].(string)
	got := s.api.MustObj("GET", "/deployments/calc/requests/"+okID, nil, 200)
	rqModel(t, "DeploymentRequestSingleDetail", got)
	if got["status"] != "completed" || !reflect.DeepEqual(got["result"], M{"y": 42.0}) || got["time_started"] == nil || got["time_completed"] == nil {
		t.Errorf("GET completed request: %v", got)
	}
	if g := s.api.MustObj("GET", "/deployments/calc/versions/v1/requests/"+okID, nil, 200); g["id"] != okID {
		t.Errorf("GET through the version: %v", g)
	}
	rqError(t, s.api.Do("GET", "/deployments/calc/versions/hold/requests/"+okID, nil, ""), 404)

	failed := s.api.MustObj("POST", "/deployments/calc/versions/v1/requests?timeout=60", M{"x": -1}, 200)
	rqModel(t, "DeploymentRequestCreateResponse", failed)
	msg, _ := failed["error_message"].(string)
	if failed["status"] != "failed" || failed["result"] != nil || !strings.Contains(msg, "500") || failed["success"] != false || failed["timeout"] != 60.0 {
		t.Errorf("direct request to a failing backend: %v, want failed with error_message", failed)
	}

	// Batch: answered at once, pending.
	batch := s.api.MustList("POST", "/deployments/calc/requests/batch", []any{M{"x": 1}, M{"x": 2}, M{"x": -3}}, 201)
	if len(batch) != 3 {
		t.Fatalf("batch: %v", batch)
	}
	for _, r := range batch {
		rqModel(t, "DeploymentRequestBatchCreateResponse", r)
		if r["status"] != "pending" || r["deployment"] != "calc" || r["version"] != "v1" {
			t.Errorf("batch item: %v, want pending on calc v1", r)
		}
	}
	want := []any{M{"y": 2.0}, M{"y": 4.0}, nil}
	for i, r := range batch {
		done := s.waitFinal("/deployments/calc/requests/" + r["id"].(string))
		rqModel(t, "DeploymentRequestSingleDetail", done)
		if !reflect.DeepEqual(done["result"], want[i]) || (i == 2) != (done["status"] == "failed") {
			t.Errorf("batch request %d: %v, want result %v", i, done, want[i])
		}
	}

	// List by status.
	completed := s.api.MustList("GET", "/deployments/calc/requests?status=completed", nil, 200)
	var ids []string
	for _, r := range completed {
		rqModel(t, "DeploymentRequestList", r)
		if r["status"] != "completed" {
			t.Errorf("status=completed lists %v", r)
		}
		ids = append(ids, r["id"].(string))
	}
	wantIDs := []string{okID, batch[0]["id"].(string), batch[1]["id"].(string)}
	sort.Strings(ids)
	sort.Strings(wantIDs)
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("status=completed: %v, want %v", ids, wantIDs)
	}
	if n := len(s.api.MustList("GET", "/deployments/calc/requests?status=failed", nil, 200)); n != 2 {
		t.Errorf("status=failed: %d requests, want 2", n)
	}
	if n := len(s.api.MustList("GET", "/deployments/calc/versions/hold/requests", nil, 200)); n != 0 {
		t.Errorf("hold has %d requests, want 0", n)
	}

	// Cancel: PATCH one, POST .../requests/cancel for two more.
	held := s.api.MustList("POST", "/deployments/calc/versions/hold/requests/batch", []any{M{"x": 1}, M{"x": 2}, M{"x": 3}}, 201)
	// A later request that a backend answers shows that the executor has claimed since the
	// held ones were queued (it claims the oldest first): they had their chance to be
	// claimed, and must still be pending.
	if later := s.api.MustObj("POST", "/deployments/calc/requests", M{"x": 4}, 200); later["status"] != "completed" {
		t.Fatalf("request after the held ones: %v, want completed", later)
	}
	for _, r := range held {
		if g := s.api.MustObj("GET", "/deployments/calc/requests/"+r["id"].(string), nil, 200); g["status"] != "pending" {
			t.Fatalf("request without backend: %v, want pending", g)
		}
	}
	c := s.api.MustObj("PATCH", "/deployments/calc/requests/"+held[0]["id"].(string), M{"status": "cancelled"}, 200)
	rqModel(t, "DeploymentRequestSingleDetail", c)
	if c["status"] != "cancelled" || c["time_completed"] == nil {
		t.Errorf("PATCH cancelled: %v", c)
	}
	cs := s.api.MustList("POST", "/deployments/calc/versions/hold/requests/cancel", []string{held[1]["id"].(string), held[2]["id"].(string)}, 200)
	if len(cs) != 2 {
		t.Errorf("cancel: %v", cs)
	}
	for _, r := range held {
		if g := s.api.MustObj("GET", "/deployments/calc/requests/"+r["id"].(string), nil, 200); g["status"] != "cancelled" {
			t.Errorf("after cancel: %v", g)
		}
	}
	if n := len(s.api.MustList("GET", "/deployments/calc/versions/hold/requests?status=cancelled", nil, 200)); n != 3 {
		t.Errorf("hold: %d cancelled requests, want 3", n)
	}

	// Plain input: a text/plain body, and a JSON string.
	a := s.api.Do("POST", "/deployments/echo/requests", "hello world", "text/plain")
	var plain M
	if a.Status != 200 || json.Unmarshal(a.Body, &plain) != nil || plain["status"] != "completed" || plain["result"] != "HELLO WORLD" {
		t.Errorf("text/plain request: %s, want completed with result \"HELLO WORLD\"", a)
	}
	if g := s.api.MustObj("GET", "/deployments/echo/requests/"+plain["id"].(string), nil, 200); g["request_data"] != "hello world" {
		t.Errorf("plain request_data: %#v", g["request_data"])
	}
	j := s.api.MustObj("POST", "/deployments/echo/versions/v1/requests", "\"json string\"", 200)
	if j["status"] != "completed" || j["result"] != "JSON STRING" {
		t.Errorf("JSON string request: %v", j)
	}
	pb := s.api.MustList("POST", "/deployments/echo/requests/batch", []string{"a", "b"}, 201)
	for i, r := range pb {
		if done := s.waitFinal("/deployments/echo/requests/" + r["id"].(string)); done["result"] != []string{"A", "B"}[i] {
			t.Errorf("plain batch %d: %v", i, done)
		}
	}
}

// TestRequestBadInput: every bad call is a clear 4xx that leaves no request behind (or
// changes none).
func TestRequestBadInput(t *testing.T) {
	t.Parallel()
	s := rqSetup(t)
	done := s.api.MustObj("POST", "/deployments/calc/requests", M{"x": 1}, 200)
	if done["status"] != "completed" {
		t.Fatalf("setup request: %v", done)
	}
	pending := s.api.MustList("POST", "/deployments/calc/versions/hold/requests/batch", []any{M{"x": 1}}, 201)[0]["id"].(string)
	before := s.rqState()

	cases := []struct {
		name, method, path string
		body               any
		ctype              string
		status             int
		parts              []string
	}{
		{"unknown deployment", "POST", "/deployments/nope/requests", M{"x": 1}, "", 404, []string{"nope"}},
		{"unknown deployment batch", "POST", "/deployments/nope/requests/batch", []any{M{"x": 1}}, "", 404, nil},
		{"unknown version", "POST", "/deployments/calc/versions/v9/requests", M{"x": 1}, "", 404, []string{"v9"}},
		{"unknown version batch", "POST", "/deployments/calc/versions/v9/requests/batch", []any{M{"x": 1}}, "", 404, nil},
		{"unknown request", "GET", "/deployments/calc/requests/00000000-0000-0000-0000-000000000000", nil, "", 404, nil},
		{"missing field", "POST", "/deployments/calc/requests", M{}, "", 400, []string{`"x"`, "missing"}},
		{"wrong type", "POST", "/deployments/calc/requests", M{"x": "one"}, "", 400, []string{`"x"`, "int"}},
		{"not an int", "POST", "/deployments/calc/requests", M{"x": 1.5}, "", 400, []string{`"x"`}},
		{"unknown field", "POST", "/deployments/calc/requests", M{"x": 1, "z": 2}, "", 400, []string{`"z"`}},
		{"plain to structured (text/plain)", "POST", "/deployments/calc/requests", "x=1", "text/plain", 400, []string{"structured"}},
		{"plain to structured (JSON string)", "POST", "/deployments/calc/requests", `"x=1"`, "", 400, []string{"structured"}},
		{"array to structured", "POST", "/deployments/calc/requests", `[{"x":1}]`, "", 400, []string{"structured"}},
		{"structured to plain", "POST", "/deployments/echo/requests", M{"x": 1}, "", 400, []string{"plain"}},
		{"timeout over 3600", "POST", "/deployments/calc/requests?timeout=3601", M{"x": 1}, "", 400, []string{"timeout"}},
		{"timeout zero", "POST", "/deployments/calc/requests?timeout=0", M{"x": 1}, "", 400, []string{"timeout"}},
		{"timeout not a number", "POST", "/deployments/calc/requests?timeout=soon", M{"x": 1}, "", 400, []string{"timeout"}},
		{"batch timeout over 3600", "POST", "/deployments/calc/requests/batch?timeout=3601", []any{M{"x": 1}}, "", 400, []string{"timeout"}},
		{"malformed JSON", "POST", "/deployments/calc/requests", `{"x": 1`, "", 400, []string{"JSON"}},
		{"empty body", "POST", "/deployments/calc/requests", "", "", 400, nil},
		{"malformed batch", "POST", "/deployments/calc/requests/batch", `[{"x": 1},`, "", 400, []string{"JSON"}},
		{"batch not a list", "POST", "/deployments/calc/requests/batch", M{"x": 1}, "", 400, nil},
		{"empty batch", "POST", "/deployments/calc/requests/batch", []any{}, "", 400, nil},
		{"batch with one bad input", "POST", "/deployments/calc/requests/batch", []any{M{"x": 1}, M{"x": 2}, M{"y": 3}}, "", 400, []string{"input 2"}},
		{"batch with one plain input", "POST", "/deployments/calc/versions/v1/requests/batch", []any{M{"x": 1}, "x=2"}, "", 400, []string{"input 1"}},
		{"cancel a finished request", "PATCH", "/deployments/calc/requests/" + done["id"].(string), M{"status": "cancelled"}, "", 400, []string{"completed"}},
		{"PATCH to another status", "PATCH", "/deployments/calc/requests/" + pending, M{"status": "completed"}, "", 400, []string{"cancelled"}},
		{"cancel list with a finished request", "POST", "/deployments/calc/requests/cancel", []string{pending, done["id"].(string)}, "", 400, []string{"completed"}},
		{"cancel list with an unknown request", "POST", "/deployments/calc/requests/cancel", []string{pending, "00000000-0000-0000-0000-000000000000"}, "", 404, nil},
		{"list with a bad status", "GET", "/deployments/calc/requests?status=done", nil, "", 400, []string{"status"}},
	}
	for _, c := range cases {
		a := s.api.Do(c.method, c.path, c.body, c.ctype)
		t.Run(c.name, func(t *testing.T) { rqError(t, a, c.status, c.parts...) })
	}
	after := s.rqState()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("refused calls changed the requests:\nbefore %v\nafter  %v", before, after)
	}
	if after[pending] != "pending" {
		t.Errorf("the pending request is %s after refused cancels, want pending", after[pending])
	}
}

// TestRequestCancelDuplicateIDs: the same id twice in a cancel list cancels it once.
func TestRequestCancelDuplicateIDs(t *testing.T) {
	t.Parallel()
	s := rqSetup(t)
	id := s.api.MustList("POST", "/deployments/calc/versions/hold/requests/batch", []any{M{"x": 1}}, 201)[0]["id"].(string)
	out := s.api.MustList("POST", "/deployments/calc/requests/cancel", []string{id, id}, 200)
	if len(out) == 0 || out[0]["status"] != "cancelled" {
		t.Errorf("cancel [id, id]: %v", out)
	}
	if g := s.api.MustObj("GET", "/deployments/calc/requests/"+id, nil, 200); g["status"] != "cancelled" {
		t.Errorf("after cancel: %v", g)
	}
}

// TestRuntimeRequestLeaseTokens: every claim gets its own lease token, also when callers
// send the same X-Request-Id (a retried call, or a proxy that sets it): a worker can
// never report on a request that another claim holds.
func TestRuntimeRequestLeaseTokens(t *testing.T) {
	t.Parallel()
	s := rqSetup(t)
	s.api.MustList("POST", "/deployments/calc/versions/hold/requests/batch", []any{M{"x": 1}, M{"x": 2}}, 201)
	// Both claims send the same X-Request-Id.
	worker := s.api.As(s.Token)
	worker.Header = http.Header{"X-Request-Id": {"worker-1"}}
	claim := func() M {
		out := worker.MustList("POST", "/deployments/calc/versions/hold/runtime/claim", nil, 200)
		if len(out) != 1 {
			t.Fatalf("claim: %v", out)
		}
		return out[0]
	}
	a, b := claim(), claim()
	if a["id"] == b["id"] {
		t.Fatalf("both claims got request %v", a["id"])
	}
	if a["lease_token"] == b["lease_token"] {
		t.Errorf("two claims share the lease token %v", a["lease_token"])
	}
	// The first worker reports on the second claim's request with its own token: refused.
	r := s.api.Do("POST", "/deployments/calc/versions/hold/runtime/requests/"+b["id"].(string),
		M{"lease_token": a["lease_token"], "status": "completed", "result": M{"y": 0}}, "")
	rqError(t, r, 409)
	if g := s.api.MustObj("GET", "/deployments/calc/requests/"+b["id"].(string), nil, 200); g["status"] != "processing" {
		t.Errorf("after a report with another claim's token: %v, want processing", g)
	}
}
