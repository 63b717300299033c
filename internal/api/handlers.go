package api

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
)

func (s *Server) status(c *call) error { return c.json(http.StatusOK, Status{Status: "ok"}) }

func (s *Server) openAPI(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, err := c.w.Write(s.openapi)
	return err
}

func (s *Server) projectsCreate(c *call) error {
	var in ProjectCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	p, err := s.svc.CreateProject(c.r.Context(), in.Name, in.OrganizationName, c.token.ID)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, projectDetail(p))
}

func (s *Server) projectsList(c *call) error {
	p, err := s.svc.ListProjects(c.r.Context(), c.token.ID)
	if err != nil {
		return err
	}
	out := []ProjectDetail{}
	for _, x := range p {
		out = append(out, projectDetail(x))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) projectsGet(c *call) error { return c.json(http.StatusOK, projectDetail(c.project)) }

// objectType returns the object type of a route from its path template (not the request
// path, whose decoded names may contain "/pipelines").
func objectType(c *call) ubihooks.ObjectType {
	if strings.Contains(c.route.Path, "/pipelines") {
		return ubihooks.ObjectPipeline
	}
	return ubihooks.ObjectDeployment
}

func objectParam(t ubihooks.ObjectType) string {
	if t == ubihooks.ObjectPipeline {
		return "pipeline_name"
	}
	return "deployment_name"
}

func (s *Server) object(c *call) (*ubihooks.Object, error) {
	t := objectType(c)
	return s.svc.GetObject(c.r.Context(), c.project.ID, t, c.p[objectParam(t)])
}

func (s *Server) objectsCreate(c *call) error {
	var in ubihooks.ObjectCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	o, err := s.svc.CreateObject(c.r.Context(), c.project.ID, objectType(c), in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, objectDetail(c.project, o))
}

func (s *Server) objectsList(c *call) error {
	labels, err := ubihooks.ParseLabelFilter(c.r.URL.Query().Get("labels"))
	if err != nil {
		return err
	}
	os, err := s.svc.ListObjects(c.r.Context(), c.project.ID, objectType(c), labels)
	if err != nil {
		return err
	}
	out := make([]ObjectDetail, len(os))
	for i, o := range os {
		out[i] = objectDetail(c.project, o)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) objectsGet(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, objectDetail(c.project, o))
}

func (s *Server) objectsUpdate(c *call) error {
	var in ubihooks.ObjectUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	t := objectType(c)
	o, err := s.svc.UpdateObject(c.r.Context(), c.project.ID, t, c.p[objectParam(t)], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, objectDetail(c.project, o))
}

func (s *Server) objectsDelete(c *call) error {
	t := objectType(c)
	if err := s.svc.DeleteObject(c.r.Context(), c.project.ID, t, c.p[objectParam(t)]); err != nil {
		return err
	}
	return c.noContent()
}

func (s *Server) versionsCreate(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	var in ubihooks.VersionCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.svc.CreateVersion(c.r.Context(), o, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsList(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	labels, err := ubihooks.ParseLabelFilter(c.r.URL.Query().Get("labels"))
	if err != nil {
		return err
	}
	vs, err := s.svc.ListVersions(c.r.Context(), o)
	if err != nil {
		return err
	}
	out := []VersionDetail{}
	for _, v := range vs {
		if (ubihooks.WebhookFilter{Labels: labels}).Match(&ubihooks.Webhook{Labels: v.Labels}) {
			out = append(out, versionDetail(v, s.retentionSeconds()))
		}
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) versionsGet(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	v, err := s.svc.GetVersion(c.r.Context(), o, c.p["version"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsUpdate(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	var in ubihooks.VersionUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	v, err := s.svc.UpdateVersion(c.r.Context(), o, c.p["version"], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, versionDetail(v, s.retentionSeconds()))
}

func (s *Server) versionsDelete(c *call) error {
	o, err := s.object(c)
	if err != nil {
		return err
	}
	if err := s.svc.DeleteVersion(c.r.Context(), o, c.p["version"]); err != nil {
		return err
	}
	return c.noContent()
}

func (s *Server) webhooksCreate(c *call) error {
	var in ubihooks.WebhookCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	w, err := s.svc.CreateWebhook(c.r.Context(), c.project.ID, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, webhookDetail(w))
}

func (s *Server) webhooksList(c *call) error {
	q := c.r.URL.Query()
	ws, err := s.svc.ListWebhooks(c.r.Context(), c.project.ID, q.Get("object_type"), q.Get("event"), q.Get("labels"))
	if err != nil {
		return err
	}
	out := make([]WebhookDetail, len(ws))
	for i, w := range ws {
		out[i] = webhookDetail(w)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) webhooksGet(c *call) error {
	w, err := s.svc.GetWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookDetail(w))
}

func (s *Server) webhooksUpdate(c *call) error {
	var in ubihooks.WebhookUpdate
	if err := c.decode(&in); err != nil {
		return err
	}
	w, err := s.svc.UpdateWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"], in)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookDetail(w))
}

func (s *Server) webhooksDelete(c *call) error {
	if err := s.svc.DeleteWebhook(c.r.Context(), c.project.ID, c.p["webhook_name"]); err != nil {
		return err
	}
	return c.noContent()
}

func (s *Server) webhookTestsCreate(c *call) error {
	var in ubihooks.WebhookTestCreate
	if err := c.decode(&in); err != nil {
		return err
	}
	t, err := s.svc.CreateWebhookTest(c.r.Context(), c.project, in)
	if err != nil {
		return err
	}
	return c.json(http.StatusCreated, webhookTestDetail(t))
}

func (s *Server) webhookTestsGet(c *call) error {
	t, err := s.svc.GetWebhookTest(c.r.Context(), c.project.ID, c.p["test_id"])
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, webhookTestDetail(t))
}

func (s *Server) deliveriesList(c *call) error {
	limit, err := c.queryInt("limit", 100, 1, 500)
	if err != nil {
		return err
	}
	ds, err := s.svc.ListDeliveries(c.r.Context(), c.project.ID, c.p["webhook_name"], limit)
	if err != nil {
		return err
	}
	out := make([]DeliveryDetail, len(ds))
	for i, d := range ds {
		out[i] = deliveryDetail(d, nil)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) deliveriesGet(c *call) error {
	d, attempts, err := s.svc.GetDelivery(c.r.Context(), c.project.ID, c.p["webhook_name"], c.p["delivery_id"])
	if err != nil {
		return err
	}
	dd := deliveryDetail(d, attempts)
	if dd.AttemptList == nil {
		dd.AttemptList = []AttemptDetail{}
	}
	return c.json(http.StatusOK, dd)
}

func (s *Server) deliveriesRedeliver(c *call) error {
	d, err := s.svc.Redeliver(c.r.Context(), c.project.ID, c.p["webhook_name"], c.p["delivery_id"])
	if err != nil {
		return err
	}
	return c.json(http.StatusAccepted, deliveryDetail(d, nil))
}

func (s *Server) signingKeys(c *call) error {
	keys, err := s.svc.PublishedKeys(c.r.Context())
	if err != nil {
		return err
	}
	out := SigningKeys{Keys: []SigningKeyDetail{}}
	for _, k := range keys {
		pem, err := httpsig.MarshalPublicKeyPEM(k.PublicKey)
		if err != nil {
			return err
		}
		d := SigningKeyDetail{KeyID: k.KeyID, Algorithm: "ed25519", PublicKey: base64.StdEncoding.EncodeToString(k.PublicKey),
			PublicKeyPEM: string(pem), Active: k.RetiredAt.IsZero(), CreationDate: isoTime(k.CreatedAt), RetiredAt: isoTime(k.RetiredAt)}
		if !k.RetiredAt.IsZero() {
			d.ExpiresAt = isoTime(k.RetiredAt.Add(s.svc.KeyOverlap()))
		}
		out.Keys = append(out.Keys, d)
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) signingKeyPEM(c *call) error {
	k, err := s.svc.ActiveKey(c.r.Context())
	if err != nil {
		return err
	}
	pem, err := httpsig.MarshalPublicKeyPEM(k.PublicKey)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/x-pem-file")
	c.w.Header().Set("X-Key-Id", k.KeyID)
	_, err = c.w.Write(pem)
	return err
}
