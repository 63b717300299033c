package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/client"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// scrapeMetrics gets url and parses the Prometheus text exposition it answers.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v: %s", url, res.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse the scrape of %s: %v\n%s", url, err, body)
	}
	return fams
}

// metricValue returns the value of the series of family name whose labels include want
// (a histogram's sample count), and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsEndToEnd: /metrics on the API's address counts the deliveries that succeeded,
// failed and were refused by the network policy, their attempts by error class, the
// requests the executor ran, and the API calls by route and status, exactly; the queue
// gauges are served.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	addr, db := startServe(t)
	var out bytes.Buffer
	tm := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if err := tm.Run(context.Background(), []string{"token", "create", "--project", "p1", "--database", db}); err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(out.String())
	c := client.New("http://"+addr, token)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	before := scrapeMetrics(t, "http://"+addr+"/metrics")
	for _, o := range []string{"succeeded", "failed", "refused_by_policy"} {
		if v, ok := metricValue(before, "ubihooks_deliveries_finished_total", map[string]string{"outcome": o}); !ok || v != 0 {
			t.Errorf("before any delivery: ubihooks_deliveries_finished_total{outcome=%q} = %v, %v; want 0", o, v, ok)
		}
	}

	if _, err := c.CreateDeployment(ctx, "p1", ubihooks.ObjectCreate{Name: "dep", InputType: "structured", OutputType: "structured",
		InputFields: []ubihooks.Field{{Name: "x", DataType: "int"}}, OutputFields: []ubihooks.Field{{Name: "y", DataType: "int"}}}); err != nil {
		t.Fatal(err)
	}
	// The model fails on x = 0.
	backend := ubihookstest.NewBackend(t, ubihookstest.BackendConfig{Model: func(in any) (any, error) {
		if m, _ := in.(map[string]any); m["x"] == 0.0 {
			return nil, errors.New("x must not be 0")
		}
		return map[string]any{"y": 1}, nil
	}})
	if _, err := c.CreateDeploymentVersion(ctx, "p1", "dep", ubihooks.VersionCreate{Version: "v1", BackendURL: &backend.URL}); err != nil {
		t.Fatal(err)
	}
	// Direct requests run on the executor: two complete, one fails.
	for _, x := range []string{"1", "2", "0"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v2.1/projects/p1/deployments/dep/requests", strings.NewReader(`{"x": `+x+`}`))
		req.Header.Set("Authorization", "Token "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("direct request x=%s: status %d: %s", x, res.StatusCode, body)
		}
	}
	ok := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{Respond: ubihookstest.Status(http.StatusOK)})
	broken := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{Respond: ubihookstest.Status(http.StatusInternalServerError)})
	test := func(url string, want string) {
		t.Helper()
		wt, err := c.CreateWebhookTest(ctx, "p1", ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "dep", URL: url,
			Event: "deployment_request_completed", Retry: ptr(false), Timeout: ptr(5)})
		if err != nil {
			t.Fatal(err)
		}
		done, err := c.WaitWebhookTest(ctx, "p1", wt.ID, 20*time.Millisecond)
		if err != nil || done.Status != want {
			t.Fatalf("test of %s = %+v, %v; want %s", url, done, err, want)
		}
	}
	// Three delivered, two refused by the receiver, one refused by the network policy
	// (10.0.0.0/8 is not among the allowed networks).
	for range 3 {
		test(ok.URL+"/hook", client.TestCompleted)
	}
	for range 2 {
		test(broken.URL+"/hook", client.TestFailed)
	}
	test("http://10.0.0.1:9/hook", client.TestFailed)
	if _, err := c.GetWebhook(ctx, "p1", "nope"); !client.IsNotFound(err) {
		t.Errorf("unknown webhook: %v, want 404", err)
	}

	// A test is completed once its outcome is recorded, and a direct request answered once
	// its end is; the observers are told right after the commit, so the last counts may lag
	// by a moment.
	var after map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = scrapeMetrics(t, "http://"+addr+"/metrics")
		n := 0.0
		for _, o := range []string{"succeeded", "failed", "refused_by_policy"} {
			v, _ := metricValue(after, "ubihooks_deliveries_finished_total", map[string]string{"outcome": o})
			n += v
		}
		for _, st := range []string{"completed", "failed"} {
			v, _ := metricValue(after, "ubihooks_executor_requests_finished_total", map[string]string{"status": st})
			n += v
		}
		if n >= 6+3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "succeeded"}, 3},
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "failed"}, 2},
		{"ubihooks_deliveries_finished_total", map[string]string{"outcome": "refused_by_policy"}, 1},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "none"}, 3},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "http_status"}, 2},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "refused_by_policy"}, 1},
		{"ubihooks_delivery_attempts_total", map[string]string{"error_class": "timeout"}, 0},
		{"ubihooks_delivery_attempt_duration_seconds", nil, 6},
		{"ubihooks_http_requests_total", map[string]string{"route": "POST /projects/{project_name}/webhooks-tests", "code": "201"}, 6},
		{"ubihooks_http_requests_total", map[string]string{"route": "GET /projects/{project_name}/webhooks/{webhook_name}", "code": "404"}, 1},
		{"ubihooks_http_request_duration_seconds", map[string]string{"route": "POST /projects/{project_name}/webhooks-tests"}, 6},
		{"ubihooks_deliveries_due", nil, 0},
		{"ubihooks_deliveries_pending", nil, 0},
		{"ubihooks_oldest_due_delivery_age_seconds", nil, 0},
		{"ubihooks_sends_in_flight", nil, 0},
		{"ubihooks_executor_requests_finished_total", map[string]string{"status": "completed"}, 2},
		{"ubihooks_executor_requests_finished_total", map[string]string{"status": "failed"}, 1},
		{"ubihooks_http_requests_total", map[string]string{"route": "POST /projects/{project_name}/deployments/{deployment_name}/requests", "code": "200"}, 3},
		{"ubihooks_executor_requests_running", nil, 0},
		{"ubihooks_deliveries_parked", nil, 0},
		{"ubihooks_webhook_health_changes_total", map[string]string{"change": "disabled"}, 0},
	} {
		if got, found := metricValue(after, tc.name, tc.labels); !found || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, found, tc.want)
		}
	}
	// Scrapes are not API calls, and no label holds a URL or a host.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "127.0.0.1") || strings.Contains(l.GetValue(), "10.0.0.1") || strings.Contains(l.GetValue(), "/metrics") {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	if after["go_goroutines"] == nil {
		t.Errorf("the Go collector is missing")
	}
	// Every metric of ubihooks is documented.
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range after {
		if strings.HasPrefix(name, "ubihooks_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not listed in docs/operations.md", name)
		}
	}
}

