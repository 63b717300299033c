package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

func (e *apiEnv) projectID(name string) string {
	e.T.Helper()
	p, err := e.Service.GetProject(context.Background(), name)
	if err != nil {
		e.T.Fatal(err)
	}
	return p.ID
}

// storedWebhook reads a webhook of project A from the store.
func (e *apiEnv) storedWebhook(name string) *ubihooks.Webhook {
	e.T.Helper()
	w, err := e.Store.GetWebhook(context.Background(), e.projectID(projA), name)
	if err != nil {
		e.T.Fatal(err)
	}
	return w
}

// openedHeaders returns a stored webhook's headers with protected values decrypted.
func (e *apiEnv) openedHeaders(name string) map[string]string {
	e.T.Helper()
	hs, err := e.Service.OpenHeaders(e.storedWebhook(name).Headers)
	if err != nil {
		e.T.Fatal(err)
	}
	out := map[string]string{}
	for _, h := range hs {
		out[h.Key] = h.Value
	}
	return out
}

var longName = strings.Repeat("n", 65)

// createCases are invalid webhook create bodies with the status and message they get.
// Each case changes one field of a valid body, so the rule it names is the one that
// refuses it. (Also the fuzz seeds.)
var createCases = []struct {
	name   string
	body   any // M or a raw string
	status int
	msg    []string
}{
	{"object_type not in enum", webhook("c1", set("object_type", "model")), 400, []string{`object_type "model" is not valid`, "deployment or pipeline"}},
	{"object_type experiment", webhook("c2", set("object_type", "experiment")), 400, []string{`object_type "experiment" is not valid`}},
	{"object_type missing", webhook("c3", set("object_type", nil)), 400, []string{"object_type is required"}},
	{"event not in enum", webhook("c4", set("event", "deployment_request_done")), 400, []string{`event "deployment_request_done" is not valid`, "deployment_request_completed"}},
	{"event missing", webhook("c5", set("event", nil)), 400, []string{"event is required"}},
	{"event of pipelines on a deployment", webhook("c6", set("event", "pipeline_request_completed")), 400, []string{`event "pipeline_request_completed" does not match object_type "deployment"`}},
	{"event of deployments on a pipeline", webhook("c7", set("object_type", "pipeline"), set("object_name", "pipe")), 400, []string{`does not match object_type "pipeline"`}},
	{"object_name missing", webhook("c8", set("object_name", nil)), 400, []string{"object_name is required"}},
	{"unknown deployment", webhook("c9", set("object_name", "nope")), 404, []string{`deployment "nope" not found`}},
	{"unknown pipeline", webhook("c10", set("object_type", "pipeline"), set("object_name", "dep"), set("event", "pipeline_request_failed")), 404, []string{`pipeline "dep" not found`}},
	{"unknown version", webhook("c11", set("version", "v9")), 404, []string{`version "v9" of deployment "dep" not found`}},
	{"empty version", webhook("c12", set("version", "")), 400, []string{"version must not be empty"}},
	{"no default version", webhook("c13", set("object_name", "empty")), 400, []string{`deployment "empty" has no versions yet`}},
	{"duplicate name", webhook("dup"), 409, []string{`a webhook named "dup" already exists`}},
	{"name missing", webhook("", set("name", nil)), 400, []string{"name is required"}},
	{"name null", webhook("", set("name", nil), func(m M) { m["name"] = json.RawMessage("null") }), 400, []string{"name is required"}},
	{"name 65 characters", webhook(longName), 400, []string{"name must be at most 64 characters, got 65"}},
	{"description 401 characters", webhook("c14", set("description", strings.Repeat("d", 401))), 400, []string{"description must be at most 400 characters, got 401"}},
	{"timeout 0", webhook("c15", set("timeout", 0)), 400, []string{"timeout must be between 1 and 30 seconds, got 0"}},
	{"timeout 31", webhook("c16", set("timeout", 31)), 400, []string{"timeout must be between 1 and 30 seconds, got 31"}},
	{"timeout negative", webhook("c17", set("timeout", -5)), 400, []string{"timeout must be between 1 and 30 seconds, got -5"}},
	{"timeout that overflows a duration", webhook("c17b", set("timeout", 18446744075)), 400, []string{"timeout must be between 1 and 30 seconds, got 18446744075"}},
	{"timeout beyond int64", `{"name":"c17c","object_type":"deployment","object_name":"dep","url":"https://example.com/","event":"deployment_request_completed","timeout":1e30}`, 400, []string{`invalid value for "timeout"`}},
	{"url missing", webhook("c18", set("url", nil)), 400, []string{"url is required"}},
	{"url relative", webhook("c19", set("url", "/hook")), 400, []string{"url must be an absolute http:// or https:// URL"}},
	{"url without scheme", webhook("c20", set("url", "example.com/hook")), 400, []string{"url must be an absolute http:// or https:// URL"}},
	{"url ftp", webhook("c21", set("url", "ftp://example.com/hook")), 400, []string{"url must be an absolute http:// or https:// URL", "ftp://example.com/hook"}},
	{"url without host", webhook("c22", set("url", "http:///hook")), 400, []string{"with a host"}},
	{"url with credentials", webhook("c23", set("url", "https://u:p@example.com/")), 400, []string{"url must not contain credentials"}},
	{"url bad port", webhook("c24", set("url", "http://example.com:99999/")), 400, []string{"invalid port"}},
	{"timeout as string", `{"name":"c25","object_type":"deployment","object_name":"dep","url":"https://example.com/","event":"deployment_request_completed","timeout":"10"}`, 400, []string{`invalid value for "timeout": expected an integer, got string`}},
	{"enabled as string", `{"name":"c26","object_type":"deployment","object_name":"dep","url":"https://example.com/","event":"deployment_request_completed","enabled":"yes"}`, 400, []string{`invalid value for "enabled": expected a boolean, got string`}},
	{"name as number", `{"name":5,"object_type":"deployment","object_name":"dep","url":"https://example.com/","event":"deployment_request_completed"}`, 400, []string{`invalid value for "name": expected a string, got number`}},
	{"labels as array", webhook("c27", set("labels", []string{})), 400, []string{`invalid value for "labels": expected an object, got array`}},
	{"headers as object", webhook("c28", set("headers", M{})), 400, []string{`invalid value for "headers": expected an array, got object`}},
	{"timeout fractional", webhook("c29", set("timeout", 1.5)), 400, []string{`invalid value for "timeout"`}},
	{"header without protected", webhook("c30", set("headers", []M{{"key": "X-A", "value": "v"}})), 400, []string{"headers[0] (X-A): protected is required"}},
	{"header without key", webhook("c31", set("headers", []M{{"value": "v", "protected": false}})), 400, []string{"headers[0]: key is required"}},
	{"header without value", webhook("c32", set("headers", []M{{"key": "X-A", "protected": false}})), 400, []string{"headers[0] (X-A): value is required"}},
	{"protected header without value", webhook("c33", set("headers", []M{{"key": "X-A", "protected": true}})), 400, []string{"headers[0] (X-A): value is required"}},
	{"reserved header", webhook("c34", set("headers", []M{{"key": "Content-Type", "value": "text/plain", "protected": false}})), 400, []string{`"Content-Type" is set by ubihooks`}},
	{"header listed twice", webhook("c35", set("headers", []M{{"key": "X-A", "value": "1", "protected": false}, {"key": "x-a", "value": "2", "protected": false}})), 400, []string{`"x-a" is listed twice`}},
	{"label key with colon", webhook("c36", set("labels", M{"a:b": "1"})), 400, []string{`labels: key "a:b" must not contain ':' or ','`}},
	{"malformed JSON", `{"name": "c37",`, 400, []string{"malformed JSON"}},
	{"invalid JSON token", `{"name": c38}`, 400, []string{"malformed JSON at byte"}},
	{"empty body", ``, 400, []string{"request body is required"}},
	{"array body", `[]`, 400, []string{"request body must be an object, got a JSON array"}},
	{"trailing data", `{"name":"c39"} {}`, 400, []string{"data after the JSON value"}},
}

