package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ubihooks/ubihooks"
)

// The use cases of requests that span several steps: running a direct request to its
// end, cancelling a list all or nothing, and taking an external runtime's report. The API
// (and any other front end) calls one of these and renders what it returns.

// RunRequestParams is a direct request to run.
type RunRequestParams struct {
	Project *ubihooks.Project
	Object  *ubihooks.Object
	Version *ubihooks.Version
	// Input is the request's input as the caller sent it (plain input as a JSON string).
	Input json.RawMessage
	// Timeout bounds the run and the wait for it; RequestTimeout gives the default and
	// the limits of the object type.
	Timeout time.Duration
}

// RunRequest queues a direct request and waits until it is final or its timeout passes.
// A request still unfinished then is failed with its timeout message, since its caller
// was promised an answer within the timeout. It returns the request as it ended and, for
// a pipeline request, its steps in order (nil for a deployment request).
//
// When ctx ends before the request does, the caller has left: RunRequest returns ctx's
// error and the request runs on, as a batch request would.
func (s *Service) RunRequest(ctx context.Context, p RunRequestParams) (*ubihooks.Request, []*ubihooks.Request, error) {
	rs, err := s.CreateRequests(ctx, CreateRequestsParams{Project: p.Project, Object: p.Object, Version: p.Version, Inputs: []json.RawMessage{p.Input}, Timeout: p.Timeout})
	if err != nil {
		return nil, nil, err
	}
	wait, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	defer context.AfterFunc(s.draining, cancel)()
	r, err := s.WaitRequest(wait, p.Project.ID, rs[0].ID)
	if err != nil && ctx.Err() != nil {
		return nil, nil, err
	}
	if (r == nil || !r.Status.Final()) && s.draining.Err() != nil {
		// Not failed with its timeout: the caller's deadline has not passed, and the
		// request may still complete.
		return nil, nil, ubihooks.Errorf(ubihooks.EUNAVAILABLE, "the server is shutting down before request %s finished; the request was not cancelled: get its status and result by its id later", rs[0].ID)
	}
	if r == nil || !r.Status.Final() {
		// The caller's deadline passed (or the store failed while waiting): the request
		// ends now, even if the caller leaves meanwhile.
		if r, err = s.TimeoutStale(context.WithoutCancel(ctx), rs[0]); err != nil {
			return nil, nil, err
		}
	}
	if r.ObjectType != ubihooks.ObjectPipeline {
		return r, nil, nil
	}
	steps, err := s.PipelineSteps(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	return r, steps, nil
}

// CancelRequests cancels every request of ids, all or nothing: an unknown id is
// ENOTFOUND and a finished request EINVALID, both found before anything is cancelled. An
// id listed twice is cancelled once. The requests belong to object o and, when version is
// not "", to that version. A request that finishes between the check and its turn is
// still refused, and the ones cancelled before it stay cancelled: requests run while the
// list is cancelled, and only a lock on all of them could stop that.
func (s *Service) CancelRequests(ctx context.Context, o *ubihooks.Object, version string, ids []string) ([]*ubihooks.Request, error) {
	seen := make(map[string]bool, len(ids))
	rs := make([]*ubihooks.Request, 0, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		r, err := s.GetRequest(ctx, o, version, id)
		if err != nil {
			return nil, err
		}
		if r.Status.Final() {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "request %s is already %s and cannot be cancelled; nothing was cancelled", id, r.Status)
		}
		rs = append(rs, r)
	}
	out := make([]*ubihooks.Request, len(rs))
	for i, r := range rs {
		var err error
		if out[i], err = s.CancelRequest(ctx, r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReportRequestParams is an external runtime's report on a request it claimed.
type ReportRequestParams struct {
	Object *ubihooks.Object
	// Version names the version the report was sent to; "" accepts any version.
	Version   string
	RequestID string
	// LeaseToken is the token of the claim that handed the request out.
	LeaseToken string
	// Status is RequestCompleted (with Result) or RequestFailed (with ErrorMessage).
	Status       ubihooks.RequestStatus
	Result       json.RawMessage
	ErrorMessage string
}

// defaultRuntimeFailure is the error_message of a failure reported without one.
const defaultRuntimeFailure = "the external runtime reported a failure"

// ReportRequest records an external runtime's result or failure for a request that it
// still holds under its lease, with the request's events. A request that was cancelled,
// has finished, or whose lease expired (and went to another claim) is ECONFLICT.
func (s *Service) ReportRequest(ctx context.Context, p ReportRequestParams) (*ubihooks.Request, error) {
	if p.LeaseToken == "" {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "lease_token is required (from the claim)")
	}
	r, err := s.GetRequest(ctx, p.Object, p.Version, p.RequestID)
	if err != nil {
		return nil, err
	}
	switch p.Status {
	case ubihooks.RequestCompleted:
		if err := p.Object.ValidateResult(p.Result); err != nil {
			return nil, err
		}
	case ubihooks.RequestFailed:
		if p.ErrorMessage == "" {
			p.ErrorMessage = defaultRuntimeFailure
		}
	default:
		return nil, ubihooks.Errorf(ubihooks.EINVALID, `status must be "completed" (with result) or "failed" (with error_message)`)
	}
	r, err = s.Transition(ctx, TransitionParams{Request: r, Owner: p.LeaseToken, From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: p.Status, Result: p.Result, ErrorMessage: p.ErrorMessage})
	if ubihooks.ErrorCode(err) == ubihooks.ECONFLICT {
		return nil, ubihooks.Errorf(ubihooks.ECONFLICT, "request %s is not processing under this lease (it was cancelled, finished, or its lease expired)", p.RequestID)
	}
	return r, err
}
