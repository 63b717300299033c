package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Request timeouts (the `timeout` query parameter, in seconds).
const (
	DefaultRequestTimeout     = 300 * time.Second
	MaxRequestTimeout         = 3600 * time.Second
	DefaultPipelineTimeout    = 3600 * time.Second
	MaxPipelineRequestTimeout = 7200 * time.Second
	// MaxBatch bounds the inputs of one batch call.
	MaxBatch = 1000
)

// RequestTimeout validates a timeout query value for an object type ("" = default).
func RequestTimeout(t ubihooks.ObjectType, seconds *int) (time.Duration, error) {
	def, max := DefaultRequestTimeout, MaxRequestTimeout
	if t == ubihooks.ObjectPipeline {
		def, max = DefaultPipelineTimeout, MaxPipelineRequestTimeout
	}
	if seconds == nil {
		return def, nil
	}
	if *seconds < 1 || time.Duration(*seconds)*time.Second > max {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "timeout must be between 1 and %d seconds, got %d", int(max.Seconds()), *seconds)
	}
	return time.Duration(*seconds) * time.Second, nil
}

// ObjectRef names a deployment or pipeline of a project.
type ObjectRef struct {
	ProjectID string
	Type      ubihooks.ObjectType
	Name      string
}

// ResolveVersion finds an object and the version a request goes to: the named one, or the
// default version at this moment (version "").
func (s *Service) ResolveVersion(ctx context.Context, ref ObjectRef, version string) (*ubihooks.Object, *ubihooks.Version, error) {
	t, objectName := ref.Type, ref.Name
	o, err := s.store.GetObject(ctx, ref.ProjectID, t, objectName)
	if err != nil {
		return nil, nil, err
	}
	if version == "" {
		if o.DefaultVersion == "" {
			return nil, nil, ubihooks.Errorf(ubihooks.EINVALID, "%s %q has no versions yet; create a version first", t, objectName)
		}
		version = o.DefaultVersion
	}
	v, err := s.store.GetVersion(ctx, o.ID, version)
	if err != nil {
		return nil, nil, err
	}
	return o, v, nil
}

// ValidateInput checks one request input against the object's input type and fields and
// returns it as stored (plain input as a JSON string).
func ValidateInput(o *ubihooks.Object, in json.RawMessage, index int) (json.RawMessage, error) {
	at := ""
	if index >= 0 {
		at = fmt.Sprintf("input %d: ", index)
	}
	in = bytes.TrimSpace(in)
	if len(in) == 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "%srequest input is required", at)
	}
	var v any
	if err := json.Unmarshal(in, &v); err != nil {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "%srequest input is not valid JSON", at)
	}
	if o.InputType == ubihooks.TypePlain {
		if _, ok := v.(string); !ok {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "%s%s %q has plain input: send a string (a JSON string, or a text/plain body)", at, o.Type, o.Name)
		}
		return in, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "%s%s %q has structured input: send a JSON object with the fields %s", at, o.Type, o.Name, fieldNames(o.InputFields))
	}
	if err := checkFields(o.InputFields, obj); err != nil {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "%s%s", at, ubihooks.ErrorMessage(err))
	}
	return in, nil
}

func fieldNames(fs []ubihooks.Field) string {
	b, _ := json.Marshal(func() []string {
		out := make([]string, len(fs))
		for i, f := range fs {
			out[i] = f.Name
		}
		return out
	}())
	return string(b)
}

// checkFields checks a structured value against its fields: every field present with a
// value of its data type (null allowed), no unknown fields.
func checkFields(fields []ubihooks.Field, obj map[string]any) error {
	known := map[string]bool{}
	for _, f := range fields {
		known[f.Name] = true
		val, ok := obj[f.Name]
		if !ok {
			return ubihooks.Errorf(ubihooks.EINVALID, "field %q is missing", f.Name)
		}
		if val != nil && !typeMatches(f.DataType, val) {
			return ubihooks.Errorf(ubihooks.EINVALID, "field %q must be of type %s", f.Name, f.DataType)
		}
	}
	for k := range obj {
		if !known[k] {
			return ubihooks.Errorf(ubihooks.EINVALID, "field %q is not an input field; expected %s", k, fieldNames(fields))
		}
	}
	return nil
}

