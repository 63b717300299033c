package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func objectName(o *ubihooks.Object) string   { return o.Name }
func versionName(v *ubihooks.Version) string { return v.Name }

func testObjects(t *testing.T, s suite) {
	s.run(t, "CreateGet", func(t *testing.T, f *fx) {
		o := &ubihooks.Object{ID: newID(), ProjectID: f.p.ID, Type: ubihooks.ObjectDeployment, Name: "dep", Description: "a model",
			Labels: map[string]string{"team": "ml", "env": "prod"}, InputType: ubihooks.TypeStructured, OutputType: ubihooks.TypePlain,
			InputFields: []ubihooks.Field{{Name: "x", DataType: "int"}, {Name: "img", DataType: "file"}}, CreatedAt: base, UpdatedAt: at(time.Second)}
		f.must(f.s.CreateObject(f.ctx, o))
		got, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep")
		f.must(err)
		same(t, "object", got, o)
		if got.DefaultVersion != "" {
			t.Errorf("object without versions has DefaultVersion %q, want \"\"", got.DefaultVersion)
		}

		other := f.project("other")
		for _, c := range []struct {
			what, project string
			typ           ubihooks.ObjectType
			name          string
		}{
			{"other type", f.p.ID, ubihooks.ObjectPipeline, "dep"},
			{"other project", other.ID, ubihooks.ObjectDeployment, "dep"},
			{"missing name", f.p.ID, ubihooks.ObjectDeployment, "nope"},
		} {
			_, err := f.s.GetObject(f.ctx, c.project, c.typ, c.name)
			wantCode(t, "GetObject("+c.what+")", err, ubihooks.ENOTFOUND)
		}
	})
	s.run(t, "EmptyLabels", func(t *testing.T, f *fx) {
		o := &ubihooks.Object{ID: newID(), ProjectID: f.p.ID, Type: ubihooks.ObjectPipeline, Name: "pipe",
			InputType: ubihooks.TypePlain, OutputType: ubihooks.TypePlain, CreatedAt: base, UpdatedAt: base}
		f.must(f.s.CreateObject(f.ctx, o))
		got, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectPipeline, "pipe")
		f.must(err)
		if got.Labels == nil || len(got.Labels) != 0 {
			t.Errorf("object created with nil labels has Labels %#v, want an empty non-nil map", got.Labels)
		}
	})
	s.run(t, "Duplicate", func(t *testing.T, f *fx) {
		dep := f.object(ubihooks.ObjectDeployment, "shared")
		err := f.s.CreateObject(f.ctx, &ubihooks.Object{ID: newID(), ProjectID: f.p.ID, Type: ubihooks.ObjectDeployment, Name: "shared",
			InputType: ubihooks.TypePlain, OutputType: ubihooks.TypePlain, CreatedAt: base, UpdatedAt: base})
		wantCode(t, "CreateObject(taken deployment name)", err, ubihooks.ECONFLICT)
		// The same name is free for a pipeline, and in another project.
		pipe := f.object(ubihooks.ObjectPipeline, "shared")
		other := f.objectIn(f.project("other"), ubihooks.ObjectDeployment, "shared")
		for _, want := range []*ubihooks.Object{dep, pipe, other} {
			got, err := f.s.GetObject(f.ctx, want.ProjectID, want.Type, "shared")
			f.must(err)
			if got.ID != want.ID {
				t.Errorf("GetObject(%s, %s, shared).ID = %s, want %s", want.ProjectID, want.Type, got.ID, want.ID)
			}
		}
	})
	s.run(t, "List", func(t *testing.T, f *fx) {
		for _, n := range []string{"charlie", "alpha", "bravo"} {
			f.object(ubihooks.ObjectDeployment, n)
		}
		f.object(ubihooks.ObjectPipeline, "pipe")
		f.objectIn(f.project("other"), ubihooks.ObjectDeployment, "aardvark")
		deps, err := f.s.ListObjects(f.ctx, f.p.ID, ubihooks.ObjectDeployment)
		f.must(err)
		sameList(t, "deployments", names(deps, objectName), []string{"alpha", "bravo", "charlie"})
		pipes, err := f.s.ListObjects(f.ctx, f.p.ID, ubihooks.ObjectPipeline)
		f.must(err)
		sameList(t, "pipelines", names(pipes, objectName), []string{"pipe"})
		none, err := f.s.ListObjects(f.ctx, f.project("empty").ID, ubihooks.ObjectDeployment)
		f.must(err)
		if len(none) != 0 {
			t.Errorf("empty project lists %d deployments", len(none))
		}
	})
	s.run(t, "Update", func(t *testing.T, f *fx) {
		o, _ := f.deployment("dep")
		f.version(o, "v2", "")
		f.object(ubihooks.ObjectDeployment, "taken")

		o.Name, o.Description, o.Labels, o.DefaultVersion, o.UpdatedAt = "renamed", "new description", map[string]string{"k": "v"}, "v2", at(time.Hour)
		f.must(f.s.UpdateObject(f.ctx, o))
		got, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "renamed")
		f.must(err)
		same(t, "updated object", got, o)
		_, err = f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep")
		wantCode(t, "GetObject(old name)", err, ubihooks.ENOTFOUND)
		for name, want := range map[string]bool{"v1": false, "v2": true} {
			v, err := f.s.GetVersion(f.ctx, o.ID, name)
			f.must(err)
			if v.Default != want {
				t.Errorf("after UpdateObject(default v2): version %s Default = %v, want %v", name, v.Default, want)
			}
		}

		bad := *o
		bad.DefaultVersion, bad.Description = "missing", "not written"
		wantCode(t, "UpdateObject(missing default version)", f.s.UpdateObject(f.ctx, &bad), ubihooks.ENOTFOUND)
		got, err = f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "renamed")
		f.must(err)
		same(t, "object after a refused update", got, o)

		bad = *o
		bad.Name = "taken"
		wantCode(t, "UpdateObject(taken name)", f.s.UpdateObject(f.ctx, &bad), ubihooks.ECONFLICT)
		bad = *o
		bad.ID = newID()
		wantCode(t, "UpdateObject(missing ID)", f.s.UpdateObject(f.ctx, &bad), ubihooks.ENOTFOUND)
	})
	s.run(t, "Delete", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		f.emit(base, f.event(o, v, "completed", base))
		ds := f.deliveries(w)
		r := f.request(v, base)
		keep, keepV := f.deployment("keep")
		keepW := f.webhook(keep, keepV, "keep-hook", "completed")

		f.must(f.s.DeleteObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep"))
		_, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep")
		wantCode(t, "GetObject(deleted)", err, ubihooks.ENOTFOUND)
		_, err = f.s.GetVersion(f.ctx, o.ID, "v1")
		wantCode(t, "GetVersion(of deleted object)", err, ubihooks.ENOTFOUND)
		vs, err := f.s.ListVersions(f.ctx, o.ID)
		f.must(err)
		if len(vs) != 0 {
			t.Errorf("deleted object still lists %d versions", len(vs))
		}
		_, err = f.s.GetWebhook(f.ctx, f.p.ID, "hook")
		wantCode(t, "GetWebhook(of deleted object)", err, ubihooks.ENOTFOUND)
		if len(ds) == 1 {
			_, _, err = f.s.GetDelivery(f.ctx, f.p.ID, ds[0].ID)
			wantCode(t, "GetDelivery(of deleted object's webhook)", err, ubihooks.ENOTFOUND)
		} else {
			t.Errorf("before delete: %d deliveries, want 1", len(ds))
		}
		_, err = f.s.GetRequest(f.ctx, f.p.ID, r.ID)
		wantCode(t, "GetRequest(of deleted object)", err, ubihooks.ENOTFOUND)

		// Other objects are untouched, and the name is free again.
		if _, err := f.s.GetWebhook(f.ctx, f.p.ID, keepW.Name); err != nil {
			t.Errorf("webhook of another object: %v", err)
		}
		if _, err := f.s.GetVersion(f.ctx, keep.ID, "v1"); err != nil {
			t.Errorf("version of another object: %v", err)
		}
		f.object(ubihooks.ObjectDeployment, "dep")

		wantCode(t, "DeleteObject(missing)", f.s.DeleteObject(f.ctx, f.p.ID, ubihooks.ObjectPipeline, "dep"), ubihooks.ENOTFOUND)
	})
}

