// Package service holds the rules of ubihooks, written once for every store and every
// front end (API, UI, CLI): validation, defaults, sealing of secrets, event fan-out, tests,
// signing keys and requests.
package service

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/secret"
)

// Config holds the service's dependencies.
type Config struct {
	Store ubihooks.Store
	Box   *secret.Box
	// NowFunc returns the current time; time.Now by default.
	NowFunc func() time.Time
	Logger  *slog.Logger
	// KeyOverlap is how long a rotated-out signing key stays published (default 7 days).
	KeyOverlap time.Duration
}

// Service implements the rules on top of a Store.
type Service struct {
	store      ubihooks.Store
	box        *secret.Box
	now        func() time.Time
	log        *slog.Logger
	keyOverlap time.Duration
	signer     signerCache
	requests   requestWaiters
	// draining ends when the server shuts down: direct requests stop waiting for their runs.
	draining context.Context
	drain    context.CancelFunc
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, box: cfg.Box, now: cfg.NowFunc, log: cfg.Logger, keyOverlap: cfg.KeyOverlap}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.keyOverlap == 0 {
		s.keyOverlap = 7 * 24 * time.Hour
	}
	s.requests.init()
	s.draining, s.drain = context.WithCancel(context.Background())
	return s
}

// Drain answers every direct request that waits for its run, and those that come later,
// without waiting: the server is shutting down, and a run may outlast its grace. The
// requests themselves run on (here until the shutdown cuts them, or on another server).
func (s *Service) Drain() { s.drain() }

// Now returns the service clock's current time in UTC, at microsecond precision (what the
// stores keep).
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func newID() string { return ubihooks.NewID() }

// TokenPrefix starts every API token, so that leaked tokens are easy to recognise.
const TokenPrefix = "ubh_"

// HashToken returns the stored form of a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NormalizeToken strips an "Authorization" value down to the token: "Token <t>", "Bearer
// <t>" and a bare token are accepted (the R client sends what the user gives it).
func NormalizeToken(header string) string {
	header = strings.TrimSpace(header)
	if k, v, ok := strings.Cut(header, " "); ok && (strings.EqualFold(k, "token") || strings.EqualFold(k, "bearer")) {
		return strings.TrimSpace(v)
	}
	return header
}
