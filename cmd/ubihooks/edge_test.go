package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// startServe runs `ubihooks serve` in-process on a fresh SQLite database with args added,
// and returns its address and database path; it stops when the test ends.
func startServe(t *testing.T, args ...string) (addr, db string) {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with the environment variables of env.
func startServeEnv(t *testing.T, env map[string]string, args ...string) (addr, db string) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "db")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &ubihookstest.SyncBuffer{}
	addrc := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: logs, Getenv: func(k string) string { return env[k] },
		OnListenFunc: func(addr string) { addrc <- addr }}
	served := make(chan error, 1)
	go func() {
		served <- m.Run(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--database", db, "--allow-networks", "127.0.0.0/8",
			"--shutdown-timeout", "5s"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s of the cancel")
		}
	})
	select {
	case addr = <-addrc:
	case err := <-served:
		t.Fatalf("serve returned before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen within 30s\n%s", logs)
	}
	return addr, db
}

// TestServeErrorsAreJSON: every error answer is {"error": "..."} with Content-Type
// application/json, those that net/http writes before any handler runs included.
func TestServeErrorsAreJSON(t *testing.T) {
	t.Parallel()
	addr, _ := startServe(t)
	for _, tc := range []struct {
		name   string
		raw    string
		status int
	}{
		{"bad escape", "GET /v2.1/projects/%zz/webhooks HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"headers too large", "GET /v2.1/status HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"no host", "GET /v2.1/status HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"malformed header", "GET /v2.1/status HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n", http.StatusBadRequest},
		{"unsupported transfer encoding", "POST /v2.1/projects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", http.StatusNotImplemented},
		{"unknown route", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
		{"unknown API route", "GET /v2.1/nope HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusNotFound},
		{"method not allowed", "DELETE /v2.1/status HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusMethodNotAllowed},
	} {
		res, body := ubihookstest.RawExchange(t, addr, tc.raw)
		if res.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, res.StatusCode, tc.status, body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json (%s)", tc.name, ct, body)
		}
		var m map[string]string
		if err := json.Unmarshal(body, &m); err != nil || strings.TrimSpace(m["error"]) == "" || len(m) != 1 {
			t.Errorf(`%s: body %q is not {"error": "<message>"} (%v)`, tc.name, body, err)
		}
	}
}
