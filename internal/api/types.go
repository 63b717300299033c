package api

import (
	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
)

// Response models. Field sets and required fields follow the official client's models:
// required strings are never empty, labels are {} (never []), optional strings with a
// minimum length are null rather than "".

// ProjectDetail is a project.
type ProjectDetail struct {
	ID                  string            `json:"id"`
	Name                string            `json:"name"`
	CreationDate        *string           `json:"creation_date"`
	OrganizationName    string            `json:"organization_name"`
	AdvancedPermissions bool              `json:"advanced_permissions"`
	Credits             *float64          `json:"credits"`
	Suspended           bool              `json:"suspended"`
	Labels              map[string]string `json:"labels"`
	CorsOrigins         []string          `json:"cors_origins"`
}

// ProjectCreate is the body that creates a project.
type ProjectCreate struct {
	Name             string `json:"name"`
	OrganizationName string `json:"organization_name"`
}

func projectDetail(p *ubihooks.Project) ProjectDetail {
	return ProjectDetail{ID: p.ID, Name: p.Name, CreationDate: isoTime(p.CreatedAt), OrganizationName: p.OrganizationName,
		Labels: map[string]string{}, CorsOrigins: []string{}}
}

// FieldDetail is an input or output field.
type FieldDetail struct {
	Name     string `json:"name"`
	DataType string `json:"data_type"`
}

// ObjectDetail is a deployment or a pipeline (the key names follow the object type).
type ObjectDetail struct {
	ID                    string            `json:"id"`
	Name                  string            `json:"name"`
	Project               string            `json:"project"`
	Description           string            `json:"description"`
	InputType             string            `json:"input_type"`
	OutputType            string            `json:"output_type"`
	InputFields           []FieldDetail     `json:"input_fields"`
	OutputFields          []FieldDetail     `json:"output_fields"`
	Labels                map[string]string `json:"labels"`
	CreationDate          *string           `json:"creation_date"`
	LastUpdated           *string           `json:"last_updated"`
	DefaultVersion        *string           `json:"default_version"`
	SupportsRequestFormat *bool             `json:"supports_request_format,omitempty"`
}

func fields(fs []ubihooks.Field) []FieldDetail {
	out := make([]FieldDetail, len(fs))
	for i, f := range fs {
		out[i] = FieldDetail{Name: f.Name, DataType: f.DataType}
	}
	return out
}

func objectDetail(p *ubihooks.Project, o *ubihooks.Object) ObjectDetail {
	d := ObjectDetail{ID: o.ID, Name: o.Name, Project: p.Name, Description: o.Description, InputType: o.InputType,
		OutputType: o.OutputType, InputFields: fields(o.InputFields), OutputFields: fields(o.OutputFields),
		Labels: nonNilLabels(o.Labels), CreationDate: isoTime(o.CreatedAt), LastUpdated: isoTime(o.UpdatedAt),
		DefaultVersion: strPtr(o.DefaultVersion)}
	if o.Type == ubihooks.ObjectDeployment {
		f := false
		d.SupportsRequestFormat = &f
	}
	return d
}

// VersionDetail is a deployment version or a pipeline version. BackendURL is ubihooks'
// extension: the inference server that runs the version's requests (null: an external
// runtime claims them).
type VersionDetail struct {
	ID                   string            `json:"id"`
	Deployment           string            `json:"deployment,omitempty"`
	Pipeline             string            `json:"pipeline,omitempty"`
	Version              string            `json:"version"`
	Default              bool              `json:"default"`
	Description          string            `json:"description"`
	Environment          *string           `json:"environment,omitempty"`
	Status               string            `json:"status,omitempty"`
	Labels               map[string]string `json:"labels"`
	CreationDate         *string           `json:"creation_date"`
	LastUpdated          *string           `json:"last_updated"`
	MaximumInstances     *int              `json:"maximum_instances,omitempty"`
	MinimumInstances     *int              `json:"minimum_instances,omitempty"`
	RequestRetentionTime int               `json:"request_retention_time"`
	RequestRetentionMode string            `json:"request_retention_mode"`
	BackendURL           *string           `json:"backend_url,omitempty"`
	Runtime              string            `json:"runtime,omitempty"`
	Objects              []PipelineObject  `json:"objects,omitempty"`
	Attachments          []Attachment      `json:"attachments,omitempty"`
}