func TestWebhookCreateValidation(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("dup"), 201)
	for _, tc := range createCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.A.Do("POST", "/webhooks", tc.body, "")
			expectError(t, r, tc.status, tc.msg...)
		})
	}
	// Nothing but "dup" was created.
	if ws := e.A.MustDo("GET", "/webhooks", nil, 200).List(t); len(ws) != 1 || ws[0]["name"] != "dup" {
		t.Errorf("webhooks after failed creates: %v", ws)
	}
}

func TestWebhookCreate(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for _, tc := range []struct {
		name string
		body M
		want M // expected fields of the response
	}{
		{"defaults", webhook("h1"), M{"name": "h1", "object_type": "deployment", "object_name": "dep", "version": nil,
			"url": "https://example.com/hook", "event": "deployment_request_completed", "timeout": 10.0, "enabled": true,
			"retry": false, "include_result": false, "description": "", "labels": M{}, "headers": []any{}}},
		{"every field", webhook("h2", set("version", "v2"), set("description", "d"), set("labels", M{"team": "a"}), set("timeout", 30),
			set("enabled", false), set("retry", true), set("include_result", true), set("event", "deployment_request_failed"),
			set("headers", []M{{"key": "X-Plain", "value": "p", "protected": false}})),
			M{"version": "v2", "description": "d", "labels": M{"team": "a"}, "timeout": 30.0, "enabled": false, "retry": true,
				"include_result": true, "event": "deployment_request_failed", "headers": []any{M{"key": "X-Plain", "value": "p", "protected": false}}}},
		{"timeout 1", webhook("h3", set("timeout", 1)), M{"timeout": 1.0}},
		{"pipeline", webhook("h4", set("object_type", "pipeline"), set("object_name", "pipe"), set("event", "pipeline_request_started")),
			M{"object_type": "pipeline", "object_name": "pipe", "event": "pipeline_request_started", "version": nil}},
		{"pipeline version", webhook("h5", set("object_type", "pipeline"), set("object_name", "pipe"), set("version", "pv1"), set("event", "pipeline_request_finished")),
			M{"version": "pv1"}},
		{"unknown fields ignored", webhook("h6", set("object_id", "x"), set("surprise", M{"nested": []int{1}}), set("created_by", 3)), M{"name": "h6"}},
		{"null means absent", webhook("h7", set("description", json.RawMessage("null")), set("timeout", json.RawMessage("null")),
			set("enabled", json.RawMessage("null")), set("labels", json.RawMessage("null")), set("headers", json.RawMessage("null")), set("version", json.RawMessage("null"))),
			M{"description": "", "timeout": 10.0, "enabled": true, "labels": M{}, "headers": []any{}, "version": nil}},
		{"every event", webhook("h8", set("event", "deployment_request_started")), M{"event": "deployment_request_started"}},
		{"finished event", webhook("h9", set("event", "deployment_request_finished")), M{"event": "deployment_request_finished"}},
		{"64-character name", webhook(strings.Repeat("x", 64)), M{"name": strings.Repeat("x", 64)}},
		{"400-character description", webhook("h10", set("description", strings.Repeat("d", 400))), M{"description": strings.Repeat("d", 400)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.A.Do("POST", "/webhooks", tc.body, "")
			expectStatus(t, r, http.StatusCreated)
			expectModel(t, r, "WebhookDetail")
			got := r.Object(t)
			for k, v := range tc.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			if id, _ := got["id"].(string); len(id) != 36 {
				t.Errorf("id = %v, want a UUID", got["id"])
			}
			// What GET returns is what create returned.
			g := e.A.Do("GET", "/webhooks/"+url.PathEscape(tc.body["name"].(string)), nil, "")
			expectStatus(t, g, 200)
			if !reflect.DeepEqual(g.Object(t), got) {
				t.Errorf("GET differs from create:\n%s\n%s", g.Body, r.Body)
			}
		})
	}
}

