package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
	"github.com/ubihooks/ubihooks/internal/web"
)

// waitAPI polls the API until cond holds on the listed objects.
func (e *uiEnv) waitAPI(what, path string, within time.Duration, cond func([]ubihookstest.Obj) bool) []ubihookstest.Obj {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := e.api.MustList("GET", path, nil, 200)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v: %v", what, within, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUIRecoverAndRedeliverConflict(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	model := ubihookstest.NewBackend(t, ubihookstest.BackendConfig{})
	e.deployment("model", model.URL)
	// The receiver fails the first three deliveries, then recovers.
	rcv := e.receiver(ubihookstest.Script(500, 500, 500, 200))
	e.api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "flaky", "object_type": "deployment", "object_name": "model",
		"event": "deployment_request_completed", "url": rcv.URL, "retry": false}, 201)
	e.api.MustDo("POST", "/deployments/model/requests/batch", []any{map[string]any{}, map[string]any{}, map[string]any{}}, 201)
	failed := e.waitAPI("three failed deliveries", "/webhooks/flaky/deliveries?status=failed", 30*time.Second,
		func(ds []ubihookstest.Obj) bool { return len(ds) == 3 })
	var want []string
	for _, d := range failed {
		want = append(want, d["event_id"].(string))
	}
	sort.Strings(want)

	tb := e.newTab(true)
	tb.open("/ui/p/demo/webhooks/flaky?status=failed")
	if got := tb.text("#delivery-rows tbody"); strings.Count(got, "failed") != 3 {
		t.Errorf("the failed filter lists:\n%s", got)
	}
	tb.check("deliveries-failed")
	tb.open("/ui/p/demo/webhooks/flaky/recover")
	tb.check("recover-form")
	tb.do("count", chromedp.Click(chromedp.CSS(`#count-form button`)), chromedp.WaitVisible(chromedp.ID("recover-count")))
	if got := tb.text("#recover-count"); !strings.Contains(got, "3 failed deliveries will be sent again with their original event ids") {
		t.Errorf("the count says %q", got)
	}
	if rcv.Count() != 3 {
		t.Errorf("counting sent something: %d arrivals, want 3", rcv.Count())
	}
	tb.check("recover-count")
	tb.do("send", chromedp.Click(chromedp.CSS(`#send-form button`)), chromedp.WaitVisible(chromedp.CSS(`[role=status] strong`)))
	if got := tb.text(`[role=status] strong`); got != "3 deliveries were queued again" {
		t.Errorf("after sending: %q", got)
	}
	tb.check("recover-done")
	rcv.Until(t, 30*time.Second, "the recovered deliveries", func() bool { return rcv.Count() == 6 })
	var again []string
	for _, a := range rcv.Arrivals()[3:] {
		again = append(again, a.ID())
	}
	sort.Strings(again)
	if strings.Join(again, ",") != strings.Join(want, ",") {
		t.Errorf("recovered event ids %v, want the failed ones %v", again, want)
	}
	tb.open("/ui/p/demo/webhooks/flaky")
	tb.waitText("#delivery-rows tbody", "succeeded", 20*time.Second)

	// Redelivering one that is still being sent is refused with the API's message. The
	// button is disabled then; the form is sent anyway, as a stale page would.
	release := make(chan struct{})
	slow := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	e.api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "slow", "object_type": "deployment", "object_name": "model",
		"event": "deployment_request_completed", "url": slow.URL, "timeout": 30}, 201)
	e.api.MustDo("POST", "/deployments/model/requests/batch", []any{map[string]any{}}, 201)
	sending := e.waitAPI("a delivery being sent", "/webhooks/slow/deliveries", 30*time.Second,
		func(ds []ubihookstest.Obj) bool { return len(ds) == 1 && ds[0]["status"] == "sending" })
	tb.open("/ui/p/demo/webhooks/slow/deliveries/" + sending[0]["id"].(string))
	tb.check("delivery-sending")
	tb.do("redeliver anyway", chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/redeliver"]').submit()`),
		chromedp.WaitVisible(chromedp.ID("error-summary")))
	if got := tb.text("#error-summary"); !strings.Contains(got, "is still sending; it can be redelivered once it has succeeded or failed") {
		t.Errorf("redelivering a delivery in flight says %q", got)
	}
}

