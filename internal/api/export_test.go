package api

// RouteInfo is one row of the route table, as tests see it.
type RouteInfo struct {
	Method, Path, Auth string
	Status             int
	// Request and Response are values of the body types (nil: none).
	Request, Response any
}

// RoutesForTest returns the route table the router serves, so that tests can walk every
// endpoint and cannot drift from it.
func (s *Server) RoutesForTest() []RouteInfo {
	out := make([]RouteInfo, len(s.router.routes))
	for i, r := range s.router.routes {
		out[i] = RouteInfo{Method: r.Method, Path: r.Path, Auth: r.Auth, Status: r.Status, Request: r.Request, Response: r.Response}
	}
	return out
}
