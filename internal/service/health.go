package service

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/startstop"
	"github.com/ubihooks/ubihooks/internal/testsignal"
)

// HealthConfig configures the webhook health watcher. Zero values take the documented
// defaults, except Policy, whose zero value reports and disables nothing.
type HealthConfig struct {
	// Policy says when a webhook is reported failing and when ubihooks disables it.
	Policy ubihooks.WebhookHealthPolicy
	// Interval is how often the watcher looks (default 30 seconds).
	Interval time.Duration
	// OperationsURL, when set, receives every health change as a signed POST (the
	// operations webhook). Client sends it: the server's outbound client, which keeps to
	// the same network policy as every delivery.
	OperationsURL string
	Client        *http.Client
	// OperationsAttempts bounds the attempts per change (default 5, one at once, then
	// after 1, 4, 16 and 64 seconds; each attempt times out after 10 seconds).
	OperationsAttempts int
	// Observe, when set, is told of every change (the metrics count them).
	Observe func(*ubihooks.WebhookHealthChange)
}

func (c HealthConfig) withDefaults() HealthConfig {
	c.Interval = cmp.Or(c.Interval, 30*time.Second)
	c.OperationsAttempts = cmp.Or(c.OperationsAttempts, 5)
	return c
}

func (c HealthConfig) validate() error {
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("webhook health: %w", err)
	}
	switch {
	case c.Interval <= 0:
		return fmt.Errorf("webhook health: Interval must be positive, got %s", c.Interval)
	case c.OperationsURL != "" && c.Client == nil:
		return fmt.Errorf("webhook health: an operations webhook needs a Client")
	case c.OperationsAttempts < 1:
		return fmt.Errorf("webhook health: OperationsAttempts must be at least 1, got %d", c.OperationsAttempts)
	}
	if c.OperationsURL != "" {
		if _, err := ubihooks.NormalizeURL(c.OperationsURL); err != nil {
			return fmt.Errorf("webhook health: operations webhook: %w", err)
		}
	}
	return nil
}

// HealthTestSignals are the events a HealthWatcher reports to its tests; see testsignal.
type HealthTestSignals struct {
	// Ran follows every pass of the background loop.
	Ran testsignal.Signal[HealthPass]
	// Notified follows every operations webhook notification, sent or given up.
	Notified testsignal.Signal[OperationsNotice]
}

// Init arms every signal. Call it before Start.
func (s *HealthTestSignals) Init() { s.Ran.Init(); s.Notified.Init() }

// HealthPass is one pass of the watcher: the changes it made, and its error.
type HealthPass struct {
	Changes []*ubihooks.WebhookHealthChange
	Err     error
}

// OperationsNotice is the outcome of one notification of the operations webhook.
type OperationsNotice struct {
	Kind     ubihooks.WebhookHealthKind
	Attempts int
	Err      error // nil once it was delivered
}

// HealthWatcher applies the webhook health policy in the background: it reports webhooks
// whose receivers keep failing, disables (and so parks the events of) those that failed
// for too long, and reports their recovery; to the log, to Observe and to the operations
// webhook. Every change is found by exactly one pass of one replica (the store decides),
// so a change is reported once however many replicas run.
type HealthWatcher struct {
	// TestSignals are armed by tests before Start.
	TestSignals HealthTestSignals

	svc  *Service
	cfg  HealthConfig
	loop startstop.Periodic

	mu     sync.Mutex
	sends  sync.WaitGroup
	ctx    context.Context // canceled by Stop: notifications still retrying give up
	cancel context.CancelFunc
}

// NewHealthWatcher returns a watcher; Start runs it, RunOnce runs one pass in the caller.
func (s *Service) NewHealthWatcher(cfg HealthConfig) *HealthWatcher {
	h := &HealthWatcher{svc: s, cfg: cfg.withDefaults()}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.loop = startstop.Periodic{Name: "webhook health", Interval: h.cfg.Interval, RunFunc: h.pass}
	return h
}

// Start runs a pass at once, then one every Interval, until Stop. It fails on an invalid
// configuration, and when the watcher was started before.
func (h *HealthWatcher) Start(ctx context.Context) error {
	if err := h.cfg.validate(); err != nil {
		return err
	}
	return h.loop.Start(ctx)
}

// Notify makes a running watcher pass at once instead of at its next interval.
func (h *HealthWatcher) Notify() { h.loop.Notify() }

