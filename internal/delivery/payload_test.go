package delivery

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
)

// TestPayloadPerEventType sends every event type of a deployment, a pipeline and an
// experiment (a version of training-base-deployment) and checks each payload key by key.
func TestPayloadPerEventType(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)

	type object struct {
		typ     ubihooks.ObjectType
		obj     *ubihooks.Object
		version string // the webhook's version ("" follows the default)
		sendAs  string // the version the requests run on
		title   string // the sentence's first word
	}
	objects := []object{
		{ubihooks.ObjectDeployment, e.dep, "", "v1", "Deployment"},
		{ubihooks.ObjectPipeline, e.pipe, "p1", "p1", "Pipeline"},
		{ubihooks.ObjectDeployment, e.train, "exp-b", "exp-b", "Deployment"}, // an experiment
	}
	kinds := []string{"started", "completed", "failed", "finished"}
	for _, o := range objects {
		for _, k := range kinds {
			ev := ubihooks.EventFor(o.typ, k)
			e.hook(rc.URL+"/"+o.obj.Name+"/"+string(ev), onEvent(string(o.typ), o.obj.Name, o.version, ev))
		}
	}

	before := time.Now().Add(-time.Second)
	type request struct{ id, final string }
	reqs := map[string][2]request{} // object name → (completed request, failed request)
	for _, o := range objects {
		done, failed := uuid.NewString(), uuid.NewString()
		// pending → processing emits started; processing → completed emits completed and
		// finished; processing → failed emits failed and finished: five deliveries per
		// object, all four event types.
		if n := e.transition(o.typ, o.obj.Name, o.version, done, ubihooks.RequestPending, ubihooks.RequestProcessing, nil); n != 1 {
			t.Fatalf("%s: started transition created %d deliveries, want 1", o.obj.Name, n)
		}
		if n := e.transition(o.typ, o.obj.Name, o.version, done, ubihooks.RequestProcessing, ubihooks.RequestCompleted, json.RawMessage(`{"score":1}`)); n != 2 {
			t.Fatalf("%s: completed transition created %d deliveries, want 2", o.obj.Name, n)
		}
		if n := e.transition(o.typ, o.obj.Name, o.version, failed, ubihooks.RequestProcessing, ubihooks.RequestFailed, nil); n != 2 {
			t.Fatalf("%s: failed transition created %d deliveries, want 2", o.obj.Name, n)
		}
		reqs[o.obj.Name] = [2]request{{done, "completed"}, {failed, "failed"}}
	}
	e.start()
	e.Until(10*time.Second, "15 arrivals", func() bool { return rc.Count() >= 15 })
	after := time.Now().Add(time.Second)

	seen := map[string]int{}
	for _, a := range rc.Arrivals() {
		parts := strings.Split(strings.TrimPrefix(a.Path, "/"), "/")
		if len(parts) != 2 {
			t.Fatalf("unexpected path %q", a.Path)
		}
		var o object
		for _, c := range objects {
			if c.obj.Name == parts[0] {
				o = c
			}
		}
		ev := ubihooks.EventType(parts[1])
		p := a.Payload
		prefix := string(o.typ)

		wantKeys := []string{"id", "event", prefix + "_id", prefix + "_name", prefix + "_version_id", prefix + "_version_name",
			"request_id", "status", "project", "timestamp", "text"}
		var gotKeys []string
		for k := range p {
			gotKeys = append(gotKeys, k)
		}
		sort.Strings(gotKeys)
		sort.Strings(wantKeys)
		if !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("%s: keys = %v, want %v", a.Path, gotKeys, wantKeys)
		}

		reqID, _ := p["request_id"].(string)
		var req request
		for _, r := range reqs[o.obj.Name] {
			if r.id == reqID {
				req = r
			}
		}
		if req.id == "" {
			t.Errorf("%s: request_id %q is none of this object's requests", a.Path, reqID)
			continue
		}
		seen[o.obj.Name+" "+string(ev)+" "+req.final]++
		wantStatus := req.final
		if ev.Kind() == "started" {
			wantStatus = "processing"
		}
		v := e.Version(o.obj, o.sendAs)
		want := map[string]string{
			"id":                     ubihooks.EventID(reqID, ev),
			"event":                  string(ev),
			prefix + "_id":           o.obj.ID,
			prefix + "_name":         o.obj.Name,
			prefix + "_version_id":   v.ID,
			prefix + "_version_name": o.sendAs,
			"status":                 wantStatus,
			"project":                "acme",
			"text":                   fmt.Sprintf("%s request %s %s for %s %s %s in project acme", o.title, reqID, ev.Kind(), o.typ, o.obj.Name, o.sendAs),
			"request_id":             reqID,
		}
		for k, w := range want {
			if got := p[k]; got != w {
				t.Errorf("%s: %s = %v, want %q", a.Path, k, got, w)
			}
		}
		ts, _ := p["timestamp"].(string)
		at, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			t.Errorf("%s: timestamp %q is not RFC 3339: %v", a.Path, ts, err)
		} else if at.Before(before) || at.After(after) || at.Location() != time.UTC {
			t.Errorf("%s: timestamp %s is not the UTC time of the event (between %s and %s)", a.Path, ts, before, after)
		}
		if got := a.Header.Get("Idempotency-Key"); got != a.ID() {
			t.Errorf("%s: Idempotency-Key = %q, want the event id %q", a.Path, got, a.ID())
		}
	}
	// The sentence of the contract, spelled out once.
	dep := reqs["scorer"][0].id
	wantText := "Deployment request " + dep + " completed for deployment scorer v1 in project acme"
	found := false
	for _, a := range rc.Arrivals() {
		if a.Payload["text"] == wantText {
			found = true
		}
	}
	if !found {
		t.Errorf("no payload has text %q", wantText)
	}
	exp := reqs[ubihooks.TrainingDeployment][1].id
	wantText = "Deployment request " + exp + " failed for deployment training-base-deployment exp-b in project acme"
	found = false
	for _, a := range rc.Arrivals() {
		if a.Payload["text"] == wantText && a.Payload["deployment_version_name"] == "exp-b" {
			found = true
		}
	}
	if !found {
		t.Errorf("no experiment payload has text %q", wantText)
	}
	for _, o := range objects {
		for _, c := range []string{
			string(ubihooks.EventFor(o.typ, "started")) + " completed",
			string(ubihooks.EventFor(o.typ, "completed")) + " completed",
			string(ubihooks.EventFor(o.typ, "finished")) + " completed",
			string(ubihooks.EventFor(o.typ, "failed")) + " failed",
			string(ubihooks.EventFor(o.typ, "finished")) + " failed",
		} {
			if n := seen[o.obj.Name+" "+c]; n != 1 {
				t.Errorf("%s %s: received %d times, want 1", o.obj.Name, c, n)
			}
		}
	}
	if n := rc.Count(); n != 15 {
		t.Errorf("receiver got %d requests, want 15", n)
	}
}

