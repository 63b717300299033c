package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// WebhookTestDetail is a webhook test.
type WebhookTestDetail struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	ErrorMessage *string `json:"error_message"`
}

func webhookTestDetail(t *ubihooks.WebhookTest) WebhookTestDetail {
	return WebhookTestDetail{ID: t.ID, Status: string(t.Status), ErrorMessage: strPtr(t.ErrorMessage)}
}

func (s *Server) webhookTestsCreate(c *call) error {
	var in ubihooks.WebhookTestCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	t, err := s.svc.CreateWebhookTest(c.r.Context(), c.project, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, webhookTestDetail(t))
}

func (s *Server) webhookTestsGet(c *call) error {
	t, err := s.svc.GetWebhookTest(c.r.Context(), c.project.ID, c.p["test_id"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookTestDetail(t))
}
