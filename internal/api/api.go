// Package api serves the UbiOps-compatible v2.1 REST API (and ubihooks' documented
// extensions) over internal/service. It knows nothing of the store behind the service.
package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

// BasePath prefixes every API path.
const BasePath = "/v2.1"

// MaxBodyBytes bounds management request bodies.
const MaxBodyBytes = 1 << 20

// MaxRequestInputBytes bounds request (inference) inputs.
const MaxRequestInputBytes = 32 << 20

// Config holds the API's dependencies.
type Config struct {
	Service *service.Service
	Logger  *slog.Logger
	// Version is reported in the OpenAPI document.
	Version string
	// RequestRetention is how long requests are kept (reported on versions).
	RequestRetention time.Duration
}

// Server is the API's http.Handler.
type Server struct {
	svc       *service.Service
	log       *slog.Logger
	version   string
	router    *router
	openapi   []byte
	retention time.Duration
}

// New returns the API handler.
func New(cfg Config) *Server {
	s := &Server{svc: cfg.Service, log: cfg.Logger, version: cfg.Version, retention: cfg.RequestRetention}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.router = newRouter(s.routes())
	s.openapi = s.openAPIDocument()
	return s
}

// call carries one API call through its handler.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	p       params
	route   *route
	token   *ubihooks.Token
	project *ubihooks.Project
	reqID   string
}

type handlerFunc func(c *call) error

type ctxKey struct{}

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes, authenticates, runs the handler and maps its error.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	reqID := r.Header.Get("X-Request-Id")
	if reqID == "" || len(reqID) > 64 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		reqID = hex.EncodeToString(b)
	}
	sw.Header().Set("X-Request-Id", reqID)
	c := &call{w: sw, r: r, reqID: reqID}
	pattern := "unmatched"
	err := func() error {
		path := r.URL.EscapedPath()
		if !strings.HasPrefix(path, BasePath+"/") && path != BasePath {
			return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint: %s %s (the API is served under %s)", r.Method, r.URL.Path, BasePath)
		}
		rt, p, allowed := s.router.match(r.Method, strings.TrimPrefix(path, BasePath))
		if rt == nil {
			if len(allowed) > 0 {
				sw.Header().Set("Allow", strings.Join(allowed, ", "))
				return &httpError{status: http.StatusMethodNotAllowed, msg: fmt.Sprintf("method %s is not allowed here; use %s", r.Method, strings.Join(allowed, " or "))}
			}
			return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path)
		}
		pattern = rt.Method + " " + rt.Path
		c.p, c.route = p, rt
		if err := s.authenticate(c, rt); err != nil {
			return err
		}
		return rt.Handler(c)
	}()
	if err != nil {
		s.writeError(c, err)
	}
	attrs := []any{"method", r.Method, "route", pattern, "status", sw.status, "duration", time.Since(start), "request_id", reqID}
	if c.project != nil {
		attrs = append(attrs, "project", c.project.Name)
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "http", slogAttrs(attrs)...)
}

func slogAttrs(kv []any) []slog.Attr {
	out := make([]slog.Attr, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.Any(kv[i].(string), kv[i+1]))
	}
	return out
}

func (s *Server) authenticate(c *call, rt *route) error {
	if rt.Auth == "none" {
		return nil
	}
	header := c.r.Header.Get("Authorization")
	project := ""
	if rt.Auth == "project" {
		project = c.p["project_name"]
	}
	tok, p, err := s.svc.Authenticate(c.r.Context(), header, project)
	if err != nil {
		return err
	}
	c.token, c.project = tok, p
	return nil
}

// httpError is an error with a fixed status (used for transport-level problems).
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// statusOf is the one table from error codes to HTTP statuses.
var statusOf = map[string]int{
	ubihooks.EINVALID:      http.StatusBadRequest,
	ubihooks.ENOTFOUND:     http.StatusNotFound,
	ubihooks.ECONFLICT:     http.StatusConflict,
	ubihooks.EUNAUTHORIZED: http.StatusUnauthorized,
	ubihooks.EFORBIDDEN:    http.StatusForbidden,
	ubihooks.ERATELIMITED:  http.StatusTooManyRequests,
	ubihooks.EUNAVAILABLE:  http.StatusServiceUnavailable,
	ubihooks.EINTERNAL:     http.StatusInternalServerError,
}

// writeError writes {"error": "..."}; internal errors are logged once with their chain
// and shown only as "internal error" with the request id.
func (s *Server) writeError(c *call, err error) {
	status, msg := http.StatusInternalServerError, ""
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case ubihooks.ErrorCode(err) == ubihooks.EINTERNAL:
		var ue *ubihooks.Error
		if errors.As(err, &ue) {
			msg = ue.Message
		} else {
			msg = "internal error (request id " + c.reqID + ")"
		}
		s.log.Error("internal error", "request_id", c.reqID, "method", c.r.Method, "err", err)
	default:
		status, msg = statusOf[ubihooks.ErrorCode(err)], ubihooks.ErrorMessage(err)
	}
	if errors.Is(err, context.Canceled) && c.r.Context().Err() != nil {
		status, msg = 499, "client closed the request"
	}
	if status == http.StatusTooManyRequests {
		c.w.Header().Set("X-Ratelimit-Reset", "1")
	}
	writeJSON(c.w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error: response encoding failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *call) json(status int, v any) error {
	writeJSON(c.w, status, v)
	return nil
}

func (c *call) noContent() error {
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// readBody reads a bounded request body.
func (c *call) readBody(limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", limit)}
	}
	if err != nil {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "could not read the request body")
	}
	return b, nil
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

func nonNilLabels(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (s *Server) retentionSeconds() int { return int(s.retention.Seconds()) }
