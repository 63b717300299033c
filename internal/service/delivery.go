package service

import (
	"context"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Limits of delivery listings and of bulk redeliveries.
const (
	// DefaultDeliveryLimit is how many deliveries a listing returns when it asks for no limit.
	DefaultDeliveryLimit = 50
	// MaxDeliveryLimit is the most deliveries one listing returns.
	MaxDeliveryLimit = 500
	// RedeliverManyLimit is the most deliveries one RedeliverMany call makes pending again;
	// a call that leaves more reports it, and the caller calls again.
	RedeliverManyLimit = 1000
)

// DeliveryQuery filters and pages a listing of deliveries. Every set filter must match.
type DeliveryQuery struct {
	// Status is pending, sending, succeeded or failed; "" for any.
	Status string
	// EventID selects the deliveries of one event (the payload's "id").
	EventID string
	// RequestID selects the deliveries of one request's events.
	RequestID string
	// Before is the cursor of the next page: the ID of the last delivery of the previous
	// one. Only older deliveries are listed (by creation time, then ID).
	Before string
	// Limit is 1 to MaxDeliveryLimit; 0 takes DefaultDeliveryLimit.
	Limit int
}

// filter validates q and turns it into a store filter of the project.
func (q DeliveryQuery) filter(projectID string) (ubihooks.DeliveryFilter, error) {
	if _, err := ubihooks.ParseDeliveryStatus(q.Status); err != nil {
		return ubihooks.DeliveryFilter{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultDeliveryLimit
	}
	if limit < 1 || limit > MaxDeliveryLimit {
		return ubihooks.DeliveryFilter{}, ubihooks.Errorf(ubihooks.EINVALID, "limit must be between 1 and %d, got %d", MaxDeliveryLimit, q.Limit)
	}
	return ubihooks.DeliveryFilter{ProjectID: projectID, Status: q.Status, EventID: q.EventID, RequestID: q.RequestID,
		Before: q.Before, Limit: limit}, nil
}

// ListDeliveries lists a webhook's deliveries that match q, newest first, each with its
// event (ID, type, request ID) and webhook name.
func (s *Service) ListDeliveries(ctx context.Context, projectID, webhook string, q DeliveryQuery) ([]*ubihooks.Delivery, error) {
	f, err := q.filter(projectID)
	if err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, projectID, webhook)
	if err != nil {
		return nil, err
	}
	f.WebhookID = w.ID
	return s.store.ListDeliveries(ctx, f)
}

// SearchDeliveries finds the deliveries of an event or of a request across every webhook
// of a project, newest first, like ListDeliveries. q must set EventID or RequestID.
// Webhook tests' deliveries are not found.
func (s *Service) SearchDeliveries(ctx context.Context, projectID string, q DeliveryQuery) ([]*ubihooks.Delivery, error) {
	if q.EventID == "" && q.RequestID == "" {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "event_id or request_id is required")
	}
	f, err := q.filter(projectID)
	if err != nil {
		return nil, err
	}
	return s.store.ListDeliveries(ctx, f)
}

// GetDelivery finds a delivery of a webhook with its attempts.
func (s *Service) GetDelivery(ctx context.Context, projectID, webhook, id string) (*ubihooks.Delivery, []*ubihooks.Attempt, error) {
	w, err := s.store.GetWebhook(ctx, projectID, webhook)
	if err != nil {
		return nil, nil, err
	}
	d, attempts, err := s.store.GetDelivery(ctx, projectID, id)
	if err != nil {
		return nil, nil, err
	}
	if d.WebhookID != w.ID {
		return nil, nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "delivery %q not found for webhook %q", id, webhook)
	}
	return d, attempts, nil
}

// Redeliver sends a finished (or parked) delivery again, with the same event id.
func (s *Service) Redeliver(ctx context.Context, projectID, webhook, id string) (*ubihooks.Delivery, error) {
	d, _, err := s.GetDelivery(ctx, projectID, webhook, id)
	if err != nil {
		return nil, err
	}
	if d.Status == ubihooks.DeliveryParked {
		if err := s.checkNotParking(ctx, projectID, webhook); err != nil {
			return nil, err
		}
	}
	if err := s.store.Redeliver(ctx, projectID, id, s.Now()); err != nil {
		return nil, err
	}
	d, _, err = s.store.GetDelivery(ctx, projectID, id)
	return d, err
}

