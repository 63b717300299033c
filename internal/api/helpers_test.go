package api_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ubihooks/ubihooks/internal/api"
	"github.com/ubihooks/ubihooks/internal/service"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// M is a JSON object under construction.
type M = ubihookstest.Obj

// Project names of every test environment.
const (
	projA = "proj-a"
	projB = "proj-b"
)

// apiEnv is one server over a fresh ubihookstest.Env, with two projects (A and B) and a
// token for each. Project A has:
//   - deployment "dep" (structured) with versions "v1" (the default) and "v2",
//   - deployment "empty" without versions,
//   - pipeline "pipe" with version "pv1".
//
// Project B has deployment "dep-b" with version "v1" and webhook "hook-b".
//
// Its clients call as UbiOps' Python client does: Accept and Content-Type
// application/json on every method, its User-Agent, and "Authorization: Token <t>".
type apiEnv struct {
	*ubihookstest.Env
	handler *api.Server
	logs    *ubihookstest.SyncBuffer
	server  *ubihookstest.API // paths from the server's root, token A
	root    *ubihookstest.API // paths below /v2.1, token A
	A       *ubihookstest.API // paths below /v2.1/projects/proj-a, token A
	tokA    string
	tokB    string
}

func newAPIEnv(t testing.TB) *apiEnv {
	t.Helper()
	logs := &ubihookstest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Token A is an admin token: the tests create projects with it. Token B is a project
	// token, to check what such tokens are refused.
	env := ubihookstest.New(t, ubihookstest.Options{Project: projA, Organization: "org-a", Logger: log, Admin: true})
	e := &apiEnv{Env: env, logs: logs, tokA: env.Token}
	e.handler = api.New(api.Config{Service: e.Service, Logger: log, Version: "test", RequestRetention: time.Hour})
	e.server = e.ServeAPI(e.handler, "")
	e.server.Header = http.Header{"User-Agent": {"UbiOps/python/4.12.0"}}
	root := *e.server
	root.URL += api.BasePath
	e.root = &root
	e.A = e.root.Project(projA)
	b, err := e.Service.CreateToken(e.Ctx, service.TokenCreate{Project: projB, Organization: "org-b", Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	e.tokB = b.Secret
	structured := M{"name": "dep", "input_type": "structured", "output_type": "structured",
		"input_fields": []M{{"name": "x", "data_type": "int"}}, "output_fields": []M{{"name": "y", "data_type": "string"}}}
	e.A.MustObj("POST", "/deployments", structured, 201)
	e.A.MustObj("POST", "/deployments/dep/versions", M{"version": "v1"}, 201)
	e.A.MustObj("POST", "/deployments/dep/versions", M{"version": "v2"}, 201)
	e.A.MustObj("POST", "/deployments", M{"name": "empty", "input_type": "plain", "output_type": "plain"}, 201)
	e.A.MustObj("POST", "/pipelines", M{"name": "pipe", "input_type": "plain"}, 201)
	e.A.MustObj("POST", "/pipelines/pipe/versions", M{"version": "pv1"}, 201)
	pb := e.root.As(e.tokB).Project(projB)
	pb.MustObj("POST", "/deployments", M{"name": "dep-b", "input_type": "plain", "output_type": "plain"}, 201)
	pb.MustObj("POST", "/deployments/dep-b/versions", M{"version": "v1"}, 201)
	pb.MustObj("POST", "/webhooks", M{"name": "hook-b", "object_type": "deployment", "object_name": "dep-b",
		"url": "https://b.example.com/hook", "event": "deployment_request_completed", "labels": M{"a": "1", "b": "2"}}, 201)
	return e
}

// webhook returns a valid create body for a deployment webhook on "dep".
func webhook(name string, mods ...func(M)) M {
	m := M{"name": name, "object_type": "deployment", "object_name": "dep", "url": "https://example.com/hook",
		"event": "deployment_request_completed"}
	for _, f := range mods {
		f(m)
	}
	return m
}

// set returns a modifier that sets key to v (or deletes it when v is nil).
func set(key string, v any) func(M) {
	return func(m M) {
		if v == nil {
			delete(m, key)
			return
		}
		m[key] = v
	}
}

// expectStatus fails t unless r has the status.
func expectStatus(t testing.TB, r ubihookstest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("%s: want status %d", r, want)
	}
}

// expectError checks an error answer: the status, Content-Type application/json, a body
// {"error": "<non-empty>"} and a message containing each of substrs.
func expectError(t testing.TB, r ubihookstest.Response, status int, substrs ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: want status %d", r, status)
	}
	checkErrorBody(t, r)
	var m struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &m)
	for _, s := range substrs {
		if !strings.Contains(m.Error, s) {
			t.Errorf("%s: error message %q does not contain %q", r, m.Error, s)
		}
	}
}

