package storetest

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

func webhookName(w *ubihooks.Webhook) string { return w.Name }

// stored returns w as a store returns it: protected headers without their plain value.
func stored(w *ubihooks.Webhook) *ubihooks.Webhook {
	c := *w
	c.Headers = storedHeaders(w.Headers)
	return &c
}

func storedHeaders(hs []ubihooks.Header) []ubihooks.Header {
	out := make([]ubihooks.Header, len(hs))
	for i, h := range hs {
		if h.Protected {
			h.Value = ""
		}
		out[i] = h
	}
	return out
}

func testWebhooks(t *testing.T, s suite) {
	s.run(t, "CreateGet", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := &ubihooks.Webhook{ID: newID(), ProjectID: f.p.ID, Name: "hook", ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name,
			URL: "https://hooks.example.com/a?b=c", Event: ubihooks.EventDeploymentCompleted, Description: "notify",
			Headers: []ubihooks.Header{
				{Key: "X-Plain", Value: "visible"},
				// A caller that forgot to clear Value: the store must keep only Sealed.
				{Key: "Authorization", Value: "Bearer s3cret", Protected: true, Sealed: []byte{0, 1, 2, 0xfe, 0xff}},
			},
			Labels: map[string]string{"team": "ml", "env": "prod"}, Timeout: 7 * time.Second, Enabled: true, Retry: false,
			IncludeResult: true, CreatedAt: base, UpdatedAt: at(time.Second)}
		f.must(f.s.CreateWebhook(f.ctx, w))
		got, err := f.s.GetWebhook(f.ctx, f.p.ID, "hook")
		f.must(err)
		same(t, "webhook", got, stored(w))
		if got.VersionID != "" || got.Version != "" {
			t.Errorf("unbound webhook has VersionID %q, Version %q; want both empty", got.VersionID, got.Version)
		}
		for _, h := range got.Headers {
			if h.Protected && h.Value != "" {
				t.Errorf("protected header %s came back with a plain value %q", h.Key, h.Value)
			}
		}

		bound := f.webhook(o, v, "bound", "failed")
		got, err = f.s.GetWebhook(f.ctx, f.p.ID, "bound")
		f.must(err)
		same(t, "bound webhook", got, stored(bound))
		if got.VersionID != v.ID || got.Version != "v1" {
			t.Errorf("bound webhook has VersionID %q, Version %q; want %q, v1", got.VersionID, got.Version, v.ID)
		}

		_, err = f.s.GetWebhook(f.ctx, f.p.ID, "missing")
		wantCode(t, "GetWebhook(missing)", err, ubihooks.ENOTFOUND)
		_, err = f.s.GetWebhook(f.ctx, f.project("other").ID, "hook")
		wantCode(t, "GetWebhook(other project)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "EmptyLabelsAndHeaders", func(t *testing.T, f *fx) {
		o, _ := f.deployment("dep")
		f.webhook(o, nil, "bare", "started", func(w *ubihooks.Webhook) { w.Labels, w.Headers = nil, nil })
		got, err := f.s.GetWebhook(f.ctx, f.p.ID, "bare")
		f.must(err)
		if got.Labels == nil || len(got.Labels) != 0 {
			t.Errorf("webhook created without labels has Labels %#v, want {} (empty, non-nil)", got.Labels)
		}
		if len(got.Headers) != 0 {
			t.Errorf("webhook created without headers has Headers %v", got.Headers)
		}
		ws, err := f.s.ListWebhooks(f.ctx, f.p.ID, ubihooks.WebhookFilter{})
		f.must(err)
		if len(ws) != 1 || ws[0].Labels == nil {
			t.Errorf("ListWebhooks: %d webhooks, want 1 with non-nil labels", len(ws))
		}
	})
	s.run(t, "ProtectedHeaderMustBeSealed", func(t *testing.T, f *fx) {
		o, _ := f.deployment("dep")
		w := &ubihooks.Webhook{ID: newID(), ProjectID: f.p.ID, Name: "unsealed", ObjectID: o.ID, URL: "https://x.example/",
			Headers: []ubihooks.Header{{Key: "Authorization", Value: "plain secret", Protected: true}},
			Event:   ubihooks.EventDeploymentCompleted, Timeout: time.Second, Enabled: true, CreatedAt: base, UpdatedAt: base}
		if err := f.s.CreateWebhook(f.ctx, w); err == nil {
			t.Errorf("CreateWebhook with an unsealed protected header succeeded, want an error")
		}
		_, err := f.s.GetWebhook(f.ctx, f.p.ID, "unsealed")
		wantCode(t, "GetWebhook(refused webhook)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "Duplicate", func(t *testing.T, f *fx) {
		o, _ := f.deployment("dep")
		p := f.object(ubihooks.ObjectPipeline, "pipe")
		f.webhook(o, nil, "hook", "completed")
		w := &ubihooks.Webhook{ID: newID(), ProjectID: f.p.ID, Name: "hook", ObjectType: p.Type, ObjectID: p.ID, URL: "https://x.example/",
			Event: ubihooks.EventPipelineCompleted, Timeout: time.Second, Enabled: true, CreatedAt: base, UpdatedAt: base}
		wantCode(t, "CreateWebhook(taken name, other object)", f.s.CreateWebhook(f.ctx, w), ubihooks.ECONFLICT)
		// The name is free in another project.
		oo := f.objectIn(f.project("other"), ubihooks.ObjectDeployment, "dep")
		f.webhook(oo, nil, "hook", "completed")
	})
	s.run(t, "Update", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, v, "hook", "completed")
		f.webhook(o, nil, "taken", "completed")

		w.Name, w.URL, w.Event, w.Description = "renamed", "https://new.example.com/x", ubihooks.EventDeploymentFailed, "changed"
		w.Headers = []ubihooks.Header{{Key: "X-Token", Protected: true, Value: "forgotten", Sealed: []byte("new-sealed")}, {Key: "X-A", Value: "b"}}
		w.Labels = map[string]string{"new": "label"}
		w.Timeout, w.Enabled, w.Retry, w.IncludeResult, w.UpdatedAt = 30*time.Second, false, false, true, at(time.Hour)
		f.must(f.s.UpdateWebhook(f.ctx, w))
		got, err := f.s.GetWebhook(f.ctx, f.p.ID, "renamed")
		f.must(err)
		same(t, "updated webhook", got, stored(w))
		_, err = f.s.GetWebhook(f.ctx, f.p.ID, "hook")
		wantCode(t, "GetWebhook(old name)", err, ubihooks.ENOTFOUND)

		bad := *w
		bad.Name = "taken"
		wantCode(t, "UpdateWebhook(taken name)", f.s.UpdateWebhook(f.ctx, &bad), ubihooks.ECONFLICT)
		bad = *w
		bad.ID = newID()
		wantCode(t, "UpdateWebhook(missing ID)", f.s.UpdateWebhook(f.ctx, &bad), ubihooks.ENOTFOUND)
		got, err = f.s.GetWebhook(f.ctx, f.p.ID, "renamed")
		f.must(err)
		same(t, "webhook after refused updates", got, stored(w))
	})
	s.run(t, "Delete", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		keep := f.webhook(o, nil, "keep", "completed")
		f.emit(base, f.event(o, v, "completed", base))
		ds := f.deliveries(w)
		if len(ds) != 1 {
			t.Fatalf("%d deliveries, want 1", len(ds))
		}
		f.must(f.s.DeleteWebhook(f.ctx, f.p.ID, "hook"))
		_, err := f.s.GetWebhook(f.ctx, f.p.ID, "hook")
		wantCode(t, "GetWebhook(deleted)", err, ubihooks.ENOTFOUND)
		_, _, err = f.s.GetDelivery(f.ctx, f.p.ID, ds[0].ID)
		wantCode(t, "GetDelivery(of deleted webhook)", err, ubihooks.ENOTFOUND)
		if n := len(f.deliveries(keep)); n != 1 {
			t.Errorf("other webhook has %d deliveries after a delete, want 1", n)
		}
		wantCode(t, "DeleteWebhook(missing)", f.s.DeleteWebhook(f.ctx, f.p.ID, "hook"), ubihooks.ENOTFOUND)
		wantCode(t, "DeleteWebhook(other project)", f.s.DeleteWebhook(f.ctx, f.project("other").ID, "keep"), ubihooks.ENOTFOUND)
	})
	s.run(t, "List", func(t *testing.T, f *fx) {
		dep, _ := f.deployment("dep")
		pipe := f.object(ubihooks.ObjectPipeline, "pipe")
		labels := func(kv ...string) func(*ubihooks.Webhook) {
			return func(w *ubihooks.Webhook) {
				for i := 0; i < len(kv); i += 2 {
					w.Labels[kv[i]] = kv[i+1]
				}
			}
		}
		f.webhook(dep, nil, "d-prod-a", "completed", labels("team", "a", "env", "prod"))
		f.webhook(dep, nil, "b-team-b", "failed", labels("team", "b"))
		f.webhook(pipe, nil, "c-pipe-prod", "completed", labels("env", "prod"))
		f.webhook(dep, nil, "a-bare", "completed")
		// A pipeline named like a deployment: object_name alone matches both.
		f.webhook(f.object(ubihooks.ObjectPipeline, "dep"), nil, "e-pipe-dep", "failed", labels("env", "prod"))
		f.webhook(f.objectIn(f.project("other"), ubihooks.ObjectDeployment, "dep"), nil, "z-other", "completed", labels("env", "prod"))

		for _, c := range []struct {
			name string
			f    ubihooks.WebhookFilter
			want []string
		}{
			{"no filter", ubihooks.WebhookFilter{}, []string{"a-bare", "b-team-b", "c-pipe-prod", "d-prod-a", "e-pipe-dep"}},
			{"pipelines", ubihooks.WebhookFilter{ObjectType: ubihooks.ObjectPipeline}, []string{"c-pipe-prod", "e-pipe-dep"}},
			{"object name", ubihooks.WebhookFilter{ObjectName: "dep"}, []string{"a-bare", "b-team-b", "d-prod-a", "e-pipe-dep"}},
			{"object name AND type", ubihooks.WebhookFilter{ObjectType: ubihooks.ObjectDeployment, ObjectName: "dep"}, []string{"a-bare", "b-team-b", "d-prod-a"}},
			{"object name AND event AND label", ubihooks.WebhookFilter{ObjectName: "dep", Event: ubihooks.EventDeploymentCompleted, Labels: map[string]string{"env": "prod"}}, []string{"d-prod-a"}},
			{"other object", ubihooks.WebhookFilter{ObjectName: "pipe"}, []string{"c-pipe-prod"}},
			{"unknown object", ubihooks.WebhookFilter{ObjectName: "nope"}, nil},
			{"deployments", ubihooks.WebhookFilter{ObjectType: ubihooks.ObjectDeployment}, []string{"a-bare", "b-team-b", "d-prod-a"}},
			{"event", ubihooks.WebhookFilter{Event: ubihooks.EventDeploymentCompleted}, []string{"a-bare", "d-prod-a"}},
			{"label", ubihooks.WebhookFilter{Labels: map[string]string{"env": "prod"}}, []string{"c-pipe-prod", "d-prod-a", "e-pipe-dep"}},
			{"labels AND", ubihooks.WebhookFilter{Labels: map[string]string{"env": "prod", "team": "a"}}, []string{"d-prod-a"}},
			{"labels AND, no match", ubihooks.WebhookFilter{Labels: map[string]string{"env": "prod", "team": "b"}}, nil},
			{"label value mismatch", ubihooks.WebhookFilter{Labels: map[string]string{"team": "c"}}, nil},
			{"any value", ubihooks.WebhookFilter{Labels: map[string]string{"team": ubihooks.AnyLabelValue}}, []string{"b-team-b", "d-prod-a"}},
			{"type AND any value", ubihooks.WebhookFilter{ObjectType: ubihooks.ObjectDeployment, Labels: map[string]string{"env": ubihooks.AnyLabelValue}}, []string{"d-prod-a"}},
			{"event AND label", ubihooks.WebhookFilter{Event: ubihooks.EventDeploymentFailed, Labels: map[string]string{"team": "b"}}, []string{"b-team-b"}},
		} {
			ws, err := f.s.ListWebhooks(f.ctx, f.p.ID, c.f)
			f.must(err)
			sameList(t, "ListWebhooks("+c.name+")", names(ws, webhookName), c.want)
			for _, w := range ws {
				if !c.f.Match(w) {
					t.Errorf("ListWebhooks(%s) returned %s, which the filter does not Match", c.name, w.Name)
				}
			}
		}
	})
}