func TestWebhookURLNormalised(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for i, tc := range []struct{ in, want string }{
		{"HTTP://Example.COM:80/a%7Eb", "http://example.com/a~b"},
		{"https://Example.com:443", "https://example.com/"},
		{"http://example.com:8080/A%2fb?q=%7e&x=%2F", "http://example.com:8080/A%2Fb?q=~&x=%2F"},
		{"  https://example.com/hook  ", "https://example.com/hook"},
		{"http://[::1]:9000/x#frag", "http://[::1]:9000/x"},
		{"http://example.com/a b", "http://example.com/a%20b"},
		{"http://[FE80::1%25eth0]:8080/x", "http://[fe80::1%25eth0]:8080/x"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			name := "u" + string(rune('a'+i))
			r := e.A.Do("POST", "/webhooks", webhook(name, set("url", tc.in)), "")
			expectStatus(t, r, 201)
			if got := r.Object(t)["url"]; got != tc.want {
				t.Errorf("create: url = %v, want %s", got, tc.want)
			}
			if got := e.storedWebhook(name).URL; got != tc.want {
				t.Errorf("stored url = %s, want %s", got, tc.want)
			}
			if _, err := url.Parse(tc.want); err != nil {
				t.Errorf("the normal form %q is not a valid URL: %v", tc.want, err)
			}
			if again, err := ubihooks.NormalizeURL(tc.want); err != nil || again != tc.want {
				t.Errorf("normalising is not idempotent: %q → %q, %v", tc.want, again, err)
			}
			// PATCH normalises too.
			p := e.A.Do("PATCH", "/webhooks/"+name, M{"url": tc.in}, "")
			expectStatus(t, p, 200)
			if got := p.Object(t)["url"]; got != tc.want {
				t.Errorf("update: url = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestWebhookLifecycleStatusCodes(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	r := e.A.Do("POST", "/webhooks", webhook("life", set("labels", M{"k": "v"})), "")
	expectStatus(t, r, 201)
	expectModel(t, r, "WebhookDetail")
	created := r.Object(t)

	r = e.A.Do("GET", "/webhooks/life", nil, "")
	expectStatus(t, r, 200)
	expectModel(t, r, "WebhookDetail")

	r = e.A.Do("GET", "/webhooks", nil, "")
	expectStatus(t, r, 200)
	expectModel(t, r, "WebhookDetail")
	if ws := r.List(t); len(ws) != 1 || ws[0]["name"] != "life" {
		t.Errorf("list = %s", r.Body)
	}

	r = e.A.Do("PATCH", "/webhooks/life", M{"description": "changed", "timeout": 20, "enabled": false, "retry": true, "include_result": true,
		"event": "deployment_request_failed", "url": "https://other.example.com/x", "surprise": true}, "")
	expectStatus(t, r, 200)
	expectModel(t, r, "WebhookDetail")
	got := r.Object(t)
	want := M{"description": "changed", "timeout": 20.0, "enabled": false, "retry": true, "include_result": true,
		"event": "deployment_request_failed", "url": "https://other.example.com/x", "labels": M{"k": "v"}, "id": created["id"],
		"creation_date": created["creation_date"], "object_name": "dep", "version": nil}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("after PATCH %s = %#v, want %#v", k, got[k], v)
		}
	}

	// A PATCH with every field absent (or null) changes nothing but last_updated.
	before := e.A.Do("GET", "/webhooks/life", nil, "").Object(t)
	r = e.A.Do("PATCH", "/webhooks/life", M{"headers": nil, "labels": nil, "description": nil, "timeout": nil, "name": nil}, "")
	expectStatus(t, r, 200)
	after := r.Object(t)
	delete(before, "last_updated")
	delete(after, "last_updated")
	if !reflect.DeepEqual(before, after) {
		t.Errorf("empty PATCH changed the webhook:\n%v\n%v", before, after)
	}

	// Rename.
	r = e.A.Do("PATCH", "/webhooks/life", M{"name": "life2"}, "")
	expectStatus(t, r, 200)
	expectError(t, e.A.Do("GET", "/webhooks/life", nil, ""), 404, `webhook "life" not found`)
	expectStatus(t, e.A.Do("GET", "/webhooks/life2", nil, ""), 200)

	r = e.A.Do("DELETE", "/webhooks/life2", nil, "")
	expectStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("DELETE body = %q, want empty", r.Body)
	}
	expectError(t, e.A.Do("GET", "/webhooks/life2", nil, ""), 404, `webhook "life2" not found`)
	expectError(t, e.A.Do("DELETE", "/webhooks/life2", nil, ""), 404, `webhook "life2" not found`)
	expectError(t, e.A.Do("PATCH", "/webhooks/life2", M{"description": "x"}, ""), 404, `webhook "life2" not found`)
	if r := e.A.Do("GET", "/webhooks", nil, ""); string(bytes.TrimSpace(r.Body)) != "[]" {
		t.Errorf("empty list = %s, want []", r.Body)
	}
}

// updateCases are invalid PATCH bodies for the webhook "target" (the webhook "other"
// exists too).
var updateCases = []struct {
	name   string
	body   any
	status int
	msg    []string
}{
	{"object_type", M{"object_type": "pipeline"}, 400, []string{"object_type cannot be changed"}},
	{"object_type same value", M{"object_type": "deployment"}, 400, []string{"object_type cannot be changed"}},
	{"object_name", M{"object_name": "other"}, 400, []string{"object_name cannot be changed"}},
	{"version", M{"version": "v2"}, 400, []string{"version cannot be changed"}},
	{"name empty", M{"name": ""}, 400, []string{"name is required"}},
	{"name 65 characters", M{"name": longName}, 400, []string{"name must be at most 64 characters, got 65"}},
	{"name taken", M{"name": "other"}, 409, []string{`a webhook named "other" already exists`}},
	{"description 401", M{"description": strings.Repeat("d", 401)}, 400, []string{"description must be at most 400 characters, got 401"}},
	{"timeout 0", M{"timeout": 0}, 400, []string{"timeout must be between 1 and 30 seconds, got 0"}},
	{"timeout 31", M{"timeout": 31}, 400, []string{"timeout must be between 1 and 30 seconds, got 31"}},
	{"timeout that overflows a duration", M{"timeout": 18446744075}, 400, []string{"timeout must be between 1 and 30 seconds, got 18446744075"}},
	{"timeout as string", `{"timeout":"10"}`, 400, []string{`invalid value for "timeout": expected an integer, got string`}},
	{"enabled as string", `{"enabled":"yes"}`, 400, []string{`invalid value for "enabled": expected a boolean, got string`}},
	{"retry as number", `{"retry":1}`, 400, []string{`invalid value for "retry": expected a boolean, got number`}},
	{"url ftp", M{"url": "ftp://example.com/"}, 400, []string{"url must be an absolute http:// or https:// URL"}},
	{"url relative", M{"url": "hook"}, 400, []string{"url must be an absolute http:// or https:// URL"}},
	{"url empty", M{"url": ""}, 400, []string{"url is required"}},
	{"event not in enum", M{"event": "deployment_request_done"}, 400, []string{`event "deployment_request_done" is not valid`}},
	{"event of another object type", M{"event": "pipeline_request_completed"}, 400, []string{`does not match object_type "deployment"`}},
	{"event empty", M{"event": ""}, 400, []string{"event is required"}},
	{"protected header that was never stored", M{"headers": []M{{"key": "X-New", "protected": true}}}, 400, []string{`this webhook has no protected header "X-New"`}},
	{"header without protected", M{"headers": []M{{"key": "X-A", "value": "v"}}}, 400, []string{"protected is required"}},
	{"labels as array", `{"labels":[]}`, 400, []string{`invalid value for "labels": expected an object, got array`}},
	{"malformed JSON", `{"description":`, 400, []string{"malformed JSON"}},
	{"empty body", ``, 400, []string{"request body is required"}},
	{"string body", `"x"`, 400, []string{"request body must be an object, got a JSON string"}},
}

func TestWebhookUpdateValidation(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("target", set("description", "orig")), 201)
	e.A.MustDo("POST", "/webhooks", webhook("other"), 201)
	before := e.A.MustDo("GET", "/webhooks/target", nil, 200).Body
	for _, tc := range updateCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			expectError(t, e.A.Do("PATCH", "/webhooks/target", tc.body, ""), tc.status, tc.msg...)
		})
	}
	t.Run("unknown webhook", func(t *testing.T) {
		t.Parallel()
		expectError(t, e.A.Do("PATCH", "/webhooks/nope", M{"description": "x"}, ""), 404, `webhook "nope" not found`)
	})
	t.Cleanup(func() {
		if after := e.A.Do("GET", "/webhooks/target", nil, "").Body; !bytes.Equal(before, after) {
			t.Errorf("failed PATCHes changed the webhook:\n%s\n%s", before, after)
		}
	})
}

