package ubihooks

import (
	"encoding/json"
	"time"
)

// Project is a tenant: every object, webhook and token belongs to one.
type Project struct {
	ID               string
	Name             string
	OrganizationName string
	// CreatedBy is the ID of the (admin) token that created the project through the API, or
	// "" when the operator created it with the CLI. The CLI joins only projects that it
	// created unless told to, so that a token cannot lure the operator into its project.
	CreatedBy string
	CreatedAt time.Time
}

// Token is an API token. Only a hash of the secret is stored; the secret is shown once.
type Token struct {
	ID string
	// ProjectID is the token's own project; it may use the projects it created as well.
	ProjectID string
	Hash      []byte
	Name      string
	// Admin tokens may create projects and list and revoke tokens; other tokens may only
	// use their projects.
	Admin     bool
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
	// LastUsedAt is when the token last authenticated a call, recorded at most about once a
	// minute; zero means never.
	LastUsedAt time.Time
	// RevokedAt is when the token was revoked; zero means it was not.
	RevokedAt time.Time
	// Projects are the names of the projects the token may use, sorted; only ListTokens
	// sets them.
	Projects []string
}

// Field is an input or output field of a structured deployment.
type Field struct {
	Name     string `json:"name"`
	DataType string `json:"data_type"`
}

// Data types of structured fields, as UbiOps names them.
var FieldDataTypes = map[string]bool{
	"int": true, "string": true, "double": true, "bool": true, "dict": true, "file": true,
	"array_int": true, "array_double": true, "array_string": true, "array_file": true,
}

// Input and output types.
const (
	TypeStructured = "structured"
	TypePlain      = "plain"
)

