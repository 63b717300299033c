package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// logSink collects JSON log lines; handlers may log from the server's goroutines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// lines returns the decoded log lines with the given message.
func (s *logSink) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// serve runs one request through New(h) and returns the answer and the logs.
func serve(t *testing.T, h handler.Func, r *http.Request) (*httptest.ResponseRecorder, *logSink) {
	t.Helper()
	sink := &logSink{}
	log := slog.New(slog.NewJSONHandler(sink, nil))
	w := httptest.NewRecorder()
	handler.New(h, handler.Options{Logger: log}).ServeHTTP(w, r)
	return w, sink
}

func errorBody(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || len(m) != 1 {
		t.Fatalf("body = %q, want {\"error\": ...}", w.Body)
	}
	return m["error"]
}

func TestStatus(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]int{
		ubihooks.EINVALID:      400,
		ubihooks.ENOTFOUND:     404,
		ubihooks.ECONFLICT:     409,
		ubihooks.EUNAUTHORIZED: 401,
		ubihooks.EFORBIDDEN:    403,
		ubihooks.ERATELIMITED:  429,
		ubihooks.EUNAVAILABLE:  503,
		ubihooks.EINTERNAL:     500,
		"no-such-code":         500,
		"":                     500,
	} {
		if got := handler.Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
}

// TestErrorAnswers: every kind of error becomes its status and {"error": msg}; only
// internal errors are logged, once, with their whole chain, and they show the request id
// instead of their text.
func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		msg      string
		internal bool // logged as an internal error
	}{
		{"invalid", ubihooks.Errorf(ubihooks.EINVALID, "name is required"), 400, "name is required", false},
		{"wrapped not found", fmt.Errorf("get webhook: %w", ubihooks.Errorf(ubihooks.ENOTFOUND, "webhook %q not found", "w")), 404, `webhook "w" not found`, false},
		{"conflict", ubihooks.Errorf(ubihooks.ECONFLICT, "exists"), 409, "exists", false},
		{"unavailable", ubihooks.Errorf(ubihooks.EUNAVAILABLE, "shutting down"), 503, "shutting down", false},
		{"status error", &handler.StatusError{Status: 405, Message: "method PUT is not allowed here"}, 405, "method PUT is not allowed here", false},
		{"plain error", fmt.Errorf("sqlite: claim: %w", errors.New("disk I/O error at /var/lib/x")), 500, "internal error (request id rid-7)", true},
		{"internal with a user message", ubihooks.Errorf(ubihooks.EINTERNAL, "the signing key is missing"), 500, "the signing key is missing", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/x", nil)
			r.Header.Set("X-Request-Id", "rid-7")
			w, logs := serve(t, func(http.ResponseWriter, *http.Request) error { return tc.err }, r)
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
			if got := errorBody(t, w); got != tc.msg {
				t.Errorf("error = %q, want %q", got, tc.msg)
			}
			if w.Header().Get("X-Ratelimit-Reset") != "" {
				t.Errorf("X-Ratelimit-Reset set on a %d", w.Code)
			}
			logged := logs.lines(t, "internal error")
			if !tc.internal {
				if len(logged) != 0 {
					t.Errorf("logged as internal: %v", logged)
				}
				return
			}
			if len(logged) != 1 {
				t.Fatalf("internal error logged %d times, want once", len(logged))
			}
			if logged[0]["err"] != tc.err.Error() || logged[0]["request_id"] != "rid-7" || logged[0]["method"] != "GET" {
				t.Errorf("internal error log = %v, want err %q with request_id and method", logged[0], tc.err)
			}
		})
	}
}

// TestRateLimited: a 429 always carries X-Ratelimit-Reset, or UbiOps' Python client
// waits a minute before it retries.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	w, _ := serve(t, func(http.ResponseWriter, *http.Request) error {
		return ubihooks.Errorf(ubihooks.ERATELIMITED, "slow down")
	}, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 429 || w.Header().Get("X-Ratelimit-Reset") != "1" {
		t.Errorf("status %d, X-Ratelimit-Reset %q; want 429 and 1", w.Code, w.Header().Get("X-Ratelimit-Reset"))
	}
	if got := errorBody(t, w); got != "slow down" {
		t.Errorf("error = %q, want %q", got, "slow down")
	}
}