func TestWebhookUpdateReplacesHeadersAndLabels(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	e.A.MustDo("POST", "/webhooks", webhook("rep",
		set("labels", M{"a": "1", "b": "2"}),
		set("headers", []M{{"key": "X-One", "value": "1", "protected": false}, {"key": "X-Two", "value": "2", "protected": false}})), 201)

	r := e.A.MustDo("PATCH", "/webhooks/rep", M{"labels": M{"c": "3"}, "headers": []M{{"key": "X-Three", "value": "3", "protected": false}}}, 200)
	got := r.Object(t)
	if !reflect.DeepEqual(got["labels"], M{"c": "3"}) {
		t.Errorf("labels = %v, want only c:3", got["labels"])
	}
	if !reflect.DeepEqual(got["headers"], []any{M{"key": "X-Three", "value": "3", "protected": false}}) {
		t.Errorf("headers = %v, want only X-Three", got["headers"])
	}
	if hs := e.storedWebhook("rep").Headers; len(hs) != 1 || hs[0].Key != "X-Three" {
		t.Errorf("stored headers = %v", hs)
	}

	// Empty list and map clear them; labels come back as {} (never []).
	r = e.A.MustDo("PATCH", "/webhooks/rep", M{"labels": M{}, "headers": []M{}}, 200)
	got = r.Object(t)
	if !reflect.DeepEqual(got["labels"], M{}) || !reflect.DeepEqual(got["headers"], []any{}) {
		t.Errorf("after clearing: labels = %#v, headers = %#v", got["labels"], got["headers"])
	}
	expectModel(t, r, "WebhookDetail")
}