// Stop ends the watcher and gives up the notifications still being retried (each is
// logged). It waits until ctx is done at most.
func (h *HealthWatcher) Stop(ctx context.Context) error {
	err := h.loop.Stop(ctx)
	h.cancel()
	done := make(chan struct{})
	go func() { h.sends.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func (h *HealthWatcher) pass(ctx context.Context) {
	changes, err := h.RunOnce(ctx)
	if err != nil && ctx.Err() == nil {
		h.svc.log.Error("webhook health", "err", err)
	}
	h.TestSignals.Ran.Signal(HealthPass{Changes: changes, Err: err})
}

// RunOnce applies the policy once and reports each change it made: to the log, to
// Observe, and to the operations webhook (in the background, with retries).
func (h *HealthWatcher) RunOnce(ctx context.Context) ([]*ubihooks.WebhookHealthChange, error) {
	changes, err := h.svc.store.ApplyWebhookHealth(ctx, h.cfg.Policy, h.svc.Now())
	for _, c := range changes {
		h.report(ctx, c)
	}
	return changes, err
}

// report logs c, counts it and sends it to the operations webhook.
func (h *HealthWatcher) report(ctx context.Context, c *ubihooks.WebhookHealthChange) {
	w := c.Webhook
	attrs := []slog.Attr{slog.String("change", string(c.Kind)), slog.String("project", c.ProjectName),
		slog.String("webhook", w.Name), slog.String("webhook_id", w.ID)}
	level := slog.LevelWarn
	switch c.Kind {
	case ubihooks.WebhookFailing:
		attrs = append(attrs, slog.Int("consecutive_failures", w.ConsecutiveFailures), slog.Time("failing_since", w.FailingSince))
	case ubihooks.WebhookDisabled:
		level = slog.LevelError
		attrs = append(attrs, slog.Int("consecutive_failures", w.ConsecutiveFailures), slog.Time("failing_since", w.FailingSince),
			slog.Int("parked", c.Parked))
	case ubihooks.WebhookRecovered:
		level = slog.LevelInfo
	}
	h.svc.log.LogAttrs(ctx, level, "webhook health changed", attrs...)
	if h.cfg.Observe != nil {
		h.cfg.Observe(c)
	}
	if h.cfg.OperationsURL == "" {
		return
	}
	body, err := json.Marshal(operationsPayload(c))
	if err != nil { // cannot happen: the payload is plain data
		h.svc.log.Error("operations webhook", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return
	}
	h.sends.Add(1)
	go func() {
		defer h.sends.Done()
		h.notify(c.Kind, body)
	}()
}

// notify sends one notification to the operations webhook, with retries.
func (h *HealthWatcher) notify(kind ubihooks.WebhookHealthKind, body []byte) {
	var err error
	attempt := 0
	for attempt < h.cfg.OperationsAttempts {
		if attempt > 0 {
			wait := time.Second << (2 * (attempt - 1)) // 1 s, 4 s, 16 s, 64 s
			select {
			case <-h.ctx.Done():
				err = fmt.Errorf("given up at shutdown: %w", err)
				attempt = h.cfg.OperationsAttempts
				continue
			case <-time.After(wait):
			}
		}
		attempt++
		if err = h.send(body); err == nil {
			break
		}
	}
	if err != nil {
		h.svc.log.Error("operations webhook not delivered", "change", string(kind), "attempts", attempt, "err", err)
	}
	h.TestSignals.Notified.Signal(OperationsNotice{Kind: kind, Attempts: attempt, Err: err})
}

// send makes one signed POST of body to the operations webhook.
func (h *HealthWatcher) send(body []byte) error {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	key, keyID, err := h.svc.Signer(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.OperationsURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ubihooks")
	s := httpsig.Signer{Key: key, KeyID: keyID, Now: h.svc.now}
	if err := s.Sign(req, body); err != nil {
		return err
	}
	resp, err := h.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

// OperationsPayload is the body of an operations webhook notification.
type OperationsPayload struct {
	ID        string            `json:"id"`
	Event     string            `json:"event"`
	Timestamp time.Time         `json:"timestamp"`
	Project   string            `json:"project"`
	Webhook   OperationsWebhook `json:"webhook"`
	Parked    int               `json:"parked"`
	Text      string            `json:"text"`
}

// OperationsWebhook describes the webhook a notification is about.
type OperationsWebhook struct {
	ID                  string     `json:"id"`
	Name                string     `json:"name"`
	ObjectType          string     `json:"object_type"`
	ObjectName          string     `json:"object_name"`
	Version             *string    `json:"version"`
	Event               string     `json:"event"`
	URL                 string     `json:"url"`
	Enabled             bool       `json:"enabled"`
	DisabledReason      *string    `json:"disabled_reason"`
	FailingSince        *time.Time `json:"failing_since"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

func operationsPayload(c *ubihooks.WebhookHealthChange) OperationsPayload {
	w := c.Webhook
	ow := OperationsWebhook{ID: w.ID, Name: w.Name, ObjectType: string(w.ObjectType), ObjectName: w.ObjectName,
		Event: string(w.Event), URL: w.URL, Enabled: w.Enabled, ConsecutiveFailures: w.ConsecutiveFailures}
	if w.Version != "" {
		ow.Version = &w.Version
	}
	if w.DisabledReason != "" {
		ow.DisabledReason = &w.DisabledReason
	}
	if !w.FailingSince.IsZero() {
		t := w.FailingSince.UTC()
		ow.FailingSince = &t
	}
	var text string
	switch c.Kind {
	case ubihooks.WebhookFailing:
		text = fmt.Sprintf("Webhook %q of project %q is failing: its last %d delivery attempts failed (since %s).",
			w.Name, c.ProjectName, w.ConsecutiveFailures, w.FailingSince.UTC().Format(time.RFC3339))
	case ubihooks.WebhookDisabled:
		text = fmt.Sprintf("Webhook %q of project %q was disabled by ubihooks: %s. %d pending deliveries were parked.",
			w.Name, c.ProjectName, w.DisabledReason, c.Parked)
	case ubihooks.WebhookRecovered:
		text = fmt.Sprintf("Webhook %q of project %q recovered: a delivery succeeded again.", w.Name, c.ProjectName)
	}
	return OperationsPayload{ID: ubihooks.NewID(), Event: string(c.Kind), Timestamp: c.At.UTC(), Project: c.ProjectName,
		Webhook: ow, Parked: c.Parked, Text: text}
}
