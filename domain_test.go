package ubihooks

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, err string }{
		{in: "https://example.com", want: "https://example.com/"},
		{in: "HTTP://Example.COM:80/a%7Eb", want: "http://example.com/a~b"},
		{in: "https://example.com:443/x?y=1", want: "https://example.com/x?y=1"},
		{in: "http://127.0.0.1:8000/hook", want: "http://127.0.0.1:8000/hook"},
		{in: "http://example.com/a%2fb", want: "http://example.com/a%2Fb"},
		{in: "http://example.com/#frag", want: "http://example.com/"},
		{in: "  http://example.com/x  ", want: "http://example.com/x"},
		{in: "http://[::1]:9000/", want: "http://[::1]:9000/"},
		{in: "", err: "url is required"},
		{in: "ftp://example.com/", err: "absolute http:// or https://"},
		{in: "/relative", err: "absolute http:// or https://"},
		{in: "http://user:pw@example.com/", err: "credentials"},
		{in: "http://example.com:99999/", err: "invalid port"},
		{in: "http:///nohost", err: "host"},
	}
	for _, tt := range tests {
		got, err := NormalizeURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(ErrorMessage(err), tt.err) {
				t.Errorf("NormalizeURL(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	t.Parallel()
	if e, err := ParseEvent(ObjectPipeline, "pipeline_request_failed"); err != nil || e.Kind() != "failed" || e.ObjectType() != ObjectPipeline {
		t.Errorf("ParseEvent(pipeline, pipeline_request_failed) = %q, %v", e, err)
	}
	for _, tt := range []struct {
		t   ObjectType
		in  string
		err string
	}{
		{ObjectDeployment, "", "event is required"},
		{ObjectDeployment, "deployment_request_done", "not valid"},
		{ObjectDeployment, "pipeline_request_started", "does not match object_type"},
	} {
		if _, err := ParseEvent(tt.t, tt.in); err == nil || !strings.Contains(ErrorMessage(err), tt.err) || ErrorCode(err) != EINVALID {
			t.Errorf("ParseEvent(%s, %q) error = %v, want %q", tt.t, tt.in, err, tt.err)
		}
	}
}

func TestLabelFilter(t *testing.T) {
	t.Parallel()
	f, err := ParseLabelFilter("team:a, env:prod:eu ,owner")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"team": "a", "env": "prod:eu", "owner": AnyLabelValue}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("ParseLabelFilter = %v, want %v", f, want)
	}
	filter := WebhookFilter{Labels: f}
	if !filter.Match(&Webhook{Labels: map[string]string{"team": "a", "env": "prod:eu", "owner": "x", "more": "y"}}) {
		t.Error("a webhook with every pair should match")
	}
	if filter.Match(&Webhook{Labels: map[string]string{"team": "a", "env": "prod:eu"}}) {
		t.Error("a webhook missing one pair must not match (AND semantics)")
	}
	if _, err := ParseLabelFilter(":x"); err == nil {
		t.Error("a pair without key must be refused")
	}
}

func TestTimeoutFromSeconds(t *testing.T) {
	t.Parallel()
	n := func(i int) *int { return &i }
	if d, err := TimeoutFromSeconds(nil); err != nil || d != 10*time.Second {
		t.Errorf("default timeout = %v, %v; want 10s", d, err)
	}
	if d, err := TimeoutFromSeconds(n(30)); err != nil || d != 30*time.Second {
		t.Errorf("timeout 30 = %v, %v", d, err)
	}
	for _, bad := range []int{0, -1, 31, 1 << 62} {
		if _, err := TimeoutFromSeconds(n(bad)); err == nil {
			t.Errorf("timeout %d accepted", bad)
		}
	}
}

func TestTransitionKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to RequestStatus
		want     []string
	}{
		{RequestPending, RequestProcessing, []string{"started"}},
		{RequestProcessing, RequestCompleted, []string{"completed", "finished"}},
		{RequestProcessing, RequestFailed, []string{"failed", "finished"}},
		{RequestPending, RequestFailed, []string{"failed", "finished"}},
		{RequestPending, RequestCancelled, []string{"finished"}},
		{RequestProcessing, RequestCancelled, []string{"finished"}},
		{RequestCompleted, RequestCancelled, nil},
		{RequestProcessing, RequestProcessing, nil},
	}
	for _, tt := range tests {
		if got := TransitionKinds(tt.from, tt.to); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("TransitionKinds(%s, %s) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	b := func(v bool) *bool { return &v }
	ok := []HeaderInput{{Key: "X-A", Value: s("1"), Protected: b(false)}, {Key: "Authorization", Value: s("Token 1"), Protected: b(true)}}
	if err := ValidateHeaderInputs(ok, nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in   []HeaderInput
		keep func(string) bool
		err  string
	}{
		{[]HeaderInput{{Key: "", Value: s("1"), Protected: b(false)}}, nil, "key is required"},
		{[]HeaderInput{{Key: "Bad Key", Value: s("1"), Protected: b(false)}}, nil, "not a valid HTTP header name"},
		{[]HeaderInput{{Key: "Signature", Value: s("1"), Protected: b(false)}}, nil, "set by ubihooks"},
		{[]HeaderInput{{Key: "X-A", Value: s("1"), Protected: b(false)}, {Key: "x-a", Value: s("2"), Protected: b(false)}}, nil, "listed twice"},
		{[]HeaderInput{{Key: "X-A", Value: s("1")}}, nil, "protected is required"},
		{[]HeaderInput{{Key: "X-A", Value: s("a\r\nb"), Protected: b(false)}}, nil, "line breaks"},
		{[]HeaderInput{{Key: "X-A", Protected: b(true)}}, nil, "value is required"},
		{[]HeaderInput{{Key: "X-A", Protected: b(true)}}, func(string) bool { return false }, "no protected header"},
	} {
		if err := ValidateHeaderInputs(tt.in, tt.keep); err == nil || !strings.Contains(ErrorMessage(err), tt.err) {
			t.Errorf("ValidateHeaderInputs(%+v) = %v, want %q", tt.in, err, tt.err)
		}
	}
	if err := ValidateHeaderInputs([]HeaderInput{{Key: "X-A", Protected: b(true)}}, func(string) bool { return true }); err != nil {
		t.Errorf("a protected header without value that keeps its secret: %v", err)
	}
	// Stored form never holds a protected plain value.
	enc, err := MarshalHeaders([]Header{{Key: "A", Value: "leak", Protected: true, Sealed: []byte{1, 2}}, {Key: "B", Value: "v"}})
	if err != nil || strings.Contains(string(enc), "leak") {
		t.Fatalf("MarshalHeaders = %s, %v", enc, err)
	}
	if _, err := MarshalHeaders([]Header{{Key: "A", Protected: true}}); err == nil {
		t.Error("an unsealed protected header must not be stored")
	}
	if got := (Header{Key: "A", Value: "secret", Protected: true}).String(); strings.Contains(got, "secret") {
		t.Errorf("Header.String leaks the secret: %q", got)
	}
}

func TestPayload(t *testing.T) {
	t.Parallel()
	e := &Event{ID: "e1", ProjectName: "proj", Type: EventPipelineCompleted, ObjectType: ObjectPipeline, ObjectID: "o1",
		ObjectName: "pl", VersionID: "v1id", VersionName: "v1", RequestID: "r1", Status: "completed",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.SetResult(json.RawMessage(`{"y":1}`))
	var p map[string]any
	if err := json.Unmarshal(e.Payload(true), &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "e1", "event": "pipeline_request_completed", "pipeline_id": "o1", "pipeline_name": "pl",
		"pipeline_version_id": "v1id", "pipeline_version_name": "v1", "request_id": "r1", "status": "completed", "project": "proj",
		"timestamp": "2026-01-02T03:04:05Z", "result": map[string]any{"y": float64(1)},
		"text": "Pipeline request r1 completed for pipeline pl v1 in project proj"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("payload = %v\nwant      %v", p, want)
	}
	if strings.Contains(string(e.Payload(false)), "result") {
		t.Error("result included without include_result")
	}
	big := json.RawMessage(`"` + strings.Repeat("x", MaxResultSize-1) + `"`) // MaxResultSize+1 bytes
	e.SetResult(big)
	if got := string(e.Payload(true)); strings.Contains(got, `"result":`) || !strings.Contains(got, `"result_size":16385`) {
		t.Errorf("an oversized result must be left out with its size, got %.200s", got)
	}
}

func TestParseDeliveryStatus(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want DeliveryStatus
		err  string
	}{
		{in: "", want: ""},
		{in: "pending", want: DeliveryPending},
		{in: "sending", want: DeliverySending},
		{in: "succeeded", want: DeliverySucceeded},
		{in: "failed", want: DeliveryFailed},
		{in: "Failed", err: `status must be one of pending, sending, succeeded, failed, parked; got "Failed"`},
		{in: "completed", err: `got "completed"`},
	} {
		got, err := ParseDeliveryStatus(tt.in)
		if tt.err != "" {
			if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), tt.err) {
				t.Errorf("ParseDeliveryStatus(%q) = %q, %v; want an invalid error containing %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDeliveryStatus(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, s := range DeliveryStatuses {
		if final := s == DeliverySucceeded || s == DeliveryFailed; s.Final() != final || !s.Valid() {
			t.Errorf("%s: Final %v, Valid %v; want %v, true", s, s.Final(), s.Valid(), final)
		}
	}
}
