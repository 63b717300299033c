package service

import (
	"context"

	"github.com/ubihooks/ubihooks"
)

// PlanStep is one step of a pipeline run: the object to call, and how the previous step's
// output maps onto its input (nil mapping: the whole output is passed on).
type PlanStep struct {
	Object  ubihooks.PipelineObject
	Mapping []ubihooks.PipelineAttachmentField
}

// Plan is a pipeline version's graph as a linear chain, from pipeline_start to pipeline_end.
type Plan struct {
	Steps []PlanStep
	// EndMapping maps the last output onto the pipeline's output.
	EndMapping []ubihooks.PipelineAttachmentField
	// Ready is false when the version has no path to pipeline_end yet (requests then fail).
	Ready bool
}

// PipelinePlan validates a pipeline graph and orders it. Supported shapes: linear chains
// (pipeline_start → object → … → pipeline_end), where every destination has exactly one
// source and every source feeds exactly one destination. Objects must reference
// deployments of this project. Fan-out, fan-in, cycles and unreachable objects are refused
// with a 400 that names the offending object.
func (s *Service) PipelinePlan(ctx context.Context, o *ubihooks.Object, spec *ubihooks.PipelineSpec) (*Plan, error) {
	objects := map[string]ubihooks.PipelineObject{}
	for i, po := range spec.Objects {
		switch {
		case po.Name == "":
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d]: name is required", i)
		case po.Name == ubihooks.PipelineStart || po.Name == ubihooks.PipelineEnd:
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d]: %q is reserved", i, po.Name)
		case po.ReferenceName == "":
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d] (%s): reference_name is required", i, po.Name)
		case po.ReferenceType != "" && po.ReferenceType != string(ubihooks.ObjectDeployment):
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d] (%s): reference_type %q is not supported; pipeline objects must be deployments", i, po.Name, po.ReferenceType)
		}
		if _, dup := objects[po.Name]; dup {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d]: name %q is used twice", i, po.Name)
		}
		d, err := s.store.GetObject(ctx, o.ProjectID, ubihooks.ObjectDeployment, po.ReferenceName)
		if ubihooks.IsNotFound(err) {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d] (%s): deployment %q not found", i, po.Name, po.ReferenceName)
		}
		if err != nil {
			return nil, err
		}
		if po.Version != nil && *po.Version != "" {
			if _, err := s.store.GetVersion(ctx, d.ID, *po.Version); ubihooks.IsNotFound(err) {
				return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects[%d] (%s): version %q of deployment %q not found", i, po.Name, *po.Version, po.ReferenceName)
			} else if err != nil {
				return nil, err
			}
		}
		objects[po.Name] = po
	}
	next := map[string]string{} // source → destination
	mapping := map[string][]ubihooks.PipelineAttachmentField{}
	hasSource := map[string]bool{}
	for i, a := range spec.Attachments {
		dst := a.DestinationName
		if dst == "" {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d]: destination_name is required", i)
		}
		if _, ok := objects[dst]; !ok && dst != ubihooks.PipelineEnd {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d]: destination %q is not an object of this version", i, dst)
		}
		if len(a.Sources) != 1 || hasSource[dst] {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d]: %q has more than one source; only linear pipelines (one source per object) are supported", i, dst)
		}
		hasSource[dst] = true
		src := a.Sources[0].SourceName
		if _, ok := objects[src]; !ok && src != ubihooks.PipelineStart {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d]: source %q is not an object of this version", i, src)
		}
		if _, dup := next[src]; dup {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d]: %q feeds more than one object; only linear pipelines are supported", i, src)
		}
		for j, m := range a.Sources[0].Mapping {
			if m.SourceFieldName == "" || m.DestinationFieldName == "" {
				return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments[%d].sources[0].mapping[%d]: source_field_name and destination_field_name are required", i, j)
			}
		}
		next[src] = dst
		mapping[dst] = a.Sources[0].Mapping
	}
	plan := &Plan{}
	if len(spec.Attachments) == 0 {
		return plan, nil // not wired yet
	}
	seen := map[string]bool{}
	cur := ubihooks.PipelineStart
	for {
		dst, ok := next[cur]
		if !ok {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments: %q is not connected to anything; connect a path from pipeline_start to pipeline_end", cur)
		}
		if dst == ubihooks.PipelineEnd {
			plan.EndMapping = mapping[dst]
			break
		}
		if seen[dst] {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "attachments: the pipeline has a cycle through %q", dst)
		}
		seen[dst] = true
		plan.Steps = append(plan.Steps, PlanStep{Object: objects[dst], Mapping: mapping[dst]})
		cur = dst
	}
	for name := range objects {
		if !seen[name] {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "objects: %q is not on the path from pipeline_start to pipeline_end", name)
		}
	}
	plan.Ready = true
	return plan, nil
}
