package api

import (
	"net/http"
	"net/url"
	"strings"
)

// route is one API operation. The route table (routes.go) is the single list of what the
// API serves: the router, the authentication rules and the OpenAPI document are all read
// from it, so they cannot drift apart.
type route struct {
	Method  string
	Path    string // "/projects/{project_name}/webhooks/{webhook_name}", relative to /v2.1
	Summary string
	Tag     string
	// Auth: "project" (token with access to {project_name}), "token" (any valid token) or
	// "none".
	Auth    string
	Status  int // success status
	Request any // body type for the OpenAPI document (nil: none)
	// RequestOptional marks a body that may be left out.
	RequestOptional bool
	// RequestText marks bodies that may also be text/plain (plain request input).
	RequestText bool
	Response    any      // response type for the OpenAPI document (nil: empty)
	Query       []string // documented query parameters
	Handler     handlerFunc

	segments []string
}

// params holds decoded path parameters.
type params map[string]string

// router matches escaped paths segment by segment and decodes each segment, so that a
// name containing "/" (sent as %2F) stays one parameter.
type router struct {
	routes []*route
}

func newRouter(routes []*route) *router {
	for _, r := range routes {
		r.segments = strings.Split(strings.Trim(r.Path, "/"), "/")
	}
	return &router{routes: routes}
}

// match returns the route for the method and escaped path, or whether the path exists
// with other methods (for 405).
func (rt *router) match(method, escapedPath string) (*route, params, []string) {
	segs := strings.Split(strings.Trim(escapedPath, "/"), "/")
	var allowed []string
	for _, r := range rt.routes {
		if len(r.segments) != len(segs) {
			continue
		}
		p := params{}
		ok := true
		for i, s := range r.segments {
			if strings.HasPrefix(s, "{") {
				v, err := url.PathUnescape(segs[i])
				if err != nil || v == "" {
					ok = false
					break
				}
				p[s[1:len(s)-1]] = v
				continue
			}
			if s != segs[i] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if r.Method == method || (method == http.MethodHead && r.Method == http.MethodGet) {
			return r, p, nil
		}
		allowed = append(allowed, r.Method)
	}
	return nil, nil, allowed
}
