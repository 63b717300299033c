package api

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
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

// pipelineDetail is a pipeline request's detail with its steps, in order.
func pipelineDetail(r *ubihooks.Request, steps []*ubihooks.Request) RequestDetail {
	d := requestDetail(r, true)
	d.DeploymentRequests, d.OperatorRequests, d.PipelineRequests = []StepDetail{}, []StepDetail{}, []StepDetail{}
	for _, st := range steps {
		d.DeploymentRequests = append(d.DeploymentRequests, StepDetail{ID: st.ID, PipelineObject: strPtr(st.Origin),
			Deployment: st.ObjectName, Version: st.VersionName, Status: string(st.Status), Success: st.Status == ubihooks.RequestCompleted,
			ErrorMessage: strPtr(st.ErrorMessage), SequenceID: strconv.Itoa(st.Sequence), TimeCreated: isoTime(st.CreatedAt),
			TimeStarted: isoTime(st.StartedAt), TimeCompleted: isoTime(st.CompletedAt)})
	}
	return d
}

// writeRequest answers 200 with a request's detail.
func (s *Server) writeRequest(c *call, r *ubihooks.Request) error {
	d, err := s.detail(c.r.Context(), r)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, d)
}

// detail is a request's detail with its data, and with its steps when it is a pipeline
// request.
func (s *Server) detail(ctx context.Context, r *ubihooks.Request) (RequestDetail, error) {
	if r.ObjectType != ubihooks.ObjectPipeline {
		return requestDetail(r, true), nil
	}
	steps, err := s.svc.PipelineSteps(ctx, r)
	if err != nil {
		return RequestDetail{}, err
	}
	return pipelineDetail(r, steps), nil
}

// target resolves the object and version of a request route; version "" means the
// default version at this moment.
func (s *Server) target(c *call) (*ubihooks.Object, *ubihooks.Version, error) {
	t := objectType(c)
	return s.svc.ResolveVersion(c.r.Context(), service.ObjectRef{ProjectID: c.project.ID, Type: t, Name: c.p[objectParam(t)]}, c.p["version"])
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
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "request body is required: the request's input")
	}
	if !json.Valid(body) {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "malformed JSON: the request body is not valid JSON (send plain input as text/plain or as a JSON string)")
	}
	return body, nil
}

// requestsCreate runs a direct request. The target and the timeout are checked before the
// body is read, so that a call to an unknown object is a 404 whatever it sends, and its
// input (up to MaxRequestInputBytes) is not read for nothing.
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
	r, steps, err := s.svc.RunRequest(c.r.Context(), service.RunRequestParams{Project: c.project, Object: o, Version: v, Input: in, Timeout: timeout})
	if err != nil {
		return err
	}
	if r.ObjectType == ubihooks.ObjectPipeline {
		return c.json(http.StatusOK, pipelineDetail(r, steps))
	}
	return c.json(http.StatusOK, requestDetail(r, true))
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
	rs, err := s.svc.CreateRequests(c.r.Context(), service.CreateRequestsParams{Project: c.project, Object: o, Version: v, Inputs: inputs, Batch: true, Timeout: timeout})
	if err != nil {
		return err
	}
	out := make([]RequestDetail, len(rs))
	for i, r := range rs {
		out[i] = requestDetail(r, false)
	}
	return c.json(http.StatusCreated, out)
}

// scope returns the object of a request route and the version named in it (nil when the
// route names none: requests of every version).
func (s *Server) scope(c *call) (*ubihooks.Object, *ubihooks.Version, error) {
	o, err := s.object(c)
	if err != nil {
		return nil, nil, err
	}
	name := c.p["version"]
	if name == "" {
		return o, nil, nil
	}
	v, err := s.svc.GetVersion(c.r.Context(), o, name)
	if err != nil {
		return nil, nil, err
	}
	return o, v, nil
}

// versionName is the name of a scope's version, "" for every version.
func versionName(v *ubihooks.Version) string {
	if v == nil {
		return ""
	}
	return v.Name
}

func (s *Server) requestsList(c *call) error {
	o, v, err := s.scope(c)
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
	if v != nil {
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
	o, v, err := s.scope(c)
	if err != nil {
		return err
	}
	r, err := s.svc.GetRequest(c.r.Context(), o, versionName(v), c.p["request_id"])
	if err != nil {
		return err
	}
	return s.writeRequest(c, r)
}

func (s *Server) requestsUpdate(c *call) error {
	o, v, err := s.scope(c)
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
	r, err := s.svc.GetRequest(c.r.Context(), o, versionName(v), c.p["request_id"])
	if err != nil {
		return err
	}
	if r, err = s.svc.CancelRequest(c.r.Context(), r); err != nil {
		return err
	}
	return s.writeRequest(c, r)
}

// requestIDs reads the scope of a call on a list of requests and the list: a JSON array
// of 1 to service.MaxBatch request ids.
func (s *Server) requestIDs(c *call) (*ubihooks.Object, string, []string, error) {
	o, v, err := s.scope(c)
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
	return o, versionName(v), ids, nil
}

// requestsCancel cancels a list of requests, all or nothing (service.CancelRequests).
func (s *Server) requestsCancel(c *call) error {
	o, version, ids, err := s.requestIDs(c)
	if err != nil {
		return err
	}
	rs, err := s.svc.CancelRequests(c.r.Context(), o, version, ids)
	if err != nil {
		return err
	}
	out := make([]RequestDetail, len(rs))
	for i, r := range rs {
		out[i] = requestDetail(r, false)
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