// resultOfSize returns a JSON object whose encoding is exactly n bytes.
func resultOfSize(n int) json.RawMessage {
	const open, closing = `{"data":"`, `"}`
	return json.RawMessage(open + strings.Repeat("x", n-len(open)-len(closing)) + closing)
}

func TestPayloadIncludeResultLimit(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)
	include := true
	e.hook(rc.URL+"/include", func(in *ubihooks.WebhookCreate) { in.IncludeResult = &include })
	e.hook(rc.URL + "/plain") // include_result false: never a result

	fits, over := resultOfSize(ubihooks.MaxResultSize), resultOfSize(ubihooks.MaxResultSize+1)
	if len(fits) != 16384 || len(over) != 16385 {
		t.Fatalf("test results are %d and %d bytes", len(fits), len(over))
	}
	fitsID, overID := uuid.NewString(), uuid.NewString()
	e.transition(ubihooks.ObjectDeployment, "scorer", "", fitsID, ubihooks.RequestProcessing, ubihooks.RequestCompleted, fits)
	e.transition(ubihooks.ObjectDeployment, "scorer", "", overID, ubihooks.RequestProcessing, ubihooks.RequestCompleted, over)
	e.start()
	e.Until(10*time.Second, "4 arrivals", func() bool { return rc.Count() >= 4 })

	for _, a := range rc.Arrivals() {
		p := a.Payload
		req := p["request_id"]
		switch {
		case a.Path == "/plain":
			if _, ok := p["result"]; ok {
				t.Errorf("include_result false: payload of %v has a result", req)
			}
			if _, ok := p["result_omitted"]; ok {
				t.Errorf("include_result false: payload of %v has result_omitted", req)
			}
		case req == fitsID:
			raw, err := json.Marshal(p["result"])
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != string(fits) {
				t.Errorf("16384-byte result: payload result is %d bytes, want the result itself", len(raw))
			}
			if _, ok := p["result_omitted"]; ok {
				t.Errorf("16384-byte result: result_omitted is set")
			}
		case req == overID:
			if _, ok := p["result"]; ok {
				t.Errorf("16385-byte result: payload has a result")
			}
			if s, _ := p["result_omitted"].(string); s == "" {
				t.Errorf("16385-byte result: result_omitted = %v, want a reason", p["result_omitted"])
			}
			if got := p["result_size"]; got != float64(16385) {
				t.Errorf("16385-byte result: result_size = %v, want 16385", got)
			}
		default:
			t.Errorf("unexpected arrival %s for %v", a.Path, req)
		}
	}
	if n := rc.Count(); n != 4 {
		t.Errorf("receiver got %d requests, want 4", n)
	}
}