func typeMatches(dt string, v any) bool {
	isInt := func(x any) bool { f, ok := x.(float64); return ok && f == math.Trunc(f) }
	isNum := func(x any) bool { _, ok := x.(float64); return ok }
	isStr := func(x any) bool { _, ok := x.(string); return ok }
	all := func(pred func(any) bool) bool {
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		for _, x := range arr {
			if x != nil && !pred(x) {
				return false
			}
		}
		return true
	}
	switch dt {
	case "int":
		return isInt(v)
	case "double":
		return isNum(v)
	case "string", "file":
		return isStr(v)
	case "bool":
		_, ok := v.(bool)
		return ok
	case "dict":
		_, ok := v.(map[string]any)
		return ok
	case "array_int":
		return all(isInt)
	case "array_double":
		return all(isNum)
	case "array_string", "array_file":
		return all(isStr)
	}
	return true
}

// CreateRequestsParams describes requests to queue on one version.
type CreateRequestsParams struct {
	Project *ubihooks.Project
	Object  *ubihooks.Object
	Version *ubihooks.Version
	Inputs  []json.RawMessage
	Batch   bool          // a batch request (errors name the input's index)
	Timeout time.Duration // how long a request may take
}

// CreateRequests validates inputs and queues one pending request per input, in one
// transaction (a bad input leaves nothing behind).
func (s *Service) CreateRequests(ctx context.Context, c CreateRequestsParams) ([]*ubihooks.Request, error) {
	p, o, v, inputs, batch, timeout := c.Project, c.Object, c.Version, c.Inputs, c.Batch, c.Timeout
	if len(inputs) == 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "a batch needs at least one input")
	}
	if len(inputs) > MaxBatch {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "a batch holds at most %d inputs, got %d", MaxBatch, len(inputs))
	}
	now := s.Now()
	rs := make([]*ubihooks.Request, len(inputs))
	for i, in := range inputs {
		idx := i
		if !batch {
			idx = -1
		}
		clean, err := ValidateInput(o, in, idx)
		if err != nil {
			return nil, err
		}
		rs[i] = &ubihooks.Request{ID: newID(), ProjectID: p.ID, ProjectName: p.Name, ObjectType: o.Type, ObjectID: o.ID,
			ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name, Status: ubihooks.RequestPending, Input: clean,
			Timeout: timeout, Batch: batch, CreatedAt: now}
	}
	if err := s.store.CreateRequests(ctx, rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// ChildRequestParams describes one step of a pipeline request.
type ChildRequestParams struct {
	Parent     *ubihooks.Request // the pipeline request
	Deployment *ubihooks.Object  // the step's deployment
	Version    *ubihooks.Version // and its version
	Step       int               // the step's place in the pipeline
	ObjectName string            // the step's name in the pipeline
	Input      json.RawMessage
}

// CreateChildRequest queues a pipeline step's deployment request (run by the executor
// that runs the pipeline, never claimed on its own).
func (s *Service) CreateChildRequest(ctx context.Context, c ChildRequestParams) (*ubihooks.Request, error) {
	parent, d, v := c.Parent, c.Deployment, c.Version
	r := &ubihooks.Request{ID: newID(), ProjectID: parent.ProjectID, ProjectName: parent.ProjectName, ObjectType: ubihooks.ObjectDeployment,
		ObjectID: d.ID, ObjectName: d.Name, VersionID: v.ID, VersionName: v.Name, Status: ubihooks.RequestPending, Input: c.Input,
		Timeout: parent.Timeout, ParentID: parent.ID, Sequence: c.Step, Origin: c.ObjectName, CreatedAt: s.Now()}
	if err := s.store.CreateRequests(ctx, []*ubihooks.Request{r}); err != nil {
		return nil, err
	}
	return r, nil
}

// WaitRequest waits until a request is final or ctx ends, waking on in-process completion
// and polling the store (for requests finished by another replica).
func (s *Service) WaitRequest(ctx context.Context, projectID, id string) (*ubihooks.Request, error) {
	ch, cancel := s.requests.wait(id)
	defer cancel()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	for {
		r, err := s.store.GetRequest(ctx, projectID, id)
		if err != nil || r.Status.Final() {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-ch:
			ch, cancel = s.requests.wait(id)
			defer cancel()
		case <-poll.C:
		}
	}
}

// GetRequest finds a request of an object (and version, when given).
func (s *Service) GetRequest(ctx context.Context, o *ubihooks.Object, version, id string) (*ubihooks.Request, error) {
	r, err := s.store.GetRequest(ctx, o.ProjectID, id)
	if err != nil {
		return nil, err
	}
	if r.ObjectID != o.ID || (version != "" && r.VersionName != version) || r.ParentID != "" && o.Type == ubihooks.ObjectPipeline {
		return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "request %q not found", id)
	}
	return r, nil
}

