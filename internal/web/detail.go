package web

import (
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// deliveriesPage is how many deliveries a page lists.
const deliveriesPage = 50

type deliveryFilter struct {
	Status, EventID, RequestID, Before string
}

func (f deliveryFilter) Any() bool { return f.Status != "" || f.EventID != "" || f.RequestID != "" }

type detailData struct {
	W          *ubihooks.Webhook
	Day, Week  *ubihooks.WebhookStats
	Deliveries []*ubihooks.Delivery
	Filter     deliveryFilter
	Next       string // the cursor of the next (older) page
	Live       bool   // something is pending: the list refreshes itself
	Statuses   []ubihooks.DeliveryStatus
	Error      *formError
	// Parked counts the deliveries kept while ubihooks disabled the webhook (More: over
	// the thousand that one redelivery sends); ParkedSince is the oldest one's creation
	// time as the recovery form takes it.
	Parked      int
	ParkedMore  bool
	ParkedSince string
}

func (s *Server) webhookDetail(c *call) error {
	ctx := c.r.Context()
	name := c.r.PathValue("webhook")
	w, err := s.svc.GetWebhook(ctx, c.project.ID, name)
	if err != nil {
		return err
	}
	v := c.r.URL.Query()
	d := &detailData{W: w, Filter: deliveryFilter{Status: v.Get("status"), EventID: v.Get("event_id"), RequestID: v.Get("request_id"), Before: v.Get("before")},
		Statuses: []ubihooks.DeliveryStatus{ubihooks.DeliveryPending, ubihooks.DeliverySending, ubihooks.DeliverySucceeded, ubihooks.DeliveryFailed,
			ubihooks.DeliveryParked}}
	// Parked deliveries are counted on their own partial index: cheap however many
	// deliveries the webhook has.
	if d.Parked, d.ParkedMore, err = s.svc.RedeliverMany(ctx, c.project.ID, name, service.RedeliverParams{Status: string(ubihooks.DeliveryParked),
		DryRun: true}); err != nil {
		return err
	}
	d.ParkedSince = w.CreatedAt.UTC().Format("2006-01-02T15:04")
	for _, win := range []struct {
		dur time.Duration
		dst **ubihooks.WebhookStats
	}{{24 * time.Hour, &d.Day}, {7 * 24 * time.Hour, &d.Week}} {
		st, err := s.svc.WebhookStats(ctx, c.project.ID, win.dur, name)
		if err != nil {
			return err
		}
		if len(st) > 0 {
			*win.dst = st[0]
		}
	}
	status := http.StatusOK
	ds, err := s.svc.ListDeliveries(ctx, c.project.ID, name, service.DeliveryQuery{Status: d.Filter.Status, EventID: d.Filter.EventID,
		RequestID: d.Filter.RequestID, Before: d.Filter.Before, Limit: deliveriesPage})
	if ubihooks.ErrorCode(err) == ubihooks.EINVALID {
		d.Error = &formError{Message: ubihooks.ErrorMessage(err), Field: errorField(ubihooks.ErrorMessage(err))}
		status = statusRefused
	} else if err != nil {
		return err
	}
	d.Deliveries = ds
	if len(ds) == deliveriesPage {
		d.Next = ds[len(ds)-1].ID
	}
	for _, x := range ds {
		if x.Status == ubihooks.DeliveryPending || x.Status == ubihooks.DeliverySending {
			d.Live = true
		}
	}
	return c.render(status, "webhook", &page{Title: w.Name, Nav: "webhooks", Poll: false, Error: d.Error,
		Crumbs: []crumb{{"Webhooks", c.base() + "/webhooks"}, {w.Name, ""}}, Data: d})
}

type deliveryData struct {
	Webhook  string
	D        *ubihooks.Delivery
	Attempts []*ubihooks.Attempt
	Live     bool
}

func (s *Server) deliveryPage(c *call, status int, ferr *formError) error {
	name, id := c.r.PathValue("webhook"), c.r.PathValue("delivery")
	d, attempts, err := s.svc.GetDelivery(c.r.Context(), c.project.ID, name, id)
	if err != nil {
		return err
	}
	live := d.Status == ubihooks.DeliveryPending || d.Status == ubihooks.DeliverySending
	return c.render(status, "delivery", &page{Title: "Delivery " + d.ID, Nav: "webhooks", Error: ferr, Poll: live,
		Crumbs: []crumb{{"Webhooks", c.base() + "/webhooks"}, {name, c.base() + "/webhooks/" + pathEscape(name)}, {"Delivery " + d.ID, ""}},
		Data:   &deliveryData{Webhook: name, D: d, Attempts: attempts, Live: live}})
}

func (s *Server) deliveryDetail(c *call) error { return s.deliveryPage(c, http.StatusOK, nil) }

func (s *Server) redeliver(c *call) error {
	name, id := c.r.PathValue("webhook"), c.r.PathValue("delivery")
	_, err := s.svc.Redeliver(c.r.Context(), c.project.ID, name, id)
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT {
		return s.deliveryPage(c, statusRefused, &formError{Message: ubihooks.ErrorMessage(err)})
	}
	if err != nil {
		return err
	}
	http.Redirect(c.w, c.r, c.base()+"/webhooks/"+pathEscape(name)+"/deliveries/"+pathEscape(id)+"?done=redelivered", http.StatusSeeOther)
	return nil
}

type recoverData struct {
	Webhook string
	Status  string
	Since   string // as the datetime-local input shows it (UTC)
	Count   int
	Counted bool
	Done    bool
	More    bool
}

// recoverParams reads the recovery form (query or body): status and a UTC start time.
func (c *call) recoverParams(get func(string) string) (*recoverData, service.RedeliverParams, error) {
	d := &recoverData{Webhook: c.r.PathValue("webhook"), Status: get("status"), Since: get("since")}
	if d.Status == "" {
		d.Status = string(ubihooks.DeliveryFailed)
	}
	p := service.RedeliverParams{Status: d.Status} // until now
	if d.Since == "" {
		d.Since = c.s.svc.Now().Add(-24 * time.Hour).Format("2006-01-02T15:04")
		return d, p, nil
	}
	t, err := parseLocal(d.Since)
	if err != nil {
		return d, p, err
	}
	p.Since = t
	d.Counted = true
	return d, p, nil
}

// parseLocal reads a datetime-local value, taken as UTC.
func parseLocal(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, ubihooks.Errorf(ubihooks.EINVALID, "since must be a date and time like 2026-01-31T14:00, got %q", v)
}

func (s *Server) recoverPage(c *call, status int, d *recoverData, ferr *formError) error {
	return c.render(status, "recover", &page{Title: "Recover deliveries", Nav: "webhooks", Error: ferr,
		Crumbs: []crumb{{"Webhooks", c.base() + "/webhooks"}, {d.Webhook, c.base() + "/webhooks/" + pathEscape(d.Webhook)}, {"Recover", ""}}, Data: d})
}

func (s *Server) recoverForm(c *call) error {
	if _, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, c.r.PathValue("webhook")); err != nil {
		return err
	}
	d, p, err := c.recoverParams(c.r.URL.Query().Get)
	if err == nil && d.Counted {
		p.DryRun = true
		d.Count, d.More, err = s.svc.RedeliverMany(c.r.Context(), c.project.ID, d.Webhook, p)
	}
	if ferr, err := asFormError(err); err != nil {
		return err
	} else if ferr != nil {
		d.Counted = false
		return s.recoverPage(c, statusRefused, d, ferr)
	}
	return s.recoverPage(c, http.StatusOK, d, nil)
}

