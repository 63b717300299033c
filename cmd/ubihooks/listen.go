package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// listen runs a receiver that verifies every webhook's signature and prints each verified
// event as one JSON line on stdout; the Go twin of the Python listener in UbiOps' docs.
func (m *Main) listen(ctx context.Context, args []string) error {
	fs := m.newFlagSet("listen")
	var addr, pubkey, server string
	var maxAge time.Duration
	fs.StringVar(&addr, "listen", "127.0.0.1:8000", "address to receive webhooks on")
	fs.StringVar(&pubkey, "pubkey", "", "PEM `file` of the trusted Ed25519 public key (as printed by ubihooks keys show)")
	fs.StringVar(&server, "server", "", "instead of --pubkey: a ubihooks server URL (e.g. http://127.0.0.1:8080) whose published keys to trust")
	fs.DurationVar(&maxAge, "max-age", 5*time.Minute, "reject signatures created longer ago than this (replay protection)")
	if err := m.parse(fs, args); err != nil {
		return err
	}
	keys := &keySet{}
	switch {
	case pubkey != "" && server != "":
		return errors.New("give either --pubkey or --server, not both")
	case pubkey != "":
		b, err := os.ReadFile(pubkey)
		if err != nil {
			return err
		}
		pub, err := httpsig.ParsePublicKeyPEM(b)
		if err != nil {
			return fmt.Errorf("--pubkey %s: %w", pubkey, err)
		}
		keys.set(map[string]ed25519.PublicKey{httpsig.KeyID(pub): pub})
	case server != "":
		keys.url = strings.TrimRight(server, "/") + "/v2.1/signing-keys"
		if err := keys.fetch(ctx); err != nil {
			return err
		}
	default:
		return errors.New("--pubkey or --server is required: the key that webhooks must be signed with")
	}
	v := &httpsig.Verifier{KeyFunc: keys.lookup(ctx), MaxAge: maxAge}
	var out sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead || r.Method == http.MethodGet {
			w.WriteHeader(http.StatusNoContent) // health checks
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "POST webhooks here", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if _, err := v.Verify(r, body); err != nil {
			fmt.Fprintf(m.Stderr, "rejected %s %s from %s: %v\n", r.Method, r.URL.RequestURI(), r.RemoteAddr, err)
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		var line bytes.Buffer
		if err := json.Compact(&line, body); err != nil {
			line.Reset()
			b, _ := json.Marshal(map[string]string{"body": string(body)})
			line.Write(b)
		}
		out.Lock()
		fmt.Fprintln(m.Stdout, line.String())
		out.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(m.Stderr, "listening for webhooks on http://%s\n", ln.Addr())
	if m.OnListenFunc != nil {
		m.OnListenFunc(ln.Addr().String())
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// keySet holds the trusted keys; with a server URL it refetches on an unknown key id (a
// rotation), at most every 10 seconds.
type keySet struct {
	url     string
	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

func (k *keySet) set(m map[string]ed25519.PublicKey) {
	k.mu.Lock()
	k.keys = m
	k.mu.Unlock()
}

func (k *keySet) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch signing keys from %s: %s", k.url, resp.Status)
	}
	var doc struct {
		Keys []struct {
			KeyID     string `json:"key_id"`
			PublicKey string `json:"public_key"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return fmt.Errorf("fetch signing keys: %w", err)
	}
	m := map[string]ed25519.PublicKey{}
	for _, key := range doc.Keys {
		raw, err := base64.StdEncoding.DecodeString(key.PublicKey)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			continue
		}
		pub := ed25519.PublicKey(raw)
		if httpsig.KeyID(pub) == key.KeyID { // never trust a key under another key's id
			m[key.KeyID] = pub
		}
	}
	k.mu.Lock()
	k.keys, k.fetched = m, time.Now()
	k.mu.Unlock()
	return nil
}

func (k *keySet) lookup(ctx context.Context) func(string) (ed25519.PublicKey, error) {
	return func(id string) (ed25519.PublicKey, error) {
		k.mu.Lock()
		pub, ok := k.keys[id]
		stale := k.url != "" && time.Since(k.fetched) > 10*time.Second
		k.mu.Unlock()
		if ok {
			return pub, nil
		}
		if stale {
			if err := k.fetch(ctx); err == nil {
				k.mu.Lock()
				pub, ok = k.keys[id]
				k.mu.Unlock()
				if ok {
					return pub, nil
				}
			}
		}
		return nil, httpsig.ErrUnknownKey
	}
}
