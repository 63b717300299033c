package web

import (
	"net/http"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// listQuery is the webhook list's filter, all in the URL so that a view can be shared.
type listQuery struct {
	Labels, ObjectType, Event, ObjectName, Q string
}

func (q listQuery) Any() bool { return q != listQuery{} }

type webhookRow struct {
	W     *ubihooks.Webhook
	Stats *ubihooks.WebhookStats
	// Default is the object's default version now, for a webhook that follows it.
	Default string
}

type webhookListData struct {
	Rows   []webhookRow
	Query  listQuery
	Events []ubihooks.EventType
}

func (c *call) base() string { return "/ui/p/" + pathEscape(c.project.Name) }

func (s *Server) webhookList(c *call) error {
	v := c.r.URL.Query()
	q := listQuery{Labels: v.Get("labels"), ObjectType: v.Get("object_type"), Event: v.Get("event"), ObjectName: v.Get("object_name"), Q: strings.TrimSpace(v.Get("q"))}
	pg := &page{Title: "Webhooks", Nav: "webhooks", Crumbs: []crumb{{"Overview", c.base() + "/"}, {"Webhooks", ""}}}
	data := webhookListData{Query: q, Events: ubihooks.EventTypes}
	pg.Data = &data
	ws, err := s.svc.ListWebhooks(c.r.Context(), c.project.ID, service.WebhookQuery{ObjectType: q.ObjectType, Event: q.Event, Labels: q.Labels, ObjectName: q.ObjectName})
	if ubihooks.ErrorCode(err) == ubihooks.EINVALID {
		pg.Error = &formError{Message: ubihooks.ErrorMessage(err), Field: errorField(ubihooks.ErrorMessage(err))}
		return c.render(statusRefused, "webhooks", pg)
	}
	if err != nil {
		return err
	}
	stats, err := s.statsByName(c, 24*time.Hour)
	if err != nil {
		return err
	}
	oc, err := s.choices(c)
	if err != nil {
		return err
	}
	defaults := map[string]string{}
	for _, os := range [][]*ubihooks.Object{oc.Deployments, oc.Experiments, oc.Pipelines} {
		for _, o := range os {
			defaults[string(o.Type)+":"+o.Name] = o.DefaultVersion
		}
	}
	needle := strings.ToLower(q.Q)
	for _, w := range ws {
		if needle != "" && !strings.Contains(strings.ToLower(w.Name), needle) && !strings.Contains(strings.ToLower(w.URL), needle) &&
			!strings.Contains(strings.ToLower(w.Description), needle) {
			continue
		}
		data.Rows = append(data.Rows, webhookRow{W: w, Stats: stats[w.Name], Default: defaults[string(w.ObjectType)+":"+w.ObjectName]})
	}
	return c.render(http.StatusOK, "webhooks", pg)
}

// statsByName returns the project's webhook stats over window by webhook name.
func (s *Server) statsByName(c *call, window time.Duration) (map[string]*ubihooks.WebhookStats, error) {
	all, err := s.svc.WebhookStats(c.r.Context(), c.project.ID, window, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]*ubihooks.WebhookStats, len(all))
	for _, st := range all {
		out[st.WebhookName] = st
	}
	return out, nil
}

// choices lists the project's objects for the form.
func (s *Server) choices(c *call) (objectChoices, error) {
	var oc objectChoices
	deps, err := s.svc.ListObjects(c.r.Context(), c.project.ID, ubihooks.ObjectDeployment, nil)
	if err != nil {
		return oc, err
	}
	for _, o := range deps {
		if o.Name == ubihooks.TrainingDeployment {
			oc.Experiments = append(oc.Experiments, o)
			continue
		}
		oc.Deployments = append(oc.Deployments, o)
	}
	oc.Pipelines, err = s.svc.ListObjects(c.r.Context(), c.project.ID, ubihooks.ObjectPipeline, nil)
	return oc, err
}

// fillChoices completes a form with the objects and the chosen object's versions.
func (s *Server) fillChoices(c *call, f *webhookForm) error {
	oc, err := s.choices(c)
	if err != nil {
		return err
	}
	f.Choices = oc
	if f.ObjectName == "" {
		return nil
	}
	t, err := ubihooks.ParseObjectType(f.ObjectType)
	if err != nil {
		return nil
	}
	o, err := s.svc.GetObject(c.r.Context(), c.project.ID, t, f.ObjectName)
	if err != nil {
		return nil // the save or test names the problem
	}
	f.Default = o.DefaultVersion
	vs, err := s.svc.ListVersions(c.r.Context(), o, nil)
	if err != nil {
		return err
	}
	for _, v := range vs {
		f.Versions = append(f.Versions, v.Name)
	}
	return nil
}

func (s *Server) formPage(c *call, f *webhookForm, status int, ferr *formError, test *testView) error {
	if err := s.fillChoices(c, f); err != nil {
		return err
	}
	pg := &page{Nav: "webhooks", Error: ferr, Data: &formData{Form: f, Events: ubihooks.EventTypes, Test: test}}
	if f.Edit {
		pg.Title = "Edit " + f.Original
		pg.Crumbs = []crumb{{"Webhooks", c.base() + "/webhooks"}, {f.Original, c.base() + "/webhooks/" + pathEscape(f.Original)}, {"Edit", ""}}
	} else {
		pg.Title = "New webhook"
		pg.Crumbs = []crumb{{"Webhooks", c.base() + "/webhooks"}, {"New webhook", ""}}
	}
	return c.render(status, "form", pg)
}

type formData struct {
	Form   *webhookForm
	Events []ubihooks.EventType
	Test   *testView
}

