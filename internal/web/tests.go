package web

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

// testView is a webhook test as its panel shows it.
type testView struct {
	T        *ubihooks.WebhookTest
	Attempts []*ubihooks.Attempt
	Href     string
}

func (t *testView) Pending() bool { return t != nil && t.T.Status == ubihooks.TestPending }

// testAnswer answers a Test button: the panel alone for the script (which polls it), or,
// without the script, a redirect to the test's page (which refreshes itself). A test that
// could not start is shown at its field.
func (s *Server) testAnswer(c *call, f *webhookForm, t *ubihooks.WebhookTest, err error) error {
	if err != nil {
		return s.refuseForm(c, f, err)
	}
	return s.testStarted(c, t)
}

// testStarted answers a test that started: its panel for the script, or its page.
func (s *Server) testStarted(c *call, t *ubihooks.WebhookTest) error {
	href := c.base() + "/tests/" + pathEscape(t.ID)
	if c.r.Header.Get("X-UI-Fragment") != "" {
		return c.render(http.StatusCreated, "testpanel", &page{Data: &testView{T: t, Href: href}})
	}
	http.Redirect(c.w, c.r, href, http.StatusSeeOther)
	return nil
}

// webhookTest tests a saved webhook as it is stored, secrets included.
func (s *Server) webhookTest(c *call) error {
	name := c.r.PathValue("webhook")
	t, err := s.svc.TestSavedWebhook(c.r.Context(), c.project, name, nil)
	if err != nil {
		return err
	}
	return s.testStarted(c, t)
}

func (s *Server) testPage(c *call) error {
	id := c.r.PathValue("test")
	t, attempts, err := s.svc.GetWebhookTestDetail(c.r.Context(), c.project.ID, id)
	if err != nil {
		return err
	}
	tv := &testView{T: t, Attempts: attempts, Href: c.base() + "/tests/" + pathEscape(t.ID)}
	return c.render(http.StatusOK, "test", &page{Title: "Webhook test", Nav: "webhooks", Poll: tv.Pending(),
		Crumbs: []crumb{{"Webhooks", c.base() + "/webhooks"}, {"Test " + t.ID, ""}}, Data: tv})
}