// TestUnavailable: a 503 (the database restarting) tells clients when to try again.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	w, _ := serve(t, func(http.ResponseWriter, *http.Request) error {
		return ubihooks.Errorf(ubihooks.EUNAVAILABLE, "try again")
	}, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 503 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("status %d, Retry-After %q; want 503 and 1", w.Code, w.Header().Get("Retry-After"))
	}
	if got := errorBody(t, w); got != "try again" {
		t.Errorf("error = %q, want %q", got, "try again")
	}
}

// TestClientClosed: a handler that stops because its caller left is a 499 in the access
// log, not an internal error.
func TestClientClosed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/x", nil).WithContext(ctx)
	w, logs := serve(t, func(_ http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("wait: %w", r.Context().Err())
	}, r)
	if w.Code != handler.StatusClientClosed {
		t.Errorf("status = %d, want %d", w.Code, handler.StatusClientClosed)
	}
	if got := errorBody(t, w); got != "client closed the request" {
		t.Errorf("error = %q", got)
	}
	if n := len(logs.lines(t, "internal error")); n != 0 {
		t.Errorf("a caller leaving was logged as %d internal errors", n)
	}
	if a := logs.lines(t, "http"); len(a) != 1 || a[0]["status"] != 499.0 {
		t.Errorf("access log = %v, want one line with status 499", a)
	}
	// A canceled context of the handler's own, while the caller waits, is internal.
	w, _ = serve(t, func(http.ResponseWriter, *http.Request) error { return context.Canceled }, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 {
		t.Errorf("context.Canceled with the caller still there: status %d, want 500", w.Code)
	}
}

// TestPanicRecovered: a panicking handler answers an internal error with the request id,
// and the panic with its stack is logged once.
func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("POST", "/x", nil)
	r.Header.Set("X-Request-Id", "rid-p")
	w, logs := serve(t, func(http.ResponseWriter, *http.Request) error { panic("boom") }, r)
	if w.Code != 500 {
		t.Errorf("status = %d, want 500", w.Code)
	}
	if got := errorBody(t, w); got != "internal error (request id rid-p)" {
		t.Errorf("error = %q", got)
	}
	logged := logs.lines(t, "internal error")
	if len(logged) != 1 {
		t.Fatalf("panic logged %d times, want once", len(logged))
	}
	if msg, _ := logged[0]["err"].(string); !strings.HasPrefix(msg, "panic: boom\n") || !strings.Contains(msg, "handler_test.go") {
		t.Errorf("logged err = %q, want the panic value and its stack", msg)
	}
	if a := logs.lines(t, "http"); len(a) != 1 || a[0]["status"] != 500.0 {
		t.Errorf("access log = %v, want one line with status 500", a)
	}
}

// TestAbortHandlerPassesThrough: http.ErrAbortHandler is net/http's own way to abort an
// answer, so it is not recovered.
func TestAbortHandlerPassesThrough(t *testing.T) {
	t.Parallel()
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	handler.New(func(http.ResponseWriter, *http.Request) error { panic(http.ErrAbortHandler) }, handler.Options{}).
		ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	t.Error("ServeHTTP returned")
}

// TestErrorAfterAnswerBegun: an error returned after the answer began (a failed write)
// is logged, and the answer is left as written.
func TestErrorAfterAnswerBegun(t *testing.T) {
	t.Parallel()
	w, logs := serve(t, func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("partial"))
		return errors.New("write: broken pipe")
	}, httptest.NewRequest("GET", "/x", nil))
	if w.Code != http.StatusAccepted || w.Body.String() != "partial" {
		t.Errorf("answer = %d %q, want 202 \"partial\"", w.Code, w.Body)
	}
	if n := len(logs.lines(t, "internal error")); n != 1 {
		t.Errorf("logged %d times, want once", n)
	}
}