// Object is a deployment or a pipeline.
type Object struct {
	ID             string
	ProjectID      string
	Type           ObjectType
	Name           string
	Description    string
	Labels         map[string]string
	InputType      string
	OutputType     string
	InputFields    []Field
	OutputFields   []Field
	DefaultVersion string // name of the default version, "" when there is none
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ValidateResult checks a completed request's result, JSON as stored, against the
// object's output type: a JSON string for plain output, a JSON object for structured
// output. Output fields are not checked: a backend's answer is its own. It is the rule for
// results from every source (an HTTP backend, an external runtime).
func (o *Object) ValidateResult(result json.RawMessage) error {
	if len(result) == 0 || !json.Valid(result) {
		return Errorf(EINVALID, "result is required and must be JSON")
	}
	var v any
	_ = json.Unmarshal(result, &v)
	if o.OutputType == TypePlain {
		if _, ok := v.(string); !ok {
			return Errorf(EINVALID, "deployment %s has plain output: result must be a string", o.Name)
		}
		return nil
	}
	if _, ok := v.(map[string]any); !ok {
		return Errorf(EINVALID, "deployment %s has structured output: result must be a JSON object", o.Name)
	}
	return nil
}

// Version is a version of a deployment or pipeline. The Backend* fields are ubihooks'
// extension that say how requests run: an HTTP inference server, or (when BackendURL is
// empty) an external runtime that claims requests through the API.
type Version struct {
	ID          string
	ObjectID    string
	ProjectID   string
	ObjectType  ObjectType
	ObjectName  string
	Name        string
	Description string
	Labels      map[string]string
	Environment string
	BackendURL  string
	Concurrency int
	Pipeline    *PipelineSpec // pipelines only
	Default     bool          // derived from the object when read
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PipelineSpec is the graph of a pipeline version, as the client's PipelineVersionCreate
// models it: objects (named references to deployment versions) and attachments (edges).
type PipelineSpec struct {
	InputType   string               `json:"input_type,omitempty"`
	Objects     []PipelineObject     `json:"objects"`
	Attachments []PipelineAttachment `json:"attachments"`
}

// PipelineObject is one step of a pipeline.
type PipelineObject struct {
	Name          string          `json:"name"`
	ReferenceName string          `json:"reference_name"`
	ReferenceType string          `json:"reference_type,omitempty"`
	Version       *string         `json:"version"`
	Configuration json.RawMessage `json:"configuration,omitempty"`
}

// PipelineAttachment connects the outputs of sources to the inputs of a destination.
type PipelineAttachment struct {
	DestinationName string                     `json:"destination_name"`
	Sources         []PipelineAttachmentSource `json:"sources"`
}

// PipelineAttachmentSource is one source of an attachment with its field mapping.
type PipelineAttachmentSource struct {
	SourceName string                    `json:"source_name"`
	Mapping    []PipelineAttachmentField `json:"mapping"`
}

// PipelineAttachmentField maps a source field to a destination field.
type PipelineAttachmentField struct {
	SourceFieldName      string `json:"source_field_name"`
	DestinationFieldName string `json:"destination_field_name"`
}

// The names of a pipeline's implicit start and end objects.
const (
	PipelineStart = "pipeline_start"
	PipelineEnd   = "pipeline_end"
)

// ObjectCreate is the body that creates a deployment or a pipeline.
type ObjectCreate struct {
	Name         string            `json:"name"`
	Description  *string           `json:"description"`
	Labels       map[string]string `json:"labels"`
	InputType    string            `json:"input_type"`
	OutputType   string            `json:"output_type"`
	InputFields  []Field           `json:"input_fields"`
	OutputFields []Field           `json:"output_fields"`
}

// ObjectUpdate is the body of a deployment or pipeline PATCH; absent fields are unchanged.
type ObjectUpdate struct {
	Name           *string            `json:"name"`
	Description    *string            `json:"description"`
	Labels         *map[string]string `json:"labels"`
	DefaultVersion *string            `json:"default_version"`
}

// VersionCreate is the body that creates a deployment or pipeline version. BackendURL and
// the pipeline fields are only meaningful for their object type.
type VersionCreate struct {
	Version          string               `json:"version"`
	Description      *string              `json:"description"`
	Labels           map[string]string    `json:"labels"`
	Environment      *string              `json:"environment"`
	BackendURL       *string              `json:"backend_url"`
	MaximumInstances *int                 `json:"maximum_instances"`
	Objects          []PipelineObject     `json:"objects"`
	Attachments      []PipelineAttachment `json:"attachments"`
}

// VersionUpdate is the body of a version PATCH; absent fields are unchanged.
type VersionUpdate struct {
	Version          *string               `json:"version"`
	Description      *string               `json:"description"`
	Labels           *map[string]string    `json:"labels"`
	Environment      *string               `json:"environment"`
	BackendURL       *string               `json:"backend_url"`
	MaximumInstances *int                  `json:"maximum_instances"`
	Objects          *[]PipelineObject     `json:"objects"`
	Attachments      *[]PipelineAttachment `json:"attachments"`
}

// ObjectType is the kind of object a webhook or request belongs to.
type ObjectType string

// The object types. An experiment is a version of the deployment TrainingDeployment.
const (
	ObjectDeployment ObjectType = "deployment"
	ObjectPipeline   ObjectType = "pipeline"
)

// TrainingDeployment is the deployment whose versions are experiments; a training run is a
// request to one of them.
const TrainingDeployment = "training-base-deployment"

// Valid reports whether t is a known object type.
func (t ObjectType) Valid() bool { return t == ObjectDeployment || t == ObjectPipeline }

// Title is the capitalised name used in human sentences ("Deployment", "Pipeline").
func (t ObjectType) Title() string {
	if t == ObjectPipeline {
		return "Pipeline"
	}
	return "Deployment"
}

// ParseObjectType validates an object_type value.
func ParseObjectType(s string) (ObjectType, error) {
	if s == "" {
		return "", Errorf(EINVALID, "object_type is required")
	}
	t := ObjectType(s)
	if !t.Valid() {
		return "", Errorf(EINVALID, "object_type %q is not valid; use deployment or pipeline", s)
	}
	return t, nil
}
