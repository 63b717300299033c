package ubihooks

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// MaxResultSize is the largest JSON-encoded result included in a payload (16 kB).
const MaxResultSize = 16384

// Event is one request transition that webhooks can listen to, recorded once. Its ID is the
// `id` of every payload sent for it, on every attempt and redelivery, so that receivers can
// deduplicate.
type Event struct {
	ID          string
	ProjectID   string
	ProjectName string
	Type        EventType
	ObjectType  ObjectType
	ObjectID    string
	ObjectName  string
	VersionID   string
	VersionName string
	// DefaultVersion reports whether VersionID was the object's default version when the
	// event happened; webhooks without a version receive only those events.
	DefaultVersion bool
	RequestID      string
	Status         string
	// Result is the JSON-encoded result when it is at most MaxResultSize bytes; ResultSize
	// is its size in bytes either way (0 when there is no result).
	Result     json.RawMessage
	ResultSize int
	Test       bool // a webhook test's dummy event
	CreatedAt  time.Time
}

// SetResult stores the JSON-encoded result, keeping it only when it fits a payload.
func (e *Event) SetResult(result json.RawMessage) {
	e.ResultSize = len(result)
	e.Result = nil
	if len(result) > 0 && len(result) <= MaxResultSize {
		e.Result = result
	}
}

// Text is the human sentence of the payload, e.g. "Deployment request <id> completed for
// deployment <name> <version> in project <project>".
func (e *Event) Text() string {
	return fmt.Sprintf("%s request %s %s for %s %s %s in project %s",
		e.ObjectType.Title(), e.RequestID, e.Type.Kind(), e.ObjectType, e.ObjectName, e.VersionName, e.ProjectName)
}

// Payload renders the JSON body sent to a webhook. The result is included only when asked
// and when it is at most MaxResultSize bytes; otherwise result_omitted says why.
func (e *Event) Payload(includeResult bool) []byte {
	prefix := string(e.ObjectType)
	p := make(map[string]any, 14)
	p["id"] = e.ID
	p["event"] = e.Type
	p[prefix+"_id"] = e.ObjectID
	p[prefix+"_name"] = e.ObjectName
	p[prefix+"_version_id"] = e.VersionID
	p[prefix+"_version_name"] = e.VersionName
	p["request_id"] = e.RequestID
	p["status"] = e.Status
	p["project"] = e.ProjectName
	p["timestamp"] = e.CreatedAt.UTC().Format(time.RFC3339Nano)
	p["text"] = e.Text()
	if e.Test {
		p["test"] = true
	}
	if includeResult && e.ResultSize > 0 {
		if e.Result != nil {
			p["result"] = e.Result
		} else {
			p["result_omitted"] = fmt.Sprintf("the result is %d bytes, over the %d-byte limit", e.ResultSize, MaxResultSize)
			p["result_size"] = e.ResultSize
		}
	}
	b, err := json.Marshal(p)
	if err != nil { // only json.RawMessage can fail, and Result is validated on entry
		panic(fmt.Sprintf("ubihooks: encode payload: %v", err))
	}
	return b
}

// DeliveryStatus is the state of a delivery.
type DeliveryStatus string

// Delivery states: pending (waiting for its next attempt), sending (leased by a worker),
// succeeded, failed (no attempts left), and parked: held, unsent, because ubihooks disabled
// its webhook after its receiver failed for too long (see WebhookHealthPolicy). A parked
// delivery is never sent nor expired until it is redelivered (or its webhook deleted).
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySending   DeliveryStatus = "sending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryParked    DeliveryStatus = "parked"
)

// DeliveryStatuses lists every delivery state, in the order of a delivery's life.
var DeliveryStatuses = []DeliveryStatus{DeliveryPending, DeliverySending, DeliverySucceeded, DeliveryFailed, DeliveryParked}

// Valid reports whether s is a known delivery state.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliverySending || s == DeliveryParked || s.Final()
}

// Redeliverable reports whether a delivery in state s can be made pending again by a
// redelivery: a final one, or a parked one.
func (s DeliveryStatus) Redeliverable() bool { return s.Final() || s == DeliveryParked }

// Final reports whether s is a final state: succeeded or failed (a redelivery can still
// make such a delivery pending again).
func (s DeliveryStatus) Final() bool { return s == DeliverySucceeded || s == DeliveryFailed }

// Delivery is one (event, webhook) pair to be sent. Its target (URL, headers, timeout, retry,
// include_result) is a snapshot of the webhook when the event happened, so a delivery goes
// where its webhook pointed at that moment.
type Delivery struct {
	ID            string
	ProjectID     string
	EventID       string
	WebhookID     string // "" for a webhook test
	WebhookName   string
	TestID        string // "" unless a webhook test
	URL           string
	Host          string // the URL's authority, for per-destination concurrency
	Headers       []Header
	Timeout       time.Duration
	Retry         bool
	IncludeResult bool
	Status        DeliveryStatus
	Attempts      int // attempts made, redeliveries included: the length of its history
	// RetryBase is how many of the Attempts were made before the delivery was last
	// redelivered: a redelivery gets its full retry schedule, counted from there.
	RetryBase      int
	NextAttemptAt  time.Time
	LeaseOwner     string
	LeaseExpiresAt time.Time
	LastError      string
	LastStatusCode int
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    time.Time
	Event          *Event // filled by claims and gets
}

