package ubihookstest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/httpsig"
)

// Arrival is one request a Receiver got.
type Arrival struct {
	N                int // 1-based arrival number at this receiver
	At               time.Time
	Method, Path     string
	Host             string
	Header           http.Header
	ContentLength    int64
	TransferEncoding []string
	Body             []byte
	// Payload is the body decoded as a JSON object (nil when it is not one).
	Payload map[string]any
	// Sig is the verified signature; SigErr why it did not verify (both nil when the
	// receiver verifies nothing).
	Sig    *httpsig.Result
	SigErr error
}

// ID returns the payload's id: the event id of a webhook.
func (a *Arrival) ID() string { s, _ := a.Payload["id"].(string); return s }

// Responder answers an arrival. It runs after the arrival was recorded; r's context ends
// when the client gives up or the test ends.
type Responder func(a *Arrival, w http.ResponseWriter, r *http.Request)

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Verifier checks every request's signature; nil checks none (Env.Receiver uses the
	// Env's verifier instead).
	Verifier *httpsig.Verifier
	// Respond answers each arrival; nil answers 200.
	Respond Responder
	// OnArrival, when set, sees every arrival as it is recorded, before Respond, on the
	// server's goroutine (to keep an index of thousands of arrivals, say).
	OnArrival func(*Arrival)
}

// Receiver is a webhook receiver: an httptest server that verifies every request's
// signature with the public httpsig.Verifier, checks that the body is a JSON object with
// an id sent with a Content-Length (no chunking), records what arrived and answers as
// scripted. A request that fails a check is answered 401 (signature) or 400 (body) and
// reported as a test failure when the test ends.
type Receiver struct {
	// URL is the server's base URL.
	URL string
	// Changed is signalled after every arrival and every answer.
	Changed Progress

	cfg    ReceiverConfig
	srv    *httptest.Server
	ctx    context.Context // canceled when the test ends: held answers give up
	cancel context.CancelFunc
	env    *Env

	mu        sync.Mutex
	arrivals  []*Arrival
	failures  []string
	active    int
	maxActive int
}

// NewReceiver starts a receiver that is closed, with its failures reported, when the test
// ends. Inside an Env use Env.Receiver, which closes it after the services stopped.
func NewReceiver(t testing.TB, cfg ReceiverConfig) *Receiver {
	t.Helper()
	r := newReceiver(cfg, nil)
	t.Cleanup(func() {
		r.close()
		for _, f := range r.Failures() {
			t.Error(f)
		}
	})
	return r
}

// Receiver starts a receiver that verifies signatures with the Env's verifier (unless cfg
// names another) and signals Env.Changed on every arrival and answer. It closes after the services
// stopped; its failures are reported then.
func (e *Env) Receiver(cfg ReceiverConfig) *Receiver {
	if cfg.Verifier == nil {
		cfg.Verifier = e.Verifier
	}
	r := newReceiver(cfg, e)
	e.Defer(func() {
		r.close()
		for _, f := range r.Failures() {
			e.T.Error(f)
		}
	})
	return r
}

func newReceiver(cfg ReceiverConfig, env *Env) *Receiver {
	r := &Receiver{cfg: cfg, env: env}
	r.srv, r.ctx, r.cancel = serve(env, r)
	r.URL = r.srv.URL
	return r
}

// serve starts h on an httptest server, with a context that ends when the server closes
// or, inside an Env, when the test ends (before the services stop, so that held calls
// give up first).
func serve(env *Env, h http.Handler) (*httptest.Server, context.Context, context.CancelFunc) {
	parent := context.Background()
	if env != nil {
		parent = env.ending
	}
	ctx, cancel := context.WithCancel(parent)
	return httptest.NewServer(h), ctx, cancel
}

func (r *Receiver) close() {
	r.cancel()
	r.srv.Close()
}