func TestProtectedHeaders(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const secret1 = "s3cr3t-VALUE-one-7f1e"
	const secret2 = "s3cr3t-VALUE-two-91ad"
	const secret3 = "s3cr3t-VALUE-three-c0de"

	// checkBody asserts that no secret occurs in a body and that every protected header
	// has a null value (never "").
	checkBody := func(t *testing.T, r ubihookstest.Response) {
		t.Helper()
		for _, s := range []string{secret1, secret2, secret3} {
			if bytes.Contains(r.Body, []byte(s)) {
				t.Errorf("%s: the body contains a protected value", r.Method+" "+r.Path)
			}
		}
		if bytes.Contains(r.Body, []byte(`"value":""`)) {
			t.Errorf("%s: a header value is \"\"", r)
		}
		var v any
		_ = json.Unmarshal(r.Body, &v)
		items := []any{v}
		if a, ok := v.([]any); ok {
			items = a
		}
		for _, it := range items {
			m, _ := it.(M)
			hs, _ := m["headers"].([]any)
			for _, h := range hs {
				h := h.(M)
				if h["protected"] == true {
					if v, ok := h["value"]; !ok || v != nil {
						t.Errorf("%s: protected header %v: value must be null", r.Method+" "+r.Path, h["key"])
					}
				}
			}
		}
	}

	hdrs := []M{{"key": "X-Api-Key", "value": secret1, "protected": true}, {"key": "X-Plain", "value": "plain-value", "protected": false}}
	r := e.A.Do("POST", "/webhooks", webhook("prot", set("headers", hdrs)), "")
	expectStatus(t, r, 201)
	checkBody(t, r)
	expectModel(t, r, "WebhookDetail")
	if want := []any{M{"key": "X-Api-Key", "value": nil, "protected": true}, M{"key": "X-Plain", "value": "plain-value", "protected": false}}; !reflect.DeepEqual(r.Object(t)["headers"], want) {
		t.Errorf("headers = %v, want %v", r.Object(t)["headers"], want)
	}
	checkBody(t, e.A.MustDo("GET", "/webhooks/prot", nil, 200))
	checkBody(t, e.A.MustDo("GET", "/webhooks", nil, 200))

	// At rest the value is only sealed, and it opens to the secret.
	w := e.storedWebhook("prot")
	if w.Headers[0].Value != "" || len(w.Headers[0].Sealed) == 0 || bytes.Contains(w.Headers[0].Sealed, []byte(secret1)) {
		t.Errorf("stored protected header is not sealed: value %q, %d sealed bytes", w.Headers[0].Value, len(w.Headers[0].Sealed))
	}
	if got, err := e.Box.Open(w.Headers[0].Sealed, "webhook-header"); err != nil || string(got) != secret1 {
		t.Errorf("sealed value opens to %q, %v", got, err)
	}
	if got := e.openedHeaders("prot"); got["X-Api-Key"] != secret1 || got["X-Plain"] != "plain-value" {
		t.Errorf("opened headers = %v", got)
	}

	// A PATCH that sends the protected header without a value (missing or null) keeps the
	// stored secret; other fields change.
	for i, h := range []M{{"key": "X-Api-Key", "protected": true}, {"key": "X-Api-Key", "value": nil, "protected": true}, {"key": "x-api-key", "protected": true}} {
		r = e.A.Do("PATCH", "/webhooks/prot", M{"description": "keep " + string(rune('0'+i)), "headers": []M{h, {"key": "X-Plain", "value": "p2", "protected": false}}}, "")
		expectStatus(t, r, 200)
		checkBody(t, r)
		if got := e.openedHeaders("prot"); got[h["key"].(string)] != secret1 || got["X-Plain"] != "p2" {
			t.Errorf("after PATCH %v: opened headers = %v, want the secret kept", h, got)
		}
	}
	// A PATCH without headers keeps them all.
	expectStatus(t, e.A.Do("PATCH", "/webhooks/prot", M{"timeout": 5}, ""), 200)
	if got := e.openedHeaders("prot"); got["x-api-key"] != secret1 {
		t.Errorf("after a PATCH without headers: %v", got)
	}

	// A new value replaces it.
	r = e.A.Do("PATCH", "/webhooks/prot", M{"headers": []M{{"key": "X-Api-Key", "value": secret2, "protected": true}}}, "")
	expectStatus(t, r, 200)
	checkBody(t, r)
	if got := e.openedHeaders("prot"); got["X-Api-Key"] != secret2 || len(got) != 1 {
		t.Errorf("after a new value: opened headers = %v, want only the new secret", got)
	}
	checkBody(t, e.A.MustDo("GET", "/webhooks/prot", nil, 200))
	checkBody(t, e.A.MustDo("GET", "/webhooks?labels=", nil, 200))

	// Failing calls that carry a secret do not echo it either.
	r = e.A.Do("POST", "/webhooks", webhook("prot2", set("timeout", 0), set("headers", []M{{"key": "X-Api-Key", "value": secret3, "protected": true}})), "")
	expectError(t, r, 400, "timeout")
	checkBody(t, r)
	r = e.A.Do("POST", "/webhooks", webhook("prot3", set("headers", []M{{"key": "X-Api-Key", "value": secret3 + "\n", "protected": true}})), "")
	expectError(t, r, 400, "control characters")
	checkBody(t, r)
	r = e.A.Do("PATCH", "/webhooks/prot", M{"timeout": 99, "headers": []M{{"key": "X-Api-Key", "value": secret3, "protected": true}}}, "")
	expectError(t, r, 400, "timeout")
	checkBody(t, r)

	// A webhook test's answer has no header at all.
	r = e.A.Do("POST", "/webhooks-tests", M{"object_type": "deployment", "object_name": "dep", "url": "https://example.com/t",
		"event": "deployment_request_completed", "headers": []M{{"key": "X-Api-Key", "value": secret3, "protected": true}}}, "")
	expectStatus(t, r, 201)
	checkBody(t, r)

	// Nothing was logged with a secret.
	logs := e.logs.String()
	if !strings.Contains(logs, "/webhooks") {
		t.Fatalf("the log capture saw no API call; logs:\n%s", logs)
	}
	for _, s := range []string{secret1, secret2, secret3} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain a protected value:\n%s", logs)
		}
	}
}