// Error classes of an attempt.
const (
	ClassHTTPStatus      = "http_status"
	ClassTimeout         = "timeout"
	ClassDNS             = "dns"
	ClassConnect         = "connect"
	ClassTLS             = "tls"
	ClassRefusedByPolicy = "refused_by_policy"
	ClassOther           = "other"
)

// MaxAttemptBody bounds the stored part of a receiver's response body.
const MaxAttemptBody = 4096

// Attempt is one HTTP call of a delivery.
type Attempt struct {
	DeliveryID   string
	Number       int
	StartedAt    time.Time
	Duration     time.Duration
	StatusCode   int    // 0 when no response arrived
	ErrorClass   string // "" on success
	Error        string // a user-facing description, never a secret
	ResponseBody string // at most MaxAttemptBody bytes
}

// Outcome is what a worker reports for a claimed delivery.
type Outcome struct {
	DeliveryID string
	// WebhookID is the delivery's webhook ("" for a webhook test): the store keeps each
	// webhook's run of failed attempts (see WebhookHealthPolicy) from its outcomes.
	WebhookID     string
	Owner         string // the lease owner; an outcome from a lost lease keeps only its attempt
	Attempt       Attempt
	Status        DeliveryStatus // pending (retry at NextAttemptAt), succeeded or failed
	NextAttemptAt time.Time
}

// TestStatus is the state of a webhook test.
type TestStatus string

// Webhook test states.
const (
	TestPending   TestStatus = "pending"
	TestCompleted TestStatus = "completed"
	TestFailed    TestStatus = "failed"
)

// WebhookTest is an ad-hoc delivery of a dummy event.
type WebhookTest struct {
	ID           string
	ProjectID    string
	Status       TestStatus
	ErrorMessage string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// SigningKey is an Ed25519 key that signs deliveries. The private key is stored only sealed.
type SigningKey struct {
	ID            string
	KeyID         string // "sha512:<hex>" as sent in Signature-Input
	PublicKey     []byte // 32 raw bytes
	SealedPrivate []byte
	CreatedAt     time.Time
	RetiredAt     time.Time // zero while active
}

// HostOf returns the authority (lowercase host[:port]) of a URL, the unit of
// per-destination concurrency.
func HostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// EventType names a request transition a webhook can listen to.
type EventType string

// The eight event types: four per object type.
const (
	EventDeploymentStarted   EventType = "deployment_request_started"
	EventDeploymentCompleted EventType = "deployment_request_completed"
	EventDeploymentFailed    EventType = "deployment_request_failed"
	EventDeploymentFinished  EventType = "deployment_request_finished"
	EventPipelineStarted     EventType = "pipeline_request_started"
	EventPipelineCompleted   EventType = "pipeline_request_completed"
	EventPipelineFailed      EventType = "pipeline_request_failed"
	EventPipelineFinished    EventType = "pipeline_request_finished"
)

// EventTypes lists every event type, in documentation order.
var EventTypes = []EventType{
	EventDeploymentStarted, EventDeploymentCompleted, EventDeploymentFailed, EventDeploymentFinished,
	EventPipelineStarted, EventPipelineCompleted, EventPipelineFailed, EventPipelineFinished,
}

// Valid reports whether e is one of the eight event types.
func (e EventType) Valid() bool {
	for _, v := range EventTypes {
		if e == v {
			return true
		}
	}
	return false
}

// ObjectType returns the object type the event belongs to, from its prefix.
func (e EventType) ObjectType() ObjectType {
	if strings.HasPrefix(string(e), "pipeline_") {
		return ObjectPipeline
	}
	return ObjectDeployment
}

// Kind returns the transition: "started", "completed", "failed" or "finished".
func (e EventType) Kind() string {
	s := string(e)
	return s[strings.LastIndexByte(s, '_')+1:]
}

// EventFor returns the event type of the given object type and kind.
func EventFor(t ObjectType, kind string) EventType {
	return EventType(string(t) + "_request_" + kind)
}

// ParseEvent validates an event name against the object type it must belong to.
func ParseEvent(objectType ObjectType, s string) (EventType, error) {
	if s == "" {
		return "", Errorf(EINVALID, "event is required")
	}
	e := EventType(s)
	if !e.Valid() {
		return "", Errorf(EINVALID, "event %q is not valid; use one of %s", s, joinEvents())
	}
	if e.ObjectType() != objectType {
		return "", Errorf(EINVALID, "event %q does not match object_type %q: use a %s_request_* event", s, objectType, objectType)
	}
	return e, nil
}

func joinEvents() string {
	s := make([]string, len(EventTypes))
	for i, e := range EventTypes {
		s[i] = string(e)
	}
	return strings.Join(s, ", ")
}
