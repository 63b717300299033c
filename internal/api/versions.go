package api

import (
	"net/http"

	"github.com/ubihooks/ubihooks"
)

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

// PipelineObject is an object of a pipeline version as the API answers it. It is not the
// root's ubihooks.PipelineObject, which is what a caller sends: an answer adds the
// object's derived id, always names its reference_type, and does not echo configuration.
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

// graphNamespace derives the ids of pipeline objects and attachments (name-based UUIDs of
// the version id and their names): they are stored inside their version, without ids of
// their own, and must keep the same id from one read to the next.
const graphNamespace = "0d8f4b3a-6a3e-4d43-a2f4-7b2f1c9e5a10"

func versionDetail(v *ubihooks.Version, retention int) VersionDetail {
	d := VersionDetail{ID: v.ID, Version: v.Name, Default: v.Default, Description: v.Description, Labels: nonNilLabels(v.Labels),
		CreationDate: isoTime(v.CreatedAt), LastUpdated: isoTime(v.UpdatedAt), RequestRetentionTime: retention,
		RequestRetentionMode: "full", Environment: strPtr(v.Environment)}
	if v.ObjectType == ubihooks.ObjectPipeline {
		d.Pipeline = v.ObjectName
		d.Objects, d.Attachments = []PipelineObject{}, []Attachment{}
		if v.Pipeline != nil {
			for _, o := range v.Pipeline.Objects {
				d.Objects = append(d.Objects, PipelineObject{ID: ubihooks.NameID(graphNamespace, v.ID+"/o/"+o.Name),
					Name: o.Name, ReferenceName: o.ReferenceName, ReferenceType: "deployment", Version: o.Version})
			}
			for _, a := range v.Pipeline.Attachments {
				src := a.Sources
				if src == nil {
					src = []ubihooks.PipelineAttachmentSource{}
				}
				d.Attachments = append(d.Attachments, Attachment{ID: ubihooks.NameID(graphNamespace, v.ID+"/a/"+a.DestinationName),
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

func (s *Server) retentionSeconds() int { return int(s.retention.Seconds()) }

func (s *Server) versionsCreate(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	var in ubihooks.VersionCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.svc.CreateVersion(c.r.Context(), o, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsList(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	labels, err := ubihooks.ParseLabelFilter(c.r.URL.Query().Get("labels"))
	if err != nil {
		return err
	}
	vs, err := s.svc.ListVersions(c.r.Context(), o, labels)
	if err != nil {
		return err
	}
	out := []VersionDetail{}
	for _, v := range vs {
		out = append(out, versionDetail(v, s.retentionSeconds()))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) versionsGet(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	v, err := s.svc.GetVersion(c.r.Context(), o, c.p["version"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsUpdate(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	var in ubihooks.VersionUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.svc.UpdateVersion(c.r.Context(), o, c.p["version"], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsDelete(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteVersion(c.r.Context(), o, c.p["version"]); err != nil {
		return err
	}
	return c.noContent()
}