// TestRequestID: a caller's X-Request-Id is kept when it is usable, and replaced by 16
// random hex digits when it is missing or too long; handlers read it with RequestID.
func TestRequestID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sent string
		keep       bool
	}{
		{"sent", "worker-1", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"missing", "", false},
		{"too long", strings.Repeat("a", 65), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/x", nil)
			if tc.sent != "" {
				r.Header.Set("X-Request-Id", tc.sent)
			}
			var seen string
			w, logs := serve(t, func(w http.ResponseWriter, r *http.Request) error {
				seen = handler.RequestID(r.Context())
				w.WriteHeader(http.StatusNoContent)
				return nil
			}, r)
			got := w.Header().Get("X-Request-Id")
			if seen != got {
				t.Errorf("RequestID in the handler = %q, header = %q", seen, got)
			}
			if tc.keep && got != tc.sent {
				t.Errorf("X-Request-Id = %q, want the caller's %q", got, tc.sent)
			}
			if !tc.keep && (len(got) != 16 || strings.Trim(got, "0123456789abcdef") != "") {
				t.Errorf("X-Request-Id = %q, want 16 hex digits", got)
			}
			if a := logs.lines(t, "http"); len(a) != 1 || a[0]["request_id"] != got {
				t.Errorf("access log = %v, want request_id %q", a, got)
			}
		})
	}
}

// TestAccessLog: one line per request, with the route a handler named (or "unmatched")
// and the attributes it added.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	_, logs := serve(t, func(w http.ResponseWriter, r *http.Request) error {
		handler.SetRoute(r.Context(), "GET /projects/{project_name}")
		handler.AddLogAttrs(r.Context(), slog.String("project", "p1"))
		handler.WriteJSON(w, http.StatusOK, map[string]string{"ok": "yes"})
		return nil
	}, httptest.NewRequest("GET", "/projects/p1", nil))
	a := logs.lines(t, "http")
	if len(a) != 1 {
		t.Fatalf("%d access-log lines, want 1", len(a))
	}
	for k, want := range map[string]any{"method": "GET", "route": "GET /projects/{project_name}", "status": 200.0, "project": "p1"} {
		if a[0][k] != want {
			t.Errorf("access log %s = %v, want %v", k, a[0][k], want)
		}
	}
	if _, ok := a[0]["duration"]; !ok {
		t.Errorf("access log has no duration: %v", a[0])
	}

	_, logs = serve(t, func(http.ResponseWriter, *http.Request) error {
		return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint")
	}, httptest.NewRequest("GET", "/nope", nil))
	if a := logs.lines(t, "http"); len(a) != 1 || a[0]["route"] != "unmatched" || a[0]["status"] != 404.0 {
		t.Errorf("access log = %v, want route unmatched and status 404", a)
	}
}

// TestOutsideNew: the context helpers do nothing on a request that New did not serve.
func TestOutsideNew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	handler.SetRoute(ctx, "x")
	handler.AddLogAttrs(ctx, slog.String("k", "v"))
	if id := handler.RequestID(ctx); id != "" {
		t.Errorf("RequestID outside New = %q, want \"\"", id)
	}
}

// TestErrorFunc: a caller may render error answers its own way (the web UI renders a
// page); status and message are the same as for JSON.
func TestErrorFunc(t *testing.T) {
	t.Parallel()
	var gotStatus int
	var gotMsg string
	h := handler.New(func(http.ResponseWriter, *http.Request) error {
		return ubihooks.Errorf(ubihooks.EFORBIDDEN, "no access")
	}, handler.Options{ErrorFunc: func(w http.ResponseWriter, _ *http.Request, status int, msg string) {
		gotStatus, gotMsg = status, msg
		w.WriteHeader(status)
	}})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if gotStatus != 403 || gotMsg != "no access" || w.Code != 403 {
		t.Errorf("ErrorFunc got %d %q (answer %d), want 403 \"no access\"", gotStatus, gotMsg, w.Code)
	}
}

// TestWriteJSON: JSON with a Content-Length, HTML characters left alone, and a 500 when
// the value cannot be encoded.
func TestWriteJSON(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	handler.WriteJSON(w, http.StatusCreated, map[string]string{"url": "https://x/?a=1&b=<2>"})
	if w.Code != 201 || w.Body.String() != `{"url":"https://x/?a=1&b=<2>"}`+"\n" || w.Header().Get("Content-Length") != fmt.Sprint(w.Body.Len()) {
		t.Errorf("answer = %d %q (Content-Length %q)", w.Code, w.Body, w.Header().Get("Content-Length"))
	}
	w = httptest.NewRecorder()
	handler.WriteJSON(w, http.StatusOK, map[string]any{"f": func() {}})
	if w.Code != 500 || !strings.Contains(w.Body.String(), "response encoding failed") {
		t.Errorf("unencodable value: %d %q, want a 500", w.Code, w.Body)
	}
}
