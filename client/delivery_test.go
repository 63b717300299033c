package client_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/client"
)

func TestDeliveryCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv, got := fake(t, 200, `[{"id":"d1","webhook":"h","event_id":"e","event":"deployment_request_completed","request_id":"r","status":"failed","attempts":1}]`)
	c := client.New(srv.URL, "tok")
	ds, err := c.QueryDeliveries(ctx, "p", "h/1", client.DeliveryListOptions{Status: "failed", RequestID: "r", Before: "d0", Limit: 10})
	if err != nil || len(ds) != 1 || ds[0].ID != "d1" || ds[0].RequestID != "r" {
		t.Fatalf("QueryDeliveries = %+v, %v", ds, err)
	}
	if _, err := c.SearchDeliveries(ctx, "p", client.DeliveryListOptions{EventID: "e"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListDeliveries(ctx, "p", "h", 0); err != nil {
		t.Fatal(err)
	}
	calls := got()
	for i, want := range []struct{ path string }{{"/v2.1/projects/p/webhooks/h%2F1/deliveries"}, {"/v2.1/projects/p/deliveries"}, {"/v2.1/projects/p/webhooks/h/deliveries"}} {
		if calls[i].Method != "GET" || calls[i].EscapedPath != want.path {
			t.Errorf("call %d: %s %s, want GET %s", i+1, calls[i].Method, calls[i].EscapedPath, want.path)
		}
	}
	for i, want := range []url.Values{{"status": {"failed"}, "request_id": {"r"}, "before": {"d0"}, "limit": {"10"}}, {"event_id": {"e"}}, {}} {
		q, _ := url.ParseQuery(calls[i].Query)
		if q.Encode() != want.Encode() {
			t.Errorf("call %d: query %q, want %q", i+1, q.Encode(), want.Encode())
		}
	}
}

func TestRedeliverMany(t *testing.T) {
	t.Parallel()
	srv, got := fake(t, 200, `{"count":1000,"dry_run":false,"limit":1000,"more":true}`)
	c := client.New(srv.URL, "tok")
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	res, err := c.RedeliverMany(context.Background(), "p", "h", client.RedeliverMany{Since: since})
	if err != nil || res.Count != 1000 || res.Limit != 1000 || !res.More || res.DryRun {
		t.Fatalf("RedeliverMany = %+v, %v", res, err)
	}
	call := got()[0]
	var body map[string]any
	if err := json.Unmarshal([]byte(call.Body), &body); err != nil {
		t.Fatal(err)
	}
	if call.Method != "POST" || call.EscapedPath != "/v2.1/projects/p/webhooks/h/deliveries/redeliver" ||
		len(body) != 2 || body["since"] != "2026-01-02T03:04:05Z" || body["dry_run"] != false {
		t.Errorf("sent %s %s %s; want since and dry_run (no until, no status: the server's defaults)", call.Method, call.EscapedPath, call.Body)
	}
}