// checkErrorBody checks that r is an error in the contract's form.
func checkErrorBody(t testing.TB, r ubihookstest.Response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", r, ct)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s: error body is not a JSON object: %v", r, err)
	}
	var msg string
	if err := json.Unmarshal(m["error"], &msg); err != nil || strings.TrimSpace(msg) == "" {
		t.Errorf(`%s: error body has no non-empty "error" string`, r)
	}
}

// Model rules of UbiOps' Python client (from /work/ubiops-client-models.md): a response
// breaking one of them raises ValueError in the caller.

type fieldKind int

const (
	kStr fieldKind = iota
	kBool
	kInt
	kNum
	kDict
	kList
	kTime
)

// fieldRule is one attribute of a client model.
type fieldRule struct {
	name     string
	kind     fieldKind
	required bool   // present and non-null
	min, max int    // string length bounds (max 0: none)
	items    string // model of list items
}

func str(name string, required bool, min, max int) fieldRule {
	return fieldRule{name: name, kind: kStr, required: required, min: min, max: max}
}

var clientModels = map[string][]fieldRule{
	"WebhookHeader": {str("key", true, 1, 0), str("value", false, 1, 0), {name: "protected", kind: kBool, required: true}},
	"WebhookDetail": {str("id", false, 0, 0), str("name", true, 1, 64), str("object_type", false, 0, 0), str("object_name", false, 0, 0),
		str("version", false, 0, 0), str("url", true, 0, 0), {name: "headers", kind: kList, items: "WebhookHeader"}, str("event", true, 0, 0),
		{name: "creation_date", kind: kTime}, {name: "last_updated", kind: kTime}, str("description", false, 0, 400),
		{name: "labels", kind: kDict}, {name: "timeout", kind: kInt}, {name: "enabled", kind: kBool}, {name: "retry", kind: kBool},
		{name: "include_result", kind: kBool}},
	"WebhookTestDetail": {str("id", true, 0, 0), str("status", true, 0, 0), str("error_message", false, 0, 0)},
	"ProjectDetail": {str("id", false, 0, 0), str("name", true, 1, 64), {name: "creation_date", kind: kTime},
		{name: "advanced_permissions", kind: kBool}, {name: "credits", kind: kNum}, str("organization_name", true, 1, 0),
		{name: "labels", kind: kDict}, {name: "suspended", kind: kBool}, str("suspended_reason", false, 0, 0), {name: "cors_origins", kind: kList}},
	"InputOutputFieldDetail": {str("name", false, 1, 64), str("data_type", false, 1, 0)},
	"DeploymentDetail": {str("id", false, 0, 0), str("name", true, 1, 64), {name: "supports_request_format", kind: kBool},
		str("project", true, 1, 0), str("description", false, 0, 400), str("input_type", false, 1, 0), str("output_type", false, 1, 0),
		{name: "input_fields", kind: kList, items: "InputOutputFieldDetail"}, {name: "output_fields", kind: kList, items: "InputOutputFieldDetail"},
		{name: "labels", kind: kDict}, {name: "creation_date", kind: kTime}, {name: "last_updated", kind: kTime}, str("default_version", false, 0, 0)},
	"PipelineDetail": {str("id", false, 0, 0), str("name", true, 1, 64), str("project", true, 1, 0), str("description", false, 0, 400),
		str("input_type", true, 1, 0), str("output_type", true, 1, 0),
		// PipelineList requires both field lists.
		{name: "input_fields", kind: kList, required: true, items: "InputOutputFieldDetail"},
		{name: "output_fields", kind: kList, required: true, items: "InputOutputFieldDetail"},
		{name: "labels", kind: kDict}, {name: "creation_date", kind: kTime}, {name: "last_updated", kind: kTime}, str("default_version", false, 0, 0)},
	"DeploymentVersionDetail": {str("id", false, 0, 0), str("deployment", true, 1, 0), str("version", true, 1, 64), {name: "default", kind: kBool},
		str("description", false, 0, 400), str("environment_name", false, 1, 0), str("environment_tag", false, 1, 0), str("status", false, 0, 0),
		{name: "maximum_instances", kind: kInt}, {name: "minimum_instances", kind: kInt}, {name: "maximum_idle_time", kind: kInt},
		{name: "labels", kind: kDict}, {name: "creation_date", kind: kTime}, {name: "last_updated", kind: kTime},
		{name: "request_retention_time", kind: kInt}, str("request_retention_mode", false, 1, 0), {name: "ports", kind: kList},
		str("instance_type", false, 0, 0), str("scaling_strategy", false, 1, 0), str("instance_type_group_name", false, 1, 0)},
	"PipelineVersionDetail": {str("id", false, 0, 0), str("version", true, 1, 64), {name: "default", kind: kBool}, str("pipeline", true, 1, 0),
		str("description", false, 0, 400), {name: "labels", kind: kDict}, {name: "creation_date", kind: kTime}, {name: "last_updated", kind: kTime},
		{name: "request_retention_time", kind: kInt}, str("request_retention_mode", true, 1, 0),
		{name: "objects", kind: kList, items: "PipelineVersionObjectList"}, {name: "attachments", kind: kList}},
	"PipelineVersionObjectList": {str("id", true, 0, 0), str("name", true, 1, 0), str("reference_name", true, 1, 0)},
	"Status":                    {str("status", true, 1, 0), str("reason", false, 1, 0)},
}

