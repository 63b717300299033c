package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/service"
)

func TestDeliveriesEndpoints(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	ctx := context.Background()
	e.A.MustDo("POST", "/webhooks", webhook("dl"), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)

	r := e.A.Do("GET", "/webhooks/dl/deliveries", nil, "")
	expectStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "[]" {
		t.Errorf("deliveries of a new webhook = %s, want []", r.Body)
	}

	// A request of the default version completes: one delivery per matching webhook.
	p, err := e.Service.GetProject(ctx, projA)
	if err != nil {
		t.Fatal(err)
	}
	reqID := uuid.NewString()
	n, err := e.Service.RecordTransition(ctx, p, service.Transition{ObjectType: ubihooks.ObjectDeployment, ObjectName: "dep",
		RequestID: reqID, From: ubihooks.RequestPending, To: ubihooks.RequestCompleted})
	if err != nil || n != 2 {
		t.Fatalf("RecordTransition = %d, %v; want 2 deliveries", n, err)
	}
	r = e.A.Do("GET", "/webhooks/dl/deliveries?limit=10", nil, "")
	expectStatus(t, r, http.StatusOK)
	list := r.List(t)
	if len(list) != 1 || list[0]["status"] != "pending" || list[0]["event"] != "deployment_request_completed" || list[0]["request_id"] != reqID || list[0]["webhook"] != "dl" {
		t.Fatalf("deliveries = %s", r.Body)
	}
	id := list[0]["id"].(string)

	r = e.A.Do("GET", "/webhooks/dl/deliveries/"+id, nil, "")
	expectStatus(t, r, http.StatusOK)
	if got := r.Object(t); got["id"] != id || got["attempts"] != 0.0 {
		t.Errorf("delivery = %s", r.Body)
	}
	if !strings.Contains(string(r.Body), `"attempt_list":[]`) {
		t.Errorf("attempt_list of an unsent delivery should be []: %s", r.Body)
	}
	expectError(t, e.A.Do("POST", "/webhooks/dl/deliveries/"+id+"/redeliver", nil, ""), http.StatusConflict)

	// Send it (as an engine would) and record a success.
	now := time.Now()
	ds, err := e.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "test-owner", Limit: 10, Lease: time.Minute, Now: now})
	if err != nil || len(ds) != 2 {
		t.Fatalf("claim = %d, %v", len(ds), err)
	}
	var outs []ubihooks.Outcome
	for _, d := range ds {
		outs = append(outs, ubihooks.Outcome{DeliveryID: d.ID, Owner: "test-owner", Status: ubihooks.DeliverySucceeded,
			Attempt: ubihooks.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: now, Duration: 3 * time.Millisecond, StatusCode: 200, ResponseBody: "ok"}})
	}
	if err := e.Store.RecordOutcomes(ctx, outs, now); err != nil {
		t.Fatal(err)
	}
	r = e.A.Do("GET", "/webhooks/dl/deliveries/"+id, nil, "")
	expectStatus(t, r, http.StatusOK)
	got := r.Object(t)
	attempts, _ := got["attempt_list"].([]any)
	if got["status"] != "succeeded" || got["attempts"] != 1.0 || len(attempts) != 1 || attempts[0].(M)["status_code"] != 200.0 {
		t.Errorf("sent delivery = %s", r.Body)
	}

	r = e.A.Do("POST", "/webhooks/dl/deliveries/"+id+"/redeliver", nil, "")
	expectStatus(t, r, http.StatusAccepted)
	if got := r.Object(t); got["id"] != id || got["status"] != "pending" {
		t.Errorf("redelivered = %s", r.Body)
	}
	// Its second attempt: the count of attempts is the length of the list.
	later := now.Add(time.Second)
	ds, err = e.Store.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "test-owner", Limit: 10, Lease: time.Minute, Now: later})
	if err != nil || len(ds) != 1 || ds[0].ID != id {
		t.Fatalf("claim after redeliver = %d, %v; want %s", len(ds), err, id)
	}
	if err := e.Store.RecordOutcomes(ctx, []ubihooks.Outcome{{DeliveryID: id, Owner: "test-owner", Status: ubihooks.DeliverySucceeded,
		Attempt: ubihooks.Attempt{DeliveryID: id, Number: 2, StartedAt: later, Duration: time.Millisecond, StatusCode: 200}}}, later); err != nil {
		t.Fatal(err)
	}
	r = e.A.Do("GET", "/webhooks/dl/deliveries/"+id, nil, "")
	expectStatus(t, r, http.StatusOK)
	got = r.Object(t)
	attempts, _ = got["attempt_list"].([]any)
	if got["attempts"] != 2.0 || len(attempts) != 2 {
		t.Errorf("redelivered delivery after its second attempt: attempts %v, %d in attempt_list; want 2, 2: %s", got["attempts"], len(attempts), r.Body)
	}

	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries/"+uuid.NewString(), nil, ""), 404, "not found")
	expectError(t, e.A.Do("POST", "/webhooks/dl/deliveries/"+uuid.NewString()+"/redeliver", nil, ""), 404, "not found")
	expectError(t, e.A.Do("GET", "/webhooks/other/deliveries/"+id, nil, ""), 404, "not found")
	expectError(t, e.A.Do("GET", "/webhooks/nope/deliveries", nil, ""), 404, `webhook "nope" not found`)
	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries?limit=0", nil, ""), 400, "limit")
	expectError(t, e.A.Do("GET", "/webhooks/dl/deliveries?limit=x", nil, ""), 400, "limit must be an integer")
	expectError(t, e.root.As(e.tokB).Do("GET", "/projects/"+projB+"/webhooks/hook-b/deliveries/"+id, nil, ""), 404, "not found")
}

func TestSigningKeysEndpoints(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.root.Auth("").Do("GET", "/signing-keys", nil, "")
	expectStatus(t, r, http.StatusOK)
	keys, _ := r.Object(t)["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys = %s", r.Body)
	}
	k := keys[0].(M)
	if k["active"] != true || k["algorithm"] != "ed25519" || !strings.HasPrefix(k["key_id"].(string), "sha512:") {
		t.Errorf("key = %v", k)
	}
	pub, err := httpsig.ParsePublicKeyPEM([]byte(k["public_key_pem"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if httpsig.KeyID(pub) != k["key_id"] {
		t.Errorf("key_id %v does not match the key (%s)", k["key_id"], httpsig.KeyID(pub))
	}
	if errs := checkModel("WebhookTestDetail", M{}); len(errs) == 0 {
		t.Error("the model checker accepts an object without required fields")
	}

	r = e.root.Auth("").Do("GET", "/signing-keys/active.pem", nil, "")
	expectStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/x-pem-file" {
		t.Errorf("Content-Type = %q", ct)
	}
	if r.Header.Get("X-Key-Id") != k["key_id"] {
		t.Errorf("X-Key-Id = %q", r.Header.Get("X-Key-Id"))
	}
	pub2, err := httpsig.ParsePublicKeyPEM(r.Body)
	if err != nil || !pub2.Equal(pub) {
		t.Errorf("active.pem = %s (%v), want the active key", r.Body, err)
	}
}
