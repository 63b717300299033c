package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// readyTimeout bounds a readiness check: a database that does not answer within it is
// not ready, and the probe gets its answer in time.
const readyTimeout = 2 * time.Second

// health serves the probes of load balancers and orchestrators, without authentication:
// GET /livez answers 200 while the process serves; GET /readyz answers 200 when the store
// answers with a current schema and the background services (delivery engine, executor)
// run, and 503 with the reason otherwise (during start-up and shutdown too, so that a load
// balancer drains a replica that stops).
type health struct {
	store   ubihooks.Store
	log     *slog.Logger
	running atomic.Bool
	next    http.Handler

	mu   sync.Mutex
	last string // the last readiness answer logged ("" for ready)
}

func (h *health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/livez", "/readyz":
	default:
		h.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		handler.WriteError(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; use GET")
		return
	}
	if r.URL.Path == "/livez" {
		handler.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	err := h.ready(r.Context())
	h.logChange(err)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		handler.WriteError(w, r, http.StatusServiceUnavailable, ubihooks.ErrorMessage(err))
		return
	}
	handler.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (h *health) ready(ctx context.Context) error {
	if !h.running.Load() {
		return ubihooks.Errorf(ubihooks.EUNAVAILABLE, "not ready: the delivery engine and the executor are not running (starting or stopping)")
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := h.store.Ready(ctx)
	if err != nil && ctx.Err() != nil {
		return ubihooks.Errorf(ubihooks.EUNAVAILABLE, "not ready: the database did not answer within %v", readyTimeout)
	}
	return err
}

// logChange logs readiness when it changes, with the full cause (the answer gives only a
// message fit for anyone): probes come every few seconds, the log gets one line a change.
func (h *health) logChange(err error) {
	now := ""
	if err != nil {
		now = err.Error()
	}
	h.mu.Lock()
	changed := now != h.last
	h.last = now
	h.mu.Unlock()
	switch {
	case !changed:
	case err != nil:
		h.log.Warn("not ready", "err", now)
	default:
		h.log.Info("ready")
	}
}
