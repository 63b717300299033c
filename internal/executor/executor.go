// Package executor runs requests against their version's backend and reports every status
// transition (with its webhook events) through the service.
package executor

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks/internal/service"
)

// Config configures an Executor.
type Config struct {
	Service        *service.Service
	Client         *http.Client
	Owner          string
	Concurrency    int
	Lease          time.Duration
	RescueInterval time.Duration
	Logger         *slog.Logger
}

// Executor claims pending requests and runs them.
type Executor struct{ cfg Config }

// New returns an executor.
func New(cfg Config) *Executor { return &Executor{cfg: cfg} }

// Notify wakes the executor: requests are pending.
func (e *Executor) Notify() {}

// Start runs the executor in the background.
func (e *Executor) Start(ctx context.Context) {}

// Stop stops the executor.
func (e *Executor) Stop(ctx context.Context) {}
