package ubihooks

import (
	"strings"
	"time"
)

// DeliveryFilter selects deliveries of a project (see Store.ListDeliveries). Every set
// field must match.
type DeliveryFilter struct {
	ProjectID string
	// WebhookID selects one webhook's deliveries; "" selects those of every webhook of
	// the project. Webhook tests' deliveries (which have no webhook) are never listed.
	WebhookID string
	// Status is one of the DeliveryStatuses, or "" for any.
	Status string
	// EventID selects the deliveries of one event.
	EventID string
	// RequestID selects the deliveries of the events of one request: those whose event IDs are
	// EventID(RequestID, t) for an event type t, as every request event's ID is.
	RequestID string
	// Before is a cursor: the ID of a delivery of the project (the last one of the
	// previous page). Only deliveries older than it, by (creation time, ID), are listed.
	Before string
	// Limit is the most deliveries listed; it must be positive.
	Limit int
}

// RedeliverFilter selects the finished deliveries that Store.RedeliverMany makes pending
// again.
type RedeliverFilter struct {
	ProjectID string
	// WebhookID selects one webhook's deliveries; "" selects those of every webhook of
	// the project (never webhook tests').
	WebhookID string
	// Status is succeeded, failed or parked.
	Status string
	// Since and Until bound the deliveries' creation time: Since ≤ created < Until. A zero
	// bound is open.
	Since, Until time.Time
	// Limit is the most deliveries one call changes; it must be positive.
	Limit int
	// DryRun counts what matches and changes nothing.
	DryRun bool
}

// ParseDeliveryStatus validates a delivery status filter; "" (any status) is valid.
func ParseDeliveryStatus(s string) (DeliveryStatus, error) {
	st := DeliveryStatus(s)
	if s != "" && !st.Valid() {
		return "", Errorf(EINVALID, "status must be one of %s; got %q", joinStatuses(DeliveryStatuses), s)
	}
	return st, nil
}

func joinStatuses(ss []DeliveryStatus) string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return strings.Join(out, ", ")
}
