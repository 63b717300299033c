package api

import (
	"encoding/json"

	"github.com/ubihooks/ubihooks"
)

// routes is the single list of API operations. Literal segments come before parameters
// where both could match (…/requests/batch before …/requests/{request_id}).
func (s *Server) routes() []*route {
	const (
		p   = "/projects/{project_name}"
		dep = p + "/deployments/{deployment_name}"
		pl  = p + "/pipelines/{pipeline_name}"
		wh  = p + "/webhooks/{webhook_name}"
	)
	rs := []*route{
		{Method: "GET", Path: "/status", Summary: "Service status", Tag: "status", Auth: "none", Status: 200, Response: Status{}, Handler: s.status},
		{Method: "GET", Path: "/openapi.json", Summary: "This OpenAPI document", Tag: "status", Auth: "none", Status: 200, Handler: s.openAPI},
		{Method: "GET", Path: "/signing-keys", Summary: "Published webhook signing keys (ubihooks extension)", Tag: "signing keys", Auth: "none", Status: 200, Response: SigningKeys{}, Handler: s.signingKeys},
		{Method: "GET", Path: "/signing-keys/active.pem", Summary: "The active signing public key as PEM (ubihooks extension)", Tag: "signing keys", Auth: "none", Status: 200, Handler: s.signingKeyPEM},

		{Method: "POST", Path: "/projects", Summary: "Create a project; admin tokens only", Tag: "projects", Auth: "token", Status: 201, Request: ProjectCreate{}, Response: ProjectDetail{}, Handler: s.projectsCreate},
		{Method: "GET", Path: "/projects", Summary: "List the projects of the token", Tag: "projects", Auth: "token", Status: 200, Response: []ProjectDetail{}, Handler: s.projectsList},
		{Method: "GET", Path: "/tokens", Summary: "List API tokens, revoked ones too; admin tokens only (ubihooks extension)", Tag: "tokens", Auth: "token", Status: 200, Query: []string{"project"}, Response: []TokenDetail{}, Handler: s.tokensList},
		{Method: "DELETE", Path: "/tokens/{token_id}", Summary: "Revoke an API token at once; admin tokens only (ubihooks extension)", Tag: "tokens", Auth: "token", Status: 204, Handler: s.tokensRevoke},
		{Method: "GET", Path: p, Summary: "Get a project", Tag: "projects", Auth: "project", Status: 200, Response: ProjectDetail{}, Handler: s.projectsGet},

		{Method: "POST", Path: p + "/webhooks", Summary: "Create a webhook", Tag: "webhooks", Auth: "project", Status: 201, Request: ubihooks.WebhookCreate{}, Response: WebhookDetail{}, Handler: s.webhooksCreate},
		{Method: "GET", Path: p + "/webhooks", Summary: "List webhooks", Tag: "webhooks", Auth: "project", Status: 200, Query: []string{"labels", "object_type", "object_name", "event"}, Response: []WebhookDetail{}, Handler: s.webhooksList},
		{Method: "GET", Path: wh, Summary: "Get a webhook", Tag: "webhooks", Auth: "project", Status: 200, Response: WebhookDetail{}, Handler: s.webhooksGet},
		{Method: "PATCH", Path: wh, Summary: "Update a webhook", Tag: "webhooks", Auth: "project", Status: 200, Request: ubihooks.WebhookUpdate{}, Response: WebhookDetail{}, Handler: s.webhooksUpdate},
		{Method: "DELETE", Path: wh, Summary: "Delete a webhook", Tag: "webhooks", Auth: "project", Status: 204, Handler: s.webhooksDelete},
		{Method: "POST", Path: wh + "/tests", Summary: "Test a saved webhook with its stored protected values; an optional PATCH-shaped body changes fields for this test only (ubihooks extension)", Tag: "webhooks", Auth: "project", Status: 201, Request: ubihooks.WebhookUpdate{}, RequestOptional: true, Response: WebhookTestDetail{}, Handler: s.webhookTestsSaved},
		{Method: "GET", Path: wh + "/deliveries", Summary: "List a webhook's deliveries, newest first, filtered by status, event_id or request_id; limit is 1 to 500 (default 100); for the next page pass the last item's id as before (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Query: []string{"status", "event_id", "request_id", "before", "limit"}, Response: []DeliveryDetail{}, Handler: s.deliveriesList},
		{Method: "POST", Path: wh + "/deliveries/redeliver", Summary: "Send a webhook's finished deliveries created in [since, until) again, same event ids, at most limit per call: call again while more (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Request: RedeliverMany{}, Response: RedeliverManyResult{}, Handler: s.deliveriesRedeliverMany},
		{Method: "GET", Path: wh + "/deliveries/{delivery_id}", Summary: "Get a delivery with its attempts (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Response: DeliveryDetail{}, Handler: s.deliveriesGet},
		{Method: "POST", Path: wh + "/deliveries/{delivery_id}/redeliver", Summary: "Send a finished delivery again, same event id (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 202, Response: DeliveryDetail{}, Handler: s.deliveriesRedeliver},
		{Method: "GET", Path: p + "/deliveries", Summary: "Find the deliveries of an event or a request across the project's webhooks, newest first: event_id or request_id is required; status, before (the last item's id) and limit (1 to 500, default 50) as for a webhook's deliveries (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Query: []string{"event_id", "request_id", "status", "before", "limit"}, Response: []DeliveryDetail{}, Handler: s.deliveriesSearch},
		{Method: "GET", Path: wh + "/stats", Summary: "A webhook's delivery stats over a window: 1h, 24h (the default) or 7d (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Query: []string{"window"}, Response: WebhookStatsDetail{}, Handler: s.webhookStats},
		{Method: "GET", Path: p + "/webhooks-stats", Summary: "Delivery stats of every webhook over a window: 1h, 24h (the default) or 7d (ubihooks extension)", Tag: "deliveries", Auth: "project", Status: 200, Query: []string{"window"}, Response: []WebhookStatsDetail{}, Handler: s.webhookStats},
		{Method: "POST", Path: p + "/webhooks-tests", Summary: "Test a webhook with a dummy event", Tag: "webhooks", Auth: "project", Status: 201, Request: ubihooks.WebhookTestCreate{}, Response: WebhookTestDetail{}, Handler: s.webhookTestsCreate},
		{Method: "GET", Path: p + "/webhooks-tests/{test_id}", Summary: "Get a webhook test; created_at and attempt_list are ubihooks extensions", Tag: "webhooks", Auth: "project", Status: 200, Response: WebhookTestDetail{}, Handler: s.webhookTestsGet},
	}
	for _, o := range []struct{ base, tag, param string }{{dep, "deployments", "deployment_name"}, {pl, "pipelines", "pipeline_name"}} {
		coll := p + "/" + o.tag
		rs = append(rs,
			&route{Method: "POST", Path: coll, Summary: "Create a " + o.tag[:len(o.tag)-1], Tag: o.tag, Auth: "project", Status: 201, Request: ubihooks.ObjectCreate{}, Response: ObjectDetail{}, Handler: s.objectsCreate},
			&route{Method: "GET", Path: coll, Summary: "List " + o.tag, Tag: o.tag, Auth: "project", Status: 200, Query: []string{"labels"}, Response: []ObjectDetail{}, Handler: s.objectsList},
			&route{Method: "GET", Path: o.base, Summary: "Get a " + o.tag[:len(o.tag)-1], Tag: o.tag, Auth: "project", Status: 200, Response: ObjectDetail{}, Handler: s.objectsGet},
			&route{Method: "PATCH", Path: o.base, Summary: "Update a " + o.tag[:len(o.tag)-1], Tag: o.tag, Auth: "project", Status: 200, Request: ubihooks.ObjectUpdate{}, Response: ObjectDetail{}, Handler: s.objectsUpdate},
			&route{Method: "DELETE", Path: o.base, Summary: "Delete a " + o.tag[:len(o.tag)-1] + " with its versions, webhooks and requests", Tag: o.tag, Auth: "project", Status: 204, Handler: s.objectsDelete},
			&route{Method: "POST", Path: o.base + "/versions", Summary: "Create a version (the first becomes the default)", Tag: o.tag, Auth: "project", Status: 201, Request: ubihooks.VersionCreate{}, Response: VersionDetail{}, Handler: s.versionsCreate},
			&route{Method: "GET", Path: o.base + "/versions", Summary: "List versions", Tag: o.tag, Auth: "project", Status: 200, Query: []string{"labels"}, Response: []VersionDetail{}, Handler: s.versionsList},
			&route{Method: "GET", Path: o.base + "/versions/{version}", Summary: "Get a version", Tag: o.tag, Auth: "project", Status: 200, Response: VersionDetail{}, Handler: s.versionsGet},
			&route{Method: "PATCH", Path: o.base + "/versions/{version}", Summary: "Update a version", Tag: o.tag, Auth: "project", Status: 200, Request: ubihooks.VersionUpdate{}, Response: VersionDetail{}, Handler: s.versionsUpdate},
			&route{Method: "DELETE", Path: o.base + "/versions/{version}", Summary: "Delete a version", Tag: o.tag, Auth: "project", Status: 204, Handler: s.versionsDelete},
		)
		// Requests go to the object (its default version at that moment) or to a version.
		for _, b := range []string{o.base, o.base + "/versions/{version}"} {
			rs = append(rs,
				&route{Method: "POST", Path: b + "/requests/batch", Summary: "Create requests in a batch (answered at once, pending)", Tag: o.tag + " requests", Auth: "project", Status: 201, Request: []json.RawMessage{}, Query: []string{"timeout"}, Response: []RequestDetail{}, Handler: s.requestsBatch},
				&route{Method: "POST", Path: b + "/requests/cancel", Summary: "Cancel requests by id", Tag: o.tag + " requests", Auth: "project", Status: 200, Request: []string{}, Response: []RequestDetail{}, Handler: s.requestsCancel},
				&route{Method: "POST", Path: b + "/requests/collect", Summary: "Get requests by id", Tag: o.tag + " requests", Auth: "project", Status: 200, Request: []string{}, Response: []RequestDetail{}, Handler: s.requestsCollect},
				&route{Method: "POST", Path: b + "/requests", Summary: "Create a direct request (waits for the result up to timeout)", Tag: o.tag + " requests", Auth: "project", Status: 200, Request: json.RawMessage{}, RequestText: true, Query: []string{"timeout"}, Response: RequestDetail{}, Handler: s.requestsCreate},
				&route{Method: "GET", Path: b + "/requests", Summary: "List requests, newest first", Tag: o.tag + " requests", Auth: "project", Status: 200, Query: []string{"status", "limit", "offset"}, Response: []RequestDetail{}, Handler: s.requestsList},
				&route{Method: "GET", Path: b + "/requests/{request_id}", Summary: "Get a request", Tag: o.tag + " requests", Auth: "project", Status: 200, Response: RequestDetail{}, Handler: s.requestsGet},
				&route{Method: "PATCH", Path: b + "/requests/{request_id}", Summary: `Cancel a request ({"status": "cancelled"})`, Tag: o.tag + " requests", Auth: "project", Status: 200, Request: RequestUpdate{}, Response: RequestDetail{}, Handler: s.requestsUpdate},
			)
		}
		if o.tag == "deployments" {
			rs = append(rs,
				&route{Method: "POST", Path: o.base + "/versions/{version}/runtime/claim", Summary: "External runtime: claim pending requests of a version without backend (ubihooks extension)", Tag: "external runtime", Auth: "project", Status: 200, Query: []string{"limit", "lease"}, Response: []RuntimeRequest{}, Handler: s.runtimeClaim},
				&route{Method: "POST", Path: o.base + "/versions/{version}/runtime/requests/{request_id}", Summary: "External runtime: report a claimed request's result or error (ubihooks extension)", Tag: "external runtime", Auth: "project", Status: 200, Request: RuntimeReport{}, Response: RequestDetail{}, Handler: s.runtimeReport},
			)
		}
	}
	return rs
}