func TestProtectedValueNotInDatabaseFile(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const secret = "plaintext-canary-3b9f0c2d8e"
	e.A.MustDo("POST", "/webhooks", webhook("dbfile", set("headers", []M{{"key": "Authorization", "value": secret, "protected": true}})), 201)
	e.A.MustDo("PATCH", "/webhooks/dbfile", M{"headers": []M{{"key": "Authorization", "protected": true}}}, 200)
	e.A.MustDo("POST", "/webhooks-tests", M{"object_type": "deployment", "object_name": "dep", "url": "https://example.com/t",
		"event": "deployment_request_completed", "headers": []M{{"key": "Authorization", "value": secret, "protected": true}}}, 201)
	if got := e.openedHeaders("dbfile"); got["Authorization"] != secret {
		t.Fatalf("the secret is not stored: %v", got)
	}

	check := func(when string) {
		files, err := filepath.Glob(e.Path + "*")
		if err != nil || len(files) == 0 {
			t.Fatalf("no database files at %s: %v", e.Path, err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s: %s holds the protected value in plaintext", when, filepath.Base(f))
			}
			// The canary is findable when it is there: the non-protected parts are.
			if strings.HasSuffix(f, ".db") && when == "after close" && !bytes.Contains(b, []byte("dbfile")) {
				t.Errorf("%s: %s does not hold the webhook name; is this the database?", when, filepath.Base(f))
			}
		}
	}
	check("while open") // the -wal file holds the recent pages
	e.Close()
	check("after close")
}

