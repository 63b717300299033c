package service

import (
	"context"

	"github.com/ubihooks/ubihooks"
)

// DefaultConcurrency bounds the requests a version runs at once when maximum_instances is
// not given.
const DefaultConcurrency = 5

// MaxConcurrency caps maximum_instances.
const MaxConcurrency = 256

func validateFields(which string, fields []ubihooks.Field) error {
	seen := map[string]bool{}
	for i, f := range fields {
		if f.Name == "" {
			return ubihooks.Errorf(ubihooks.EINVALID, "%s[%d]: name is required", which, i)
		}
		if seen[f.Name] {
			return ubihooks.Errorf(ubihooks.EINVALID, "%s[%d]: field %q is listed twice", which, i, f.Name)
		}
		seen[f.Name] = true
		if !ubihooks.FieldDataTypes[f.DataType] {
			return ubihooks.Errorf(ubihooks.EINVALID, "%s[%d] (%s): data_type %q is not valid; use int, string, double, bool, dict, file, array_int, array_double, array_string or array_file", which, i, f.Name, f.DataType)
		}
	}
	return nil
}

func validateIOType(field, v string) (string, error) {
	switch v {
	case ubihooks.TypeStructured, ubihooks.TypePlain:
		return v, nil
	case "":
		return "", ubihooks.Errorf(ubihooks.EINVALID, "%s is required (structured or plain)", field)
	}
	return "", ubihooks.Errorf(ubihooks.EINVALID, "%s %q is not valid; use structured or plain", field, v)
}

// CreateObject creates a deployment or pipeline.
func (s *Service) CreateObject(ctx context.Context, projectID string, t ubihooks.ObjectType, in ubihooks.ObjectCreate) (*ubihooks.Object, error) {
	if err := ubihooks.ValidateName("name", in.Name); err != nil {
		return nil, err
	}
	o := &ubihooks.Object{ID: newID(), ProjectID: projectID, Type: t, Name: in.Name, Labels: in.Labels}
	if in.Description != nil {
		o.Description = *in.Description
	}
	if err := ubihooks.ValidateDescription(o.Description); err != nil {
		return nil, err
	}
	if err := ubihooks.ValidateLabels(in.Labels); err != nil {
		return nil, err
	}
	var err error
	if o.InputType, err = validateIOType("input_type", in.InputType); err != nil {
		return nil, err
	}
	if in.OutputType == "" && t == ubihooks.ObjectPipeline {
		in.OutputType = in.InputType // the client requires output_type in responses
	}
	if o.OutputType, err = validateIOType("output_type", in.OutputType); err != nil {
		return nil, err
	}
	if err := validateFields("input_fields", in.InputFields); err != nil {
		return nil, err
	}
	if err := validateFields("output_fields", in.OutputFields); err != nil {
		return nil, err
	}
	if o.InputType == ubihooks.TypeStructured {
		o.InputFields = in.InputFields
	} else if len(in.InputFields) > 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "input_fields are only allowed with input_type structured")
	}
	if o.OutputType == ubihooks.TypeStructured {
		o.OutputFields = in.OutputFields
	} else if len(in.OutputFields) > 0 {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "output_fields are only allowed with output_type structured")
	}
	o.CreatedAt = s.Now()
	o.UpdatedAt = o.CreatedAt
	if err := s.store.CreateObject(ctx, o); err != nil {
		return nil, err
	}
	return o, nil
}

// GetObject finds a deployment or pipeline.
func (s *Service) GetObject(ctx context.Context, projectID string, t ubihooks.ObjectType, name string) (*ubihooks.Object, error) {
	return s.store.GetObject(ctx, projectID, t, name)
}

// ListObjects lists a project's deployments or pipelines that have every label pair of
// labels (nil: all).
func (s *Service) ListObjects(ctx context.Context, projectID string, t ubihooks.ObjectType, labels map[string]string) ([]*ubihooks.Object, error) {
	all, err := s.store.ListObjects(ctx, projectID, t)
	if err != nil || len(labels) == 0 {
		return all, err
	}
	out := []*ubihooks.Object{}
	for _, o := range all {
		if ubihooks.MatchLabels(labels, o.Labels) {
			out = append(out, o)
		}
	}
	return out, nil
}