func (s *Server) recover(c *call) error {
	if err := c.r.ParseForm(); err != nil {
		return ubihooks.Errorf(ubihooks.EINVALID, "the form could not be read: %v", err)
	}
	d, p, err := c.recoverParams(c.r.PostForm.Get)
	if err == nil && !d.Counted {
		err = ubihooks.Errorf(ubihooks.EINVALID, "since is required")
	}
	if err == nil {
		d.Count, d.More, err = s.svc.RedeliverMany(c.r.Context(), c.project.ID, d.Webhook, p)
		d.Done = err == nil
	}
	if ferr, err := asFormError(err); err != nil {
		return err
	} else if ferr != nil {
		return s.recoverPage(c, statusRefused, d, ferr)
	}
	return s.recoverPage(c, http.StatusOK, d, nil)
}

type searchData struct {
	Q          string
	By         string // "event id" or "request id"
	Deliveries []*ubihooks.Delivery
}

// search finds deliveries across the project's webhooks by event id, else by request id.
func (s *Server) search(c *call) error {
	q := c.r.URL.Query().Get("q")
	d := &searchData{Q: q}
	pg := &page{Title: "Find deliveries", Nav: "", Crumbs: []crumb{{"Overview", c.base() + "/"}, {"Find deliveries", ""}}, Data: d}
	if q == "" {
		return c.render(http.StatusOK, "search", pg)
	}
	ctx := c.r.Context()
	ds, err := s.svc.SearchDeliveries(ctx, c.project.ID, service.DeliveryQuery{EventID: q, Limit: 200})
	d.By = "event id"
	if err == nil && len(ds) == 0 {
		ds, err = s.svc.SearchDeliveries(ctx, c.project.ID, service.DeliveryQuery{RequestID: q, Limit: 200})
		d.By = "request id"
	}
	if ferr, err := asFormError(err); err != nil {
		return err
	} else if ferr != nil {
		pg.Error = ferr
		return c.render(statusRefused, "search", pg)
	}
	d.Deliveries = ds
	return c.render(http.StatusOK, "search", pg)
}