func TestWebhookListFilters(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for _, w := range []M{
		webhook("l-ab", set("labels", M{"a": "1", "b": "2"})),
		webhook("l-a", set("labels", M{"a": "1"})),
		webhook("l-b", set("labels", M{"b": "2"})),
		webhook("l-ab3", set("labels", M{"a": "1", "b": "3"})),
		webhook("l-failed", set("labels", M{"a": "1", "b": "2"}), set("event", "deployment_request_failed")),
		webhook("l-pipe", set("labels", M{"a": "1", "b": "2"}), set("object_type", "pipeline"), set("object_name", "pipe"), set("event", "pipeline_request_failed")),
		webhook("l-none"),
	} {
		e.A.MustDo("POST", "/webhooks", w, 201)
	}
	all := []string{"l-a", "l-ab", "l-ab3", "l-b", "l-failed", "l-none", "l-pipe"}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", all},
		{"?labels=", all},
		{"?labels=a:1,b:2", []string{"l-ab", "l-failed", "l-pipe"}},
		{"?labels=a%3A1%2Cb%3A2", []string{"l-ab", "l-failed", "l-pipe"}},
		{"?labels=b:2,a:1", []string{"l-ab", "l-failed", "l-pipe"}},
		{"?labels=a:1", []string{"l-a", "l-ab", "l-ab3", "l-failed", "l-pipe"}},
		{"?labels=b:3", []string{"l-ab3"}},
		{"?labels=c:1", []string{}},
		{"?labels=a:1,b:2&object_type=deployment", []string{"l-ab", "l-failed"}},
		{"?object_type=pipeline", []string{"l-pipe"}},
		{"?object_type=deployment", []string{"l-a", "l-ab", "l-ab3", "l-b", "l-failed", "l-none"}},
		{"?event=deployment_request_failed", []string{"l-failed"}},
		{"?event=pipeline_request_completed", []string{}},
		{"?labels=a:1,b:2&event=deployment_request_completed", []string{"l-ab"}},
		{"?labels=a:1,b:2&object_type=deployment&event=deployment_request_failed", []string{"l-failed"}},
		{"?labels=a:1,b:2&object_type=pipeline&event=deployment_request_failed", []string{}},
		{"?object_name=pipe", []string{"l-pipe"}},
		{"?object_name=dep", []string{"l-a", "l-ab", "l-ab3", "l-b", "l-failed", "l-none"}},
		{"?object_name=dep&labels=a:1,b:2", []string{"l-ab", "l-failed"}},
		{"?object_name=dep&object_type=pipeline", []string{}},
		{"?object_name=nope", []string{}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			r := e.A.Do("GET", "/webhooks"+tc.query, nil, "")
			expectStatus(t, r, 200)
			expectModel(t, r, "WebhookDetail")
			var names []string
			for _, w := range r.List(t) {
				names = append(names, w["name"].(string))
			}
			slices.Sort(names)
			if names == nil {
				names = []string{}
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("got %v, want %v", names, tc.want)
			}
			if len(tc.want) == 0 && string(bytes.TrimSpace(r.Body)) != "[]" {
				t.Errorf("empty result is %s, want []", r.Body)
			}
		})
	}
	for _, tc := range []struct{ query, msg string }{
		{"?object_type=model", `object_type "model" is not valid`},
		{"?event=deployment_request_done", `event "deployment_request_done" is not a valid event`},
		{"?labels=:x", "each pair must look like key:value"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			expectError(t, e.A.Do("GET", "/webhooks"+tc.query, nil, ""), 400, tc.msg)
		})
	}
}

