package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestHTTPSigSigners: each attempt is signed with the key that is active at its time (keys
// rotate), on the engine's clock; a key that cannot be had is the attempt's error.
func TestHTTPSigSigners(t *testing.T) {
	t.Parallel()
	keys := map[string]ed25519.PublicKey{}
	var private []ed25519.PrivateKey
	for _, id := range []string{"k1", "k2"} {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[id], private = pub, append(private, key)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return at }
	active, errNoKey := 0, errors.New("no key")
	signers := httpsigSigners(func(context.Context) (ed25519.PrivateKey, string, error) {
		if active >= len(private) {
			return nil, "", errNoKey
		}
		return private[active], []string{"k1", "k2"}[active], nil
	}, now)
	verifier := &httpsig.Verifier{Keys: keys, Now: now}
	body := []byte(`{"id":"ev-1"}`)
	for i, want := range []string{"k1", "k2"} {
		active = i
		s, err := signers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://receiver.example/hook", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sign(req, body); err != nil {
			t.Fatal(err)
		}
		res, err := verifier.Verify(req, body)
		if err != nil || res.KeyID != want {
			t.Fatalf("attempt %d: Verify = %+v, %v; want signed with %s", i+1, res, err, want)
		}
		if got, want := req.Header.Get("Date"), at.Format(http.TimeFormat); got != want {
			t.Errorf("attempt %d: Date %q, want the engine's clock %q", i+1, got, want)
		}
		if req.ContentLength != int64(len(body)) {
			t.Errorf("attempt %d: ContentLength %d, want %d", i+1, req.ContentLength, len(body))
		}
	}
	active = 2
	if _, err := signers(t.Context()); !errors.Is(err, errNoKey) {
		t.Errorf("without a key: err = %v, want %v", err, errNoKey)
	}
}

var signatureInputRE = regexp.MustCompile(`^pyhms=\("@method" "@authority" "@target-uri" "content-digest" "date"\);created=(\d+);keyid="(sha512:[0-9a-f]{128})";alg="ed25519"$`)

// TestDeliverySignedAndFramed checks what a receiver sees: signatures that verify with the
// public verifier (also with zero clock tolerance, as the 2024-era Python library), the
// pyhms profile, a Content-Length body without chunking, and the User-Agent.
func TestDeliverySignedAndFramed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	strict := &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{e.Key.KeyID: e.Key.PublicKey}, MaxSkew: -1}
	done := make(chan struct{}, 16)
	rc := e.receiver(func(a *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
		if _, err := strict.Verify(r, a.Body); err != nil {
			e.Errorf("%s: zero-tolerance verifier: %v", a.Path, err)
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

	k, err := e.Service.ActiveKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := httpsig.KeyID(ed25519.PublicKey(k.PublicKey)); got != k.KeyID {
		t.Errorf("active key id %s is not sha512 of its public key (%s)", k.KeyID, got)
	}
	for _, a := range rc.Arrivals() {
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
		t.Parallel()
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
		t.Parallel()
		clock := &ubihookstest.Clock{}
		clock.Freeze(golden)
		e := setup(t, withClock(clock))
		e.Verifier = &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{goldenKeyID: key.Public().(ed25519.PublicKey)}, Now: clock.Now}
		rc := e.receiver(nil)
		e.hook(rc.URL + "/hook")
		e.complete()
		e.start(func(c *Config) {
			c.SignerFunc = func(context.Context) (ed25519.PrivateKey, string, error) { return key, goldenKeyID, nil }
		})
		e.Until(10*time.Second, "the delivery", func() bool { return rc.Count() == 1 })
		a := rc.Arrivals()[0]
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