// checkModel checks one JSON object against a client model's rules. It returns the
// problems found.
func checkModel(model string, v any) []string {
	rules, ok := clientModels[model]
	if !ok {
		return []string{"unknown model " + model}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("%s: not a JSON object: %T", model, v)}
	}
	var probs []string
	bad := func(f string, a ...any) { probs = append(probs, model+"."+fmt.Sprintf(f, a...)) }
	for _, r := range rules {
		val, present := obj[r.name]
		if val == nil {
			if r.required {
				bad("%s is required (present=%v)", r.name, present)
			}
			continue
		}
		switch r.kind {
		case kStr:
			s, ok := val.(string)
			if !ok {
				bad("%s: want a string, got %T", r.name, val)
				continue
			}
			n := utf8.RuneCountInString(s)
			if n < r.min {
				bad("%s: %q is shorter than %d", r.name, s, r.min)
			}
			if r.max > 0 && n > r.max {
				bad("%s: longer than %d", r.name, r.max)
			}
		case kBool:
			if _, ok := val.(bool); !ok {
				bad("%s: want a boolean, got %T (%v)", r.name, val, val)
			}
		case kInt:
			f, ok := val.(float64)
			if !ok || f != float64(int64(f)) {
				bad("%s: want an integer, got %T (%v)", r.name, val, val)
			}
		case kNum:
			if _, ok := val.(float64); !ok {
				bad("%s: want a number, got %T", r.name, val)
			}
		case kDict:
			d, ok := val.(map[string]any)
			if !ok {
				bad("%s: want an object (dict), got %T (%v)", r.name, val, val)
				continue
			}
			for k, x := range d {
				if _, ok := x.(string); !ok {
					bad("%s[%q]: want a string value, got %T", r.name, k, x)
				}
			}
		case kList:
			l, ok := val.([]any)
			if !ok {
				bad("%s: want an array, got %T", r.name, val)
				continue
			}
			if r.items != "" {
				for _, it := range l {
					probs = append(probs, checkModel(r.items, it)...)
				}
			}
		case kTime:
			s, ok := val.(string)
			if !ok {
				bad("%s: want an ISO 8601 string, got %T", r.name, val)
				continue
			}
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil || !strings.HasSuffix(s, "Z") {
				bad("%s: %q is not an ISO 8601 UTC datetime ending in Z", r.name, s)
			}
		}
	}
	return probs
}

// expectModel checks a response body (an object, or an array of objects) against a model.
func expectModel(t testing.TB, r ubihookstest.Response, model string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("%s: not JSON: %v", r, err)
	}
	items := []any{v}
	if a, ok := v.([]any); ok {
		items = a
	}
	for _, it := range items {
		for _, p := range checkModel(model, it) {
			t.Errorf("%s %s: %s", r.Method, r.Path, p)
		}
	}
}
