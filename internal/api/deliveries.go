package api

import (
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// DeliveryDetail is one delivery of a webhook (ubihooks extension).
type DeliveryDetail struct {
	ID             string          `json:"id"`
	Webhook        string          `json:"webhook"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	RequestID      string          `json:"request_id"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	NextAttemptAt  *string         `json:"next_attempt_at"`
	LastError      *string         `json:"last_error"`
	LastStatusCode *int            `json:"last_status_code"`
	CreationDate   *string         `json:"creation_date"`
	CompletedAt    *string         `json:"completed_at"`
	AttemptList    []AttemptDetail `json:"attempt_list,omitzero"`
}

// AttemptDetail is one HTTP call of a delivery.
type AttemptDetail struct {
	Number       int     `json:"number"`
	StartedAt    *string `json:"started_at"`
	DurationMS   float64 `json:"duration_ms"`
	StatusCode   *int    `json:"status_code"`
	ErrorClass   *string `json:"error_class"`
	Error        *string `json:"error"`
	ResponseBody *string `json:"response_body"`
}

func deliveryDetail(d *ubihooks.Delivery, attempts []*ubihooks.Attempt) DeliveryDetail {
	out := DeliveryDetail{ID: d.ID, Webhook: d.WebhookName, EventID: d.EventID, Status: string(d.Status), Attempts: d.Attempts,
		LastError: strPtr(d.LastError), LastStatusCode: intPtr(d.LastStatusCode), CreationDate: isoTime(d.CreatedAt),
		CompletedAt: isoTime(d.CompletedAt)}
	if d.Event != nil {
		out.Event, out.RequestID = string(d.Event.Type), d.Event.RequestID
	}
	if d.Status == ubihooks.DeliveryPending {
		out.NextAttemptAt = isoTime(d.NextAttemptAt)
	}
	for _, a := range attempts {
		out.AttemptList = append(out.AttemptList, attemptDetail(a))
	}
	return out
}

func attemptDetail(a *ubihooks.Attempt) AttemptDetail {
	return AttemptDetail{Number: a.Number, StartedAt: isoTime(a.StartedAt), DurationMS: durationMS(a.Duration),
		StatusCode: intPtr(a.StatusCode), ErrorClass: strPtr(a.ErrorClass), Error: strPtr(a.Error), ResponseBody: strPtr(a.ResponseBody)}
}

// durationMS renders a duration in milliseconds, to the microsecond.
func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// deliveryQuery reads the filters and cursor of a delivery listing; a missing limit is def.
func (c *call) deliveryQuery(def int) (service.DeliveryQuery, error) {
	limit, err := c.queryInt("limit", def, 1, service.MaxDeliveryLimit)
	if err != nil {
		return service.DeliveryQuery{}, err
	}
	q := c.r.URL.Query()
	return service.DeliveryQuery{Status: q.Get("status"), EventID: q.Get("event_id"), RequestID: q.Get("request_id"),
		Before: q.Get("before"), Limit: limit}, nil
}

func deliveryList(ds []*ubihooks.Delivery) []DeliveryDetail {
	out := make([]DeliveryDetail, len(ds))
	for i, d := range ds {
		out[i] = deliveryDetail(d, nil)
	}
	return out
}

// deliveriesList pages a webhook's deliveries. Without a limit it lists 100, as it always
// has.
func (s *Server) deliveriesList(c *call) error {
	q, err := c.deliveryQuery(100)
	if err != nil {
		return err
	}
	ds, err := s.svc.ListDeliveries(c.r.Context(), c.project.ID, c.p["webhook_name"], q)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, deliveryList(ds))
}

// deliveriesSearch finds the deliveries of an event or a request across the project.
func (s *Server) deliveriesSearch(c *call) error {
	q, err := c.deliveryQuery(0)
	if err != nil {
		return err
	}
	ds, err := s.svc.SearchDeliveries(c.r.Context(), c.project.ID, q)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, deliveryList(ds))
}

func (s *Server) deliveriesGet(c *call) error {
	d, attempts, err := s.svc.GetDelivery(c.r.Context(), c.project.ID, c.p["webhook_name"], c.p["delivery_id"])
	if err != nil {
		return err
	}
	dd := deliveryDetail(d, attempts)
	if dd.AttemptList == nil {
		dd.AttemptList = []AttemptDetail{}
	}
	return c.json(http.StatusOK, dd)
}

func (s *Server) deliveriesRedeliver(c *call) error {
	d, err := s.svc.Redeliver(c.r.Context(), c.project.ID, c.p["webhook_name"], c.p["delivery_id"])
	if err != nil {
		return err
	}
	return c.json(http.StatusAccepted, deliveryDetail(d, nil))
}

// RedeliverMany selects the finished or parked deliveries of a webhook to send again
// (ubihooks extension): to recover from a receiver's outage, or to send the events parked
// while ubihooks kept the webhook disabled (enable it first).
type RedeliverMany struct {
	// Status is "failed" (the default), "succeeded" or "parked".
	Status string `json:"status"`
	// Since and Until (RFC 3339) bound the deliveries' creation time: since ≤ created <
	// until. Since is required, except for parked deliveries (default: the oldest); until
	// defaults to now.
	Since string  `json:"since"`
	Until *string `json:"until"`
	// DryRun counts and changes nothing.
	DryRun bool `json:"dry_run"`
}

// RedeliverManyResult is what one call of a bulk redelivery did. Count deliveries were made
// pending (same event ids); more says that matching ones are left: call again. A dry run's
// count is every match, and more then says that it takes more than one call of at most
// limit.
type RedeliverManyResult struct {
	Count  int  `json:"count"`
	DryRun bool `json:"dry_run"`
	Limit  int  `json:"limit"`
	More   bool `json:"more"`
}

func (s *Server) deliveriesRedeliverMany(c *call) error {
	var in RedeliverMany
	if err := c.decode(&in); err != nil {
		return err
	}
	since, err := parseTime("since", in.Since)
	if err != nil {
		return err
	}
	var until time.Time // null or absent: now
	if in.Until != nil {
		if until, err = parseTime("until", *in.Until); err != nil {
			return err
		}
	}
	n, more, err := s.svc.RedeliverMany(c.r.Context(), c.project.ID, c.p["webhook_name"],
		service.RedeliverParams{Status: in.Status, Since: since, Until: until, DryRun: in.DryRun})
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, RedeliverManyResult{Count: n, DryRun: in.DryRun, Limit: service.RedeliverManyLimit, More: more})
}

// parseTime reads an optional RFC 3339 time of a body field ("" is the zero time).
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, ubihooks.Errorf(ubihooks.EINVALID, "%s must be an RFC 3339 time such as 2025-01-02T15:04:05Z, got %q", field, s)
	}
	return t, nil
}
