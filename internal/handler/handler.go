// Package handler is the HTTP plumbing that the API and the web UI share, in the role of
// tailscale's tsweb: handlers that return their error instead of writing it, a request id
// on every answer, one access-log line per request, panic recovery, and the one table from
// ubihooks error codes to HTTP statuses. It knows no routes; callers name theirs with
// SetRoute so that the access log can.
package handler

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Func handles one request. It writes its answer on success and returns an error
// otherwise, which the handler built by New turns into an error answer.
type Func func(w http.ResponseWriter, r *http.Request) error

// Options configure New.
type Options struct {
	// Logger receives the access log and the internal errors; nil discards them.
	Logger *slog.Logger
	// ErrorFunc writes an error answer with its status and user-facing message; nil
	// writes the JSON body {"error": "<message>"} (WriteError).
	ErrorFunc func(w http.ResponseWriter, r *http.Request, status int, msg string)
	// ObserveFunc, when set, is called once per request after its answer, with the route
	// that served it (as SetRoute named it, "unmatched" otherwise), the status answered and
	// how long the request took, for metrics. It must be cheap and safe for concurrent use.
	ObserveFunc ObserveFunc
}

// ObserveFunc observes a request that was answered: its route pattern ("unmatched" when no
// route took it), status and duration.
type ObserveFunc func(route string, status int, d time.Duration)

// StatusError is an error answered with a fixed status, for problems of the HTTP exchange
// itself (a method not allowed, a body too large) that have no ubihooks error code.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// StatusClientClosed is the status logged (and, if it still could be, sent) when the
// caller went away before its answer was ready, as nginx names it.
const StatusClientClosed = 499

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

// Status returns the HTTP status of an error code; a code outside the table is a 500.
func Status(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// maxRequestIDLength bounds a caller's X-Request-Id: a longer one is replaced, so that a
// caller cannot fill the logs through it.
const maxRequestIDLength = 64

// record is what the access log learns about a request while it runs.
type record struct {
	id    string
	route string
	attrs []slog.Attr
}

type recordKey struct{}

func recordOf(ctx context.Context) *record {
	rec, _ := ctx.Value(recordKey{}).(*record)
	return rec
}

// RequestID returns the id of the request that ctx belongs to ("" outside New): the
// caller's X-Request-Id when it sent a usable one, a random one otherwise.
func RequestID(ctx context.Context) string {
	if rec := recordOf(ctx); rec != nil {
		return rec.id
	}
	return ""
}

// SetRoute names the route that serves the request in the access log (the log says
// "unmatched" until a handler names it). It does nothing outside New.
func SetRoute(ctx context.Context, route string) {
	if rec := recordOf(ctx); rec != nil {
		rec.route = route
	}
}

// AddLogAttrs adds attributes to the request's access-log line. It does nothing outside
// New. A request is handled by one goroutine, so the record needs no lock; a handler must
// not call it from goroutines of its own.
func AddLogAttrs(ctx context.Context, attrs ...slog.Attr) {
	if rec := recordOf(ctx); rec != nil {
		rec.attrs = append(rec.attrs, attrs...)
	}
}

// stdHandler runs a Func with the plumbing around it.
type stdHandler struct {
	h         Func
	log       *slog.Logger
	errorFunc func(w http.ResponseWriter, r *http.Request, status int, msg string)
	observe   ObserveFunc
}

// New returns an http.Handler that runs h: it gives the request an id (answered in
// X-Request-Id and readable with RequestID), writes h's error, recovers h's panic as an
// internal error, and logs one line per request.
func New(h Func, opts Options) http.Handler {
	s := &stdHandler{h: h, log: opts.Logger, errorFunc: opts.ErrorFunc, observe: opts.ObserveFunc}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.errorFunc == nil {
		s.errorFunc = WriteError
	}
	return s
}

func (s *stdHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > maxRequestIDLength {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	sw.Header().Set("X-Request-Id", id)
	rec := &record{id: id, route: "unmatched"}
	r = r.WithContext(context.WithValue(r.Context(), recordKey{}, rec))
	if err := s.run(sw, r); err != nil {
		s.writeError(sw, r, err)
	}
	took := time.Since(start)
	attrs := append([]slog.Attr{slog.String("method", r.Method), slog.String("route", rec.route), slog.Int("status", sw.status),
		slog.Duration("duration", took), slog.String("request_id", id)}, rec.attrs...)
	if s.observe != nil {
		status := sw.status
		if status == 0 { // nothing written: net/http answers 200
			status = http.StatusOK
		}
		s.observe(rec.route, status, took)
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "http", attrs...)
}

// panicError is a recovered panic, an internal error like any other.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v\n%s", e.value, e.stack) }

// run calls the handler and turns its panic into an error. http.ErrAbortHandler is
// panicked on: it is net/http's way to abort an answer on purpose.
func (s *stdHandler) run(w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return s.h(w, r)
}

// writeError answers err. A StatusError keeps its status; a ubihooks error takes the
// status of its code and shows its message; any other error is internal: its chain is
// logged here, once, and the caller sees only "internal error" and the request id.
func (s *stdHandler) writeError(w *statusWriter, r *http.Request, err error) {
	id := RequestID(r.Context())
	var status int
	var msg string
	var se *StatusError
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		status, msg = StatusClientClosed, "client closed the request"
	case errors.As(err, &se):
		status, msg = se.Status, se.Message
	case ubihooks.ErrorCode(err) == ubihooks.EINTERNAL:
		status = http.StatusInternalServerError
		var ue *ubihooks.Error
		if errors.As(err, &ue) {
			msg = ue.Message // written for users by whoever chose the code
		} else {
			msg = "internal error (request id " + id + ")"
		}
		s.log.Error("internal error", "request_id", id, "method", r.Method, "err", err)
	default:
		status, msg = Status(ubihooks.ErrorCode(err)), ubihooks.ErrorMessage(err)
	}
	if w.status != 0 {
		// The answer has begun (the error came from writing it): a second status line
		// cannot be sent, and the log line above or the access log tells what happened.
		return
	}
	if status == http.StatusTooManyRequests {
		// UbiOps' Python client waits x-ratelimit-reset + 1 seconds before it retries,
		// and 60 s when the header is missing.
		w.Header().Set("X-Ratelimit-Reset", "1")
	}
	if status == http.StatusServiceUnavailable {
		// Unavailable is transient (a database that restarts, a server that is full):
		// clients may try again shortly.
		w.Header().Set("Retry-After", "1")
	}
	s.errorFunc(w, r, status, msg)
}

// WriteError writes the UbiOps error body {"error": "<msg>"} with status.
func WriteError(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// WriteJSON writes v as JSON with status and a Content-Length. HTML characters are not
// escaped (the answers are data, not markup). Should v not encode, the answer is a 500.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf, err := encodeJSON(v)
	if err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error: response encoding failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// encodeJSON encodes v as the API writes JSON: HTML characters not escaped (the answers
// are data, not markup), a newline at the end.
func encodeJSON(v any) (*bytes.Buffer, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return &buf, err
}

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

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
