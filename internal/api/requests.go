package api

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// RequestDetail is a deployment or pipeline request. It carries the union of the client's
// request models (create response, single detail, list and batch items): the client reads
// only the keys its model knows.
type RequestDetail struct {
	ID                 string          `json:"id"`
	Deployment         *string         `json:"deployment,omitempty"`
	Pipeline           *string         `json:"pipeline,omitempty"`
	Version            *string         `json:"version"`
	Status             string          `json:"status"`
	Success            bool            `json:"success"`
	TimeCreated        *string         `json:"time_created"`
	TimeStarted        *string         `json:"time_started"`
	TimeCompleted      *string         `json:"time_completed"`
	InputSize          int             `json:"input_size"`
	OutputSize         int             `json:"output_size"`
	RequestData        json.RawMessage `json:"request_data"`
	Result             json.RawMessage `json:"result"`
	ErrorMessage       *string         `json:"error_message"`
	Timeout            int             `json:"timeout"`
	PipelineTimeout    *int            `json:"pipeline_timeout,omitempty"`
	DeploymentRequests []StepDetail    `json:"deployment_requests,omitempty"`
	OperatorRequests   []StepDetail    `json:"operator_requests,omitempty"`
	PipelineRequests   []StepDetail    `json:"pipeline_requests,omitempty"`
	Origin             map[string]any  `json:"origin"`
}

// StepDetail is a pipeline step's deployment request.
type StepDetail struct {
	ID             string  `json:"id"`
	PipelineObject *string `json:"pipeline_object"`
	Deployment     string  `json:"deployment"`
	Version        string  `json:"version"`
	Status         string  `json:"status"`
	Success        bool    `json:"success"`
	ErrorMessage   *string `json:"error_message"`
	SequenceID     string  `json:"sequence_id"`
	TimeCreated    *string `json:"time_created"`
	TimeStarted    *string `json:"time_started"`
	TimeCompleted  *string `json:"time_completed"`
}

// RequestUpdate is the body of a request PATCH.
type RequestUpdate struct {
	Status string `json:"status"`
}

func requestDetail(r *ubihooks.Request, withData bool) RequestDetail {
	d := RequestDetail{ID: r.ID, Version: strPtr(r.VersionName), Status: string(r.Status), Success: r.Status == ubihooks.RequestCompleted,
		TimeCreated: isoTime(r.CreatedAt), TimeStarted: isoTime(r.StartedAt), TimeCompleted: isoTime(r.CompletedAt),
		InputSize: len(r.Input), OutputSize: len(r.Result), ErrorMessage: strPtr(r.ErrorMessage), Timeout: int(r.Timeout.Seconds()),
		Origin: map[string]any{}}
	name := r.ObjectName
	if r.ObjectType == ubihooks.ObjectPipeline {
		d.Pipeline = &name
		t := d.Timeout
		d.PipelineTimeout = &t
	} else {
		d.Deployment = &name
	}
	if withData {
		d.RequestData, d.Result = r.Input, r.Result
	}
	if d.RequestData == nil {
		d.RequestData = json.RawMessage("null")
	}
	if d.Result == nil {
		d.Result = json.RawMessage("null")
	}
	return d
}

func (s *Server) pipelineDetail(ctx context.Context, r *ubihooks.Request) (RequestDetail, error) {
	d := requestDetail(r, true)
	steps, err := s.svc.PipelineSteps(ctx, r)
	if err != nil {
		return d, err
	}
	d.DeploymentRequests, d.OperatorRequests, d.PipelineRequests = []StepDetail{}, []StepDetail{}, []StepDetail{}
	for _, st := range steps {
		d.DeploymentRequests = append(d.DeploymentRequests, StepDetail{ID: st.ID, PipelineObject: strPtr(st.Origin),
			Deployment: st.ObjectName, Version: st.VersionName, Status: string(st.Status), Success: st.Status == ubihooks.RequestCompleted,
			ErrorMessage: strPtr(st.ErrorMessage), SequenceID: strconv.Itoa(st.Sequence), TimeCreated: isoTime(st.CreatedAt),
			TimeStarted: isoTime(st.StartedAt), TimeCompleted: isoTime(st.CompletedAt)})
	}
	return d, nil
}

