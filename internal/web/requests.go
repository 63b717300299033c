package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// requestsPage is how many requests a page lists.
const requestsPage = 50

// object resolves the {kind}/{object} of a request route.
func (s *Server) object(c *call) (*ubihooks.Object, error) {
	var t ubihooks.ObjectType
	switch c.r.PathValue("kind") {
	case "deployments":
		t = ubihooks.ObjectDeployment
	case "pipelines":
		t = ubihooks.ObjectPipeline
	default:
		return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "no such page: %s", c.r.URL.Path)
	}
	return s.svc.GetObject(c.r.Context(), c.project.ID, t, c.r.PathValue("object"))
}

func (c *call) objectBase(o *ubihooks.Object) string {
	return c.base() + "/" + string(o.Type) + "s/" + pathEscape(o.Name)
}

type requestListData struct {
	O        *ubihooks.Object
	Versions []*ubihooks.Version
	Status   string
	Version  string
	Offset   int
	Next     int
	Requests []*ubihooks.Request
	Live     bool
	Input    string
	Statuses []ubihooks.RequestStatus
	Base     string
}

func (s *Server) requestListPage(c *call, status int, ferr *formError, input string) error {
	ctx := c.r.Context()
	o, err := s.object(c)
	if err != nil {
		return err
	}
	v := c.r.URL.Query()
	d := &requestListData{O: o, Status: v.Get("status"), Version: v.Get("version"), Input: input, Base: c.objectBase(o),
		Statuses: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing, ubihooks.RequestCompleted, ubihooks.RequestFailed, ubihooks.RequestCancelled}}
	d.Offset, _ = strconv.Atoi(v.Get("offset"))
	if d.Offset < 0 {
		d.Offset = 0
	}
	if d.Versions, err = s.svc.ListVersions(ctx, o, nil); err != nil {
		return err
	}
	f := ubihooks.RequestFilter{ProjectID: c.project.ID, ObjectID: o.ID, Status: ubihooks.RequestStatus(d.Status), Limit: requestsPage, Offset: d.Offset}
	if d.Version != "" {
		ver, err := s.svc.GetVersion(ctx, o, d.Version)
		if err != nil {
			return err
		}
		f.VersionID = ver.ID
	}
	d.Requests, err = s.svc.ListRequests(ctx, f)
	if ubihooks.ErrorCode(err) == ubihooks.EINVALID && ferr == nil {
		ferr, status = &formError{Message: ubihooks.ErrorMessage(err), Field: "status"}, statusRefused
	} else if err != nil && ubihooks.ErrorCode(err) != ubihooks.EINVALID {
		return err
	}
	if len(d.Requests) == requestsPage {
		d.Next = d.Offset + requestsPage
	}
	for _, r := range d.Requests {
		if !r.Status.Final() {
			d.Live = true
		}
	}
	return c.render(status, "requests", &page{Title: "Requests of " + o.Name, Nav: "overview", Error: ferr,
		Crumbs: []crumb{{"Overview", c.base() + "/"}, {o.Name, ""}, {"Requests", ""}}, Data: d})
}

func (s *Server) requestList(c *call) error { return s.requestListPage(c, http.StatusOK, nil, "") }

// requestCreate sends requests from the form: one JSON input, or with "batch" a JSON
// array of inputs, through the API's batch operation (answered at once, pending).
func (s *Server) requestCreate(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	if err := c.r.ParseForm(); err != nil {
		return ubihooks.Errorf(ubihooks.EINVALID, "the form could not be read: %v", err)
	}
	input := c.r.PostForm.Get("input")
	ferr, err := asFormError(s.sendRequests(c, o, input, c.r.PostForm.Get("version"), c.r.PostForm.Get("batch") != ""))
	if err != nil {
		return err
	}
	if ferr != nil {
		ferr.Field = "input"
		return s.requestListPage(c, statusRefused, ferr, input)
	}
	http.Redirect(c.w, c.r, c.objectBase(o)+"/requests?done=sent", http.StatusSeeOther)
	return nil
}

func (s *Server) sendRequests(c *call, o *ubihooks.Object, input, version string, batch bool) error {
	raw := strings.TrimSpace(input)
	if raw == "" {
		return ubihooks.Errorf(ubihooks.EINVALID, "input is required: the request's input as JSON")
	}
	if !json.Valid([]byte(raw)) {
		return ubihooks.Errorf(ubihooks.EINVALID, "input must be JSON (a plain-text input is a JSON string, in double quotes)")
	}
	inputs := []json.RawMessage{json.RawMessage(raw)}
	if batch {
		if err := json.Unmarshal([]byte(raw), &inputs); err != nil {
			return ubihooks.Errorf(ubihooks.EINVALID, "input must be a JSON array of inputs when sending a batch")
		}
	}
	_, v, err := s.svc.ResolveVersion(c.r.Context(), service.ObjectRef{ProjectID: c.project.ID, Type: o.Type, Name: o.Name}, version)
	if err != nil {
		return err
	}
	timeout, err := service.RequestTimeout(o.Type, nil)
	if err != nil {
		return err
	}
	_, err = s.svc.CreateRequests(c.r.Context(), service.CreateRequestsParams{Project: c.project, Object: o, Version: v, Inputs: inputs, Batch: true, Timeout: timeout})
	return err
}

type requestData struct {
	O          *ubihooks.Object
	R          *ubihooks.Request
	Steps      []*ubihooks.Request
	Deliveries []*ubihooks.Delivery
	Live       bool
	Base       string
}

func (s *Server) requestPage(c *call, status int, ferr *formError) error {
	ctx := c.r.Context()
	o, err := s.object(c)
	if err != nil {
		return err
	}
	r, err := s.svc.GetRequest(ctx, o, "", c.r.PathValue("request"))
	if err != nil {
		return err
	}
	d := &requestData{O: o, R: r, Base: c.objectBase(o), Live: !r.Status.Final()}
	if o.Type == ubihooks.ObjectPipeline {
		if d.Steps, err = s.svc.PipelineSteps(ctx, r); err != nil {
			return err
		}
	}
	if d.Deliveries, err = s.svc.SearchDeliveries(ctx, c.project.ID, service.DeliveryQuery{RequestID: r.ID, Limit: 200}); err != nil {
		return err
	}
	for _, x := range d.Deliveries {
		if x.Status == ubihooks.DeliveryPending || x.Status == ubihooks.DeliverySending {
			d.Live = true
		}
	}
	return c.render(status, "request", &page{Title: "Request " + r.ID, Nav: "overview", Error: ferr, Poll: d.Live,
		Crumbs: []crumb{{"Overview", c.base() + "/"}, {o.Name, d.Base + "/requests"}, {"Request " + r.ID, ""}}, Data: d})
}

func (s *Server) requestDetail(c *call) error { return s.requestPage(c, http.StatusOK, nil) }

func (s *Server) requestCancel(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	r, err := s.svc.GetRequest(c.r.Context(), o, "", c.r.PathValue("request"))
	if err != nil {
		return err
	}
	if _, err := s.svc.CancelRequest(c.r.Context(), r); err != nil {
		if ubihooks.ErrorCode(err) == ubihooks.EINVALID {
			return s.requestPage(c, statusRefused, &formError{Message: ubihooks.ErrorMessage(err)})
		}
		return err
	}
	http.Redirect(c.w, c.r, c.objectBase(o)+"/requests/"+pathEscape(r.ID)+"?done=cancelled", http.StatusSeeOther)
	return nil
}
