package api

import (
	"bytes"
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// WebhookTestDetail is a webhook test. CreatedAt and AttemptList are ubihooks extensions.
type WebhookTestDetail struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	ErrorMessage *string `json:"error_message"`
	CreatedAt    *string `json:"created_at"`
	// AttemptList holds the HTTP calls made so far, in order ([] before the first).
	AttemptList []AttemptDetail `json:"attempt_list"`
}

func webhookTestDetail(t *ubihooks.WebhookTest, attempts []*ubihooks.Attempt) WebhookTestDetail {
	out := WebhookTestDetail{ID: t.ID, Status: string(t.Status), ErrorMessage: strPtr(t.ErrorMessage), CreatedAt: isoTime(t.CreatedAt),
		AttemptList: make([]AttemptDetail, len(attempts))}
	for i, a := range attempts {
		out.AttemptList[i] = attemptDetail(a)
	}
	return out
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
	return c.json(http.StatusCreated, webhookTestDetail(t, nil))
}

func (s *Server) webhookTestsGet(c *call) error {
	t, attempts, err := s.svc.GetWebhookTestDetail(c.r.Context(), c.project.ID, c.p["test_id"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookTestDetail(t, attempts))
}

// webhookTestsSaved tests a stored webhook; a body, when sent, changes fields for this test
// only, as a PATCH would.
func (s *Server) webhookTestsSaved(c *call) error {
	body, err := c.readBody(MaxBodyBytes)
	if err != nil {
		return err
	}
	var in *ubihooks.WebhookUpdate
	if len(bytes.TrimSpace(body)) > 0 {
		in = &ubihooks.WebhookUpdate{}
		if err := decodeJSON(body, in); err != nil {
			return err
		}
	}
	t, err := s.svc.TestSavedWebhook(c.r.Context(), c.project, c.p["webhook_name"], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, webhookTestDetail(t, nil))
}
