package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestBackupWhileServing: `ubihooks backup` copies a running server's database, and a
// server opened on the copy (with the original key file) has every webhook, delivery,
// signing key and protected header value.
func TestBackupWhileServing(t *testing.T) {
	t.Parallel()
	addr, db := startServe(t)
	token, _, err := runMain("token", "create", "--project", "demo", "--database", db)
	if err != nil {
		t.Fatal(err)
	}
	token = strings.TrimSpace(token)
	api := &ubihookstest.API{T: t, URL: "http://" + addr + "/v2.1/projects/demo", Token: token}
	rcv := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{})
	api.MustDo("POST", "/deployments", ubihookstest.Obj{"name": "m", "input_type": "structured", "output_type": "structured",
		"input_fields": []any{}, "output_fields": []any{}}, 201)
	api.MustDo("POST", "/deployments/m/versions", ubihookstest.Obj{"version": "v1"}, 201)
	api.MustDo("POST", "/webhooks", ubihookstest.Obj{"name": "hook", "object_type": "deployment", "object_name": "m",
		"event": "deployment_request_started", "url": rcv.URL,
		"headers": []any{ubihookstest.Obj{"key": "X-Secret", "value": "keep-me", "protected": true}}}, 201)
	api.MustDo("POST", "/deployments/m/requests/batch", []any{map[string]any{}}, 201)
	api.MustList("POST", "/deployments/m/versions/v1/runtime/claim", nil, 200) // started → one delivery
	rcv.Until(t, 20*time.Second, "the delivery", func() bool { return rcv.Count() == 1 })
	var before []ubihookstest.Obj
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		before = api.MustList("GET", "/webhooks/hook/deliveries", nil, 200)
		if len(before) == 1 && before[0]["status"] == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery did not succeed: %v", before)
		}
	}
	keysBefore := (&ubihookstest.API{T: t, URL: "http://" + addr + "/v2.1"}).MustObj("GET", "/signing-keys", nil, 200)

	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if _, stderr, err := runMain("backup", "--database", db, "--to", snap); err != nil || !strings.Contains(stderr, "encryption key") {
		t.Fatalf("backup while serving: %v\n%s", err, stderr)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot: %v, mode %v; want a file readable by its owner only", err, fi.Mode().Perm())
	}
	if _, _, err := runMain("backup", "--database", db, "--to", snap); err == nil {
		t.Errorf("a backup over an existing file succeeded; want it refused")
	}

	// A second server on the snapshot, with the original key file.
	addr2, _ := startServe(t, "--database", snap, "--encryption-key-file", db+".key")
	api2 := &ubihookstest.API{T: t, URL: "http://" + addr2 + "/v2.1/projects/demo", Token: token}
	w := api2.MustObj("GET", "/webhooks/hook", nil, 200)
	if strings.TrimSuffix(w["url"].(string), "/") != rcv.URL || w["event"] != "deployment_request_started" {
		t.Errorf("webhook on the snapshot: %v", w)
	}
	after := api2.MustList("GET", "/webhooks/hook/deliveries", nil, 200)
	if len(after) != 1 || after[0]["id"] != before[0]["id"] || after[0]["event_id"] != before[0]["event_id"] || after[0]["status"] != "succeeded" {
		t.Errorf("deliveries on the snapshot = %v, want %v", after, before)
	}
	keysAfter := (&ubihookstest.API{T: t, URL: "http://" + addr2 + "/v2.1"}).MustObj("GET", "/signing-keys", nil, 200)
	if !reflect.DeepEqual(keysAfter, keysBefore) {
		t.Errorf("signing keys on the snapshot = %v, want %v", keysAfter, keysBefore)
	}
	// The protected value still decrypts: a test of the saved webhook sends it.
	api2.MustDo("POST", "/webhooks/hook/tests", nil, 201)
	rcv.Until(t, 20*time.Second, "the test from the snapshot", func() bool { return rcv.Count() == 2 })
	if got := rcv.Arrivals()[1].Header.Get("X-Secret"); got != "keep-me" {
		t.Errorf("protected header sent from the snapshot = %q, want the stored value", got)
	}
}
