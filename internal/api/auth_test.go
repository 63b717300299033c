package api_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// concretePath fills a route's parameters: project_name with project, the others with x.
func concretePath(route, project string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case s == "{project_name}":
			segs[i] = project
		case strings.HasPrefix(s, "{"):
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

func TestCrossProjectIsolation(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	n := 0
	for _, rt := range e.handler.RoutesForTest() {
		if rt.Auth != "project" {
			continue
		}
		n++
		path := concretePath(rt.Path, projB)
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			t.Parallel()
			// Token A on project B: 403, whatever the body.
			expectError(t, e.root.Do(rt.Method, path, M{"name": "x"}, ""), http.StatusForbidden, `no access to project "proj-b"`)
			expectError(t, e.root.Auth(e.tokA).Do(rt.Method, path, nil, ""), http.StatusForbidden, `no access to project "proj-b"`)
			// And on a project that does not exist: 403 too (no existence oracle).
			expectError(t, e.root.Do(rt.Method, concretePath(rt.Path, "no-such-project"), nil, ""), http.StatusForbidden, "no access")
		})
	}
	if n < 20 {
		t.Errorf("only %d project routes in the table", n)
	}

	// B's objects never appear in A's lists, and are not reachable by name through A.
	for _, tc := range []struct{ path, name string }{
		{"/webhooks", "hook-b"}, {"/webhooks?labels=a:1,b:2", "hook-b"}, {"/deployments", "dep-b"},
	} {
		r := e.A.MustDo("GET", tc.path, nil, 200)
		for _, item := range r.List(t) {
			if item["name"] == tc.name {
				t.Errorf("GET %s in project A lists %s of project B", tc.path, tc.name)
			}
		}
	}
	expectError(t, e.A.Do("GET", "/webhooks/hook-b", nil, ""), 404, `webhook "hook-b" not found`)
	expectError(t, e.A.Do("DELETE", "/webhooks/hook-b", nil, ""), 404, "not found")
	expectError(t, e.A.Do("GET", "/deployments/dep-b", nil, ""), 404, "not found")
	expectError(t, e.A.Do("POST", "/webhooks", webhook("steal", set("object_name", "dep-b")), ""), 404, `deployment "dep-b" not found`)
	// A webhook of the same name may exist in both projects.
	expectStatus(t, e.A.Do("POST", "/webhooks", webhook("hook-b"), ""), 201)
	r := e.root.As(e.tokB).MustDo("GET", "/projects/"+projB+"/webhooks/hook-b", nil, 200)
	if got := r.Object(t)["object_name"]; got != "dep-b" {
		t.Errorf("B's hook-b changed: object_name %v", got)
	}
	// GET /projects lists only the token's projects.
	r = e.root.MustDo("GET", "/projects", nil, 200)
	expectModel(t, r, "ProjectDetail")
	for _, p := range r.List(t) {
		if p["name"] != projA {
			t.Errorf("token A lists project %v", p["name"])
		}
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for _, rt := range e.handler.RoutesForTest() {
		if rt.Auth == "none" {
			continue
		}
		path := concretePath(rt.Path, projA)
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			t.Parallel()
			expectError(t, e.root.Auth("").Do(rt.Method, path, nil, ""), http.StatusUnauthorized, "authentication required", "Authorization: Token")
			expectError(t, e.root.Auth("Token ").Do(rt.Method, path, nil, ""), http.StatusUnauthorized)
			expectError(t, e.root.Auth("Token ubh_not-a-token").Do(rt.Method, path, nil, ""), http.StatusUnauthorized, "invalid token")
			expectError(t, e.root.Auth(e.tokA+"x").Do(rt.Method, path, nil, ""), http.StatusUnauthorized, "invalid token")
		})
	}
	// The Python client's form, the R client's bare token, and lower case scheme.
	for _, auth := range []string{"Token " + e.tokA, e.tokA, "token " + e.tokA, "Bearer " + e.tokA, "  Token   " + e.tokA + " "} {
		r := e.root.Auth(auth).Do("GET", "/projects/"+projA, nil, "")
		expectStatus(t, r, 200)
		expectModel(t, r, "ProjectDetail")
	}
	// Routes without authentication work without a token.
	for _, rt := range e.handler.RoutesForTest() {
		if rt.Auth != "none" {
			continue
		}
		if strings.Contains(rt.Path, "{") {
			if r := e.root.Auth("").Do(rt.Method, concretePath(rt.Path, projA), nil, ""); r.Status == http.StatusUnauthorized {
				t.Errorf("%s: a route without authentication asks for it", r)
			}
			continue
		}
		expectStatus(t, e.root.Auth("").Do(rt.Method, rt.Path, nil, ""), rt.Status)
	}
}

