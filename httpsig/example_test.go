package httpsig_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// A receiver verifies webhooks in its handler. The sender side (Signer) is
// only here to make the example self-contained.
func ExampleVerifier() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // demo key only
	pemKey, _ := httpsig.MarshalPublicKeyPEM(priv.Public().(ed25519.PublicKey))

	// Receiver: configure the published PEM key once, then verify each request.
	pub, err := httpsig.ParsePublicKeyPEM(pemKey)
	if err != nil {
		panic(err)
	}
	v := &httpsig.Verifier{Keys: map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub}}
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := v.Verify(r, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "accepted %s", body)
	})
	srv := httptest.NewServer(hook)
	defer srv.Close()

	// Sender (what ubihooks' delivery engine does).
	send := func(body string, tamper bool) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hook?team=a", nil)
		req.Header.Set("Content-Type", "application/json")
		if err := (&httpsig.Signer{Key: priv}).Sign(req, []byte(body)); err != nil {
			panic(err)
		}
		if tamper {
			req.Body = io.NopCloser(strings.NewReader(strings.ToUpper(body)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s\n", resp.StatusCode, strings.TrimSpace(string(out)))
	}
	send(`{"status":"completed"}`, false)
	send(`{"status":"completed"}`, true)
	// Output:
	// 200 accepted {"status":"completed"}
	// 401 httpsig: content-digest mismatch: sha-256 of the body differs
}

// Signing is deterministic for a fixed key and clock, which makes golden
// tests easy. This reproduces the contract's golden vector.
func ExampleSigner() {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1) // 0102...1f20
	}
	s := &httpsig.Signer{
		Key: ed25519.NewKeyFromSeed(seed),
		Now: func() time.Time { return time.Unix(1705392742, 0) },
	}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8000/hook", nil)
	body := `{"event":"deployment_request_completed","request_id":"00000000-0000-0000-0000-000000000001","status":"completed"}`
	if err := s.Sign(req, []byte(body)); err != nil {
		panic(err)
	}
	fmt.Println("Date:", req.Header.Get("Date"))
	fmt.Println("Content-Digest:", req.Header.Get("Content-Digest"))
	fmt.Println("Signature:", req.Header.Get("Signature"))
	// Output:
	// Date: Tue, 16 Jan 2024 08:12:22 GMT
	// Content-Digest: sha-256=:pblBz0j0mpFXAGqoTuqz/WXNmkVUm7v4LwOkIfr60Q0=:
	// Signature: pyhms=:Aq7+lC7uDdsZvzXrLmjBU6NHAWZj2KxOZQ12c/4UoxPZdsexJXnL4OkUVavDJhFmlsDEZlwaJ4GiSihn4HxVAg==:
}
