package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/httpsig"
	"github.com/ubihooks/ubihooks/internal/service"
)

// objectCard is one deployment, pipeline or experiment of the overview.
type objectCard struct {
	O        *ubihooks.Object
	Kind     string // "deployment", "pipeline" or "experiment"
	Version  string // an experiment's version
	Default  string
	Events   []eventCount
	Health   health
	Requests []*ubihooks.Request
	Href     string // its requests
}

type eventCount struct {
	Event ubihooks.EventType
	Count int
}

// health sums the stats of several webhooks.
type health struct {
	Succeeded, Failed, Pending int
}

func (h health) Rate() float64 {
	if h.Succeeded+h.Failed == 0 {
		return -1
	}
	return float64(h.Succeeded) / float64(h.Succeeded+h.Failed)
}

type overviewData struct {
	Deployments, Experiments, Pipelines []*objectCard
	Webhooks                            int
}

func (d *overviewData) Empty() bool {
	return len(d.Deployments)+len(d.Experiments)+len(d.Pipelines) == 0
}

func (s *Server) overview(c *call) error {
	ctx := c.r.Context()
	oc, err := s.choices(c)
	if err != nil {
		return err
	}
	ws, err := s.svc.ListWebhooks(ctx, c.project.ID, service.WebhookQuery{})
	if err != nil {
		return err
	}
	stats, err := s.statsByName(c, 24*time.Hour)
	if err != nil {
		return err
	}
	d := &overviewData{Webhooks: len(ws)}
	card := func(o *ubihooks.Object, kind, version string) (*objectCard, error) {
		oc := &objectCard{O: o, Kind: kind, Version: version, Default: o.DefaultVersion, Href: c.base() + "/" + string(o.Type) + "s/" + pathEscape(o.Name) + "/requests"}
		counts := map[ubihooks.EventType]int{}
		for _, w := range ws {
			if w.ObjectType != o.Type || w.ObjectName != o.Name || (kind == "experiment" && w.Version != version) {
				continue
			}
			counts[w.Event]++
			if st := stats[w.Name]; st != nil {
				oc.Health.Succeeded += st.Succeeded
				oc.Health.Failed += st.Failed
				oc.Health.Pending += st.Pending
			}
		}
		for _, e := range ubihooks.EventTypes {
			if e.ObjectType() == o.Type {
				oc.Events = append(oc.Events, eventCount{e, counts[e]})
			}
		}
		f := ubihooks.RequestFilter{ProjectID: c.project.ID, ObjectID: o.ID, Limit: 5}
		if kind == "experiment" {
			v, err := s.svc.GetVersion(ctx, o, version)
			if err != nil {
				return nil, err
			}
			f.VersionID = v.ID
			oc.Href += "?version=" + queryEscape(version)
		}
		var err error
		oc.Requests, err = s.svc.ListRequests(ctx, f)
		return oc, err
	}
	for _, o := range oc.Deployments {
		x, err := card(o, "deployment", "")
		if err != nil {
			return err
		}
		d.Deployments = append(d.Deployments, x)
	}
	for _, o := range oc.Experiments {
		vs, err := s.svc.ListVersions(ctx, o, nil)
		if err != nil {
			return err
		}
		for _, v := range vs {
			x, err := card(o, "experiment", v.Name)
			if err != nil {
				return err
			}
			d.Experiments = append(d.Experiments, x)
		}
	}
	for _, o := range oc.Pipelines {
		x, err := card(o, "pipeline", "")
		if err != nil {
			return err
		}
		d.Pipelines = append(d.Pipelines, x)
	}
	return c.render(http.StatusOK, "overview", &page{Title: c.project.Name, Nav: "overview", Data: d})
}

type catalogEntry struct {
	Event   ubihooks.EventType
	Text    string
	Payload string
	Result  string // the payload with include_result, for completion events
	Omitted string // the payload when the result is over the limit
	Headers string
}

// catalog lists the eight events, with payloads made by the real payload builder.
func (s *Server) catalog(c *call) error {
	now := s.svc.Now()
	var out []catalogEntry
	for _, et := range ubihooks.EventTypes {
		ot := et.ObjectType()
		e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectName: c.project.Name, Type: et, ObjectType: ot, ObjectID: ubihooks.NewID(),
			ObjectName: "my-" + string(ot), VersionID: ubihooks.NewID(), VersionName: "v1", RequestID: ubihooks.NewID(), CreatedAt: now}
		switch et.Kind() {
		case "started":
			e.Status = "processing"
		case "failed":
			e.Status = "failed"
		default:
			e.Status = "completed"
		}
		entry := catalogEntry{Event: et, Text: eventText(et), Payload: prettyJSON(e.Payload(false))}
		if e.Status == "completed" {
			e.SetResult(json.RawMessage(`{"prediction":0.93,"label":"cat"}`))
			entry.Result = prettyJSON(e.Payload(true))
			big := make([]byte, ubihooks.MaxResultSize+1)
			for i := range big {
				big[i] = 'x'
			}
			b, _ := json.Marshal(string(big))
			e.SetResult(b)
			entry.Omitted = prettyJSON(e.Payload(true))
		}
		out = append(out, entry)
	}
	return c.render(http.StatusOK, "catalog", &page{Title: "Event catalog", Nav: "events", Data: out})
}

type keysData struct {
	Keys   []*ubihooks.SigningKey
	Active *ubihooks.SigningKey
	PEM    string
	Origin string
}

func (s *Server) signingKeys(c *call) error {
	ctx := c.r.Context()
	keys, err := s.svc.PublishedKeys(ctx)
	if err != nil {
		return err
	}
	active, err := s.svc.ActiveKey(ctx)
	if err != nil {
		return err
	}
	pem, err := httpsig.MarshalPublicKeyPEM(active.PublicKey)
	if err != nil {
		return err
	}
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return c.render(http.StatusOK, "keys", &page{Title: "Signing keys", Nav: "keys",
		Data: &keysData{Keys: keys, Active: active, PEM: string(pem), Origin: scheme + "://" + c.r.Host}})
}

type cardSection struct {
	Name  string
	Cards []*objectCard
}

// Sections lists the overview's groups in their order.
func (d *overviewData) Sections() []cardSection {
	return []cardSection{{"Deployments", d.Deployments}, {"Experiments", d.Experiments}, {"Pipelines", d.Pipelines}}
}