// writeRequest answers 200 with a request's detail.
func (s *Server) writeRequest(c *call, r *ubihooks.Request) error {
	d, err := s.detail(c.r.Context(), r)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, d)
}

func (s *Server) detail(ctx context.Context, r *ubihooks.Request) (RequestDetail, error) {
	if r.ObjectType == ubihooks.ObjectPipeline {
		return s.pipelineDetail(ctx, r)
	}
	return requestDetail(r, true), nil
}

// target resolves the object and version of a request route; version "" means the
// default version at this moment.
func (s *Server) target(c *call) (*ubihooks.Object, *ubihooks.Version, error) {
	t := objectType(c)
	return s.svc.ResolveVersion(c.r.Context(), c.project.ID, t, c.p[objectParam(t)], c.p["version"])
}

func (c *call) timeoutParam(t ubihooks.ObjectType) (time.Duration, error) {
	q := c.r.URL.Query().Get("timeout")
	if q == "" {
		return service.RequestTimeout(t, nil)
	}
	n, err := strconv.Atoi(q)
	if err != nil {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "query parameter timeout must be an integer number of seconds, got %q", q)
	}
	return service.RequestTimeout(t, &n)
}

// requestInput reads one input: a text/plain body is a plain string; anything else is JSON.
func (c *call) requestInput() (json.RawMessage, error) {
	body, err := c.readBody(MaxRequestInputBytes)
	if err != nil {
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt == "text/plain" {
		b, _ := json.Marshal(string(body))
		return b, nil
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "request body is required: the request's input")
	}
	if !json.Valid(body) {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "malformed JSON: the request body is not valid JSON (send plain input as text/plain or as a JSON string)")
	}
	return body, nil
}

func (s *Server) requestsCreate(c *call) error {
	o, v, err := s.target(c)
	if err != nil {
		return err
	}
	timeout, err := c.timeoutParam(o.Type)
	if err != nil {
		return err
	}
	in, err := c.requestInput()
	if err != nil {
		return err
	}
	rs, err := s.svc.CreateRequests(c.r.Context(), c.project, o, v, []json.RawMessage{in}, false, timeout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), timeout)
	defer cancel()
	r, err := s.svc.WaitRequest(ctx, c.project.ID, rs[0].ID)
	if err != nil && c.r.Context().Err() != nil {
		return err // the caller left; the request runs on
	}
	if r == nil || !r.Status.Final() {
		if r, err = s.svc.TimeoutStale(context.WithoutCancel(c.r.Context()), rs[0]); err != nil {
			return err
		}
	}
	return s.writeRequest(c, r)
}

func (s *Server) requestsBatch(c *call) error {
	o, v, err := s.target(c)
	if err != nil {
		return err
	}
	timeout, err := c.timeoutParam(o.Type)
	if err != nil {
		return err
	}
	var inputs []json.RawMessage
	if err := c.decode(&inputs); err != nil {
		return err
	}
	rs, err := s.svc.CreateRequests(c.r.Context(), c.project, o, v, inputs, true, timeout)
	if err != nil {
		return err
	}
	out := make([]RequestDetail, len(rs))
	for i, r := range rs {
		out[i] = requestDetail(r, false)
	}
	return c.json(http.StatusCreated, out)
}

// objectAndVersionFilter returns the object of the route and the version named in it.
func (s *Server) objectAndVersionFilter(c *call) (*ubihooks.Object, string, error) {
	o, err := s.object(c)
	if err != nil {
		return nil, "", err
	}
	if name := c.p["version"]; name != "" {
		if _, err := s.svc.GetVersion(c.r.Context(), o, name); err != nil {
			return nil, "", err
		}
		return o, name, nil
	}
	return o, "", nil
}

