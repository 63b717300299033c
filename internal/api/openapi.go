package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
)

func (s *Server) openAPI(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, err := c.w.Write(s.openapi)
	return err
}

// openAPIDocument builds the OpenAPI 3.1 document from the route table and the Go types of
// request and response bodies, so the document describes exactly what is served.
func (s *Server) openAPIDocument() []byte {
	schemas := map[string]any{}
	paths := map[string]map[string]any{}
	for _, r := range s.router.routes {
		op := map[string]any{
			"summary":     r.Summary,
			"tags":        []string{r.Tag},
			"operationId": strings.ToLower(r.Method) + strings.NewReplacer("/", "_", "{", "", "}", "", "-", "_", ".", "_").Replace(r.Path),
		}
		var prms []any
		for _, seg := range r.segments {
			if strings.HasPrefix(seg, "{") {
				prms = append(prms, map[string]any{"name": seg[1 : len(seg)-1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		for _, q := range r.Query {
			prms = append(prms, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": "string"}})
		}
		if prms != nil {
			op["parameters"] = prms
		}
		if r.Request != nil {
			content := map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.Request), schemas)}}
			if r.RequestText {
				content["text/plain"] = map[string]any{"schema": map[string]any{"type": "string"}}
			}
			op["requestBody"] = map[string]any{"required": !r.RequestOptional, "content": content}
		}
		resp := map[string]any{"description": "success"}
		if r.Response != nil {
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.Response), schemas)}}
		}
		responses := map[string]any{itoa(r.Status): resp, "default": map[string]any{"$ref": "#/components/responses/Error"}}
		op["responses"] = responses
		if r.Auth != "none" {
			op["security"] = []any{map[string]any{"token": []string{}}}
		}
		if paths[r.Path] == nil {
			paths[r.Path] = map[string]any{}
		}
		paths[r.Path][strings.ToLower(r.Method)] = op
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "ubihooks API", "version": s.version,
			"description": "UbiOps-compatible webhooks API (v2.1) with ubihooks extensions."},
		"servers": []any{map[string]any{"url": BasePath}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{"token": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization",
				"description": "Token <token>"}},
			"responses": map[string]any{"Error": map[string]any{"description": "error", "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object", "required": []string{"error"},
					"properties": map[string]any{"error": map[string]any{"type": "string"}}}}}}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("api: openapi: " + err.Error())
	}
	return b
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// schemaOf returns a JSON Schema for t, registering named structs in schemas.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s map[string]any
	switch {
	case t == reflect.TypeOf(json.RawMessage{}):
		return map[string]any{}
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if _, ok := schemas[name]; !ok {
			schemas[name] = map[string]any{} // placeholder against recursion
			props := map[string]any{}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if !f.IsExported() || tag == "-" {
					continue
				}
				key, _, _ := strings.Cut(tag, ",")
				if key == "" {
					key = f.Name
				}
				props[key] = schemaOf(f.Type, schemas)
			}
			schemas[name] = map[string]any{"type": "object", "properties": props}
		}
		s = map[string]any{"$ref": "#/components/schemas/" + name}
		if nullable {
			return map[string]any{"oneOf": []any{s, map[string]any{"type": "null"}}}
		}
		return s
	case t.Kind() == reflect.Slice:
		s = map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case t.Kind() == reflect.Map:
		s = map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case t.Kind() == reflect.String:
		s = map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		s = map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		s = map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		s = map[string]any{"type": "number"}
	default:
		s = map[string]any{}
	}
	if nullable {
		if typ, ok := s["type"].(string); ok {
			s["type"] = []string{typ, "null"}
		}
	}
	return s
}