// PipelineObject is an object of a pipeline version.
type PipelineObject struct {
	ID            string  `json:"id"`
	Name          string  `json:"name"`
	ReferenceName string  `json:"reference_name"`
	ReferenceType string  `json:"reference_type"`
	Version       *string `json:"version"`
}

// Attachment is an edge of a pipeline version.
type Attachment struct {
	ID              string                              `json:"id"`
	DestinationName string                              `json:"destination_name"`
	Sources         []ubihooks.PipelineAttachmentSource `json:"sources"`
}

var graphNamespace = uuid.MustParse("0d8f4b3a-6a3e-4d43-a2f4-7b2f1c9e5a10")

func versionDetail(v *ubihooks.Version, retention int) VersionDetail {
	d := VersionDetail{ID: v.ID, Version: v.Name, Default: v.Default, Description: v.Description, Labels: nonNilLabels(v.Labels),
		CreationDate: isoTime(v.CreatedAt), LastUpdated: isoTime(v.UpdatedAt), RequestRetentionTime: retention,
		RequestRetentionMode: "full", Environment: strPtr(v.Environment)}
	if v.ObjectType == ubihooks.ObjectPipeline {
		d.Pipeline = v.ObjectName
		d.Objects, d.Attachments = []PipelineObject{}, []Attachment{}
		if v.Pipeline != nil {
			for _, o := range v.Pipeline.Objects {
				d.Objects = append(d.Objects, PipelineObject{ID: uuid.NewSHA1(graphNamespace, []byte(v.ID+"/o/"+o.Name)).String(),
					Name: o.Name, ReferenceName: o.ReferenceName, ReferenceType: "deployment", Version: o.Version})
			}
			for _, a := range v.Pipeline.Attachments {
				src := a.Sources
				if src == nil {
					src = []ubihooks.PipelineAttachmentSource{}
				}
				d.Attachments = append(d.Attachments, Attachment{ID: uuid.NewSHA1(graphNamespace, []byte(v.ID+"/a/"+a.DestinationName)).String(),
					DestinationName: a.DestinationName, Sources: src})
			}
		}
		return d
	}
	d.Deployment = v.ObjectName
	d.Status = "available"
	maxI, minI := v.Concurrency, 0
	d.MaximumInstances, d.MinimumInstances = &maxI, &minI
	d.BackendURL = strPtr(v.BackendURL)
	d.Runtime = "external"
	if v.BackendURL != "" {
		d.Runtime = "http"
	}
	return d
}

// HeaderDetail is a webhook header; a protected header's value is always null.
type HeaderDetail struct {
	Key       string  `json:"key"`
	Value     *string `json:"value"`
	Protected bool    `json:"protected"`
}

// WebhookDetail is a webhook.
type WebhookDetail struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	URL           string            `json:"url"`
	Headers       []HeaderDetail    `json:"headers"`
	ObjectType    string            `json:"object_type"`
	ObjectName    string            `json:"object_name"`
	Version       *string           `json:"version"`
	Description   string            `json:"description"`
	Labels        map[string]string `json:"labels"`
	Event         string            `json:"event"`
	Timeout       int               `json:"timeout"`
	Enabled       bool              `json:"enabled"`
	Retry         bool              `json:"retry"`
	IncludeResult bool              `json:"include_result"`
	CreationDate  *string           `json:"creation_date"`
	LastUpdated   *string           `json:"last_updated"`
}

