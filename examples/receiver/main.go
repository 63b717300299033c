// Command receiver is a webhook receiver that verifies each webhook's RFC 9421 signature
// with the httpsig package before it trusts the body, and prints every verified event.
// It trusts the keys a ubihooks server publishes at /v2.1/signing-keys.
//
//	go run ./examples/receiver -server http://127.0.0.1:8080 -listen 127.0.0.1:8000
package main

import (
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// keySet holds the trusted public keys by key id, as the server publishes them.
type keySet struct {
	url     string
	mu      sync.Mutex
	byID    map[string]ed25519.PublicKey
	fetched time.Time
}

// fetch replaces the set with the keys published at k.url.
func (k *keySet) fetch() error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(k.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", k.url, resp.Status)
	}
	var doc struct {
		Keys []struct {
			KeyID        string `json:"key_id"`
			PublicKeyPEM string `json:"public_key_pem"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("GET %s: %w", k.url, err)
	}
	byID := map[string]ed25519.PublicKey{}
	for _, key := range doc.Keys {
		pub, err := httpsig.ParsePublicKeyPEM([]byte(key.PublicKeyPEM))
		if err != nil || httpsig.KeyID(pub) != key.KeyID {
			continue // never trust a key under another key's id
		}
		byID[key.KeyID] = pub
	}
	k.mu.Lock()
	k.byID, k.fetched = byID, time.Now()
	k.mu.Unlock()
	return nil
}

// lookup returns the key for id. An unknown id means the server rotated its key: fetch
// the published keys again, once (at most every 10 seconds), and look again.
func (k *keySet) lookup(id string) (ed25519.PublicKey, error) {
	k.mu.Lock()
	pub, ok := k.byID[id]
	recent := time.Since(k.fetched) < 10*time.Second
	k.mu.Unlock()
	if ok {
		return pub, nil
	}
	if !recent {
		if err := k.fetch(); err != nil {
			return nil, err
		}
		k.mu.Lock()
		pub, ok = k.byID[id]
		k.mu.Unlock()
		if ok {
			return pub, nil
		}
	}
	return nil, fmt.Errorf("no published key has this id")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8000", "address to receive webhooks on")
	server := flag.String("server", "http://127.0.0.1:8080", "ubihooks server whose published keys to trust")
	behindTLS := flag.Bool("behind-tls-proxy", false, "webhooks are sent to an https:// URL and a proxy forwards them here")
	flag.Parse()

	keys := &keySet{url: strings.TrimRight(*server, "/") + "/v2.1/signing-keys"}
	if err := keys.fetch(); err != nil {
		log.Fatal(err)
	}
	// Verify demands that @method, @authority, @target-uri, content-digest and date are
	// signed and that Content-Digest matches the body; MaxAge limits replays.
	v := &httpsig.Verifier{KeyFunc: keys.lookup, MaxAge: 5 * time.Minute}

	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if *behindTLS {
			r.TLS = &tls.ConnectionState{} // the signed @target-uri is https://Host/path
		}
		res, err := v.Verify(r, body)
		if err != nil {
			log.Printf("rejected %s from %s: %v", r.URL.Path, r.RemoteAddr, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// Only now is the body trusted. Its "id" is the same on every retry and
		// redelivery: deduplicate on it.
		var event struct {
			ID     string `json:"id"`
			Event  string `json:"event"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal(body, &event); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		log.Printf("verified %s %s (id %s, key %.20s…): %s", event.Event, event.Status, event.ID, res.KeyID, body)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("listening for webhooks on http://%s", *listen)
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
