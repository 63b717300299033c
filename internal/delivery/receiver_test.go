package delivery

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// arrival is one request seen by a receiver.
type arrival struct {
	N                int // 1-based arrival number at this receiver
	At               time.Time
	Method, Path     string
	Host             string
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             []byte
	Payload          map[string]any
	Sig              *httpsig.Result
	SigErr           error
}

func (a *arrival) id() string { s, _ := a.Payload["id"].(string); return s }

// receiver is an httptest server that verifies every request's signature with the public
// httpsig.Verifier and the service's active key, checks the framing (Content-Length, no
// chunking), records what arrived and answers as scripted. Each arrival, and the end of
// each answer, is a change for the env's waits.
type receiver struct {
	env      *env
	verifier *httpsig.Verifier
	srv      *httptest.Server
	URL      string
	respond  func(a *arrival, w http.ResponseWriter, r *http.Request) // nil: 200

	mu        sync.Mutex
	arrivals  []*arrival
	active    int
	maxActive int
}

func (e *env) receiver(respond func(a *arrival, w http.ResponseWriter, r *http.Request)) *receiver {
	e.t.Helper()
	rc := &receiver{env: e, verifier: e.verifier, respond: respond}
	rc.srv = httptest.NewServer(rc)
	rc.URL = rc.srv.URL
	e.mu.Lock()
	e.receivers = append(e.receivers, rc)
	e.mu.Unlock()
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.env.fail("receiver: read body: %v", err)
	}
	a := &arrival{At: time.Now(), Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header.Clone(),
		ContentLength: r.ContentLength, TransferEncoding: r.TransferEncoding, Body: body}
	a.Sig, a.SigErr = rc.verifier.Verify(r, body)
	if a.SigErr != nil {
		rc.env.fail("receiver %s: signature does not verify: %v", r.URL.Path, a.SigErr)
	}
	if err := json.Unmarshal(body, &a.Payload); err != nil {
		rc.env.fail("receiver %s: body is not a JSON object: %v: %s", r.URL.Path, err, body)
	}
	if r.ContentLength != int64(len(body)) || len(r.TransferEncoding) > 0 {
		rc.env.fail("receiver %s: Content-Length %d, transfer-encoding %v for a %d-byte body", r.URL.Path, r.ContentLength, r.TransferEncoding, len(body))
	}
	rc.mu.Lock()
	rc.arrivals = append(rc.arrivals, a)
	a.N = len(rc.arrivals)
	rc.active++
	rc.maxActive = max(rc.maxActive, rc.active)
	rc.mu.Unlock()
	rc.env.change()
	defer func() {
		rc.mu.Lock()
		rc.active--
		rc.mu.Unlock()
		rc.env.change()
	}()
	if rc.respond != nil {
		rc.respond(a, w, r)
	}
}

func (rc *receiver) all() []*arrival {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*arrival(nil), rc.arrivals...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.arrivals)
}

// byEvent counts arrivals by the payload's event id.
func (rc *receiver) byEvent() map[string]int {
	m := map[string]int{}
	for _, a := range rc.all() {
		m[a.id()]++
	}
	return m
}

func (rc *receiver) concurrency() (active, maxActive int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.active, rc.maxActive
}

// stall blocks a handler until the client gives up or the test ends.
func (e *env) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-e.quit:
	}
}

// status answers with a fixed status code.
func status(code int) func(*arrival, http.ResponseWriter, *http.Request) {
	return func(_ *arrival, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// script answers the n-th arrival with codes[n-1] (the last code repeats).
func script(codes ...int) func(*arrival, http.ResponseWriter, *http.Request) {
	return func(a *arrival, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(a.N, len(codes))-1])
	}
}

// closedPort returns a loopback address where nothing listens (connections are refused).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// logBuffer collects slog output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixedClock is a clock that tests can move.
type fixedClock struct{ ns atomic.Int64 }

func newFixedClock(t time.Time) *fixedClock {
	c := &fixedClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fixedClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }
