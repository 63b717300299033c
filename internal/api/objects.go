package api

import (
	"net/http"
	"strings"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

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

// objectType returns the object type of a route from its path template (not the request
// path, whose decoded names may contain "/pipelines").
func objectType(c *call) ubihooks.ObjectType {
	if strings.Contains(c.route.Path, "/pipelines") {
		return ubihooks.ObjectPipeline
	}
	return ubihooks.ObjectDeployment
}

func objectParam(t ubihooks.ObjectType) string {
	if t == ubihooks.ObjectPipeline {
		return "pipeline_name"
	}
	return "deployment_name"
}

func (s *Server) object(c *call) (*ubihooks.Object, error) {
	t := objectType(c)
	return s.svc.GetObject(c.r.Context(), c.project.ID, t, c.p[objectParam(t)])
}

func (s *Server) objectsCreate(c *call) error {
	var in ubihooks.ObjectCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	o, err := s.svc.CreateObject(c.r.Context(), c.project.ID, objectType(c), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, objectDetail(c.project, o))
}

func (s *Server) objectsList(c *call) error {
	labels, err := ubihooks.ParseLabelFilter(c.r.URL.Query().Get("labels"))
	if err != nil {
		return err
	}
	os, err := s.svc.ListObjects(c.r.Context(), c.project.ID, objectType(c), labels)
	if err != nil {
		return err
	}
	out := make([]ObjectDetail, len(os))
	for i, o := range os {
		out[i] = objectDetail(c.project, o)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) objectsGet(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, objectDetail(c.project, o))
}

func (s *Server) objectsUpdate(c *call) error {
	var in ubihooks.ObjectUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	t := objectType(c)
	o, err := s.svc.UpdateObject(c.r.Context(), service.ObjectRef{ProjectID: c.project.ID, Type: t, Name: c.p[objectParam(t)]}, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, objectDetail(c.project, o))
}

func (s *Server) objectsDelete(c *call) error {
	t := objectType(c)
	if err := s.svc.DeleteObject(c.r.Context(), c.project.ID, t, c.p[objectParam(t)]); err != nil {
		return err
	}
	return c.noContent()
}