func testVersions(t *testing.T, s suite) {
	s.run(t, "FirstIsDefault", func(t *testing.T, f *fx) {
		o := f.object(ubihooks.ObjectDeployment, "dep")
		v1 := &ubihooks.Version{ID: newID(), ObjectID: o.ID, ProjectID: f.p.ID, ObjectType: o.Type, ObjectName: o.Name, Name: "v1",
			Description: "first", Labels: map[string]string{"stage": "a"}, Environment: "python3-12", BackendURL: "http://b.invalid",
			Concurrency: 3, CreatedAt: base, UpdatedAt: at(time.Second)}
		f.must(f.s.CreateVersion(f.ctx, v1))
		if !v1.Default {
			t.Errorf("CreateVersion(first) left Version.Default false, want true")
		}
		got, err := f.s.GetVersion(f.ctx, o.ID, "v1")
		f.must(err)
		same(t, "version v1", got, v1)
		if !got.Default {
			t.Errorf("GetVersion(first).Default = false, want true")
		}

		v2 := &ubihooks.Version{ID: newID(), ObjectID: o.ID, ProjectID: f.p.ID, ObjectType: o.Type, ObjectName: o.Name, Name: "v2",
			Labels: map[string]string{}, CreatedAt: at(time.Minute), UpdatedAt: at(time.Minute)}
		f.must(f.s.CreateVersion(f.ctx, v2))
		if v2.Default {
			t.Errorf("CreateVersion(second) set Version.Default, want false")
		}
		got, err = f.s.GetVersion(f.ctx, o.ID, "v2")
		f.must(err)
		same(t, "version v2", got, v2)
		obj, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep")
		f.must(err)
		if obj.DefaultVersion != "v1" {
			t.Errorf("object DefaultVersion = %q, want v1", obj.DefaultVersion)
		}

		vs, err := f.s.ListVersions(f.ctx, o.ID)
		f.must(err)
		sameList(t, "versions", names(vs, versionName), []string{"v1", "v2"})
		if len(vs) == 2 && (!vs[0].Default || vs[1].Default) {
			t.Errorf("ListVersions Default flags = %v, %v; want true, false", vs[0].Default, vs[1].Default)
		}

		dup := *v2
		dup.ID = newID()
		wantCode(t, "CreateVersion(taken name)", f.s.CreateVersion(f.ctx, &dup), ubihooks.ECONFLICT)
		_, err = f.s.GetVersion(f.ctx, o.ID, "v3")
		wantCode(t, "GetVersion(missing)", err, ubihooks.ENOTFOUND)
		// The same version name is free under another object.
		other := f.object(ubihooks.ObjectDeployment, "other")
		if v := f.version(other, "v1", ""); !v.Default {
			t.Errorf("first version of another object is not its default")
		}
	})
	s.run(t, "Update", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		v.Description, v.Labels, v.Environment, v.BackendURL, v.Concurrency, v.UpdatedAt =
			"changed", map[string]string{"a": "b"}, "python3-13", "", 7, at(time.Hour)
		f.must(f.s.UpdateVersion(f.ctx, v))
		got, err := f.s.GetVersion(f.ctx, o.ID, "v1")
		f.must(err)
		same(t, "updated version", got, v)
		missing := *v
		missing.ID = newID()
		wantCode(t, "UpdateVersion(missing ID)", f.s.UpdateVersion(f.ctx, &missing), ubihooks.ENOTFOUND)
	})
	s.run(t, "PipelineSpec", func(t *testing.T, f *fx) {
		o := f.object(ubihooks.ObjectPipeline, "pipe")
		v1 := "v1"
		spec := &ubihooks.PipelineSpec{
			InputType: ubihooks.TypeStructured,
			Objects: []ubihooks.PipelineObject{
				{Name: "step-a", ReferenceName: "dep", ReferenceType: "deployment", Version: &v1, Configuration: json.RawMessage(`{"n":1}`)},
				{Name: "step-b", ReferenceName: "dep"},
			},
			Attachments: []ubihooks.PipelineAttachment{{DestinationName: "step-b", Sources: []ubihooks.PipelineAttachmentSource{
				{SourceName: ubihooks.PipelineStart, Mapping: []ubihooks.PipelineAttachmentField{{SourceFieldName: "x", DestinationFieldName: "y"}}},
				{SourceName: "step-a", Mapping: []ubihooks.PipelineAttachmentField{}},
			}}},
		}
		v := &ubihooks.Version{ID: newID(), ObjectID: o.ID, ProjectID: f.p.ID, ObjectType: o.Type, ObjectName: o.Name, Name: "p1",
			Labels: map[string]string{}, Pipeline: spec, CreatedAt: base, UpdatedAt: base}
		f.must(f.s.CreateVersion(f.ctx, v))
		got, err := f.s.GetVersion(f.ctx, o.ID, "p1")
		f.must(err)
		same(t, "pipeline version", got, v)

		v.Pipeline = &ubihooks.PipelineSpec{Objects: []ubihooks.PipelineObject{{Name: "only", ReferenceName: "dep2"}}}
		f.must(f.s.UpdateVersion(f.ctx, v))
		got, err = f.s.GetVersion(f.ctx, o.ID, "p1")
		f.must(err)
		same(t, "updated pipeline version", got, v)

		// A deployment version has no pipeline spec.
		_, dv := f.deployment("dep")
		got, err = f.s.GetVersion(f.ctx, dv.ObjectID, "v1")
		f.must(err)
		if got.Pipeline != nil {
			t.Errorf("deployment version has Pipeline %+v, want nil", got.Pipeline)
		}
	})
	s.run(t, "Delete", func(t *testing.T, f *fx) {
		o, v1 := f.deployment("dep")
		v2 := f.version(o, "v2", "")
		bound1 := f.webhook(o, v1, "bound-v1", "completed")
		bound2 := f.webhook(o, v2, "bound-v2", "completed")
		unbound := f.webhook(o, nil, "unbound", "completed")

		f.must(f.s.DeleteVersion(f.ctx, o.ID, "v1"))
		_, err := f.s.GetVersion(f.ctx, o.ID, "v1")
		wantCode(t, "GetVersion(deleted)", err, ubihooks.ENOTFOUND)
		obj, err := f.s.GetObject(f.ctx, f.p.ID, ubihooks.ObjectDeployment, "dep")
		f.must(err)
		if obj.DefaultVersion != "" {
			t.Errorf("after deleting the default version: DefaultVersion = %q, want \"\"", obj.DefaultVersion)
		}
		got2, err := f.s.GetVersion(f.ctx, o.ID, "v2")
		f.must(err)
		if got2.Default {
			t.Errorf("deleting the default version made v2 the default")
		}
		_, err = f.s.GetWebhook(f.ctx, f.p.ID, bound1.Name)
		wantCode(t, "GetWebhook(bound to deleted version)", err, ubihooks.ENOTFOUND)
		for _, w := range []*ubihooks.Webhook{bound2, unbound} {
			if _, err := f.s.GetWebhook(f.ctx, f.p.ID, w.Name); err != nil {
				t.Errorf("GetWebhook(%s) after deleting another version: %v", w.Name, err)
			}
		}
		wantCode(t, "DeleteVersion(missing)", f.s.DeleteVersion(f.ctx, o.ID, "v1"), ubihooks.ENOTFOUND)
	})
}