func TestUIPipelineAndProjects(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	double := ubihookstest.NewBackend(t, ubihookstest.BackendConfig{Model: func(in any) (any, error) {
		m, _ := in.(map[string]any)
		x, _ := m["x"].(float64)
		return map[string]any{"y": 2 * x}, nil
	}})
	field := func(n string) []any { return []any{map[string]any{"name": n, "data_type": "double"}} }
	e.api.MustDo("POST", "/deployments", ubihookstest.Obj{"name": "double", "input_type": "structured", "output_type": "structured",
		"input_fields": field("x"), "output_fields": field("y")}, 201)
	e.api.MustDo("POST", "/deployments/double/versions", ubihookstest.Obj{"version": "v1", "backend_url": double.URL}, 201)
	e.api.MustDo("POST", "/pipelines", ubihookstest.Obj{"name": "pipe", "input_type": "structured", "input_fields": field("x"),
		"output_type": "structured", "output_fields": field("y")}, 201)
	attach := func(from, to, src, dst string) ubihookstest.Obj {
		return ubihookstest.Obj{"destination_name": to, "sources": []any{ubihookstest.Obj{"source_name": from,
			"mapping": []any{ubihookstest.Obj{"source_field_name": src, "destination_field_name": dst}}}}}
	}
	e.api.MustDo("POST", "/pipelines/pipe/versions", ubihookstest.Obj{"version": "pv1",
		"objects":     []any{ubihookstest.Obj{"name": "d", "reference_name": "double"}},
		"attachments": []any{attach("pipeline_start", "d", "x", "x"), attach("d", "pipeline_end", "y", "y")}}, 201)
	rcv := e.receiver(nil)
	e.api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "pipe-done", "object_type": "pipeline", "object_name": "pipe",
		"event": "pipeline_request_finished", "url": rcv.URL}, 201)

	// An admin token with two projects gets the project list and the switcher.
	admin := e.run("token", "create", "--project", "demo", "--admin", "--database", e.db)
	root := &ubihookstest.API{T: t, URL: e.base + "/v2.1", Token: admin}
	root.MustDo("POST", "/projects", ubihookstest.Obj{"name": "second", "organization_name": "org"}, 201)
	tb := e.newTab(false)
	tb.signIn(admin)
	if got := tb.text("main"); !strings.Contains(got, "demo") || !strings.Contains(got, "second") {
		t.Errorf("the project list of a token with two projects:\n%s", got)
	}
	tb.check("projects")

	tb.open("/ui/p/demo/pipelines/pipe/requests")
	tb.check("pipeline-requests-empty")
	tb.do("send", chromedp.SetValue(chromedp.ID("f-input"), `{"x": 21}`), chromedp.Click(chromedp.CSS(`form[method=post] button.primary`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	tb.do("open it", chromedp.Click(chromedp.CSS(`#requests tbody a`)), chromedp.WaitVisible(chromedp.ID("request-id")))
	tb.waitText("#request", "completed", 30*time.Second)
	tb.waitText("#request", "pipe-done", 30*time.Second)
	got := tb.text("#request")
	if !strings.Contains(got, "Pipeline steps") || !strings.Contains(got, "double") || !strings.Contains(got, `"y": 42`) {
		t.Errorf("the pipeline request page:\n%s", got)
	}
	tb.check("pipeline-request")

	tb.open("/ui/p/demo/")
	if got := tb.text("main"); !strings.Contains(got, "Pipelines") || !strings.Contains(got, "pipe") {
		t.Errorf("the overview:\n%s", got)
	}
	// The switcher moves to the other project.
	tb.do("switch", chromedp.SetValue(chromedp.ID("project-switch"), "second"), chromedp.Submit(chromedp.ID("project-switch")),
		chromedp.WaitVisible(chromedp.CSS(".empty")))
	if loc := tb.location(); loc != e.base+"/ui/p/second/" {
		t.Errorf("the switcher went to %s", loc)
	}
	tb.check("overview-second")
}

// Every UI route names the API operations it performs, and each is one the API serves:
// the UI can do nothing that the API cannot.
func TestUIRoutesAreAPIOperations(t *testing.T) {
	t.Parallel()
	ui, err := web.New(web.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	api.New(api.Config{}).ServeHTTP(rec, httptest.NewRequest("GET", "/v2.1/openapi.json", nil))
	doc := ubihookstest.Response{Status: rec.Code, Body: rec.Body.Bytes()}.Object(t)
	paths, _ := doc["paths"].(map[string]any)
	n := 0
	for _, rt := range ui.Routes() {
		for _, op := range rt.API {
			method, path, _ := strings.Cut(op, " ")
			ops, _ := paths[path].(map[string]any)
			if _, ok := ops[strings.ToLower(method)]; !ok {
				t.Errorf("UI route %q performs %s, which the API does not serve", rt.Pattern, op)
			}
			n++
		}
	}
	if n < 30 {
		t.Errorf("only %d API operations named by the UI routes", n)
	}
}

// An error page is a page of the UI: its headers, its message, no stack.
func TestUIErrorPages(t *testing.T) {
	t.Parallel()
	e := newUIEnv(t)
	tb := e.newTab(true)
	for _, tt := range []struct{ path, want string }{
		{"/ui/p/demo/webhooks/" + url.PathEscape("no <such>"), `webhook &#34;no &lt;such&gt;&#34; not found`},
		{"/ui/p/other/", "this token has no access to project &#34;other&#34;"},
		{"/ui/nothing-here", "no such page: /ui/nothing-here"},
	} {
		res := tb.get(tt.path)
		if res.Status == http.StatusOK || res.Header.Get("Content-Security-Policy") != web.CSP || !strings.Contains(string(res.Body), tt.want) {
			t.Errorf("GET %s: %d, CSP %q, body:\n%s", tt.path, res.Status, res.Header.Get("Content-Security-Policy"), res.Body)
		}
	}
}
