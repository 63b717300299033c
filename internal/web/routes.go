package web

import (
	"net/http"
	"net/url"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// Route is one UI route: a ServeMux pattern, who may use it, and the API operations it
// performs (method and path relative to /v2.1, as in the OpenAPI document), so that a test
// can check that the UI never does what the API cannot.
type Route struct {
	Pattern string
	// Auth: "none", "session" (signed in) or "project" (signed in, with access to
	// {project}).
	Auth string
	API  []string
	fn   func(*call) error
}

// Routes returns the UI's routes.
func (s *Server) Routes() []Route { return s.routes }

// call is one UI request with its authentication.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	s       *Server
	secret  string
	tok     *ubihooks.Token
	project *ubihooks.Project
}

func (s *Server) routeTable() []Route {
	const (
		p  = "/ui/p/{project}"
		wh = p + "/webhooks/{webhook}"
		ob = p + "/{kind}/{object}"
		pr = "/projects/{project_name}"
		aw = pr + "/webhooks/{webhook_name}"
	)
	return []Route{
		{Pattern: "GET /ui/static/{file}", Auth: "none", fn: s.static},
		{Pattern: "GET /ui/{$}", Auth: "session", API: []string{"GET /projects"}, fn: s.home},
		{Pattern: "GET /ui/login", Auth: "none", fn: s.loginForm},
		{Pattern: "POST /ui/login", Auth: "none", API: []string{"GET /projects"}, fn: s.login},
		{Pattern: "POST /ui/logout", Auth: "none", fn: s.logout},
		{Pattern: "GET /ui/switch", Auth: "session", fn: s.switchProject},
		{Pattern: "GET /ui/signing-keys", Auth: "session", API: []string{"GET /signing-keys", "GET /signing-keys/active.pem"}, fn: s.signingKeys},

		{Pattern: "GET " + p + "/{$}", Auth: "project", API: []string{"GET " + pr + "/deployments", "GET " + pr + "/pipelines", "GET " + pr + "/webhooks", "GET " + pr + "/webhooks-stats", "GET " + pr + "/deployments/{deployment_name}/requests"}, fn: s.overview},
		{Pattern: "GET " + p + "/events", Auth: "project", fn: s.catalog},
		{Pattern: "GET " + p + "/deliveries", Auth: "project", API: []string{"GET " + pr + "/deliveries"}, fn: s.search},

		{Pattern: "GET " + p + "/webhooks", Auth: "project", API: []string{"GET " + pr + "/webhooks", "GET " + pr + "/webhooks-stats"}, fn: s.webhookList},
		{Pattern: "GET " + p + "/new-webhook", Auth: "project", API: []string{"GET " + pr + "/deployments", "GET " + pr + "/pipelines"}, fn: s.webhookNew},
		{Pattern: "POST " + p + "/new-webhook", Auth: "project", API: []string{"POST " + pr + "/webhooks", "POST " + pr + "/webhooks-tests"}, fn: s.webhookCreate},
		{Pattern: "GET " + wh, Auth: "project", API: []string{"GET " + aw, "GET " + aw + "/stats", "GET " + aw + "/deliveries"}, fn: s.webhookDetail},
		{Pattern: "GET " + wh + "/edit", Auth: "project", API: []string{"GET " + aw}, fn: s.webhookEdit},
		{Pattern: "POST " + wh + "/edit", Auth: "project", API: []string{"PATCH " + aw, "POST " + aw + "/tests"}, fn: s.webhookUpdate},
		{Pattern: "POST " + wh + "/enabled", Auth: "project", API: []string{"PATCH " + aw}, fn: s.webhookEnable},
		{Pattern: "GET " + wh + "/delete", Auth: "project", API: []string{"GET " + aw}, fn: s.webhookDeleteForm},
		{Pattern: "POST " + wh + "/delete", Auth: "project", API: []string{"DELETE " + aw}, fn: s.webhookDelete},
		{Pattern: "POST " + wh + "/test", Auth: "project", API: []string{"POST " + aw + "/tests"}, fn: s.webhookTest},
		{Pattern: "GET " + p + "/tests/{test}", Auth: "project", API: []string{"GET " + pr + "/webhooks-tests/{test_id}"}, fn: s.testPage},
		{Pattern: "GET " + wh + "/deliveries/{delivery}", Auth: "project", API: []string{"GET " + aw + "/deliveries/{delivery_id}"}, fn: s.deliveryDetail},
		{Pattern: "POST " + wh + "/deliveries/{delivery}/redeliver", Auth: "project", API: []string{"POST " + aw + "/deliveries/{delivery_id}/redeliver"}, fn: s.redeliver},
		{Pattern: "GET " + wh + "/recover", Auth: "project", API: []string{"POST " + aw + "/deliveries/redeliver"}, fn: s.recoverForm},
		{Pattern: "POST " + wh + "/recover", Auth: "project", API: []string{"POST " + aw + "/deliveries/redeliver"}, fn: s.recover},

		{Pattern: "GET " + ob + "/requests", Auth: "project", API: []string{"GET " + pr + "/deployments/{deployment_name}/requests", "GET " + pr + "/pipelines/{pipeline_name}/requests"}, fn: s.requestList},
		{Pattern: "POST " + ob + "/requests", Auth: "project", API: []string{"POST " + pr + "/deployments/{deployment_name}/requests/batch", "POST " + pr + "/pipelines/{pipeline_name}/requests/batch"}, fn: s.requestCreate},
		{Pattern: "GET " + ob + "/requests/{request}", Auth: "project", API: []string{"GET " + pr + "/deployments/{deployment_name}/requests/{request_id}", "GET " + pr + "/deliveries"}, fn: s.requestDetail},
		{Pattern: "POST " + ob + "/requests/{request}/cancel", Auth: "project", API: []string{"PATCH " + pr + "/deployments/{deployment_name}/requests/{request_id}", "PATCH " + pr + "/pipelines/{pipeline_name}/requests/{request_id}"}, fn: s.requestCancel},

		{Pattern: "/ui/", Auth: "none", fn: s.notFound},
	}
}

// wrap authenticates a route's calls and runs it.
func (s *Server) wrap(rt Route) handler.Func {
	return func(w http.ResponseWriter, r *http.Request) error {
		handler.SetRoute(r.Context(), rt.Pattern)
		c := &call{w: w, r: r, s: s}
		if ck, err := r.Cookie(cookieName); err == nil {
			c.secret = ck.Value
		}
		switch rt.Auth {
		case "session", "project":
			var err error
			c.tok, c.project, err = s.svc.AuthenticateSession(r.Context(), c.secret, r.PathValue("project"))
			if ubihooks.ErrorCode(err) == ubihooks.EUNAUTHORIZED {
				if r.Method != http.MethodGet {
					return err
				}
				next := r.URL.RequestURI()
				http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(next), http.StatusSeeOther)
				return nil
			}
			if err != nil {
				return err
			}
		}
		return rt.fn(c)
	}
}

func (s *Server) notFound(c *call) error {
	return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such page: %s", c.r.URL.Path)
}
