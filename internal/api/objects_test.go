package api_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/ubihooks/ubihooks/internal/service"
)

func TestProjectsEndpoints(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.root.Do("POST", "/projects", M{"name": "proj-new", "organization_name": "org", "labels": M{"x": "y"}}, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "ProjectDetail")
	if got := r.Object(t); got["name"] != "proj-new" || got["organization_name"] != "org" || !reflect.DeepEqual(got["labels"], M{}) {
		t.Errorf("created project = %s", r.Body)
	}
	// The creating token may use it; the other may not.
	r = e.root.Do("GET", "/projects/proj-new", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "ProjectDetail")
	expectError(t, e.root.As(e.tokB).Do("GET", "/projects/proj-new", nil, ""), http.StatusForbidden, "no access")

	r = e.root.Do("GET", "/projects", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "ProjectDetail")
	var names []string
	for _, p := range r.List(t) {
		names = append(names, p["name"].(string))
	}
	if !reflect.DeepEqual(names, []string{projA, "proj-new"}) {
		t.Errorf("projects of token A = %v", names)
	}

	for _, tc := range []struct {
		body   any
		status int
		msg    string
	}{
		{M{"name": "p2"}, 400, "organization_name is required"},
		{M{"organization_name": "o"}, 400, "name is required"},
		{M{"name": longName, "organization_name": "o"}, 400, "name must be at most 64 characters"},
		{M{"name": projB, "organization_name": "o"}, 409, "already exists"},
		{`{"name":1}`, 400, `invalid value for "name"`},
	} {
		expectError(t, e.root.Do("POST", "/projects", tc.body, ""), tc.status, tc.msg)
	}
}