// UpdateObject changes a deployment or pipeline.
func (s *Service) UpdateObject(ctx context.Context, ref ObjectRef, in ubihooks.ObjectUpdate) (*ubihooks.Object, error) {
	o, err := s.store.GetObject(ctx, ref.ProjectID, ref.Type, ref.Name)
	if err != nil {
		return nil, err
	}
	if in.Name != nil {
		if err := ubihooks.ValidateName("name", *in.Name); err != nil {
			return nil, err
		}
		if o.Name == ubihooks.TrainingDeployment && *in.Name != o.Name && ref.Type == ubihooks.ObjectDeployment {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "the deployment %s holds the experiments and cannot be renamed", ubihooks.TrainingDeployment)
		}
		o.Name = *in.Name
	}
	if in.Description != nil {
		if err := ubihooks.ValidateDescription(*in.Description); err != nil {
			return nil, err
		}
		o.Description = *in.Description
	}
	if in.Labels != nil {
		if err := ubihooks.ValidateLabels(*in.Labels); err != nil {
			return nil, err
		}
		o.Labels = *in.Labels
	}
	if in.DefaultVersion != nil {
		if *in.DefaultVersion == "" {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "default_version must name an existing version")
		}
		o.DefaultVersion = *in.DefaultVersion
	}
	o.UpdatedAt = s.Now()
	if err := s.store.UpdateObject(ctx, o); err != nil {
		return nil, err
	}
	return s.store.GetObject(ctx, ref.ProjectID, ref.Type, o.Name)
}

// DeleteObject deletes a deployment or pipeline with its versions, webhooks and requests.
func (s *Service) DeleteObject(ctx context.Context, projectID string, t ubihooks.ObjectType, name string) error {
	return s.store.DeleteObject(ctx, projectID, t, name)
}

// CreateVersion creates a version; the first version of an object becomes its default.
func (s *Service) CreateVersion(ctx context.Context, o *ubihooks.Object, in ubihooks.VersionCreate) (*ubihooks.Version, error) {
	if err := ubihooks.ValidateName("version", in.Version); err != nil {
		return nil, err
	}
	v := &ubihooks.Version{ID: newID(), ObjectID: o.ID, ProjectID: o.ProjectID, ObjectType: o.Type, ObjectName: o.Name,
		Name: in.Version, Labels: in.Labels, Concurrency: DefaultConcurrency}
	upd := ubihooks.VersionUpdate{Description: in.Description, Environment: in.Environment, BackendURL: in.BackendURL,
		MaximumInstances: in.MaximumInstances}
	if in.Labels != nil {
		upd.Labels = &in.Labels
	}
	if in.Objects != nil || in.Attachments != nil {
		upd.Objects, upd.Attachments = &in.Objects, &in.Attachments
	}
	if err := s.applyVersion(ctx, o, v, upd); err != nil {
		return nil, err
	}
	v.CreatedAt = s.Now()
	v.UpdatedAt = v.CreatedAt
	if err := s.store.CreateVersion(ctx, v); err != nil {
		return nil, err
	}
	return v, nil
}

