package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/sqlite"
)

// runEnv is the setup bundle of the request use-case tests: real SQLite in t.TempDir(),
// the service, and a project with the structured deployment "calc" (x:int → y:int) whose
// versions "v1" and "v2" have no backend. No executor runs, so requests stay pending until
// a test moves them.
type runEnv struct {
	ctx     context.Context
	svc     *service.Service
	project *ubihooks.Project
	calc    *ubihooks.Object
	v1, v2  *ubihooks.Version
}

func setupRun(t *testing.T) *runEnv {
	t.Helper()
	e := &runEnv{ctx: context.Background()}
	st, err := sqlite.Open(e.ctx, filepath.Join(t.TempDir(), "ubihooks.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	e.svc = service.New(service.Config{Store: st})
	if _, err := e.svc.CreateToken(e.ctx, service.TokenCreate{Project: "run-proj", Organization: "run-org", Name: "run"}); err != nil {
		t.Fatal(err)
	}
	if e.project, err = e.svc.GetProject(e.ctx, "run-proj"); err != nil {
		t.Fatal(err)
	}
	e.calc, err = e.svc.CreateObject(e.ctx, e.project.ID, ubihooks.ObjectDeployment, ubihooks.ObjectCreate{Name: "calc",
		InputType: ubihooks.TypeStructured, OutputType: ubihooks.TypeStructured,
		InputFields: []ubihooks.Field{{Name: "x", DataType: "int"}}, OutputFields: []ubihooks.Field{{Name: "y", DataType: "int"}}})
	if err != nil {
		t.Fatal(err)
	}
	if e.v1, err = e.svc.CreateVersion(e.ctx, e.calc, ubihooks.VersionCreate{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if e.v2, err = e.svc.CreateVersion(e.ctx, e.calc, ubihooks.VersionCreate{Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// pending queues n batch requests on v.
func (e *runEnv) pending(t *testing.T, v *ubihooks.Version, n int) []*ubihooks.Request {
	t.Helper()
	in := make([]json.RawMessage, n)
	for i := range in {
		in[i] = json.RawMessage(`{"x": 1}`)
	}
	rs, err := e.svc.CreateRequests(e.ctx, service.CreateRequestsParams{Project: e.project, Object: e.calc, Version: v, Inputs: in, Batch: true, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *runEnv) status(t *testing.T, id string) ubihooks.RequestStatus {
	t.Helper()
	r, err := e.svc.GetRequest(e.ctx, e.calc, "", id)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status
}

// waitQueued waits until the project has n requests of v1, and returns the newest.
func (e *runEnv) waitQueued(t *testing.T, n int) *ubihooks.Request {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		rs, err := e.svc.ListRequests(e.ctx, ubihooks.RequestFilter{ProjectID: e.project.ID, VersionID: e.v1.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) >= n {
			return rs[0]
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%d requests queued after 10s, want %d", len(rs), n)
		}
	}
}

type runResult struct {
	r     *ubihooks.Request
	steps []*ubihooks.Request
	err   error
}

func (e *runEnv) runAsync(ctx context.Context, timeout time.Duration) <-chan runResult {
	done := make(chan runResult, 1)
	go func() {
		r, steps, err := e.svc.RunRequest(ctx, service.RunRequestParams{Project: e.project, Object: e.calc, Version: e.v1,
			Input: json.RawMessage(`{"x": 2}`), Timeout: timeout})
		done <- runResult{r, steps, err}
	}()
	return done
}

// TestRunRequestTimesOut: a direct request still unfinished at its timeout is failed with
// the timeout message, and the caller gets it so.
func TestRunRequestTimesOut(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	r, steps, err := e.svc.RunRequest(e.ctx, service.RunRequestParams{Project: e.project, Object: e.calc, Version: e.v1,
		Input: json.RawMessage(`{"x": 2}`), Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ubihooks.RequestFailed || r.ErrorMessage != "the request did not finish within its timeout of 50ms" || steps != nil {
		t.Errorf("RunRequest = %s %q with %d steps, want failed with the timeout message and no steps", r.Status, r.ErrorMessage, len(steps))
	}
	if got := e.status(t, r.ID); got != ubihooks.RequestFailed {
		t.Errorf("stored status = %s, want failed", got)
	}
}

// TestRunRequestEndsWithTheRequest: RunRequest answers as soon as the request is final,
// with the request as it ended.
func TestRunRequestEndsWithTheRequest(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	done := e.runAsync(e.ctx, time.Minute)
	r := e.waitQueued(t, 1)
	if _, err := e.svc.CancelRequest(e.ctx, r); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.r.ID != r.ID || got.r.Status != ubihooks.RequestCancelled {
		t.Errorf("RunRequest = %+v, want request %s cancelled", got, r.ID)
	}
}

// TestRunRequestCallerLeaves: when the caller leaves, RunRequest returns its context's
// error and the request runs on.
func TestRunRequestCallerLeaves(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	ctx, cancel := context.WithCancel(e.ctx)
	done := e.runAsync(ctx, time.Minute)
	r := e.waitQueued(t, 1)
	cancel()
	if got := <-done; !errors.Is(got.err, context.Canceled) || got.r != nil {
		t.Errorf("RunRequest after the caller left = %+v, want context.Canceled", got)
	}
	if got := e.status(t, r.ID); got != ubihooks.RequestPending {
		t.Errorf("status after the caller left = %s, want pending (it runs on)", got)
	}
}

// TestRunRequestBadInput: an input that does not fit is refused before anything is
// queued.
func TestRunRequestBadInput(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	_, _, err := e.svc.RunRequest(e.ctx, service.RunRequestParams{Project: e.project, Object: e.calc, Version: e.v1,
		Input: json.RawMessage(`{"x": "two"}`), Timeout: time.Minute})
	if ubihooks.ErrorCode(err) != ubihooks.EINVALID {
		t.Fatalf("RunRequest with a string for an int = %v, want %s", err, ubihooks.EINVALID)
	}
	rs, err := e.svc.ListRequests(e.ctx, ubihooks.RequestFilter{ProjectID: e.project.ID, Limit: 10})
	if err != nil || len(rs) != 0 {
		t.Errorf("requests after a refused input: %d, %v; want none", len(rs), err)
	}
}

// TestCancelRequestsAllOrNothing: an unknown or finished request in the list cancels
// nothing; otherwise every listed request is cancelled once.
func TestCancelRequestsAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	rs := e.pending(t, e.v1, 3)
	a, b, done := rs[0], rs[1], rs[2]
	if _, err := e.svc.CancelRequest(e.ctx, done); err != nil {
		t.Fatal(err)
	}
	other := e.pending(t, e.v2, 1)[0]

	for _, tc := range []struct {
		name    string
		version string
		ids     []string
		code    string
		msg     string
	}{
		{"a finished request", "", []string{a.ID, done.ID}, ubihooks.EINVALID, "request " + done.ID + " is already cancelled and cannot be cancelled; nothing was cancelled"},
		{"an unknown request", "", []string{a.ID, "00000000-0000-0000-0000-000000000000"}, ubihooks.ENOTFOUND, ""},
		{"a request of another version", "v1", []string{a.ID, other.ID}, ubihooks.ENOTFOUND, ""},
	} {
		_, err := e.svc.CancelRequests(e.ctx, e.calc, tc.version, tc.ids)
		if ubihooks.ErrorCode(err) != tc.code || (tc.msg != "" && ubihooks.ErrorMessage(err) != tc.msg) {
			t.Errorf("%s: CancelRequests = %v, want %s %q", tc.name, err, tc.code, tc.msg)
		}
		if got := e.status(t, a.ID); got != ubihooks.RequestPending {
			t.Fatalf("%s: the valid request is %s after a refused list, want pending", tc.name, got)
		}
	}

	out, err := e.svc.CancelRequests(e.ctx, e.calc, "v1", []string{a.ID, b.ID, a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].ID != a.ID || out[1].ID != b.ID {
		t.Fatalf("CancelRequests([a, b, a]) returned %d requests, want a and b once each", len(out))
	}
	for _, r := range out {
		if r.Status != ubihooks.RequestCancelled || e.status(t, r.ID) != ubihooks.RequestCancelled {
			t.Errorf("request %s: %s, want cancelled", r.ID, r.Status)
		}
	}
}

// TestReportRequest: an external runtime's report is checked (lease token, status,
// result against the output type) and recorded only under the claim's lease.
func TestReportRequest(t *testing.T) {
	t.Parallel()
	e := setupRun(t)
	e.pending(t, e.v1, 2)
	claimed, err := e.svc.ClaimRequests(e.ctx, ubihooks.RequestClaim{Owner: "rt-1", Limit: 2, Lease: time.Minute, VersionID: e.v1.ID, External: true})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claim: %d requests, %v; want 2", len(claimed), err)
	}
	ok, failed := claimed[0], claimed[1]
	report := func(p service.ReportRequestParams) (*ubihooks.Request, error) {
		p.Object = e.calc
		return e.svc.ReportRequest(e.ctx, p)
	}

	for _, tc := range []struct {
		name string
		p    service.ReportRequestParams
		code string
		msg  string
	}{
		{"no lease token", service.ReportRequestParams{RequestID: "00000000-0000-0000-0000-000000000000", Status: ubihooks.RequestCompleted},
			ubihooks.EINVALID, "lease_token is required (from the claim)"},
		{"unknown request", service.ReportRequestParams{RequestID: "00000000-0000-0000-0000-000000000000", LeaseToken: "rt-1", Status: ubihooks.RequestCompleted},
			ubihooks.ENOTFOUND, ""},
		{"another version", service.ReportRequestParams{Version: "v2", RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestCompleted},
			ubihooks.ENOTFOUND, ""},
		{"bad status", service.ReportRequestParams{RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestCancelled},
			ubihooks.EINVALID, `status must be "completed" (with result) or "failed" (with error_message)`},
		{"no result", service.ReportRequestParams{RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestCompleted},
			ubihooks.EINVALID, "result is required and must be JSON"},
		{"result of the wrong type", service.ReportRequestParams{RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestCompleted, Result: json.RawMessage(`[1]`)},
			ubihooks.EINVALID, "deployment calc has structured output: result must be a JSON object"},
		{"another lease", service.ReportRequestParams{RequestID: ok.ID, LeaseToken: "rt-2", Status: ubihooks.RequestCompleted, Result: json.RawMessage(`{"y": 4}`)},
			ubihooks.ECONFLICT, "request " + ok.ID + " is not processing under this lease (it was cancelled, finished, or its lease expired)"},
	} {
		_, err := report(tc.p)
		if ubihooks.ErrorCode(err) != tc.code || (tc.msg != "" && ubihooks.ErrorMessage(err) != tc.msg) {
			t.Errorf("%s: ReportRequest = %v, want %s %q", tc.name, err, tc.code, tc.msg)
		}
	}
	if got := e.status(t, ok.ID); got != ubihooks.RequestProcessing {
		t.Fatalf("after refused reports the request is %s, want processing", got)
	}

	r, err := report(service.ReportRequestParams{Version: "v1", RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestCompleted, Result: json.RawMessage(`{"y": 4}`)})
	if err != nil || r.Status != ubihooks.RequestCompleted || string(r.Result) != `{"y": 4}` {
		t.Errorf("report completed = %v, %v; want completed with the result", r, err)
	}
	r, err = report(service.ReportRequestParams{RequestID: failed.ID, LeaseToken: "rt-1", Status: ubihooks.RequestFailed})
	if err != nil || r.Status != ubihooks.RequestFailed || r.ErrorMessage != "the external runtime reported a failure" {
		t.Errorf("report failed without a message = %v, %v; want failed with the default message", r, err)
	}
	_, err = report(service.ReportRequestParams{RequestID: ok.ID, LeaseToken: "rt-1", Status: ubihooks.RequestFailed, ErrorMessage: "late"})
	if ubihooks.ErrorCode(err) != ubihooks.ECONFLICT || !strings.Contains(ubihooks.ErrorMessage(err), "not processing under this lease") {
		t.Errorf("a second report = %v, want %s", err, ubihooks.ECONFLICT)
	}
}
