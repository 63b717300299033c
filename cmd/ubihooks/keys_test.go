package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestKeysRotate: `keys show` prints the active key as PEM; `keys rotate` makes a new key
// the signer while the old one stays published, and the server signs with the new one.
func TestKeysRotate(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "k.db")
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb}
		if err := m.Run(context.Background(), args); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	pem1 := run("keys", "show", "--create", "--database", db)
	pub1, err := httpsig.ParsePublicKeyPEM([]byte(pem1))
	if err != nil {
		t.Fatalf("keys show printed no public key PEM: %v\n%s", err, pem1)
	}
	if again := run("keys", "show", "--database", db); again != pem1 {
		t.Fatalf("keys show is not stable: %q then %q", pem1, again)
	}
	pem2 := run("keys", "rotate", "--database", db)
	pub2, err := httpsig.ParsePublicKeyPEM([]byte(pem2))
	if err != nil || pub2.Equal(pub1) {
		t.Fatalf("keys rotate: got %q (err %v), want a new key", pem2, err)
	}
	token := strings.TrimSpace(run("token", "create", "--project", "p1", "--database", db))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, OnListenFunc: func(a string) { addrc <- a }}
	go func() {
		done <- m.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--database", db, "--allow-networks", "127.0.0.0/8"})
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	var keys struct {
		Keys []struct {
			KeyID  string `json:"key_id"`
			Active bool   `json:"active"`
		} `json:"keys"`
	}
	resp, err := http.Get("http://" + addr + "/v2.1/signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&keys)
	resp.Body.Close()
	if len(keys.Keys) != 2 || keys.Keys[0].KeyID != httpsig.KeyID(pub2) || !keys.Keys[0].Active ||
		keys.Keys[1].KeyID != httpsig.KeyID(pub1) || keys.Keys[1].Active {
		t.Fatalf("published keys = %+v, want the new key active and the old one still published", keys.Keys)
	}

	// A webhook test is signed with the new key.
	recv := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{
		Verifier: &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub2): pub2}},
		Respond:  ubihookstest.Status(http.StatusNoContent),
	})
	api := &ubihookstest.API{T: t, URL: "http://" + addr + "/v2.1/projects/p1", Token: token}
	api.Decode("POST", "/deployments", map[string]any{"name": "d", "input_type": "plain", "output_type": "plain"}, nil)
	api.Decode("POST", "/deployments/d/versions", map[string]any{"version": "v1"}, nil)
	api.Decode("POST", "/webhooks-tests", map[string]any{"object_type": "deployment", "object_name": "d",
		"event": "deployment_request_started", "url": recv.URL + "/hook"}, nil)
	recv.Until(t, 10*time.Second, "a webhook", func() bool { return recv.Count() > 0 })
	if a := recv.Arrivals()[0]; a.SigErr != nil {
		t.Fatalf("webhook signed with another key than the rotated key %s: %v", httpsig.KeyID(pub2), a.SigErr)
	} else if a.Sig.KeyID != httpsig.KeyID(pub2) {
		t.Fatalf("webhook signed with %s, want the rotated key %s", a.Sig.KeyID, httpsig.KeyID(pub2))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}
