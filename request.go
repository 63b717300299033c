package ubihooks

import (
	"encoding/json"
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
// request becomes processing; "completed" or "failed" and then "finished" when it ends; and
// only "finished" for a cancellation. A request that completes straight from pending (no
// processing step) still emits started first, so that every request reports the full story.
func TransitionEvents(from, to RequestStatus) []string {
	switch {
	case from == to:
		return nil
	case to == RequestProcessing && from == RequestPending:
		return []string{"started"}
	case to == RequestCompleted || to == RequestFailed:
		kinds := []string{}
		if from == RequestPending {
			kinds = append(kinds, "started")
		}
		return append(kinds, string(to), "finished")
	case to == RequestCancelled && !from.Final():
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