// applyVersion validates and applies the mutable fields of a version.
func (s *Service) applyVersion(ctx context.Context, o *ubihooks.Object, v *ubihooks.Version, in ubihooks.VersionUpdate) error {
	if in.Description != nil {
		if err := ubihooks.ValidateDescription(*in.Description); err != nil {
			return err
		}
		v.Description = *in.Description
	}
	if in.Labels != nil {
		if err := ubihooks.ValidateLabels(*in.Labels); err != nil {
			return err
		}
		v.Labels = *in.Labels
	}
	if in.Environment != nil {
		if err := ubihooks.ValidateText("environment", *in.Environment); err != nil {
			return err
		}
		v.Environment = *in.Environment
	}
	if in.MaximumInstances != nil {
		if *in.MaximumInstances < 1 || *in.MaximumInstances > MaxConcurrency {
			return ubihooks.Errorf(ubihooks.EINVALID, "maximum_instances must be between 1 and %d, got %d", MaxConcurrency, *in.MaximumInstances)
		}
		v.Concurrency = *in.MaximumInstances
	}
	if in.BackendURL != nil {
		if o.Type != ubihooks.ObjectDeployment && *in.BackendURL != "" {
			return ubihooks.Errorf(ubihooks.EINVALID, "backend_url is only for deployment versions; a pipeline version runs its objects")
		}
		if *in.BackendURL == "" {
			v.BackendURL = ""
		} else {
			u, err := ubihooks.NormalizeURL(*in.BackendURL)
			if err != nil {
				return ubihooks.Errorf(ubihooks.EINVALID, "backend_url: %s", ubihooks.ErrorMessage(err))
			}
			v.BackendURL = u
		}
	}
	if in.Objects != nil || in.Attachments != nil {
		if o.Type != ubihooks.ObjectPipeline {
			return ubihooks.Errorf(ubihooks.EINVALID, "objects and attachments are only for pipeline versions")
		}
		spec := &ubihooks.PipelineSpec{InputType: o.InputType}
		if v.Pipeline != nil {
			*spec = *v.Pipeline
		}
		if in.Objects != nil {
			spec.Objects = *in.Objects
		}
		if in.Attachments != nil {
			spec.Attachments = *in.Attachments
		}
		if _, err := s.PipelinePlan(ctx, o, spec); err != nil {
			return err
		}
		v.Pipeline = spec
	}
	if o.Type == ubihooks.ObjectPipeline && v.Pipeline == nil {
		v.Pipeline = &ubihooks.PipelineSpec{InputType: o.InputType, Objects: []ubihooks.PipelineObject{}, Attachments: []ubihooks.PipelineAttachment{}}
	}
	return nil
}

// GetVersion finds a version of an object.
func (s *Service) GetVersion(ctx context.Context, o *ubihooks.Object, name string) (*ubihooks.Version, error) {
	return s.store.GetVersion(ctx, o.ID, name)
}

// ListVersions lists an object's versions that have every label pair of labels (nil: all).
func (s *Service) ListVersions(ctx context.Context, o *ubihooks.Object, labels map[string]string) ([]*ubihooks.Version, error) {
	all, err := s.store.ListVersions(ctx, o.ID)
	if err != nil || len(labels) == 0 {
		return all, err
	}
	out := []*ubihooks.Version{}
	for _, v := range all {
		if ubihooks.MatchLabels(labels, v.Labels) {
			out = append(out, v)
		}
	}
	return out, nil
}

// UpdateVersion changes a version.
func (s *Service) UpdateVersion(ctx context.Context, o *ubihooks.Object, name string, in ubihooks.VersionUpdate) (*ubihooks.Version, error) {
	v, err := s.store.GetVersion(ctx, o.ID, name)
	if err != nil {
		return nil, err
	}
	if in.Version != nil && *in.Version != v.Name {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "a version cannot be renamed; create a new version instead")
	}
	if err := s.applyVersion(ctx, o, v, in); err != nil {
		return nil, err
	}
	v.UpdatedAt = s.Now()
	if err := s.store.UpdateVersion(ctx, v); err != nil {
		return nil, err
	}
	return s.store.GetVersion(ctx, o.ID, name)
}

// DeleteVersion deletes a version. The default version can only be deleted when it is
// the last one, so that webhooks and requests that follow the default never lose it
// silently.
func (s *Service) DeleteVersion(ctx context.Context, o *ubihooks.Object, name string) error {
	v, err := s.store.GetVersion(ctx, o.ID, name)
	if err != nil {
		return err
	}
	if v.Default {
		vs, err := s.store.ListVersions(ctx, o.ID)
		if err != nil {
			return err
		}
		if len(vs) > 1 {
			return ubihooks.Errorf(ubihooks.ECONFLICT, "version %q is the default of %s %q; make another version the default first", name, o.Type, o.Name)
		}
	}
	return s.store.DeleteVersion(ctx, o.ID, name)
}
