package client

import "time"

// Status is the answer of GET /status.
type Status struct {
	// Status is "ok" when the service is up.
	Status string `json:"status"`
}

// ProjectCreate is the body that creates a project.
type ProjectCreate struct {
	// Name is the project name (1 to 64 characters).
	Name string `json:"name"`
	// OrganizationName is the organization the project belongs to.
	OrganizationName string `json:"organization_name"`
}

// Project is a project (the API's ProjectDetail).
type Project struct {
	// ID is the project's UUID.
	ID string `json:"id"`
	// Name is the project name.
	Name string `json:"name"`
	// CreationDate is when the project was created.
	CreationDate *time.Time `json:"creation_date"`
	// OrganizationName is the organization the project belongs to.
	OrganizationName string `json:"organization_name"`
	// AdvancedPermissions is always false in ubihooks.
	AdvancedPermissions bool `json:"advanced_permissions"`
	// Credits is always null in ubihooks.
	Credits *float64 `json:"credits"`
	// Suspended is always false in ubihooks.
	Suspended bool `json:"suspended"`
	// Labels are the project's labels ({} when none).
	Labels map[string]string `json:"labels"`
	// CorsOrigins is always empty in ubihooks.
	CorsOrigins []string `json:"cors_origins"`
}

// Field is an input or output field of a structured deployment or pipeline.
type Field struct {
	// Name is the field name.
	Name string `json:"name"`
	// DataType is the UbiOps data type, e.g. "int", "string" or "array_double".
	DataType string `json:"data_type"`
}

// Object is a deployment or a pipeline (the API's DeploymentDetail and PipelineDetail,
// which share one shape in ubihooks).
type Object struct {
	// ID is the object's UUID.
	ID string `json:"id"`
	// Name is the deployment or pipeline name.
	Name string `json:"name"`
	// Project is the name of the project the object belongs to.
	Project string `json:"project"`
	// Description is the free-text description ("" when unset).
	Description string `json:"description"`
	// InputType is "structured" or "plain".
	InputType string `json:"input_type"`
	// OutputType is "structured" or "plain".
	OutputType string `json:"output_type"`
	// InputFields are the input fields of a structured object.
	InputFields []Field `json:"input_fields"`
	// OutputFields are the output fields of a structured object.
	OutputFields []Field `json:"output_fields"`
	// Labels are the object's labels ({} when none).
	Labels map[string]string `json:"labels"`
	// CreationDate is when the object was created.
	CreationDate *time.Time `json:"creation_date"`
	// LastUpdated is when the object last changed.
	LastUpdated *time.Time `json:"last_updated"`
	// DefaultVersion names the default version; nil while the object has no version.
	DefaultVersion *string `json:"default_version"`
	// SupportsRequestFormat is set (false) for deployments only.
	SupportsRequestFormat *bool `json:"supports_request_format,omitempty"`
}

// Deployment is a deployment.
type Deployment = Object

// Pipeline is a pipeline.
type Pipeline = Object

// PipelineObject is one object (step) of a pipeline version.
type PipelineObject struct {
	// ID identifies the object within its version.
	ID string `json:"id"`
	// Name is the object's name in the pipeline.
	Name string `json:"name"`
	// ReferenceName is the deployment the object runs.
	ReferenceName string `json:"reference_name"`
	// ReferenceType is "deployment".
	ReferenceType string `json:"reference_type"`
	// Version is the deployment version the object runs; nil follows the default.
	Version *string `json:"version"`
}

// AttachmentField maps a source field to a destination field.
type AttachmentField struct {
	// SourceFieldName is the field of the source object's output.
	SourceFieldName string `json:"source_field_name"`
	// DestinationFieldName is the field of the destination object's input.
	DestinationFieldName string `json:"destination_field_name"`
}

// AttachmentSource is one source of an attachment with its field mapping.
type AttachmentSource struct {
	// SourceName is the pipeline object the data comes from.
	SourceName string `json:"source_name"`
	// Mapping maps the source's fields to the destination's.
	Mapping []AttachmentField `json:"mapping"`
}

// Attachment is an edge of a pipeline version.
type Attachment struct {
	// ID identifies the attachment within its version.
	ID string `json:"id"`
	// DestinationName is the pipeline object the data goes to.
	DestinationName string `json:"destination_name"`
	// Sources are the objects that feed the destination.
	Sources []AttachmentSource `json:"sources"`
}

