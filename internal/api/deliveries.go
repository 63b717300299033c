package api

import (
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
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

func (s *Server) deliveriesList(c *call) error {
	limit, err := c.queryInt("limit", 100, 1, 500)
	if err != nil {
		return err
	}
	ds, err := s.svc.ListDeliveries(c.r.Context(), c.project.ID, c.p["webhook_name"], limit)
	if err != nil {
		return err
	}
	out := make([]DeliveryDetail, len(ds))
	for i, d := range ds {
		out[i] = deliveryDetail(d, nil)
	}
	return c.json(http.StatusOK, out)
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
