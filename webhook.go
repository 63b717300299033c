package ubihooks

import (
	"encoding/json"
	"time"
)

// Webhook limits.
const (
	MaxNameLength        = 64
	MaxDescriptionLength = 400
	DefaultTimeout       = 10 * time.Second
	MaxTimeout           = 30 * time.Second
	MaxHeaders           = 50
	MaxHeaderValueLength = 8192
	MaxLabels            = 50
	MaxLabelLength       = 128
	MaxURLLength         = 2048
)

// Webhook is a subscription: one event of one object (optionally one version) sent to a URL.
type Webhook struct {
	ID            string
	ProjectID     string
	Name          string
	ObjectType    ObjectType
	ObjectID      string
	ObjectName    string
	VersionID     string // "" when the webhook follows the object's default version
	Version       string
	URL           string
	Headers       []Header
	Event         EventType
	Description   string
	Labels        map[string]string
	Timeout       time.Duration
	Enabled       bool
	Retry         bool
	IncludeResult bool
	CreatedAt     time.Time
	UpdatedAt     time.Time

	// DisabledReason and DisabledAt are set when ubihooks disabled the webhook (Enabled is
	// false) because its receiver failed for too long; its events are parked meanwhile.
	// A user who enables the webhook again clears them.
	DisabledReason string
	DisabledAt     time.Time
	// FailingSince is when the current run of failed attempts began (zero when the last
	// attempt succeeded), and ConsecutiveFailures its length. The store keeps them from
	// recorded outcomes.
	FailingSince        time.Time
	ConsecutiveFailures int
}

// AutoDisabled reports whether ubihooks (not a user) disabled the webhook: its events
// are recorded as parked deliveries instead of being dropped.
func (w *Webhook) AutoDisabled() bool { return !w.Enabled && !w.DisabledAt.IsZero() }

// WebhookCreate is the body of a create call. Pointers tell "absent" from a zero value.
type WebhookCreate struct {
	Name          string            `json:"name"`
	ObjectType    string            `json:"object_type"`
	ObjectName    string            `json:"object_name"`
	Version       *string           `json:"version"`
	URL           string            `json:"url"`
	Headers       []HeaderInput     `json:"headers"`
	Event         string            `json:"event"`
	Description   *string           `json:"description"`
	Labels        map[string]string `json:"labels"`
	Timeout       *int              `json:"timeout"`
	Enabled       *bool             `json:"enabled"`
	Retry         *bool             `json:"retry"`
	IncludeResult *bool             `json:"include_result"`
}

// WebhookUpdate is the body of a PATCH. Absent fields are unchanged; headers and labels, when
// present, replace the stored ones wholesale. ObjectType, ObjectName and Version exist only
// so that sending them can be refused with a clear message.
type WebhookUpdate struct {
	Name          *string            `json:"name"`
	URL           *string            `json:"url"`
	Headers       *[]HeaderInput     `json:"headers"`
	Event         *string            `json:"event"`
	Description   *string            `json:"description"`
	Labels        *map[string]string `json:"labels"`
	Timeout       *int               `json:"timeout"`
	Enabled       *bool              `json:"enabled"`
	Retry         *bool              `json:"retry"`
	IncludeResult *bool              `json:"include_result"`

	ObjectType json.RawMessage `json:"object_type"`
	ObjectName json.RawMessage `json:"object_name"`
	Version    json.RawMessage `json:"version"`
}

// WebhookTestCreate is the body of a webhook test: a webhook minus name, description,
// labels and enabled.
type WebhookTestCreate struct {
	ObjectType    string        `json:"object_type"`
	ObjectName    string        `json:"object_name"`
	Version       *string       `json:"version"`
	URL           string        `json:"url"`
	Headers       []HeaderInput `json:"headers"`
	Event         string        `json:"event"`
	Timeout       *int          `json:"timeout"`
	Retry         *bool         `json:"retry"`
	IncludeResult *bool         `json:"include_result"`
}

// WebhookFilter selects webhooks in a list call; every set field must match (AND).
type WebhookFilter struct {
	ObjectType ObjectType
	ObjectName string // the object's name (of either type unless ObjectType is set)
	Event      EventType
	Labels     map[string]string
}

// Match reports whether w passes the filter. Stores may filter in SQL, but must agree with it.
func (f WebhookFilter) Match(w *Webhook) bool {
	if f.ObjectType != "" && w.ObjectType != f.ObjectType {
		return false
	}
	if f.ObjectName != "" && w.ObjectName != f.ObjectName {
		return false
	}
	if f.Event != "" && w.Event != f.Event {
		return false
	}
	return MatchLabels(f.Labels, w.Labels)
}

// TimeoutFromSeconds validates a webhook timeout in seconds (1..30; nil means the default).
func TimeoutFromSeconds(s *int) (time.Duration, error) {
	if s == nil {
		return DefaultTimeout, nil
	}
	if *s < 1 || *s > int(MaxTimeout/time.Second) { // compare before multiplying: a huge value would wrap
		return 0, Errorf(EINVALID, "timeout must be between 1 and %d seconds, got %d", int(MaxTimeout/time.Second), *s)
	}
	return time.Duration(*s) * time.Second, nil
}