// Version is a deployment version or a pipeline version (the API's VersionDetail).
type Version struct {
	// ID is the version's UUID.
	ID string `json:"id"`
	// Deployment is the deployment name (deployment versions only).
	Deployment string `json:"deployment,omitempty"`
	// Pipeline is the pipeline name (pipeline versions only).
	Pipeline string `json:"pipeline,omitempty"`
	// Version is the version name.
	Version string `json:"version"`
	// Default reports whether this is the object's default version.
	Default bool `json:"default"`
	// Description is the free-text description ("" when unset).
	Description string `json:"description"`
	// Environment is the runtime environment, when one was given.
	Environment *string `json:"environment,omitempty"`
	// Status is "available" for deployment versions.
	Status string `json:"status,omitempty"`
	// Labels are the version's labels ({} when none).
	Labels map[string]string `json:"labels"`
	// CreationDate is when the version was created.
	CreationDate *time.Time `json:"creation_date"`
	// LastUpdated is when the version last changed.
	LastUpdated *time.Time `json:"last_updated"`
	// MaximumInstances bounds the requests the version runs at once.
	MaximumInstances *int `json:"maximum_instances,omitempty"`
	// MinimumInstances is always 0 in ubihooks.
	MinimumInstances *int `json:"minimum_instances,omitempty"`
	// RequestRetentionTime is how long requests are kept, in seconds.
	RequestRetentionTime int `json:"request_retention_time"`
	// RequestRetentionMode is "full" in ubihooks.
	RequestRetentionMode string `json:"request_retention_mode"`
	// BackendURL is the inference server that runs the version's requests (ubihooks
	// extension); nil when an external runtime claims them.
	BackendURL *string `json:"backend_url,omitempty"`
	// Runtime is "http" or "external" for deployment versions (ubihooks extension).
	Runtime string `json:"runtime,omitempty"`
	// Objects are the objects of a pipeline version.
	Objects []PipelineObject `json:"objects,omitempty"`
	// Attachments are the edges of a pipeline version.
	Attachments []Attachment `json:"attachments,omitempty"`
}

// WebhookHeader is a header a webhook sends. The Value of a protected header is never
// returned by the API: it is always nil in responses.
type WebhookHeader struct {
	// Key is the header name.
	Key string `json:"key"`
	// Value is the header value; nil for a protected header.
	Value *string `json:"value"`
	// Protected marks a write-only secret value.
	Protected bool `json:"protected"`
}