func (s *Server) webhookNew(c *call) error {
	v := c.r.URL.Query()
	f := &webhookForm{Timeout: "10", Enabled: true, ObjectType: v.Get("object_type"), ObjectName: v.Get("object_name"),
		Version: v.Get("version"), Event: v.Get("event")}
	if f.ObjectType == "" && f.ObjectName != "" {
		f.ObjectType = string(ubihooks.ObjectDeployment)
	}
	if f.ObjectName != "" {
		f.Object = f.ObjectType + ":" + f.ObjectName
	}
	return s.formPage(c, f, http.StatusOK, nil, nil)
}

// formError turns a service error into a form error; others are returned as they are.
func asFormError(err error) (*formError, error) {
	if err == nil {
		return nil, nil
	}
	switch ubihooks.ErrorCode(err) {
	case ubihooks.EINVALID, ubihooks.ECONFLICT, ubihooks.ENOTFOUND:
		msg := ubihooks.ErrorMessage(err)
		return &formError{Message: msg, Field: fieldOf(msg)}, nil
	}
	return nil, err
}

func (s *Server) webhookCreate(c *call) error {
	f, headers, labels, timeout, err := readWebhookForm(c.r, nil)
	if f == nil {
		return err
	}
	if err == nil && c.r.PostForm.Get("action") == "test" {
		t, terr := s.svc.CreateWebhookTest(c.r.Context(), c.project, f.test(headers, timeout))
		return s.testAnswer(c, f, t, terr)
	}
	if err == nil {
		var w *ubihooks.Webhook
		w, err = s.svc.CreateWebhook(c.r.Context(), c.project.ID, f.create(headers, labels, timeout))
		if err == nil {
			http.Redirect(c.w, c.r, c.base()+"/webhooks/"+pathEscape(w.Name)+"?done=created", http.StatusSeeOther)
			return nil
		}
	}
	return s.refuseForm(c, f, err)
}

// protectedKeys names a stored webhook's protected headers.
func protectedKeys(w *ubihooks.Webhook) map[string]bool {
	out := map[string]bool{}
	for _, h := range w.Headers {
		if h.Protected {
			out[h.Key] = true
		}
	}
	return out
}

func (s *Server) webhookEdit(c *call) error {
	w, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, c.r.PathValue("webhook"))
	if err != nil {
		return err
	}
	return s.formPage(c, formFromWebhook(w), http.StatusOK, nil, nil)
}

func (s *Server) webhookUpdate(c *call) error {
	name := c.r.PathValue("webhook")
	w, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, name)
	if err != nil {
		return err
	}
	f, headers, labels, timeout, err := readWebhookForm(c.r, protectedKeys(w))
	if f == nil {
		return err
	}
	f.Edit, f.Original, f.ObjectType, f.ObjectName, f.Object, f.Version = true, w.Name, string(w.ObjectType), w.ObjectName, string(w.ObjectType)+":"+w.ObjectName, w.Version
	in := f.update(headers, labels, timeout)
	if err == nil && c.r.PostForm.Get("action") == "test" {
		t, terr := s.svc.TestSavedWebhook(c.r.Context(), c.project, name, &in)
		return s.testAnswer(c, f, t, terr)
	}
	if err == nil {
		var saved *ubihooks.Webhook
		saved, err = s.svc.UpdateWebhook(c.r.Context(), c.project.ID, name, in)
		if err == nil {
			http.Redirect(c.w, c.r, c.base()+"/webhooks/"+pathEscape(saved.Name)+"?done=saved", http.StatusSeeOther)
			return nil
		}
	}
	return s.refuseForm(c, f, err)
}

func (s *Server) webhookEnable(c *call) error {
	name := c.r.PathValue("webhook")
	if err := c.r.ParseForm(); err != nil {
		return ubihooks.Errorf(ubihooks.EINVALID, "the form could not be read: %v", err)
	}
	on := c.r.PostForm.Get("enabled") == "true"
	if _, err := s.svc.UpdateWebhook(c.r.Context(), c.project.ID, name, ubihooks.WebhookUpdate{Enabled: &on}); err != nil {
		return err
	}
	done := "disabled"
	if on {
		done = "enabled"
	}
	http.Redirect(c.w, c.r, c.base()+"/webhooks/"+pathEscape(name)+"?done="+done, http.StatusSeeOther)
	return nil
}

func (s *Server) webhookDeleteForm(c *call) error {
	w, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, c.r.PathValue("webhook"))
	if err != nil {
		return err
	}
	return c.render(http.StatusOK, "delete", &page{Title: "Delete " + w.Name, Nav: "webhooks",
		Crumbs: []crumb{{"Webhooks", c.base() + "/webhooks"}, {w.Name, c.base() + "/webhooks/" + pathEscape(w.Name)}, {"Delete", ""}}, Data: w})
}

func (s *Server) webhookDelete(c *call) error {
	if err := s.svc.DeleteWebhook(c.r.Context(), c.project.ID, c.r.PathValue("webhook")); err != nil {
		return err
	}
	http.Redirect(c.w, c.r, c.base()+"/webhooks?done=deleted", http.StatusSeeOther)
	return nil
}

// refuseForm answers a save or a test that the service refused: the form again with the
// message at its field, or only the message for the script's in-place test.
func (s *Server) refuseForm(c *call, f *webhookForm, err error) error {
	ferr, err := asFormError(err)
	if err != nil {
		return err
	}
	if c.r.Header.Get("X-UI-Fragment") != "" {
		return c.render(statusRefused, "testpanel", &page{Error: ferr, Data: (*testView)(nil)})
	}
	return s.formPage(c, f, statusRefused, ferr, nil)
}
