package ubihookstest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ModelFunc is what a model backend computes: in is the decoded JSON input, or the text of
// a text/plain body. A string result is answered as text/plain, anything else as JSON; an
// error is answered 500 with its text.
type ModelFunc func(in any) (any, error)

// BackendConfig configures a Backend.
type BackendConfig struct {
	// Model computes the answers; nil answers the input back.
	Model ModelFunc
	// Hold, when set, holds the n-th call (1-based) until Release lets it through, the
	// executor gives up on it, or the test ends (then it answers nothing).
	Hold func(n int) bool
	// Delay makes every answer wait that long first (a slow model), unless the caller
	// gives up.
	Delay time.Duration
}

// HoldAll holds every call.
func HoldAll(int) bool { return true }

// Backend is a model backend for the executor: an httptest server that answers calls with
// a model function, and can hold calls until the test lets them through, so that a test
// controls how many run at once.
type Backend struct {
	// URL is the backend_url of a version that this backend serves.
	URL string
	// Changed is signalled whenever a call arrives, is let through or ends.
	Changed Progress

	cfg     BackendConfig
	srv     *httptest.Server
	ctx     context.Context // canceled when the test ends: held calls give up
	cancel  context.CancelFunc
	env     *Env
	release chan struct{}

	mu                    sync.Mutex
	calls, inFlight, peak int
	held                  int
}

// NewBackend starts a backend that is closed when the test ends. Inside an Env use
// Env.Backend, which closes it after the services stopped.
func NewBackend(t testing.TB, cfg BackendConfig) *Backend {
	b := newBackend(cfg, nil)
	t.Cleanup(b.close)
	return b
}

// Backend starts a backend that signals Env.Changed at every change and closes after the
// services stopped.
func (e *Env) Backend(cfg BackendConfig) *Backend {
	b := newBackend(cfg, e)
	e.Defer(b.close)
	return b
}

// Model starts a backend that answers with fn.
func (e *Env) Model(fn ModelFunc) *Backend { return e.Backend(BackendConfig{Model: fn}) }

func newBackend(cfg BackendConfig, env *Env) *Backend {
	b := &Backend{cfg: cfg, env: env, release: make(chan struct{}, 1<<16)}
	b.srv, b.ctx, b.cancel = serve(env, b)
	b.URL = b.srv.URL
	return b
}

func (b *Backend) close() {
	b.cancel()
	b.srv.Close()
}

func (b *Backend) changed() {
	b.Changed.Signal()
	if b.env != nil {
		b.env.Changed.Signal()
	}
}

// ServeHTTP answers one call.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The whole body first: the server notices a closed connection only after it.
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.calls++
	n := b.calls
	b.inFlight++
	b.peak = max(b.peak, b.inFlight)
	hold := b.cfg.Hold != nil && b.cfg.Hold(n)
	if hold {
		b.held++
	}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
		b.changed()
	}()
	b.changed()
	if hold {
		released := false
		select {
		case <-b.release:
			released = true
		case <-r.Context().Done():
		case <-b.ctx.Done():
		}
		b.mu.Lock()
		b.held--
		b.mu.Unlock()
		if !released {
			return
		}
	}
	if b.cfg.Delay > 0 {
		t := time.NewTimer(b.cfg.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	var in any = string(body)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, "the model wants JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	var out any = in
	if b.cfg.Model != nil {
		var err error
		if out, err = b.cfg.Model(in); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	if s, ok := out.(string); ok {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, s)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Release lets n held calls through: calls held now first, then calls that arrive later.
func (b *Backend) Release(n int) {
	for range n {
		b.release <- struct{}{}
	}
	b.changed()
}

// Calls returns the number of calls so far.
func (b *Backend) Calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

// InFlight returns the calls being answered (or held) now.
func (b *Backend) InFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight
}

// Held returns the calls held now.
func (b *Backend) Held() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// Peak returns the most calls that were in flight at once.
func (b *Backend) Peak() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// WaitHeld waits until n calls are held at once, and fails the test after within, naming
// the most that were in flight at once.
func (b *Backend) WaitHeld(t testing.TB, within time.Duration, n int) {
	t.Helper()
	if !b.Changed.Await(within, func() bool { return b.Held() >= n }) {
		t.Fatalf("after %s, the backend holds %d calls (at most %d were in flight at once), want %d", within, b.Held(), b.Peak(), n)
	}
}

// Until waits until cond holds, checking it again at every change of the backend, and
// fails the test after within.
func (b *Backend) Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	b.Changed.Until(t, within, what, cond)
}

// String describes the backend for failure messages.
func (b *Backend) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("backend %s: %d calls, %d in flight, %d held, peak %d", b.URL, b.calls, b.inFlight, b.held, b.peak)
}
