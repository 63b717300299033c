package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// completeRequests records n completed requests of dep's default version, each delivered to
// every completed webhook of it, and returns their ids, oldest first.
func (e *apiEnv) completeRequests(t *testing.T, n int) []string {
	t.Helper()
	p, err := e.Service.GetProject(e.Ctx, projA)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range n {
		id := uuid.NewString()
		if _, err := e.Service.RecordTransition(e.Ctx, p, service.Transition{ObjectType: ubihooks.ObjectDeployment, ObjectName: "dep",
			RequestID: id, From: ubihooks.RequestPending, To: ubihooks.RequestCompleted}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// failAll sends every due delivery, as an engine would, and records a final failure.
func (e *apiEnv) failAll(t *testing.T) {
	t.Helper()
	now := time.Now()
	ds, err := e.Store.ClaimDeliveries(e.Ctx, ubihooks.DeliveryClaim{Owner: "test-owner", Limit: 100, Lease: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var outs []ubihooks.Outcome
	for _, d := range ds {
		outs = append(outs, ubihooks.Outcome{DeliveryID: d.ID, Owner: "test-owner", Status: ubihooks.DeliveryFailed,
			Attempt: ubihooks.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: now, Duration: time.Millisecond, ErrorClass: ubihooks.ClassConnect, Error: "connection refused"}})
	}
	if err := e.Store.RecordOutcomes(e.Ctx, outs, now); err != nil {
		t.Fatal(err)
	}
}

// field returns one string field of every item of a list.
func field(list []M, key string) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i], _ = m[key].(string)
	}
	return out
}

func TestDeliveriesListFilters(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("dl"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)
	reqs := e.completeRequests(t, 3)

	list := func(query string) []M {
		t.Helper()
		r := e.A.Do("GET", "/webhooks/dl/deliveries"+query, nil, "")
		expectStatus(t, r, http.StatusOK)
		return r.List(t)
	}
	all := list("")
	if got := field(all, "request_id"); !slices.Equal(got, []string{reqs[2], reqs[1], reqs[0]}) {
		t.Fatalf("deliveries of requests %q, want the newest first %q", got, []string{reqs[2], reqs[1], reqs[0]})
	}
	// Pages: before takes the last item's id.
	page1 := list("?limit=2")
	page2 := list("?limit=2&before=" + page1[1]["id"].(string))
	page3 := list("?limit=2&before=" + page2[0]["id"].(string))
	if got := field(slices.Concat(page1, page2), "id"); !slices.Equal(got, field(all, "id")) || len(page2) != 1 || len(page3) != 0 {
		t.Errorf("pages of 2: %q then %d more; want %q and none", got, len(page3), field(all, "id"))
	}

	byReq := list("?request_id=" + reqs[1])
	eventID := ubihooks.EventID(reqs[1], ubihooks.EventDeploymentCompleted)
	if len(byReq) != 1 || byReq[0]["webhook"] != "dl" || byReq[0]["event_id"] != eventID || byReq[0]["event"] != "deployment_request_completed" {
		t.Errorf("by request_id: %v; want dl's delivery of event %s", byReq, eventID)
	}
	if got := field(list("?event_id="+eventID+"&status=pending"), "id"); len(got) != 1 || got[0] != byReq[0]["id"] {
		t.Errorf("by event_id and status: %q, want %v", got, byReq[0]["id"])
	}
	if r := e.A.Do("GET", "/webhooks/dl/deliveries?status=failed", nil, ""); strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("failed deliveries = %s, want []", r.Body)
	}

	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries?status=done", nil, ""), 400, `status must be one of pending, sending, succeeded, failed, parked; got "done"`)
	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries?limit=501", nil, ""), 400, "query parameter limit must be between 1 and 500, got 501")
	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries?before="+uuid.NewString(), nil, ""), 400, "before: delivery")
	expectError(t, e.A.Do("GET", "/webhooks/nope/deliveries?status=pending", nil, ""), 404, `webhook "nope" not found`)
}

func TestDeliveriesSearch(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("dl"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)
	reqs := e.completeRequests(t, 2)

	r := e.A.Do("GET", "/deliveries", nil, "")
	expectStatus(t, r, http.StatusBadRequest)
	if got := strings.TrimSpace(string(r.Body)); got != `{"error":"event_id or request_id is required"}` {
		t.Errorf("without event_id and request_id: %s", got)
	}
	expectError(t, e.A.Do("GET", "/deliveries?status=failed", nil, ""), 400, "event_id or request_id is required")
	expectError(t, e.A.Do("GET", "/deliveries?request_id="+reqs[0]+"&status=x", nil, ""), 400, "status must be one of")
	expectError(t, e.A.Do("GET", "/deliveries?request_id="+reqs[0]+"&limit=0", nil, ""), 400, "query parameter limit must be between 1 and 500")

	r = e.A.Do("GET", "/deliveries?request_id="+reqs[0], nil, "")
	expectStatus(t, r, http.StatusOK)
	found := r.List(t)
	eventID := ubihooks.EventID(reqs[0], ubihooks.EventDeploymentCompleted)
	if got := slices.Sorted(slices.Values(field(found, "webhook"))); !slices.Equal(got, []string{"dl", "other"}) {
		t.Errorf("webhooks of the request's deliveries: %q, want dl, other", got)
	}
	for _, d := range found {
		if d["request_id"] != reqs[0] || d["event_id"] != eventID || d["status"] != "pending" {
			t.Errorf("found delivery %v; want request %s, event %s, pending", d, reqs[0], eventID)
		}
	}
	// By event, in pages of one.
	var paged []string
	q := "/deliveries?event_id=" + eventID + "&status=pending&limit=1"
	for page := q; ; {
		r := e.A.Do("GET", page, nil, "")
		expectStatus(t, r, http.StatusOK)
		list := r.List(t)
		if len(list) == 0 || len(paged) > 2 {
			break
		}
		paged = append(paged, list[0]["id"].(string))
		page = q + "&before=" + list[0]["id"].(string)
	}
	if !slices.Equal(paged, field(found, "id")) {
		t.Errorf("by event in pages of one: %q, want %q", paged, field(found, "id"))
	}
	// Another project sees none of them.
	pb := e.root.As(e.tokB).Project(projB)
	if r := pb.Do("GET", "/deliveries?request_id="+reqs[0], nil, ""); r.Status != 200 || strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("project B's search for A's request: %s", r)
	}
}

func TestDeliveriesRedeliverMany(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("dl"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)
	since := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	reqs := e.completeRequests(t, 3)
	e.failAll(t)

	redeliver := func(body M) M {
		t.Helper()
		r := e.A.Do("POST", "/webhooks/dl/deliveries/redeliver", body, "")
		expectStatus(t, r, http.StatusOK)
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &raw); err != nil || len(raw) != 4 {
			t.Errorf("answer %s: want exactly count, dry_run, limit, more", r.Body)
		}
		return r.Object(t)
	}
	if got := redeliver(M{"since": since, "dry_run": true}); got["count"] != 3.0 || got["dry_run"] != true || got["limit"] != 1000.0 || got["more"] != false {
		t.Errorf("dry run = %v; want count 3, dry_run true, limit 1000, more false", got)
	}
	if got := redeliver(M{"since": since, "status": "succeeded"}); got["count"] != 0.0 {
		t.Errorf("succeeded = %v; want count 0", got)
	}
	if got := redeliver(M{"since": since, "until": time.Now().UTC().Add(time.Minute).Format(time.RFC3339Nano), "status": "failed"}); got["count"] != 3.0 || got["dry_run"] != false || got["more"] != false {
		t.Errorf("redeliver = %v; want count 3, dry_run false, more false", got)
	}
	if got := redeliver(M{"since": since, "until": nil, "dry_run": true}); got["count"] != 0.0 || got["more"] != false {
		t.Errorf("dry run once redelivered (until null: now) = %v; want count 0, more false", got)
	}
	r := e.A.Do("GET", "/webhooks/dl/deliveries?status=pending", nil, "")
	expectStatus(t, r, http.StatusOK)
	pending := r.List(t)
	if got := field(pending, "request_id"); !slices.Equal(got, []string{reqs[2], reqs[1], reqs[0]}) {
		t.Errorf("pending again: requests %q, want all three", got)
	}
	for _, d := range pending {
		if d["attempts"] != 1.0 || d["event_id"] != ubihooks.EventID(d["request_id"].(string), ubihooks.EventDeploymentCompleted) {
			t.Errorf("redelivered delivery %v: want its one attempt kept and its event id", d)
		}
	}
	r = e.A.Do("GET", "/webhooks/other/deliveries?status=failed", nil, "")
	if len(r.List(t)) != 3 {
		t.Errorf("other webhook's failed deliveries: %s; want all three untouched", r.Body)
	}

	later := time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	for _, c := range []struct {
		body any
		msg  string
	}{
		{nil, "request body is required"},
		{M{}, "since is required"},
		{M{"since": "yesterday"}, `since must be an RFC 3339 time such as 2025-01-02T15:04:05Z, got "yesterday"`},
		{M{"since": since, "until": "2025-13-01T00:00:00Z"}, "until must be an RFC 3339 time"},
		{M{"since": later, "until": since}, "must be before until"},
		{M{"since": later}, "must be before until"},
		{M{"since": since, "status": "pending"}, `status must be "failed", "succeeded" or "parked"`},
		{M{"since": since, "status": 5}, `invalid value for "status"`},
		{M{"since": since, "dry_run": "yes"}, `invalid value for "dry_run"`},
	} {
		expectError(t, e.A.Do("POST", "/webhooks/dl/deliveries/redeliver", c.body, ""), 400, c.msg)
	}
	expectError(t, e.A.Do("POST", "/webhooks/nope/deliveries/redeliver", M{"since": since}, ""), 404, `webhook "nope" not found`)
	// A delivery id that happens to be "redeliver" is not one.
	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries/redeliver", nil, ""), 404, "not found")
}

// TestDeliveryExtensionsInOpenAPI: the new operations are in the document, with their
// query parameters and bodies.
func TestDeliveryExtensionsInOpenAPI(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.root.Auth("").Do("GET", "/openapi.json", nil, "")
	expectStatus(t, r, 200)
	var doc struct {
		Paths map[string]map[string]struct {
			Summary    string `json:"summary"`
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			RequestBody json.RawMessage `json:"requestBody"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, method string
		query        []string
	}{
		{"/projects/{project_name}/webhooks/{webhook_name}/deliveries", "get", []string{"status", "event_id", "request_id", "before", "limit"}},
		{"/projects/{project_name}/deliveries", "get", []string{"event_id", "request_id", "status", "before", "limit"}},
		{"/projects/{project_name}/webhooks/{webhook_name}/deliveries/redeliver", "post", nil},
	} {
		op, ok := doc.Paths[c.path][c.method]
		if !ok {
			t.Errorf("%s %s is not in the document", c.method, c.path)
			continue
		}
		var query []string
		for _, p := range op.Parameters {
			if p.In == "query" {
				query = append(query, p.Name)
			}
		}
		if !slices.Equal(query, c.query) || !strings.Contains(op.Summary, "(ubihooks extension)") {
			t.Errorf("%s %s: query %q, summary %q; want %q, an extension", c.method, c.path, query, op.Summary, c.query)
		}
	}
	if !strings.Contains(string(doc.Paths["/projects/{project_name}/webhooks/{webhook_name}/deliveries/redeliver"]["post"].RequestBody), "RedeliverMany") {
		t.Error("the bulk redelivery's body is not RedeliverMany")
	}
	for _, s := range []string{"RedeliverMany", "RedeliverManyResult"} {
		if doc.Components.Schemas[s] == nil {
			t.Errorf("schema %s is missing", s)
		}
	}
}