func TestWebhookTests(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	valid := func(mods ...func(M)) M {
		m := M{"object_type": "deployment", "object_name": "dep", "url": "https://example.com/test", "event": "deployment_request_completed"}
		for _, f := range mods {
			f(m)
		}
		return m
	}
	r := e.A.Do("POST", "/webhooks-tests", valid(set("headers", []M{{"key": "X-A", "value": "1", "protected": false}}), set("timeout", 5)), "")
	expectStatus(t, r, http.StatusCreated)
	expectModel(t, r, "WebhookTestDetail")
	created := r.Object(t)
	if created["status"] != "pending" || created["error_message"] != nil {
		t.Errorf("created test = %s, want pending without error", r.Body)
	}
	id := created["id"].(string)
	r = e.A.Do("GET", "/webhooks-tests/"+id, nil, "")
	expectStatus(t, r, http.StatusOK)
	expectModel(t, r, "WebhookTestDetail")
	if got := r.Object(t); got["id"] != id || got["status"] != "pending" {
		t.Errorf("GET test = %s", r.Body)
	}
	for _, body := range []M{
		valid(set("object_type", "pipeline"), set("object_name", "pipe"), set("event", "pipeline_request_started")),
		valid(set("version", "v2"), set("event", "deployment_request_failed"), set("retry", true), set("include_result", true)),
		valid(set("name", "ignored"), set("labels", M{"x": "y"})),
	} {
		expectStatus(t, e.A.Do("POST", "/webhooks-tests", body, ""), 201)
	}
	expectError(t, e.A.Do("GET", "/webhooks-tests/00000000-0000-0000-0000-000000000000", nil, ""), 404, "not found")
	expectError(t, e.A.Do("GET", "/webhooks-tests/nope", nil, ""), 404, `"nope" not found`)
	expectError(t, e.root.As(e.tokB).Do("GET", "/projects/"+projB+"/webhooks-tests/"+id, nil, ""), 404, "not found")

	for _, tc := range []struct {
		name   string
		body   any
		status int
		msg    string
	}{
		{"object_type", valid(set("object_type", "model")), 400, `object_type "model" is not valid`},
		{"object_type missing", valid(set("object_type", nil)), 400, "object_type is required"},
		{"event", valid(set("event", "deployment_request_x")), 400, `event "deployment_request_x" is not valid`},
		{"event prefix", valid(set("event", "pipeline_request_completed")), 400, `does not match object_type "deployment"`},
		{"event missing", valid(set("event", nil)), 400, "event is required"},
		{"object_name missing", valid(set("object_name", nil)), 400, "object_name is required"},
		{"unknown object", valid(set("object_name", "nope")), 404, `deployment "nope" not found`},
		{"unknown version", valid(set("version", "v9")), 404, `version "v9" of deployment "dep" not found`},
		{"no default version", valid(set("object_name", "empty")), 400, `deployment "empty" has no versions yet`},
		{"timeout 0", valid(set("timeout", 0)), 400, "timeout must be between 1 and 30 seconds, got 0"},
		{"timeout 31", valid(set("timeout", 31)), 400, "timeout must be between 1 and 30 seconds, got 31"},
		{"url missing", valid(set("url", nil)), 400, "url is required"},
		{"url ftp", valid(set("url", "ftp://example.com/")), 400, "url must be an absolute http:// or https:// URL"},
		{"timeout string", `{"object_type":"deployment","object_name":"dep","url":"https://example.com/","event":"deployment_request_completed","timeout":"10"}`, 400, `invalid value for "timeout"`},
		{"malformed", `{`, 400, "malformed JSON"},
		{"header without protected", valid(set("headers", []M{{"key": "X-A", "value": "v"}})), 400, "protected is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			expectError(t, e.A.Do("POST", "/webhooks-tests", tc.body, ""), tc.status, tc.msg)
		})
	}
}

func TestPercentEncodedPathSegments(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	for _, tc := range []struct{ name, escaped string }{
		{"a/b", "a%2Fb"},
		{"x y", "x%20y"},
		{"100%", "100%25"},
		{"q?r#s", "q%3Fr%23s"},
		{"plain", "pl%61in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.A.Do("POST", "/webhooks", webhook(tc.name), "")
			expectStatus(t, r, 201)
			r = e.A.Do("GET", "/webhooks/"+tc.escaped, nil, "")
			expectStatus(t, r, 200)
			if got := r.Object(t)["name"]; got != tc.name {
				t.Errorf("GET .../%s: name = %v, want %q", tc.escaped, got, tc.name)
			}
			r = e.A.Do("PATCH", "/webhooks/"+tc.escaped, M{"description": "found"}, "")
			expectStatus(t, r, 200)
			if got := r.Object(t)["description"]; got != "found" {
				t.Errorf("PATCH: description = %v", got)
			}
			expectStatus(t, e.A.Do("GET", "/webhooks/"+tc.escaped+"/deliveries", nil, ""), 200)
			r = e.A.Do("DELETE", "/webhooks/"+tc.escaped, nil, "")
			expectStatus(t, r, 204)
			expectError(t, e.A.Do("GET", "/webhooks/"+tc.escaped, nil, ""), 404, "not found")
		})
	}
	// An unescaped slash is two segments: no such route.
	e.A.MustDo("POST", "/webhooks", webhook("c/d"), 201)
	expectError(t, e.A.Do("GET", "/webhooks/c/d", nil, ""), 404, "no such endpoint")
	// The project segment is decoded too.
	expectStatus(t, e.root.Do("GET", "/projects/proj%2Da/webhooks/c%2Fd", nil, ""), 200)
	// A deployment name with a slash.
	e.A.MustDo("POST", "/deployments", M{"name": "team/dep", "input_type": "plain", "output_type": "plain"}, 201)
	e.A.MustDo("POST", "/deployments/team%2Fdep/versions", M{"version": "v/1"}, 201)
	r := e.A.MustDo("GET", "/deployments/team%2Fdep/versions/v%2F1", nil, 200)
	if got := r.Object(t)["deployment"]; got != "team/dep" {
		t.Errorf("deployment = %v", got)
	}
	e.A.MustDo("POST", "/webhooks", webhook("slashed", set("object_name", "team/dep"), set("version", "v/1")), 201)
}