func TestDeploymentsEndpoints(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.A.Do("POST", "/deployments", M{"name": "d2", "description": "a deployment", "input_type": "structured", "output_type": "plain",
		"input_fields": []M{{"name": "a", "data_type": "double"}}, "labels": M{"team": "x"}, "unknown": 1}, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "DeploymentDetail")
	got := r.Object(t)
	for k, v := range map[string]any{"name": "d2", "project": projA, "input_type": "structured", "output_type": "plain",
		"default_version": nil, "labels": M{"team": "x"}, "output_fields": []any{}, "description": "a deployment"} {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("create: %s = %#v, want %#v", k, got[k], v)
		}
	}

	r = e.A.Do("GET", "/deployments/dep", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentDetail")
	if got := r.Object(t)["default_version"]; got != "v1" {
		t.Errorf("default_version = %v, want v1 (the first version)", got)
	}

	r = e.A.Do("GET", "/deployments", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentDetail")
	if n := len(r.List(t)); n != 3 {
		t.Errorf("%d deployments, want 3", n)
	}
	r = e.A.Do("GET", "/deployments?labels=team:x", nil, "")
	expectStatus(t, r, http.StatusOK)
	if l := r.List(t); len(l) != 1 || l[0]["name"] != "d2" {
		t.Errorf("label filter: %s", r.Body)
	}

	r = e.A.Do("PATCH", "/deployments/dep", M{"description": "changed", "default_version": "v2", "labels": M{"k": "v"}}, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentDetail")
	if got := r.Object(t); got["default_version"] != "v2" || got["description"] != "changed" || !reflect.DeepEqual(got["labels"], M{"k": "v"}) {
		t.Errorf("after PATCH: %s", r.Body)
	}
	expectError(t, e.A.Do("PATCH", "/deployments/dep", M{"default_version": "v9"}, ""), 404, "v9")

	r = e.A.Do("DELETE", "/deployments/d2", nil, "")
	expectStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("DELETE body = %q", r.Body)
	}
	expectError(t, e.A.Do("GET", "/deployments/d2", nil, ""), 404, "not found")
	expectError(t, e.A.Do("DELETE", "/deployments/d2", nil, ""), 404, "not found")

	for _, tc := range []struct {
		body   any
		status int
		msg    string
	}{
		{M{"name": "d3", "output_type": "plain"}, 400, "input_type is required"},
		{M{"name": "d3", "input_type": "json", "output_type": "plain"}, 400, `input_type "json" is not valid`},
		{M{"name": "d3", "input_type": "structured", "output_type": "plain", "input_fields": []M{{"name": "a", "data_type": "float"}}}, 400, `data_type "float" is not valid`},
		{M{"name": "dep", "input_type": "plain", "output_type": "plain"}, 409, "already exists"},
		{M{"input_type": "plain", "output_type": "plain"}, 400, "name is required"},
		{M{"name": "d3", "input_type": "plain", "output_type": "plain", "description": string(make([]byte, 401))}, 400, "description must be at most 400"},
	} {
		expectError(t, e.A.Do("POST", "/deployments", tc.body, ""), tc.status, tc.msg)
	}
}

func TestVersionsEndpoints(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.A.Do("POST", "/deployments/dep/versions", M{"version": "v3", "description": "third", "labels": M{"stage": "beta"}, "environment": "python3-11", "maximum_instances": 2}, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "DeploymentVersionDetail")
	if got := r.Object(t); got["deployment"] != "dep" || got["version"] != "v3" || got["default"] != false || got["maximum_instances"] != 2.0 {
		t.Errorf("created version = %s", r.Body)
	}

	r = e.A.Do("GET", "/deployments/dep/versions/v1", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentVersionDetail")
	if got := r.Object(t)["default"]; got != true {
		t.Errorf("v1 default = %v", got)
	}

	r = e.A.Do("GET", "/deployments/dep/versions", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentVersionDetail")
	if n := len(r.List(t)); n != 3 {
		t.Errorf("%d versions, want 3", n)
	}
	r = e.A.Do("GET", "/deployments/dep/versions?labels=stage:beta", nil, "")
	if l := r.List(t); len(l) != 1 || l[0]["version"] != "v3" {
		t.Errorf("label filter: %s", r.Body)
	}

	r = e.A.Do("PATCH", "/deployments/dep/versions/v3", M{"description": "changed", "labels": M{}}, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "DeploymentVersionDetail")
	if got := r.Object(t); got["description"] != "changed" || !reflect.DeepEqual(got["labels"], M{}) {
		t.Errorf("after PATCH: %s", r.Body)
	}

	r = e.A.Do("DELETE", "/deployments/dep/versions/v3", nil, "")
	expectStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("DELETE body = %q", r.Body)
	}
	expectError(t, e.A.Do("GET", "/deployments/dep/versions/v3", nil, ""), 404, `"v3" not found`)
	expectError(t, e.A.Do("GET", "/deployments/nope/versions", nil, ""), 404, "not found")
	expectError(t, e.A.Do("POST", "/deployments/nope/versions", M{"version": "x"}, ""), 404, "not found")
	expectError(t, e.A.Do("POST", "/deployments/dep/versions", M{"version": "v1"}, ""), 409, "already exists")
	expectError(t, e.A.Do("POST", "/deployments/dep/versions", M{}, ""), 400, "version is required")
	expectError(t, e.A.Do("PATCH", "/deployments/dep/versions/v1", M{"version": "v9"}, ""), 400, "cannot be renamed")
	expectError(t, e.A.Do("DELETE", "/deployments/dep/versions/v1", nil, ""), 409, "is the default")

	// Pipelines and their versions.
	r = e.A.Do("POST", "/pipelines", M{"name": "pipe2", "input_type": "structured", "input_fields": []M{{"name": "a", "data_type": "int"}}}, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "PipelineDetail")
	if got := r.Object(t); got["output_type"] != "structured" {
		t.Errorf("pipeline output_type = %v, want it defaulted", got["output_type"])
	}
	r = e.A.Do("GET", "/pipelines/pipe", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineDetail")
	r = e.A.Do("GET", "/pipelines", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineDetail")
	r = e.A.Do("PATCH", "/pipelines/pipe2", M{"description": "p"}, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineDetail")

	r = e.A.Do("POST", "/pipelines/pipe2/versions", M{"version": "pv1"}, "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "PipelineVersionDetail")
	r = e.A.Do("GET", "/pipelines/pipe2/versions/pv1", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineVersionDetail")
	if got := r.Object(t); got["pipeline"] != "pipe2" || got["default"] != true {
		t.Errorf("pipeline version = %s", r.Body)
	}
	r = e.A.Do("GET", "/pipelines/pipe2/versions", nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineVersionDetail")
	r = e.A.Do("PATCH", "/pipelines/pipe2/versions/pv1", M{"description": "x"}, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "PipelineVersionDetail")
	expectStatus(t, e.A.Do("POST", "/pipelines/pipe2/versions", M{"version": "pv2"}, ""), http.StatusCreated)
	expectStatus(t, e.A.Do("DELETE", "/pipelines/pipe2/versions/pv2", nil, ""), http.StatusNoContent)
	expectStatus(t, e.A.Do("DELETE", "/pipelines/pipe2", nil, ""), http.StatusNoContent)
	expectError(t, e.A.Do("GET", "/pipelines/pipe2", nil, ""), 404, "not found")
}

// Deleting what a webhook points at removes the webhook.
func TestDeletingTheObjectDeletesItsWebhooks(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("on-v2", set("version", "v2")), 201)
	e.A.MustDo("POST", "/webhooks", webhook("on-dep"), 201)
	e.A.MustDo("DELETE", "/deployments/dep/versions/v2", nil, 204)
	expectError(t, e.A.Do("GET", "/webhooks/on-v2", nil, ""), 404, "not found")
	expectStatus(t, e.A.Do("GET", "/webhooks/on-dep", nil, ""), 200)
	e.A.MustDo("DELETE", "/deployments/dep", nil, 204)
	expectError(t, e.A.Do("GET", "/webhooks/on-dep", nil, ""), 404, "not found")
}

// The object type of a call comes from its route, not from its (decoded) path: a project
// or object whose name contains "pipelines" must not turn deployment calls into pipeline
// calls.
func TestObjectTypeFromRouteNotName(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	nt, err := e.Service.CreateToken(context.Background(), service.TokenCreate{Project: "pipelines-team", Organization: "org"})
	if err != nil {
		t.Fatal(err)
	}
	tok := nt.Secret
	base := "/projects/pipelines-team"
	r := e.root.As(tok).MustDo("POST", base+"/deployments", M{"name": "d", "input_type": "plain", "output_type": "plain"}, 201)
	expectModel(t, r, "DeploymentDetail")
	if got := r.Object(t); got["supports_request_format"] != false {
		t.Errorf("created under /deployments: %s, want a deployment", r.Body)
	}
	e.root.As(tok).MustDo("GET", base+"/deployments/d", nil, 200)
	if l := e.root.As(tok).MustDo("GET", base+"/pipelines", nil, 200).List(t); len(l) != 0 {
		t.Errorf("pipelines = %v, want none", l)
	}
	e.root.As(tok).MustDo("POST", base+"/deployments/d/versions", M{"version": "v1"}, 201)
	e.root.As(tok).MustDo("POST", base+"/webhooks", webhook("w", set("object_name", "d")), 201)
	// A deployment whose name has "/pipelines" in it.
	e.A.MustDo("POST", "/deployments", M{"name": "x/pipelines", "input_type": "plain", "output_type": "plain"}, 201)
	r = e.A.MustDo("POST", "/deployments/x%2Fpipelines/versions", M{"version": "v1"}, 201)
	expectModel(t, r, "DeploymentVersionDetail")
	e.A.MustDo("GET", "/deployments/x%2Fpipelines", nil, 200)
}
