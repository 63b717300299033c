package ubihooks

import (
	"encoding/json"
	"fmt"
	"time"
)

// RequestStatus is the state of a request.
type RequestStatus string

// Request states: pending → processing → completed | failed | cancelled.
const (
	RequestPending    RequestStatus = "pending"
	RequestProcessing RequestStatus = "processing"
	RequestCompleted  RequestStatus = "completed"
	RequestFailed     RequestStatus = "failed"
	RequestCancelled  RequestStatus = "cancelled"
)

// Final reports whether s is a terminal state.
func (s RequestStatus) Final() bool {
	return s == RequestCompleted || s == RequestFailed || s == RequestCancelled
}

// Valid reports whether s is a known request state.
func (s RequestStatus) Valid() bool {
	return s == RequestPending || s == RequestProcessing || s.Final()
}

// TransitionKinds returns the event kinds a transition from → to emits: "started" when a
// request becomes processing; "completed" or "failed" and then "finished" when it ends;
// only "finished" for a cancellation. A request that fails without ever processing (it
// timed out in the queue) emits "failed" and "finished" but no "started".
func TransitionKinds(from, to RequestStatus) []string {
	switch {
	case from == to || from.Final():
		return nil
	case to == RequestProcessing:
		return []string{"started"}
	case to == RequestCompleted || to == RequestFailed:
		return []string{string(to), "finished"}
	case to == RequestCancelled:
		return []string{"finished"}
	}
	return nil
}

// Events returns the webhook events of the transition t of a request, given the request
// as it was before it (before.Status is where it comes from; its project, object and
// version names fill the events). A store calls it inside the transaction that makes the
// transition, so that the events commit with it.
func (t RequestTransition) Events(before *Request) []*Event {
	kinds := TransitionKinds(before.Status, t.To)
	events := make([]*Event, 0, len(kinds))
	for _, k := range kinds {
		e := newEvent(before, k, t.To, t.Result, t.Now)
		e.ID = EventID(before.ID, e.Type)
		events = append(events, e)
	}
	return events
}

// TestEvent returns the dummy event of a webhook test for events of type et: r stands in
// for a request and names the project, object and version; the event carries the status
// and result a real event of that type carries when its request completes (or, for a
// failed event, fails), and a fresh ID.
func TestEvent(r *Request, et EventType, now time.Time) *Event {
	to := RequestCompleted
	if et.Kind() == "failed" {
		to = RequestFailed
	}
	e := newEvent(r, et.Kind(), to, json.RawMessage(`{"test": true}`), now)
	e.ID, e.Test = NewID(), true
	return e
}

// newEvent builds the event of one kind of a transition of r to `to`: a started event
// reports processing, the others report `to`; the result goes with every event but started
// of a completed request.
func newEvent(r *Request, kind string, to RequestStatus, result json.RawMessage, now time.Time) *Event {
	status := to
	if kind == "started" {
		status = RequestProcessing
	}
	e := &Event{ProjectID: r.ProjectID, ProjectName: r.ProjectName, Type: EventFor(r.ObjectType, kind),
		ObjectType: r.ObjectType, ObjectID: r.ObjectID, ObjectName: r.ObjectName, VersionID: r.VersionID,
		VersionName: r.VersionName, RequestID: r.ID, Status: string(status), CreatedAt: now}
	if kind != "started" && to == RequestCompleted {
		e.SetResult(result)
	}
	return e
}

// Request is one inference call (or training run) on a version.
type Request struct {
	ID             string
	ProjectID      string
	ProjectName    string
	ObjectType     ObjectType
	ObjectID       string
	ObjectName     string
	VersionID      string
	VersionName    string
	Status         RequestStatus
	Input          json.RawMessage // the JSON input (a string for plain input)
	Result         json.RawMessage // nil unless completed
	ErrorMessage   string
	Timeout        time.Duration
	Batch          bool   // created through a batch call (answered at once)
	ParentID       string // the pipeline request a step belongs to
	Sequence       int    // the step's position in its pipeline request
	Origin         string
	Attempts       int
	LeaseOwner     string
	LeaseExpiresAt time.Time
	CreatedAt      time.Time
	StartedAt      time.Time
	CompletedAt    time.Time
}

// TimeoutMessage is the error_message of a request failed for running past its timeout,
// whoever noticed: the executor that ran it, or a direct request's caller that stopped
// waiting for it.
func (r *Request) TimeoutMessage() string {
	return fmt.Sprintf("the request did not finish within its timeout of %s", r.Timeout)
}
