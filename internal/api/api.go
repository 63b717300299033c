// Package api serves the UbiOps-compatible v2.1 REST API (and ubihooks' documented
// extensions) over internal/service. It knows nothing of the store behind the service.
//
// routes.go is the one list of operations; each resource has a file with its handlers and
// its response models. The models' field sets and required fields follow the official
// client's models: required strings are never empty, labels are {} (never []), optional
// strings with a minimum length are null rather than "".
package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
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
	// BodyReadGrace and BodyReadRate bound the time to read a request body: it must have
	// arrived BodyReadGrace after the handler began reading it plus one second per
	// BodyReadRate bytes read, or the call is answered 408. A client that drips its body
	// would otherwise hold a connection and a handler as long as it likes. Defaults:
	// DefaultBodyReadGrace, DefaultBodyReadRate.
	BodyReadGrace time.Duration
	BodyReadRate  int64
	// MaxBodyMemory bounds the bytes of request bodies held at once (from the start of
	// their reading to the end of their call): a body beyond it is answered 429 with
	// Retry-After, unless no other body is held (so that any body within its limit can
	// be served). Default: DefaultMaxBodyMemory.
	MaxBodyMemory int64
	// ObserveFunc, when set, observes each answered call (for metrics; see handler.Options).
	ObserveFunc handler.ObserveFunc
}

// Defaults of Config.
const (
	DefaultBodyReadGrace = 10 * time.Second
	DefaultBodyReadRate  = 64 << 10
	DefaultMaxBodyMemory = 64 << 20
)

// Server is the API's http.Handler.
type Server struct {
	svc       *service.Service
	log       *slog.Logger
	version   string
	router    *router
	openapi   []byte
	retention time.Duration
	handler   http.Handler
	bodies    *bodyLimits
}

// New returns the API handler.
func New(cfg Config) *Server {
	s := &Server{svc: cfg.Service, log: cfg.Logger, version: cfg.Version, retention: cfg.RequestRetention}
	s.bodies = newBodyLimits(cfg)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.router = newRouter(s.routes())
	s.openapi = s.openAPIDocument()
	s.handler = handler.New(s.serve, handler.Options{Logger: s.log, ObserveFunc: cfg.ObserveFunc})
	return s
}

// ServeHTTP serves the API through the shared plumbing of internal/handler (request id,
// access log, recovery, error answers).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// serve routes, authenticates and runs the route's handler.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.EscapedPath()
	if !strings.HasPrefix(path, BasePath+"/") && path != BasePath {
		return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint: %s %s (the API is served under %s)", r.Method, r.URL.Path, BasePath)
	}
	rt, p, allowed := s.router.match(r.Method, strings.TrimPrefix(path, BasePath))
	if rt == nil {
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			return &handler.StatusError{Status: http.StatusMethodNotAllowed, Message: fmt.Sprintf("method %s is not allowed here; use %s", r.Method, strings.Join(allowed, " or "))}
		}
		return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}
	handler.SetRoute(r.Context(), rt.Method+" "+rt.Path)
	// A parameter that is not text names nothing, and PostgreSQL would fail on it rather
	// than find nothing: refuse it before authentication looks anything up.
	for _, seg := range rt.segments {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if err := ubihooks.ValidateText(name, p[name]); err != nil {
				return err
			}
		}
	}
	c := &call{w: w, r: r, p: p, route: rt, lim: s.bodies}
	defer func() { s.bodies.release(c.held) }()
	if err := s.authenticate(c, rt); err != nil {
		return err
	}
	return rt.Handler(c)
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
	if p != nil {
		handler.AddLogAttrs(c.r.Context(), slog.String("project", p.Name))
	}
	return nil
}