// Webhook is a webhook (the API's WebhookDetail).
type Webhook struct {
	// ID is the webhook's UUID.
	ID string `json:"id"`
	// Name is the webhook name, unique within its project.
	Name string `json:"name"`
	// URL is the normalised callback URL.
	URL string `json:"url"`
	// Headers are the headers sent with every delivery.
	Headers []WebhookHeader `json:"headers"`
	// ObjectType is "deployment" or "pipeline".
	ObjectType string `json:"object_type"`
	// ObjectName is the deployment or pipeline the webhook listens to.
	ObjectName string `json:"object_name"`
	// Version is the version the webhook listens to; nil follows the default version.
	Version *string `json:"version"`
	// Description is the free-text description ("" when unset).
	Description string `json:"description"`
	// Labels are the webhook's labels ({} when none).
	Labels map[string]string `json:"labels"`
	// Event is the event the webhook listens to, e.g. "deployment_request_completed".
	Event string `json:"event"`
	// Timeout is the delivery timeout in seconds.
	Timeout int `json:"timeout"`
	// Enabled reports whether deliveries are sent.
	Enabled bool `json:"enabled"`
	// Retry reports whether failed deliveries are retried.
	Retry bool `json:"retry"`
	// IncludeResult reports whether the request result is included in the payload.
	IncludeResult bool `json:"include_result"`
	// CreationDate is when the webhook was created.
	CreationDate *time.Time `json:"creation_date"`
	// LastUpdated is when the webhook last changed.
	LastUpdated *time.Time `json:"last_updated"`
	// DisabledReason says why ubihooks disabled the webhook (nil unless it did): its
	// receiver failed for too long. Its events are parked until it is enabled again;
	// RedeliverMany with status "parked" then sends them.
	DisabledReason *string `json:"disabled_reason"`
	// DisabledAt is when ubihooks disabled the webhook.
	DisabledAt *time.Time `json:"disabled_at"`
	// FailingSince is when the current run of failed attempts began (nil when the last
	// attempt succeeded); ConsecutiveFailures is its length.
	FailingSince        *time.Time `json:"failing_since"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

// Webhook test states.
const (
	// TestPending is the state of a test that has not been sent yet.
	TestPending = "pending"
	// TestCompleted is the state of a test whose receiver answered 2xx or 3xx.
	TestCompleted = "completed"
	// TestFailed is the state of a test that could not be delivered.
	TestFailed = "failed"
)

// WebhookTest is a webhook test (the API's WebhookTestDetail).
type WebhookTest struct {
	// ID is the test's UUID.
	ID string `json:"id"`
	// Status is "pending", "completed" or "failed".
	Status string `json:"status"`
	// ErrorMessage says why a failed test failed; nil otherwise.
	ErrorMessage *string `json:"error_message"`
	// CreatedAt is when the test was made (ubihooks extension).
	CreatedAt *time.Time `json:"created_at"`
	// AttemptList holds the HTTP calls made so far, in order (ubihooks extension).
	AttemptList []Attempt `json:"attempt_list"`
}

// Attempt is one HTTP call of a delivery.
type Attempt struct {
	// Number counts the attempts of a delivery from 1.
	Number int `json:"number"`
	// StartedAt is when the call started.
	StartedAt *time.Time `json:"started_at"`
	// DurationMS is how long the call took, in milliseconds.
	DurationMS float64 `json:"duration_ms"`
	// StatusCode is the receiver's HTTP status; nil when no response arrived.
	StatusCode *int `json:"status_code"`
	// ErrorClass classifies a failure (e.g. "http_status", "timeout", "connect").
	ErrorClass *string `json:"error_class"`
	// Error describes a failure.
	Error *string `json:"error"`
	// ResponseBody is the start of the receiver's response body.
	ResponseBody *string `json:"response_body"`
}

// Delivery is one delivery of an event to a webhook (ubihooks extension).
type Delivery struct {
	// ID is the delivery's UUID.
	ID string `json:"id"`
	// Webhook is the webhook name.
	Webhook string `json:"webhook"`
	// EventID is the event's UUID, the "id" of every payload sent for it.
	EventID string `json:"event_id"`
	// Event is the event type.
	Event string `json:"event"`
	// RequestID is the request the event is about.
	RequestID string `json:"request_id"`
	// Status is "pending", "sending", "succeeded", "failed" or "parked" (kept while
	// ubihooks disabled the webhook, sent once it is enabled and redelivered).
	Status string `json:"status"`
	// Attempts counts the HTTP calls made so far.
	Attempts int `json:"attempts"`
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// LastError describes the last failure.
	LastError *string `json:"last_error"`
	// LastStatusCode is the receiver's last HTTP status.
	LastStatusCode *int `json:"last_status_code"`
	// CreationDate is when the delivery was created.
	CreationDate *time.Time `json:"creation_date"`
	// CompletedAt is when the delivery succeeded or finally failed.
	CompletedAt *time.Time `json:"completed_at"`
	// AttemptList holds the attempts; only GetDelivery fills it.
	AttemptList []Attempt `json:"attempt_list,omitempty"`
}

// SigningKey is a published webhook signing key (ubihooks extension).
type SigningKey struct {
	// KeyID is the keyid sent in Signature-Input ("sha512:<hex>").
	KeyID string `json:"key_id"`
	// Algorithm is "ed25519".
	Algorithm string `json:"algorithm"`
	// PublicKey is the raw 32-byte public key in standard base64.
	PublicKey string `json:"public_key"`
	// PublicKeyPEM is the public key as a PEM SubjectPublicKeyInfo block.
	PublicKeyPEM string `json:"public_key_pem"`
	// Active reports whether the key signs new deliveries.
	Active bool `json:"active"`
	// CreationDate is when the key was created.
	CreationDate *time.Time `json:"creation_date"`
	// RetiredAt is when the key stopped signing; nil while active.
	RetiredAt *time.Time `json:"retired_at"`
	// ExpiresAt is when a retired key stops being published.
	ExpiresAt *time.Time `json:"expires_at"`
}

// SigningKeys is the published key set.
type SigningKeys struct {
	// Keys are the active key and the recently retired ones, newest first.
	Keys []SigningKey `json:"keys"`
}

// Active returns the active key of the set, or nil when there is none.
func (s *SigningKeys) Active() *SigningKey {
	for i := range s.Keys {
		if s.Keys[i].Active {
			return &s.Keys[i]
		}
	}
	return nil
}

// WebhookListOptions are the filters of ListWebhooks; every set filter must match (AND).
type WebhookListOptions struct {
	// Labels selects webhooks having every one of these label key/value pairs.
	Labels map[string]string
	// ObjectType selects "deployment" or "pipeline" webhooks.
	ObjectType string
	// Event selects webhooks listening to exactly this event.
	Event string
}

// RedeliverMany selects the finished deliveries of a webhook to send again (ubihooks
// extension), to recover from an outage of its receiver.
type RedeliverMany struct {
	// Status is "failed" (the server's default when empty), "succeeded" or "parked".
	Status string `json:"status,omitempty"`
	// Since and Until bound the deliveries' creation time: Since ≤ created < Until. Since
	// is required; a nil Until is the server's now.
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until,omitempty"`
	// DryRun counts and changes nothing.
	DryRun bool `json:"dry_run"`
}

// RedeliverManyResult is what one call of RedeliverMany did.
type RedeliverManyResult struct {
	// Count is how many deliveries were made pending again (same event ids); for a dry
	// run, how many match in all.
	Count int `json:"count"`
	// DryRun echoes the request.
	DryRun bool `json:"dry_run"`
	// Limit is the most deliveries one call makes pending.
	Limit int `json:"limit"`
	// More reports that matching deliveries are left: call again. For a dry run, that they
	// take more than one call.
	More bool `json:"more"`
}