func (s *Server) requestsList(c *call) error {
	o, version, err := s.objectAndVersionFilter(c)
	if err != nil {
		return err
	}
	limit, err := c.queryInt("limit", 50, 1, 1000)
	if err != nil {
		return err
	}
	offset, err := c.queryInt("offset", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	f := ubihooks.RequestFilter{ProjectID: c.project.ID, ObjectID: o.ID, Status: ubihooks.RequestStatus(c.r.URL.Query().Get("status")), Limit: limit, Offset: offset}
	if version != "" {
		v, _ := s.svc.GetVersion(c.r.Context(), o, version)
		f.VersionID = v.ID
	}
	rs, err := s.svc.ListRequests(c.r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]RequestDetail, len(rs))
	for i, r := range rs {
		out[i] = requestDetail(r, false)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) requestsGet(c *call) error {
	o, version, err := s.objectAndVersionFilter(c)
	if err != nil {
		return err
	}
	r, err := s.svc.GetRequest(c.r.Context(), o, version, c.p["request_id"])
	if err != nil {
		return err
	}
	return s.writeRequest(c, r)
}

func (s *Server) requestsUpdate(c *call) error {
	o, version, err := s.objectAndVersionFilter(c)
	if err != nil {
		return err
	}
	var in RequestUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.Status != string(ubihooks.RequestCancelled) {
		return ubihooks.Errorf(ubihooks.EINVALID, `status must be "cancelled": a request can only be cancelled`)
	}
	r, err := s.svc.GetRequest(c.r.Context(), o, version, c.p["request_id"])
	if err != nil {
		return err
	}
	if r, err = s.svc.CancelRequest(c.r.Context(), r); err != nil {
		return err
	}
	return s.writeRequest(c, r)
}

func (s *Server) requestIDs(c *call) (*ubihooks.Object, string, []string, error) {
	o, version, err := s.objectAndVersionFilter(c)
	if err != nil {
		return nil, "", nil, err
	}
	var ids []string
	if err := c.decode(&ids); err != nil {
		return nil, "", nil, err
	}
	if len(ids) == 0 || len(ids) > service.MaxBatch {
		return nil, "", nil, ubihooks.Errorf(ubihooks.EINVALID, "send a JSON array of 1 to %d request ids", service.MaxBatch)
	}
	return o, version, ids, nil
}

// requestsCancel cancels every pending or processing request of the list; unknown ids are
// a 404 and finished ones a 400, checked before anything is cancelled.
func (s *Server) requestsCancel(c *call) error {
	o, version, ids, err := s.requestIDs(c)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(ids)) // an id listed twice is cancelled once, not refused the second time
	ids = slices.DeleteFunc(ids, func(id string) bool { dup := seen[id]; seen[id] = true; return dup })
	rs := make([]*ubihooks.Request, len(ids))
	for i, id := range ids {
		if rs[i], err = s.svc.GetRequest(c.r.Context(), o, version, id); err != nil {
			return err
		}
		if rs[i].Status.Final() {
			return ubihooks.Errorf(ubihooks.EINVALID, "request %s is already %s and cannot be cancelled; nothing was cancelled", id, rs[i].Status)
		}
	}
	out := make([]RequestDetail, 0, len(rs))
	for _, r := range rs {
		r2, err := s.svc.CancelRequest(c.r.Context(), r)
		if err != nil {
			return err
		}
		out = append(out, requestDetail(r2, false))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) requestsCollect(c *call) error {
	o, version, ids, err := s.requestIDs(c)
	if err != nil {
		return err
	}
	out := make([]RequestDetail, 0, len(ids))
	for _, id := range ids {
		r, err := s.svc.GetRequest(c.r.Context(), o, version, id)
		if err != nil {
			return err
		}
		d, err := s.detail(c.r.Context(), r)
		if err != nil {
			return err
		}
		out = append(out, d)
	}
	return c.json(http.StatusOK, out)
}
