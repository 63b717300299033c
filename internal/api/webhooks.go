package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// HeaderDetail is a webhook header; a protected header's value is always null.
type HeaderDetail struct {
	Key       string  `json:"key"`
	Value     *string `json:"value"`
	Protected bool    `json:"protected"`
}

// WebhookDetail is a webhook.
type WebhookDetail struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	URL           string            `json:"url"`
	Headers       []HeaderDetail    `json:"headers"`
	ObjectType    string            `json:"object_type"`
	ObjectName    string            `json:"object_name"`
	Version       *string           `json:"version"`
	Description   string            `json:"description"`
	Labels        map[string]string `json:"labels"`
	Event         string            `json:"event"`
	Timeout       int               `json:"timeout"`
	Enabled       bool              `json:"enabled"`
	Retry         bool              `json:"retry"`
	IncludeResult bool              `json:"include_result"`
	CreationDate  *string           `json:"creation_date"`
	LastUpdated   *string           `json:"last_updated"`

	// ubihooks extensions (clients that do not know them ignore them). DisabledReason is
	// set (with DisabledAt) when ubihooks disabled the webhook because its receiver kept
	// failing: its events are then parked, not sent, until it is enabled again.
	// FailingSince and ConsecutiveFailures describe the current run of failed attempts
	// (null and 0 once an attempt succeeds).
	DisabledReason      *string `json:"disabled_reason"`
	DisabledAt          *string `json:"disabled_at"`
	FailingSince        *string `json:"failing_since"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
}

func webhookDetail(w *ubihooks.Webhook) WebhookDetail {
	hs := make([]HeaderDetail, len(w.Headers))
	for i, h := range w.Headers {
		hs[i] = HeaderDetail{Key: h.Key, Protected: h.Protected}
		if !h.Protected {
			hs[i].Value = strPtr(h.Value)
		}
	}
	return WebhookDetail{ID: w.ID, Name: w.Name, URL: w.URL, Headers: hs, ObjectType: string(w.ObjectType), ObjectName: w.ObjectName,
		Version: strPtr(w.Version), Description: w.Description, Labels: nonNilLabels(w.Labels), Event: string(w.Event),
		Timeout: int(w.Timeout.Seconds()), Enabled: w.Enabled, Retry: w.Retry, IncludeResult: w.IncludeResult,
		CreationDate: isoTime(w.CreatedAt), LastUpdated: isoTime(w.UpdatedAt),
		DisabledReason: strPtr(w.DisabledReason), DisabledAt: isoTime(w.DisabledAt), FailingSince: isoTime(w.FailingSince),
		ConsecutiveFailures: w.ConsecutiveFailures}
}

func (s *Server) webhooksCreate(c *call) error {
	var in ubihooks.WebhookCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	w, err := s.svc.CreateWebhook(c.r.Context(), c.project.ID, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, webhookDetail(w))
}

func (s *Server) webhooksList(c *call) error {
	q := c.r.URL.Query()
	ws, err := s.svc.ListWebhooks(c.r.Context(), c.project.ID, service.WebhookQuery{ObjectType: q.Get("object_type"), ObjectName: q.Get("object_name"), Event: q.Get("event"), Labels: q.Get("labels")})
	if err != nil {
		return err
	}
	out := make([]WebhookDetail, len(ws))
	for i, w := range ws {
		out[i] = webhookDetail(w)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) webhooksGet(c *call) error {
	w, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookDetail(w))
}

func (s *Server) webhooksUpdate(c *call) error {
	var in ubihooks.WebhookUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	w, err := s.svc.UpdateWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookDetail(w))
}

func (s *Server) webhooksDelete(c *call) error {
	if err := s.svc.DeleteWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"]); err != nil {
		return err
	}
	return c.noContent()
}
