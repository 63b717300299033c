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

// TransitionEvents returns the event kinds a transition from → to emits: "started" when a
// request becomes processing; "completed" or "failed" and then "finished" when it ends;
// only "finished" for a cancellation. A request that fails without ever processing (it
// timed out in the queue) emits "failed" and "finished" but no "started".
func TransitionEvents(from, to RequestStatus) []string {
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