// TestMetricsListen: with --metrics-listen (or $UBIHOOKS_METRICS_LISTEN), /metrics is
// served there and no longer on the API's address.
func TestMetricsListen(t *testing.T) {
	t.Parallel()
	t.Run("flag", func(t *testing.T) {
		t.Parallel()
		maddr := ubihookstest.FreeAddr(t)
		addr, _ := startServe(t, "--metrics-listen", maddr)
		checkMetricsListen(t, addr, maddr)
	})
	t.Run("env", func(t *testing.T) {
		t.Parallel()
		maddr := ubihookstest.FreeAddr(t)
		addr, _ := startServeEnv(t, map[string]string{"UBIHOOKS_METRICS_LISTEN": maddr})
		checkMetricsListen(t, addr, maddr)
	})
}

// checkMetricsListen checks that maddr serves the metrics and addr does not.
func checkMetricsListen(t *testing.T, addr, maddr string) {
	t.Helper()
	fams := scrapeMetrics(t, "http://"+maddr+"/metrics")
	if fams["ubihooks_deliveries_finished_total"] == nil || fams["ubihooks_deliveries_due"] == nil {
		t.Errorf("the metrics address serves no ubihooks metrics")
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the API's address: status %d, want 404", res.StatusCode)
	}
}

// TestMetricsPromtool: Prometheus' own linter (promtool check metrics, from Debian's
// prometheus package) finds nothing to say about a scrape taken after an API call and a
// webhook test. It runs where promtool is installed.
func TestMetricsPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	addr, db := startServe(t)
	var out bytes.Buffer
	tm := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if err := tm.Run(context.Background(), []string{"token", "create", "--project", "p1", "--database", db}); err != nil {
		t.Fatalf("token create: %v", err)
	}
	c := client.New("http://"+addr, strings.TrimSpace(out.String()))
	ctx := context.Background()
	if _, err := c.CreateDeployment(ctx, "p1", ubihooks.ObjectCreate{Name: "dep", InputType: "plain", OutputType: "plain"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateDeploymentVersion(ctx, "p1", "dep", ubihooks.VersionCreate{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	rcv := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{})
	wt, err := c.CreateWebhookTest(ctx, "p1", ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "dep", URL: rcv.URL + "/hook",
		Event: "deployment_request_completed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitWebhookTest(ctx, "p1", wt.ID, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || !bytes.Contains(body, []byte("ubihooks_deliveries_finished_total")) {
		t.Fatalf("scrape: %v\n%s", err, body)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	lint, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(lint)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, lint)
	}
}