// checkNotParking refuses to send the parked deliveries of a webhook that ubihooks still
// keeps disabled: they would fail (or park) again. The webhook is enabled first.
func (s *Service) checkNotParking(ctx context.Context, projectID, webhook string) error {
	w, err := s.store.GetWebhook(ctx, projectID, webhook)
	if err != nil {
		return err
	}
	if w.AutoDisabled() {
		return ubihooks.Errorf(ubihooks.ECONFLICT, "webhook %q was disabled by ubihooks because its receiver kept failing; "+
			"enable it first (PATCH enabled: true), then send its parked deliveries", webhook)
	}
	return nil
}

// RedeliverParams selects the finished deliveries of a webhook that RedeliverMany sends
// again.
type RedeliverParams struct {
	// Status is failed (the default), succeeded or parked.
	Status string
	// Since and Until bound the deliveries' creation time: Since ≤ created < Until. Since
	// is required, except for parked deliveries (where it defaults to the oldest); Until
	// defaults to now.
	Since, Until time.Time
	// DryRun counts what matches and changes nothing.
	DryRun bool
}

// RedeliverMany sends finished or parked deliveries of a webhook again (to recover from an
// outage of its receiver), each exactly as Redeliver does: same event id, a fresh retry
// schedule. Parked deliveries are the events of a webhook that ubihooks disabled: they are
// sent once it is enabled again (while it is disabled they stay parked, and the call
// reports them as counted, not sent; see ubihooks.Store.RedeliverMany).
// Deliveries still pending or sending are left alone. One call makes at most
// RedeliverManyLimit deliveries pending, oldest first; more reports that matching
// deliveries are left, and the caller calls again. (A delivery that fails again before
// the next call matches again: stop once more is false, or when its receiver keeps
// failing.) A dry run changes nothing: count is then every match, and more tells whether
// that takes more than one call.
func (s *Service) RedeliverMany(ctx context.Context, projectID, webhook string, p RedeliverParams) (count int, more bool, err error) {
	f := ubihooks.RedeliverFilter{ProjectID: projectID, Status: p.Status, Since: p.Since.UTC().Truncate(time.Microsecond),
		Until: p.Until.UTC().Truncate(time.Microsecond), Limit: RedeliverManyLimit, DryRun: p.DryRun}
	if f.Status == "" {
		f.Status = string(ubihooks.DeliveryFailed)
	}
	if !ubihooks.DeliveryStatus(f.Status).Redeliverable() {
		return 0, false, ubihooks.Errorf(ubihooks.EINVALID, `status must be "failed", "succeeded" or "parked" (only finished or parked deliveries are sent again), got %q`, p.Status)
	}
	if p.Since.IsZero() && f.Status == string(ubihooks.DeliveryParked) {
		f.Since = time.Unix(0, 0).UTC()
	} else if p.Since.IsZero() {
		return 0, false, ubihooks.Errorf(ubihooks.EINVALID, "since is required: the creation time of the oldest delivery to send again")
	}
	now := s.Now()
	if p.Until.IsZero() {
		f.Until = now
	}
	if !f.Since.Before(f.Until) {
		return 0, false, ubihooks.Errorf(ubihooks.EINVALID, "since (%s) must be before until (%s)",
			f.Since.Format(time.RFC3339Nano), f.Until.Format(time.RFC3339Nano))
	}
	w, err := s.store.GetWebhook(ctx, projectID, webhook)
	if err != nil {
		return 0, false, err
	}
	f.WebhookID = w.ID
	if f.Status == string(ubihooks.DeliveryParked) && !f.DryRun && w.AutoDisabled() {
		return 0, false, s.checkNotParking(ctx, projectID, webhook)
	}
	return s.store.RedeliverMany(ctx, f, now)
}
