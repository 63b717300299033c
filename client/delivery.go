package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// DeliveryListOptions filter and page a listing of deliveries (ubihooks extension); every
// set filter must match (AND).
type DeliveryListOptions struct {
	// Status is "pending", "sending", "succeeded", "failed" or "parked" (kept while
	// ubihooks disabled the webhook, sent once it is enabled and redelivered).
	Status string
	// EventID selects the deliveries of one event (the payload's "id").
	EventID string
	// RequestID selects the deliveries of one request's events.
	RequestID string
	// Before is the cursor of the next page: the ID of the last delivery of the previous
	// page. Deliveries are listed newest first.
	Before string
	// Limit is 1 to 500; 0 takes the server's default.
	Limit int
}

func (o DeliveryListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"status": o.Status, "event_id": o.EventID, "request_id": o.RequestID, "before": o.Before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// ListDeliveries lists a webhook's recent deliveries, newest first. limit is 1 to 500; 0
// takes the server's default (100).
func (c *Client) ListDeliveries(ctx context.Context, project, webhook string, limit int) ([]Delivery, error) {
	return c.QueryDeliveries(ctx, project, webhook, DeliveryListOptions{Limit: limit})
}

// QueryDeliveries lists a webhook's deliveries that match opts, newest first (without a
// limit, the server's default of 100). For the next page, set opts.Before to the ID of the
// last delivery listed.
func (c *Client) QueryDeliveries(ctx context.Context, project, webhook string, opts DeliveryListOptions) ([]Delivery, error) {
	return many[Delivery](ctx, c, http.MethodGet, path("projects", project, "webhooks", webhook, "deliveries"), opts.query(), nil)
}

// SearchDeliveries finds the deliveries of an event or a request across every webhook of a
// project, newest first (without a limit, 50). opts must set EventID or RequestID.
func (c *Client) SearchDeliveries(ctx context.Context, project string, opts DeliveryListOptions) ([]Delivery, error) {
	return many[Delivery](ctx, c, http.MethodGet, path("projects", project, "deliveries"), opts.query(), nil)
}

// GetDelivery returns a delivery of a webhook with its attempts.
func (c *Client) GetDelivery(ctx context.Context, project, webhook, id string) (*Delivery, error) {
	return one[Delivery](ctx, c, http.MethodGet, path("projects", project, "webhooks", webhook, "deliveries", id), nil, nil)
}

// Redeliver sends a finished delivery again, with the same event id.
func (c *Client) Redeliver(ctx context.Context, project, webhook, id string) (*Delivery, error) {
	return one[Delivery](ctx, c, http.MethodPost, path("projects", project, "webhooks", webhook, "deliveries", id, "redeliver"), nil, nil)
}

// RedeliverMany sends a webhook's finished deliveries that match in again, each with its
// event id, at most Limit of the result per call: call again while More is true.
func (c *Client) RedeliverMany(ctx context.Context, project, webhook string, in RedeliverMany) (*RedeliverManyResult, error) {
	return one[RedeliverManyResult](ctx, c, http.MethodPost, path("projects", project, "webhooks", webhook, "deliveries", "redeliver"), nil, in)
}
