// Package web serves the browser UI under /ui/: server-rendered pages over the same
// service operations as the API (every action of a page is an API operation too), with
// templates and assets embedded in the binary.
//
// Browser authentication is kept apart from the API's: a browser signs in with an API
// token and gets an HttpOnly, SameSite=Strict session cookie; every state-changing
// request passes http.CrossOriginProtection, and GET never changes state. The API reads
// only the Authorization header, never the cookie, so it has no cross-site surface.
// Every answer carries a strict Content-Security-Policy: nothing inline, scripts and
// styles from this origin only.
package web

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/ubihooks/ubihooks/internal/handler"
	"github.com/ubihooks/ubihooks/internal/service"
)

// BasePath prefixes every UI path.
const BasePath = "/ui"

// CSP is the Content-Security-Policy of every UI answer.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// cookieName names the session cookie; its path is BasePath, so the API never gets it.
const cookieName = "ubihooks_session"

// Config holds the UI's dependencies.
type Config struct {
	Service *service.Service
	Logger  *slog.Logger
	// Version is shown in the footer.
	Version string
	// SecureCookies marks the session cookie Secure on every answer; without it, the cookie
	// is Secure when the request came over TLS.
	SecureCookies bool
	// ObserveFunc, when set, observes each request a UI route answered (for metrics; see
	// handler.Options).
	ObserveFunc handler.ObserveFunc
}

// Server is the UI's http.Handler.
type Server struct {
	svc     *service.Service
	log     *slog.Logger
	version string
	secure  bool
	views   *views
	routes  []Route
	handler http.Handler
}

// New returns the UI handler.
func New(cfg Config) (*Server, error) {
	s := &Server{svc: cfg.Service, log: cfg.Logger, version: cfg.Version, secure: cfg.SecureCookies}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	v, err := loadViews()
	if err != nil {
		return nil, err
	}
	s.views = v
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		s.routes = append(s.routes, rt)
		mux.Handle(rt.Pattern, handler.New(s.wrap(rt), handler.Options{Logger: s.log, ErrorFunc: s.writeError, ObserveFunc: cfg.ObserveFunc}))
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, http.StatusForbidden, "cross-origin request refused: forms of this UI can be sent only from its own pages")
	}))
	s.handler = headers(csrf.Handler(mux))
	return s, nil
}

// ServeHTTP serves the UI.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Mount returns the server's root handler: /ui/ to the UI, / redirected to /ui/, and the
// rest (the API under /v2.1, and its JSON 404s) to api.
func Mount(api http.Handler, ui *Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case p == BasePath || strings.HasPrefix(p, BasePath+"/"):
			ui.ServeHTTP(w, r)
		case p == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, BasePath+"/", http.StatusSeeOther)
		default:
			api.ServeHTTP(w, r)
		}
	})
}

// headers sets the security headers of every UI answer. Pages also get no-store (they show
// receiver responses); static assets override it with their own caching.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
