package api_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/client"
	"github.com/ubihooks/ubihooks/internal/api"
)

// The API's response models and the client's are written twice on purpose: the server
// renders times as strings in the one format UbiOps' Python client parses, while the
// public Go client offers time.Time and documents every field. These tests keep the two
// from drifting apart: the same JSON names, with the same JSON types, all the way down.

// wirePairs pairs each API model with the client type that decodes it.
var wirePairs = []struct{ api, client any }{
	{api.Status{}, client.Status{}},
	{api.ProjectCreate{}, client.ProjectCreate{}},
	{api.ProjectDetail{}, client.Project{}},
	{api.ObjectDetail{}, client.Object{}},
	{api.VersionDetail{}, client.Version{}},
	{api.WebhookDetail{}, client.Webhook{}},
	{api.WebhookTestDetail{}, client.WebhookTest{}},
	{api.DeliveryDetail{}, client.Delivery{}},
	{api.RedeliverMany{}, client.RedeliverMany{}},
	{api.RedeliverManyResult{}, client.RedeliverManyResult{}},
	{api.SigningKeys{}, client.SigningKeys{}},
}

// noClientModel lists the API models that the client has no call for, with the reason.
var noClientModel = map[string]string{
	"RequestDetail":      "the client has no request calls (requests are UbiOps' own API)",
	"RuntimeRequest":     "external runtimes call the API directly",
	"TokenDetail":        "tokens are the operator's to manage, with the CLI or the API directly",
	"WebhookStatsDetail": "the stats are for dashboards (the web UI reads them from the service); the client has no call for them yet",
}

// jsonFields returns the JSON fields of a struct type by name.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[time.Time]()
)

// jsonShape describes the JSON a Go type encodes to and decodes from: its kind, and for
// objects their fields, so that two types with equal shapes read the same JSON. A time is
// a string on the wire, whichever Go type holds it.
func jsonShape(t reflect.Type) string {
	nullable := ""
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), "|null"
	}
	switch {
	case t == rawMessageType:
		return "any"
	case t == timeType:
		return "string" + nullable
	}
	switch t.Kind() {
	case reflect.String:
		return "string" + nullable
	case reflect.Bool:
		return "boolean" + nullable
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer" + nullable
	case reflect.Float32, reflect.Float64:
		return "number" + nullable
	case reflect.Slice:
		return "[" + jsonShape(t.Elem()) + "]" + nullable
	case reflect.Map:
		return "{*:" + jsonShape(t.Elem()) + "}" + nullable
	case reflect.Struct:
		fs := jsonFields(t)
		keys := make([]string, 0, len(fs))
		for k := range fs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + jsonShape(fs[k])
		}
		return "{" + strings.Join(parts, ",") + "}" + nullable
	}
	return t.String() + nullable
}

// wireDiff lists how the JSON of two struct types differs, field by field.
func wireDiff(a, b reflect.Type) []string {
	fa, fb := jsonFields(a), jsonFields(b)
	var diffs []string
	for name, ta := range fa {
		tb, ok := fb[name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%q: only in %s", name, a))
		case jsonShape(ta) != jsonShape(tb):
			diffs = append(diffs, fmt.Sprintf("%q: %s is %s, %s is %s", name, a, jsonShape(ta), b, jsonShape(tb)))
		}
	}
	for name := range fb {
		if _, ok := fa[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: only in %s", name, b))
		}
	}
	slices.Sort(diffs)
	return diffs
}

func TestClientTypesMatchTheAPI(t *testing.T) {
	t.Parallel()
	for _, p := range wirePairs {
		a, c := reflect.TypeOf(p.api), reflect.TypeOf(p.client)
		for _, d := range wireDiff(a, c) {
			t.Errorf("%s and %s differ: %s", a, c, d)
		}
	}
}

// TestEveryAPIModelHasAClientType: a response model added to the route table needs a
// client type in wirePairs, or a reason in noClientModel.
func TestEveryAPIModelHasAClientType(t *testing.T) {
	t.Parallel()
	paired := map[reflect.Type]bool{}
	for _, p := range wirePairs {
		paired[reflect.TypeOf(p.api)] = true
	}
	e := newAPIEnv(t)
	for _, rt := range e.handler.RoutesForTest() {
		if rt.Response == nil {
			continue
		}
		typ := reflect.TypeOf(rt.Response)
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if !paired[typ] && noClientModel[typ.Name()] == "" {
			t.Errorf("%s %s answers %s, which has no client type in wirePairs (or reason in noClientModel)", rt.Method, rt.Path, typ)
		}
	}
}

// TestWireDiffFindsDrift: the comparison sees a renamed field, a changed type and a lost
// field, nested or not, so that the tests above can fail.
func TestWireDiffFindsDrift(t *testing.T) {
	t.Parallel()
	type inner struct {
		N int `json:"n"`
	}
	type base struct {
		ID     string            `json:"id"`
		When   *string           `json:"when"`
		Items  []inner           `json:"items"`
		Labels map[string]string `json:"labels"`
	}
	type same struct {
		ID    string     `json:"id"`
		When  *time.Time `json:"when"`
		Items []struct {
			N int64 `json:"n"`
		} `json:"items"`
		Labels map[string]string `json:"labels,omitempty"`
	}
	type drifted struct {
		Ident string    `json:"ident"`
		When  time.Time `json:"when"`
		Items []struct {
			N string `json:"n"`
		} `json:"items"`
	}
	if d := wireDiff(reflect.TypeFor[base](), reflect.TypeFor[same]()); len(d) != 0 {
		t.Errorf("equal wire shapes reported as different: %v", d)
	}
	d := wireDiff(reflect.TypeFor[base](), reflect.TypeFor[drifted]())
	for _, want := range []string{`"id": only in`, `"ident": only in`, `"when": `, `"items": `, `"labels": only in`} {
		if !slices.ContainsFunc(d, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("drift %q not reported; got %v", want, d)
		}
	}
}