// ListRequests lists an object's requests.
func (s *Service) ListRequests(ctx context.Context, f ubihooks.RequestFilter) ([]*ubihooks.Request, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "status %q is not valid; use pending, processing, completed, failed or cancelled", f.Status)
	}
	return s.store.ListRequests(ctx, f)
}

// PipelineSteps lists the deployment requests of a pipeline request, in order.
func (s *Service) PipelineSteps(ctx context.Context, r *ubihooks.Request) ([]*ubihooks.Request, error) {
	return s.store.ListRequests(ctx, ubihooks.RequestFilter{ProjectID: r.ProjectID, ParentID: r.ID, Limit: 1000})
}

// CancelRequest cancels a pending or processing request; a finished one is a 400.
func (s *Service) CancelRequest(ctx context.Context, r *ubihooks.Request) (*ubihooks.Request, error) {
	if r.Status.Final() {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "request %s is already %s and cannot be cancelled", r.ID, r.Status)
	}
	out, err := s.Transition(ctx, TransitionParams{Request: r, From: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing}, To: ubihooks.RequestCancelled})
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT { // it finished meanwhile
		cur, gerr := s.store.GetRequest(ctx, r.ProjectID, r.ID)
		if gerr == nil && cur.Status.Final() {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "request %s is already %s and cannot be cancelled", r.ID, cur.Status)
		}
	}
	return out, err
}

// TransitionParams describes a status change of a request.
type TransitionParams struct {
	Request      *ubihooks.Request        // the request (its project and ID)
	Owner        string                   // when set, the request must still be leased by Owner
	From         []ubihooks.RequestStatus // the statuses it may change from
	To           ubihooks.RequestStatus
	Result       json.RawMessage // kept only when To is completed
	ErrorMessage string
}

// Transition moves a request from one of p.From to p.To and emits its webhook events in
// the same transaction. With p.Owner set, the request must still be leased by p.Owner.
func (s *Service) Transition(ctx context.Context, p TransitionParams) (*ubihooks.Request, error) {
	r, owner, from, to, result, errMsg := p.Request, p.Owner, p.From, p.To, p.Result, p.ErrorMessage
	if to == ubihooks.RequestCompleted && len(result) > 0 && !json.Valid(result) {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "result must be valid JSON")
	}
	now := s.Now()
	if to != ubihooks.RequestCompleted {
		result = nil
	}
	errMsg = ubihooks.CleanText(errMsg, 4096)
	out, _, err := s.store.TransitionRequest(ctx, ubihooks.RequestTransition{
		ProjectID: r.ProjectID, RequestID: r.ID, From: from, To: to, Result: result, ErrorMessage: errMsg, Owner: owner, Now: now,
	})
	if err == nil && to.Final() {
		s.requests.done(r.ID)
	}
	return out, err
}

// ClaimRequests leases pending requests to owner, moving them to processing and emitting
// their started events.
func (s *Service) ClaimRequests(ctx context.Context, c ubihooks.RequestClaim) ([]*ubihooks.Request, error) {
	c.Now = s.Now()
	return s.store.ClaimRequests(ctx, c)
}

// TimeoutStale fails a request that is still unfinished after its deadline (direct
// requests whose caller stopped waiting).
func (s *Service) TimeoutStale(ctx context.Context, r *ubihooks.Request) (*ubihooks.Request, error) {
	msg := r.TimeoutMessage()
	out, err := s.Transition(ctx, TransitionParams{Request: r, From: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing}, To: ubihooks.RequestFailed, ErrorMessage: msg})
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT {
		return s.store.GetRequest(ctx, r.ProjectID, r.ID)
	}
	return out, err
}