func TestBodylessGETAndDELETEWithJSONContentType(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("ct"), 201)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"GET", "/webhooks/ct", nil, 200},
		{"GET", "/webhooks", nil, 200},
		{"GET", "/webhooks/ct", "", 200}, // Content-Length: 0
		{"GET", "/deployments/dep", nil, 200},
		{"GET", "/webhooks/ct/deliveries", nil, 200},
		{"DELETE", "/webhooks/ct", nil, 204},
		{"DELETE", "/deployments/dep/versions/v2", "", 204},
	} {
		r := e.A.Do(tc.method, tc.path, tc.body, "") // the client always sends Content-Type: application/json
		expectStatus(t, r, tc.status)
		if tc.status == 204 && len(r.Body) != 0 {
			t.Errorf("%s: body %q, want none", r, r.Body)
		}
	}
}

func TestStatusEndpoint(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.root.Auth("").Do("GET", "/status", nil, "")
	expectStatus(t, r, 200)
	expectModel(t, r, "Status")
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil || len(got) != 1 || got["status"] != "ok" {
		t.Errorf(`status body = %s, want {"status":"ok"}`, r.Body)
	}
	// With a token too (the client always sends one).
	expectStatus(t, e.root.Do("GET", "/status", nil, ""), 200)
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for _, tc := range []struct {
		method, url string
		status      int
		msg         string
	}{
		{"GET", "/v2.1/nope", 404, "no such endpoint: GET /v2.1/nope"},
		{"GET", "/nope", 404, "the API is served under /v2.1"},
		{"GET", "/v2.1/projects/proj-a/webhooks/x/y/z", 404, "no such endpoint"},
		{"PUT", "/v2.1/projects/proj-a/webhooks/x", 405, "method PUT is not allowed here"},
		{"DELETE", "/v2.1/projects/proj-a/webhooks", 405, "not allowed"},
		{"GET", "/v2.1/projects//webhooks", 404, "no such endpoint"},
	} {
		r := e.server.Do(tc.method, tc.url, nil, "")
		expectError(t, r, tc.status, tc.msg)
		if tc.status == 405 && r.Header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", r)
		}
	}
	// A too-large body is refused with a JSON error too.
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	expectError(t, e.A.Do("POST", "/webhooks", big, ""), http.StatusRequestEntityTooLarge, "larger than")
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.root.Auth("").Do("GET", "/openapi.json", nil, "")
	expectStatus(t, r, 200)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/v2.1" {
		t.Errorf("servers = %+v", doc.Servers)
	}
	routes := e.handler.RoutesForTest()
	ops := 0
	for _, ms := range doc.Paths {
		ops += len(ms)
	}
	if ops != len(routes) {
		t.Errorf("the document has %d operations, the route table %d", ops, len(routes))
	}
	for _, rt := range routes {
		raw, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("%s %s is served but not documented", rt.Method, rt.Path)
			continue
		}
		var op struct {
			Responses map[string]json.RawMessage `json:"responses"`
			Security  []any                      `json:"security"`
		}
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatal(err)
		}
		if _, ok := op.Responses[strconv.Itoa(rt.Status)]; !ok {
			t.Errorf("%s %s: no %d response documented", rt.Method, rt.Path, rt.Status)
		}
		if (rt.Auth != "none") != (len(op.Security) > 0) {
			t.Errorf("%s %s: auth %q but security %v", rt.Method, rt.Path, rt.Auth, op.Security)
		}
	}
	for _, name := range []string{"WebhookDetail", "WebhookCreate", "WebhookUpdate", "WebhookTestDetail", "HeaderInput"} {
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("schema %s missing", name)
		}
	}
}
