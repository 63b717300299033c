package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/client"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

func ptr[T any](v T) *T { return &v }

// TestServeEndToEnd runs `ubihooks serve` in-process and drives the whole webhook
// lifecycle through the public client, with a receiver that verifies signatures.
func TestServeEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	logs := &ubihookstest.SyncBuffer{}
	addrc := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: logs, Getenv: func(string) string { return "" },
		OnListenFunc: func(addr string) { addrc <- addr }}
	served := make(chan error, 1)
	go func() {
		served <- m.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--database", db, "--allow-networks", "127.0.0.0/8",
			"--shutdown-timeout", "5s"})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-served:
		t.Fatalf("serve returned before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen within 30s\n%s", logs)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve returned %v after the context was canceled, want nil", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s of the cancel")
		}
	}
	defer stop()

	// A token, printed by `token create` on stdout.
	var out bytes.Buffer
	tm := &Main{Stdout: &out, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	if err := tm.Run(context.Background(), []string{"token", "create", "--project", "p1", "--database", db}); err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := strings.TrimSpace(out.String())
	if !strings.HasPrefix(token, "ubh_") || strings.Contains(token, "\n") {
		t.Fatalf("token create printed %q", out.String())
	}

	c := client.New("http://"+addr, token)
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer tcancel()

	if st, err := c.Status(tctx); err != nil || st.Status != "ok" {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if p, err := c.GetProject(tctx, "p1"); err != nil || p.Name != "p1" || p.OrganizationName == "" {
		t.Fatalf("project = %+v, %v", p, err)
	}
	if _, err := client.New("http://"+addr, "ubh_wrong").GetProject(tctx, "p1"); client.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("a wrong token: err = %v, want 401", err)
	}

	// Deployment and version.
	d, err := c.CreateDeployment(tctx, "p1", ubihooks.ObjectCreate{Name: "dep", InputType: "structured", OutputType: "structured",
		InputFields: []ubihooks.Field{{Name: "x", DataType: "int"}}, OutputFields: []ubihooks.Field{{Name: "y", DataType: "int"}}})
	if err != nil || d.Name != "dep" || d.Project != "p1" || d.DefaultVersion != nil {
		t.Fatalf("create deployment = %+v, %v", d, err)
	}
	v, err := c.CreateDeploymentVersion(tctx, "p1", "dep", ubihooks.VersionCreate{Version: "v1"})
	if err != nil || v.Version != "v1" || !v.Default || v.Deployment != "dep" {
		t.Fatalf("create version = %+v, %v", v, err)
	}
	if d, err := c.GetDeployment(tctx, "p1", "dep"); err != nil || d.DefaultVersion == nil || *d.DefaultVersion != "v1" {
		t.Fatalf("get deployment = %+v, %v", d, err)
	}

	// The receiver verifies signatures with the published key.
	keys, err := c.SigningKeys(tctx)
	if err != nil {
		t.Fatal(err)
	}
	active := keys.Active()
	if active == nil {
		t.Fatalf("no active signing key in %+v", keys)
	}
	pub, err := httpsig.ParsePublicKeyPEM([]byte(active.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := c.ActiveSigningKeyPEM(tctx)
	if err != nil {
		t.Fatal(err)
	}
	if pub2, err := httpsig.ParsePublicKeyPEM(pem); err != nil || !pub2.Equal(pub) {
		t.Fatalf("active.pem differs from /signing-keys: %v", err)
	}
	receiver := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{
		Verifier: &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{active.KeyID: pub}},
		Respond:  ubihookstest.Status(http.StatusNoContent),
	})

	// Webhook with a protected header.
	const secret = "e2e-protected-value-8d2c41"
	w, err := c.CreateWebhook(tctx, "p1", ubihooks.WebhookCreate{Name: "hook", ObjectType: "deployment", ObjectName: "dep",
		URL: receiver.URL + "/hook", Event: "deployment_request_completed", Labels: map[string]string{"team": "a", "env": "test"},
		Headers: []ubihooks.HeaderInput{{Key: "X-Secret", Value: ptr(secret), Protected: ptr(true)}, {Key: "X-Plain", Value: ptr("p"), Protected: ptr(false)}}})
	if err != nil {
		t.Fatal(err)
	}
	if w.Timeout != 10 || !w.Enabled || w.Version != nil || len(w.Headers) != 2 || w.Headers[0].Value != nil || !w.Headers[0].Protected {
		t.Errorf("created webhook = %+v", w)
	}
	if g, err := c.GetWebhook(tctx, "p1", "hook"); err != nil || g.ID != w.ID || g.URL != receiver.URL+"/hook" || g.Headers[0].Value != nil {
		t.Errorf("get webhook = %+v, %v", g, err)
	}
	for _, tc := range []struct {
		opts client.WebhookListOptions
		n    int
	}{
		{client.WebhookListOptions{}, 1},
		{client.WebhookListOptions{Labels: map[string]string{"team": "a", "env": "test"}, ObjectType: "deployment", Event: "deployment_request_completed"}, 1},
		{client.WebhookListOptions{Labels: map[string]string{"team": "a", "env": "prod"}}, 0},
		{client.WebhookListOptions{ObjectType: "pipeline"}, 0},
		{client.WebhookListOptions{Event: "deployment_request_failed"}, 0},
	} {
		ws, err := c.ListWebhooks(tctx, "p1", tc.opts)
		if err != nil || len(ws) != tc.n {
			t.Errorf("list %+v = %d webhooks, %v; want %d", tc.opts, len(ws), err, tc.n)
		}
	}
	// Update, keeping the secret (a protected header without a value).
	u, err := c.UpdateWebhook(tctx, "p1", "hook", ubihooks.WebhookUpdate{Description: ptr("updated"), Timeout: ptr(5),
		Headers: &[]ubihooks.HeaderInput{{Key: "X-Secret", Protected: ptr(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if u.Description != "updated" || u.Timeout != 5 || len(u.Headers) != 1 || u.Headers[0].Key != "X-Secret" || u.Headers[0].Value != nil || !u.Headers[0].Protected {
		t.Errorf("updated webhook = %+v", u)
	}
	var apiErr *client.Error
	if _, err := c.UpdateWebhook(tctx, "p1", "hook", ubihooks.WebhookUpdate{Timeout: ptr(31)}); !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "timeout") {
		t.Errorf("invalid update: err = %v", err)
	}
	if ds, err := c.ListDeliveries(tctx, "p1", "hook", 10); err != nil || len(ds) != 0 {
		t.Errorf("deliveries = %v, %v; want none yet", ds, err)
	}
	if _, err := c.GetDelivery(tctx, "p1", "hook", "00000000-0000-0000-0000-000000000000"); !client.IsNotFound(err) {
		t.Errorf("unknown delivery: err = %v, want 404", err)
	}
	if ds, err := c.SearchDeliveries(tctx, "p1", client.DeliveryListOptions{RequestID: "00000000-0000-0000-0000-000000000000"}); err != nil || len(ds) != 0 {
		t.Errorf("deliveries of the webhook tests' request id = %v, %v; want none (tests are not searched)", ds, err)
	}
	if res, err := c.RedeliverMany(tctx, "p1", "hook", client.RedeliverMany{Since: time.Now().Add(-time.Hour), DryRun: true}); err != nil || res.Count != 0 || res.More || !res.DryRun {
		t.Errorf("bulk redelivery dry run = %+v, %v; want nothing to redeliver", res, err)
	}

	// A webhook test reaches the receiver, signed, with the protected value.
	wt, err := c.CreateWebhookTest(tctx, "p1", ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "dep",
		URL: receiver.URL + "/test?x=1", Event: "deployment_request_completed", IncludeResult: ptr(true),
		Headers: []ubihooks.HeaderInput{{Key: "X-Secret", Value: ptr(secret), Protected: ptr(true)}}})
	if err != nil {
		t.Fatal(err)
	}
	if wt.ID == "" || wt.Status != client.TestPending {
		t.Errorf("created test = %+v", wt)
	}
	done, err := c.WaitWebhookTest(tctx, "p1", wt.ID, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.TestCompleted || done.ErrorMessage != nil {
		t.Errorf("test = %+v (%v), want completed", done, done.ErrorMessage)
	}
	receiver.Until(t, 10*time.Second, "the test webhook at the receiver", func() bool { return receiver.Count() > 0 })
	rcv := receiver.Arrivals()[0]
	if rcv.SigErr != nil {
		t.Errorf("signature does not verify: %v\nheaders: %v", rcv.SigErr, rcv.Header)
	}
	if rcv.Header.Get("X-Secret") != secret {
		t.Errorf("X-Secret = %q, want the protected value", rcv.Header.Get("X-Secret"))
	}
	if ct := rcv.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	payload := rcv.Payload
	if payload == nil {
		t.Fatalf("payload is not a JSON object: %s", rcv.Body)
	}
	if payload["event"] != "deployment_request_completed" || payload["deployment_name"] != "dep" || payload["deployment_version_name"] != "v1" || payload["test"] != true {
		t.Errorf("payload = %s", rcv.Body)
	}

	// A test to a port nobody listens on fails with a message.
	refused := ubihookstest.FreeAddr(t)
	wt, err = c.CreateWebhookTest(tctx, "p1", ubihooks.WebhookTestCreate{ObjectType: "deployment", ObjectName: "dep",
		URL: "http://" + refused + "/hook", Event: "deployment_request_failed", Timeout: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	done, err = c.WaitWebhookTest(tctx, "p1", wt.ID, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != client.TestFailed || done.ErrorMessage == nil || *done.ErrorMessage == "" {
		t.Errorf("test to a refused port = %+v, want failed with an error_message", done)
	} else {
		t.Logf("refused port: %s", *done.ErrorMessage)
	}
	if _, err := c.GetWebhookTest(tctx, "p1", "00000000-0000-0000-0000-000000000000"); !client.IsNotFound(err) {
		t.Errorf("unknown test: err = %v, want 404", err)
	}

	// Delete: gone afterwards.
	if err := c.DeleteWebhook(tctx, "p1", "hook"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(tctx, "p1", "hook"); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Message == "" {
		t.Errorf("get after delete: err = %v, want a 404 *client.Error", err)
	}
	if err := c.DeleteWebhook(tctx, "p1", "hook"); !client.IsNotFound(err) {
		t.Errorf("second delete: err = %v, want 404", err)
	}

	// Graceful shutdown: serve returns nil.
	stop()
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the server logs contain the protected value")
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("serve did not log its stop:\n%s", logs)
	}
}
