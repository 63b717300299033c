package delivery

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
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