// ServeHTTP records, checks and answers one request.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	req = req.WithContext(ctx)

	body, err := io.ReadAll(req.Body)
	a := &Arrival{At: time.Now(), Method: req.Method, Path: req.URL.Path, Host: req.Host, Header: req.Header.Clone(),
		ContentLength: req.ContentLength, TransferEncoding: req.TransferEncoding, Body: body}
	var refuse int
	var problems []string
	if err != nil {
		problems = append(problems, fmt.Sprintf("read body: %v", err))
		refuse = http.StatusBadRequest
	}
	if r.cfg.Verifier != nil {
		if a.Sig, a.SigErr = r.cfg.Verifier.Verify(req, body); a.SigErr != nil {
			problems = append(problems, fmt.Sprintf("signature does not verify: %v", a.SigErr))
			refuse = http.StatusUnauthorized
		}
	}
	if err := json.Unmarshal(body, &a.Payload); err != nil {
		problems = append(problems, fmt.Sprintf("body is not a JSON object: %v: %.200s", err, body))
		refuse = cmp.Or(refuse, http.StatusBadRequest)
	} else if a.ID() == "" {
		problems = append(problems, fmt.Sprintf("payload without id: %.200s", body))
		refuse = cmp.Or(refuse, http.StatusBadRequest)
	}
	if req.ContentLength != int64(len(body)) || len(req.TransferEncoding) > 0 {
		problems = append(problems, fmt.Sprintf("Content-Length %d, Transfer-Encoding %v for a %d-byte body",
			req.ContentLength, req.TransferEncoding, len(body)))
	}

	r.mu.Lock()
	r.arrivals = append(r.arrivals, a)
	a.N = len(r.arrivals)
	for _, p := range problems {
		r.failures = append(r.failures, fmt.Sprintf("receiver %s: %s", req.URL.Path, p))
	}
	r.active++
	r.maxActive = max(r.maxActive, r.active)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active--
		r.mu.Unlock()
		r.changed()
	}()
	if r.cfg.OnArrival != nil {
		r.cfg.OnArrival(a)
	}
	r.changed()
	switch {
	case refuse != 0:
		http.Error(w, problems[0], refuse)
	case r.cfg.Respond != nil:
		r.cfg.Respond(a, w, req)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// changed wakes the waits on the receiver and on its Env: an arrival or an answer's end
// may be what they wait for (the concurrency falling back, say).
func (r *Receiver) changed() {
	r.Changed.Signal()
	if r.env != nil {
		r.env.Changed.Signal()
	}
}

// Arrivals returns every request so far, in arrival order.
func (r *Receiver) Arrivals() []*Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Arrival(nil), r.arrivals...)
}

// Count returns the number of requests so far.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals)
}

// ByID counts the arrivals by payload id.
func (r *Receiver) ByID() map[string]int {
	m := map[string]int{}
	for _, a := range r.Arrivals() {
		m[a.ID()]++
	}
	return m
}

// Concurrency returns the requests being answered now and the most answered at once.
func (r *Receiver) Concurrency() (active, maxActive int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active, r.maxActive
}

// Failures returns the checks that requests failed so far.
func (r *Receiver) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

// Until waits until cond holds, checking it again after every arrival and answer, and
// fails the test after within.
func (r *Receiver) Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	r.Changed.Until(t, within, what, cond)
}

// Status answers with a fixed status code (2xx, 4xx, 410, 5xx …).
func Status(code int) Responder {
	return func(_ *Arrival, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// StatusBody answers with a status code and a text body.
func StatusBody(code int, body string) Responder {
	return func(_ *Arrival, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

// Script answers the n-th arrival with codes[n-1]; the last code repeats.
func Script(codes ...int) Responder {
	return func(a *Arrival, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(codes[min(a.N, len(codes))-1])
	}
}

// Redirect answers a 3xx code with a Location header.
func Redirect(code int, location string) Responder {
	return func(_ *Arrival, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(code)
	}
}

// RetryAfter answers code (429 or 503) with a Retry-After of the given seconds.
func RetryAfter(code, seconds int) Responder {
	return func(_ *Arrival, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", strconv.Itoa(seconds))
		w.WriteHeader(code)
	}
}

// Slow answers with then after d, unless the client gives up or the test ends first.
func Slow(d time.Duration, then Responder) Responder {
	return func(a *Arrival, w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			then(a, w, r)
		case <-r.Context().Done():
		}
	}
}

// Hang answers nothing: it holds the request until the client gives up or the test ends.
func Hang() Responder {
	return func(_ *Arrival, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
}

// Drop closes the connection without an answer.
func Drop() Responder {
	return func(_ *Arrival, w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}
