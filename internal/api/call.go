package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// call carries one API call through its handler.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	p       params
	route   *route
	token   *ubihooks.Token
	project *ubihooks.Project
	lim     *bodyLimits
	held    int64 // bytes of lim's budget that the call's body holds
}

type handlerFunc func(c *call) error

func (c *call) json(status int, v any) error {
	handler.WriteJSON(c.w, status, v)
	return nil
}

func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// decode reads a JSON body into v. The Content-Type is not enforced (curl sends form
// encoding by default); the body must be JSON whatever it says. Unknown fields are
// ignored; wrong types, malformed JSON and trailing data are 400s that name the problem.
func (c *call) decode(v any) error { return c.decodeLimit(v, MaxBodyBytes) }

// decodeLimit is decode with a body limit of its own (external runtimes' results may be as
// large as request inputs).
func (c *call) decodeLimit(v any, limit int64) error {
	body, err := c.readBody(limit)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return ubihooks.Errorf(ubihooks.EINVALID, "request body is required (a JSON object)")
	}
	// encoding/json would replace invalid UTF-8 with U+FFFD and store a name or label
	// the caller never sent.
	if !utf8.Valid(body) {
		return ubihooks.Errorf(ubihooks.EINVALID, "request body must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return ubihooks.Errorf(ubihooks.EINVALID, "request body has data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return ubihooks.Errorf(ubihooks.EINVALID, "request body has data after the JSON value")
	}
	return nil
}

// jsonError turns a decoding error into a message a user can act on.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return ubihooks.Errorf(ubihooks.EINVALID, "request body must be %s, got a JSON %s", jsonKind(te.Type.String()), te.Value)
		}
		return ubihooks.Errorf(ubihooks.EINVALID, "invalid value for %q: expected %s, got %s", field, jsonKind(te.Type.String()), te.Value)
	case errors.As(err, &se):
		return ubihooks.Errorf(ubihooks.EINVALID, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ubihooks.Errorf(ubihooks.EINVALID, "malformed JSON: the body ends too early")
	}
	return ubihooks.Errorf(ubihooks.EINVALID, "malformed JSON: %v", err)
}

func jsonKind(goType string) string {
	t := strings.TrimLeft(goType, "*")
	switch {
	case t == "string" || strings.HasSuffix(t, "Type") || strings.HasSuffix(t, "Status"):
		return "a string"
	case t == "int" || t == "int64":
		return "an integer"
	case t == "bool":
		return "a boolean"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map[") || strings.Contains(t, "ubihooks.") || strings.Contains(t, "api."):
		return "an object"
	}
	return t
}

// queryInt parses an optional integer query parameter.
func (c *call) queryInt(name string, def, min, max int) (int, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "query parameter %s must be an integer, got %q", name, s)
	}
	if n < min || n > max {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "query parameter %s must be between %d and %d, got %d", name, min, max, n)
	}
	return n, nil
}

// Times are written as ISO 8601 in UTC with microseconds, which the Python client parses.
const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func isoTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func intPtr(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func nonNilLabels(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
