package delivery

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/service"
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
	e.waitFor(10*time.Second, "15 arrivals", func() bool { return rc.count() >= 15 })
	after := time.Now().Add(time.Second)

	seen := map[string]int{}
	for _, a := range rc.all() {
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
		v := e.version(o.obj, o.sendAs)
		want := map[string]string{
			"id":                     service.EventID(reqID, ev),
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
		if got := a.Header.Get("Idempotency-Key"); got != a.id() {
			t.Errorf("%s: Idempotency-Key = %q, want the event id %q", a.Path, got, a.id())
		}
	}
	// The sentence of the contract, spelled out once.
	dep := reqs["scorer"][0].id
	wantText := "Deployment request " + dep + " completed for deployment scorer v1 in project acme"
	found := false
	for _, a := range rc.all() {
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
	for _, a := range rc.all() {
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
	if n := rc.count(); n != 15 {
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
	e.waitFor(10*time.Second, "4 arrivals", func() bool { return rc.count() >= 4 })

	for _, a := range rc.all() {
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
	if n := rc.count(); n != 4 {
		t.Errorf("receiver got %d requests, want 4", n)
	}
}

var signatureInputRE = regexp.MustCompile(`^pyhms=\("@method" "@authority" "@target-uri" "content-digest" "date"\);created=(\d+);keyid="(sha512:[0-9a-f]{128})";alg="ed25519"$`)

// TestDeliverySignedAndFramed checks what a receiver sees: signatures that verify with the
// public verifier (also with zero clock tolerance, as the 2024-era Python library), the
// pyhms profile, a Content-Length body without chunking, and the User-Agent.
func TestDeliverySignedAndFramed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	strict := &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{e.keyID: e.pub}, MaxSkew: -1}
	done := make(chan struct{}, 16)
	rc := e.receiver(func(a *arrival, w http.ResponseWriter, r *http.Request) {
		if _, err := strict.Verify(r, a.Body); err != nil {
			e.fail("%s: zero-tolerance verifier: %v", a.Path, err)
		}
		done <- struct{}{}
	})
	e.hook(rc.URL + "/hooks/a?team=x&tilde=%7E")
	e.hook(rc.URL+"/pipe", onEvent("pipeline", "flow", "", ubihooks.EventPipelineStarted))
	e.complete()
	e.transition(ubihooks.ObjectPipeline, "flow", "", uuid.NewString(), ubihooks.RequestPending, ubihooks.RequestProcessing, nil)
	e.start()
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for 2 arrivals")
		}
	}

	k, err := e.svc.ActiveKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := httpsig.KeyID(ed25519.PublicKey(k.PublicKey)); got != k.KeyID {
		t.Errorf("active key id %s is not sha512 of its public key (%s)", k.KeyID, got)
	}
	for _, a := range rc.all() {
		if a.SigErr != nil {
			t.Errorf("%s: Verify: %v", a.Path, a.SigErr)
			continue
		}
		if a.Sig.Label != "pyhms" || a.Sig.KeyID != k.KeyID {
			t.Errorf("%s: label %q keyid %q, want pyhms and %s", a.Path, a.Sig.Label, a.Sig.KeyID, k.KeyID)
		}
		if want := []string{"@method", "@authority", "@target-uri", "content-digest", "date"}; !slices.Equal(a.Sig.Components, want) {
			t.Errorf("%s: covered components %v, want %v", a.Path, a.Sig.Components, want)
		}
		m := signatureInputRE.FindStringSubmatch(a.Header.Get("Signature-Input"))
		if m == nil {
			t.Errorf("%s: Signature-Input %q does not match the pyhms profile", a.Path, a.Header.Get("Signature-Input"))
		} else {
			created, _ := strconv.ParseInt(m[1], 10, 64)
			if d := time.Since(time.Unix(created, 0)); d < 0 || d > 10*time.Second {
				t.Errorf("%s: created %d is %s from now", a.Path, created, d)
			}
			if m[2] != k.KeyID {
				t.Errorf("%s: keyid %s, want %s", a.Path, m[2], k.KeyID)
			}
		}
		if !strings.HasPrefix(a.Header.Get("Signature"), "pyhms=:") {
			t.Errorf("%s: Signature = %q", a.Path, a.Header.Get("Signature"))
		}
		if got, want := a.Header.Get("Content-Digest"), httpsig.ContentDigest(a.Body); got != want || !strings.HasPrefix(got, "sha-256=:") {
			t.Errorf("%s: Content-Digest = %q, want %q", a.Path, got, want)
		}
		if _, err := http.ParseTime(a.Header.Get("Date")); err != nil {
			t.Errorf("%s: Date %q: %v", a.Path, a.Header.Get("Date"), err)
		}
		if a.ContentLength != int64(len(a.Body)) || a.Header.Get("Content-Length") != strconv.Itoa(len(a.Body)) {
			t.Errorf("%s: Content-Length %d (header %q) for a %d-byte body", a.Path, a.ContentLength, a.Header.Get("Content-Length"), len(a.Body))
		}
		if len(a.TransferEncoding) != 0 {
			t.Errorf("%s: Transfer-Encoding %v, want none", a.Path, a.TransferEncoding)
		}
		if got := a.Header.Get("User-Agent"); got != testUA {
			t.Errorf("%s: User-Agent = %q, want %q", a.Path, got, testUA)
		}
		if got := a.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("%s: Content-Type = %q", a.Path, got)
		}
		if a.Method != http.MethodPost {
			t.Errorf("%s: method %s, want POST", a.Path, a.Method)
		}
	}
}