func webhookDetail(w *ubihooks.Webhook) WebhookDetail {
	hs := make([]HeaderDetail, len(w.Headers))
	for i, h := range w.Headers {
		hs[i] = HeaderDetail{Key: h.Key, Protected: h.Protected}
		if !h.Protected {
			hs[i].Value = strPtr(h.Value)
		}
	}
	return WebhookDetail{ID: w.ID, Name: w.Name, URL: w.URL, Headers: hs, ObjectType: string(w.ObjectType), ObjectName: w.ObjectName,
		Version: strPtr(w.Version), Description: w.Description, Labels: nonNilLabels(w.Labels), Event: string(w.Event),
		Timeout: int(w.Timeout.Seconds()), Enabled: w.Enabled, Retry: w.Retry, IncludeResult: w.IncludeResult,
		CreationDate: isoTime(w.CreatedAt), LastUpdated: isoTime(w.UpdatedAt)}
}

// WebhookTestDetail is a webhook test.
type WebhookTestDetail struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	ErrorMessage *string `json:"error_message"`
}

func webhookTestDetail(t *ubihooks.WebhookTest) WebhookTestDetail {
	return WebhookTestDetail{ID: t.ID, Status: string(t.Status), ErrorMessage: strPtr(t.ErrorMessage)}
}

// DeliveryDetail is one delivery of a webhook (ubihooks extension).
type DeliveryDetail struct {
	ID             string          `json:"id"`
	Webhook        string          `json:"webhook"`
	EventID        string          `json:"event_id"`
	Event          string          `json:"event"`
	RequestID      string          `json:"request_id"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	NextAttemptAt  *string         `json:"next_attempt_at"`
	LastError      *string         `json:"last_error"`
	LastStatusCode *int            `json:"last_status_code"`
	CreationDate   *string         `json:"creation_date"`
	CompletedAt    *string         `json:"completed_at"`
	AttemptList    []AttemptDetail `json:"attempt_list,omitzero"`
}

// AttemptDetail is one HTTP call of a delivery.
type AttemptDetail struct {
	Number       int     `json:"number"`
	StartedAt    *string `json:"started_at"`
	DurationMS   float64 `json:"duration_ms"`
	StatusCode   *int    `json:"status_code"`
	ErrorClass   *string `json:"error_class"`
	Error        *string `json:"error"`
	ResponseBody *string `json:"response_body"`
}

func intPtr(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func deliveryDetail(d *ubihooks.Delivery, attempts []*ubihooks.Attempt) DeliveryDetail {
	out := DeliveryDetail{ID: d.ID, Webhook: d.WebhookName, EventID: d.EventID, Status: string(d.Status), Attempts: d.Attempts,
		LastError: strPtr(d.LastError), LastStatusCode: intPtr(d.LastStatusCode), CreationDate: isoTime(d.CreatedAt),
		CompletedAt: isoTime(d.CompletedAt)}
	if d.Event != nil {
		out.Event, out.RequestID = string(d.Event.Type), d.Event.RequestID
	}
	if d.Status == ubihooks.DeliveryPending {
		out.NextAttemptAt = isoTime(d.NextAttemptAt)
	}
	for _, a := range attempts {
		out.AttemptList = append(out.AttemptList, AttemptDetail{Number: a.Number, StartedAt: isoTime(a.StartedAt),
			DurationMS: float64(a.Duration.Microseconds()) / 1000, StatusCode: intPtr(a.StatusCode), ErrorClass: strPtr(a.ErrorClass),
			Error: strPtr(a.Error), ResponseBody: strPtr(a.ResponseBody)})
	}
	return out
}

// SigningKeyDetail is a published signing key.
type SigningKeyDetail struct {
	KeyID        string  `json:"key_id"`
	Algorithm    string  `json:"algorithm"`
	PublicKey    string  `json:"public_key"`
	PublicKeyPEM string  `json:"public_key_pem"`
	Active       bool    `json:"active"`
	CreationDate *string `json:"creation_date"`
	RetiredAt    *string `json:"retired_at"`
	ExpiresAt    *string `json:"expires_at"`
}

// SigningKeys is the published key set.
type SigningKeys struct {
	Keys []SigningKeyDetail `json:"keys"`
}

// Status is the service status.
type Status struct {
	Status string `json:"status"`
}