// The golden vector of contract.md §5 (Python http-message-signatures 0.4.4).
const (
	goldenSeedHex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	goldenKeyID   = "sha512:7b6a1405e47be084864fc74eb876beb7f9c108a49ac02647a1420e836e3620ab54dd2cf5a6a94c9c39075fa0e0fd9a74ec9a6cdd3b738a07f7d56adc80c0935d"
	goldenBody    = `{"event":"deployment_request_completed","request_id":"00000000-0000-0000-0000-000000000001","status":"completed"}`
	goldenDate    = "Tue, 16 Jan 2024 08:12:22 GMT"
	goldenCreated = 1705392742
	goldenDigest  = "sha-256=:pblBz0j0mpFXAGqoTuqz/WXNmkVUm7v4LwOkIfr60Q0=:"
	goldenInput   = `pyhms=("@method" "@authority" "@target-uri" "content-digest" "date");created=1705392742;keyid="` + goldenKeyID + `";alg="ed25519"`
	goldenSig     = "pyhms=:Aq7+lC7uDdsZvzXrLmjBU6NHAWZj2KxOZQ12c/4UoxPZdsexJXnL4OkUVavDJhFmlsDEZlwaJ4GiSihn4HxVAg==:"
)

func goldenPrivateKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	seed, err := hex.DecodeString(goldenSeedHex)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// TestGoldenVector reproduces the contract's golden vector with the signer as the engine
// configures it (httpsig.Signer with the key id from SignerFunc and Now = the engine's
// NowFunc) on a request built as the engine builds it, then runs the real engine on the
// golden clock and key and checks that what arrives is signed the same way.
func TestGoldenVector(t *testing.T) {
	t.Parallel()
	key := goldenPrivateKey(t)
	if got := httpsig.KeyID(key.Public().(ed25519.PublicKey)); got != goldenKeyID {
		t.Fatalf("KeyID = %s, want %s", got, goldenKeyID)
	}
	golden := time.Unix(goldenCreated, 0).UTC()

	t.Run("signer", func(t *testing.T) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://127.0.0.1:8000/hook", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Custom", "1")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", testUA)
		req.Header.Set("Idempotency-Key", "00000000-0000-0000-0000-000000000001")
		signer := httpsig.Signer{Key: key, KeyID: goldenKeyID, Now: func() time.Time { return golden }}
		if err := signer.Sign(req, []byte(goldenBody)); err != nil {
			t.Fatal(err)
		}
		for h, want := range map[string]string{"Date": goldenDate, "Content-Digest": goldenDigest, "Signature-Input": goldenInput, "Signature": goldenSig} {
			if got := req.Header.Get(h); got != want {
				t.Errorf("%s:\n got %s\nwant %s", h, got, want)
			}
		}
		if req.ContentLength != int64(len(goldenBody)) || len(req.TransferEncoding) != 0 {
			t.Errorf("ContentLength %d, TransferEncoding %v", req.ContentLength, req.TransferEncoding)
		}
	})

	t.Run("engine", func(t *testing.T) {
		clock := newFixedClock(golden)
		e := setup(t, withClock(clock.Now))
		e.verifier = &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{goldenKeyID: key.Public().(ed25519.PublicKey)}, Now: clock.Now}
		rc := e.receiver(nil)
		e.hook(rc.URL + "/hook")
		e.complete()
		e.start(func(c *Config) {
			c.SignerFunc = func(context.Context) (ed25519.PrivateKey, string, error) { return key, goldenKeyID, nil }
		})
		e.waitFor(10*time.Second, "the delivery", func() bool { return rc.count() == 1 })
		a := rc.all()[0]
		if a.SigErr != nil {
			t.Fatalf("Verify with the golden public key: %v", a.SigErr)
		}
		if got := a.Header.Get("Date"); got != goldenDate {
			t.Errorf("Date = %q, want %q", got, goldenDate)
		}
		if got := a.Header.Get("Signature-Input"); got != goldenInput {
			t.Errorf("Signature-Input:\n got %s\nwant %s", got, goldenInput)
		}
		// Ed25519 is deterministic: the engine's signature equals the pure signature of
		// the message as it arrived.
		u, err := url.Parse("http://" + a.Host + "/hook")
		if err != nil {
			t.Fatal(err)
		}
		m := &httpsig.Message{Method: http.MethodPost, URL: u, Header: http.Header{
			"Date": {goldenDate}, "Content-Digest": {httpsig.ContentDigest(a.Body)}}}
		in, sig, err := httpsig.SignMessage(key, "pyhms", m, httpsig.SignatureParams{
			Components: httpsig.DefaultComponents(), Created: goldenCreated, KeyID: goldenKeyID, Alg: "ed25519"})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Header.Get("Signature-Input"); got != in {
			t.Errorf("Signature-Input = %s, want %s", got, in)
		}
		if got := a.Header.Get("Signature"); got != sig {
			t.Errorf("Signature = %s, want %s", got, sig)
		}
		if ts := a.Payload["timestamp"]; ts != "2024-01-16T08:12:22Z" {
			t.Errorf("timestamp = %v, want the golden clock", ts)
		}
	})
}
