package service

import (
	"context"
	"strings"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Purposes bind sealed values to their use (see internal/secret).
const (
	purposeHeader     = "webhook-header"
	purposeSigningKey = "signing-key"
)

// target is the validated part that webhooks and webhook tests share.
type target struct {
	object  *ubihooks.Object
	version *ubihooks.Version // nil: follows the default version
	event   ubihooks.EventType
}

// resolveTarget validates object_type, event, object_name and version.
func (s *Service) resolveTarget(ctx context.Context, projectID, objectType, objectName string, version *string, event string) (*target, error) {
	t, err := ubihooks.ParseObjectType(objectType)
	if err != nil {
		return nil, err
	}
	ev, err := ubihooks.ParseEvent(t, event)
	if err != nil {
		return nil, err
	}
	if objectName == "" {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "object_name is required")
	}
	o, err := s.store.GetObject(ctx, projectID, t, objectName)
	if ubihooks.IsNotFound(err) {
		return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "%s %q not found in this project", t, objectName)
	}
	if err != nil {
		return nil, err
	}
	tg := &target{object: o, event: ev}
	if version != nil {
		if *version == "" {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "version must not be empty; leave it out to follow the default version")
		}
		v, err := s.store.GetVersion(ctx, o.ID, *version)
		if ubihooks.IsNotFound(err) {
			return nil, ubihooks.Errorf(ubihooks.ENOTFOUND, "version %q of %s %q not found", *version, t, objectName)
		}
		if err != nil {
			return nil, err
		}
		tg.version = v
	} else if o.DefaultVersion == "" {
		return nil, ubihooks.Errorf(ubihooks.EINVALID, "%s %q has no versions yet; create a version first or name one in version", t, objectName)
	}
	return tg, nil
}

// sealHeaders validates header inputs and returns stored headers: protected values sealed.
// old holds the stored headers of the webhook being updated (nil on create); a protected
// header sent without a value keeps the stored secret of the same key.
func (s *Service) sealHeaders(in []ubihooks.HeaderInput, old []ubihooks.Header) ([]ubihooks.Header, error) {
	stored := map[string]ubihooks.Header{}
	for _, h := range old {
		if h.Protected {
			stored[strings.ToLower(h.Key)] = h
		}
	}
	var keep func(string) bool
	if old != nil {
		keep = func(k string) bool { _, ok := stored[strings.ToLower(k)]; return ok }
	}
	if err := ubihooks.ValidateHeaderInputs(in, keep); err != nil {
		return nil, err
	}
	out := make([]ubihooks.Header, 0, len(in))
	for _, h := range in {
		protected := h.Protected != nil && *h.Protected
		switch {
		case protected && (h.Value == nil || *h.Value == ""):
			prev := stored[strings.ToLower(h.Key)]
			out = append(out, ubihooks.Header{Key: h.Key, Protected: true, Sealed: prev.Sealed})
		case protected:
			out = append(out, ubihooks.Header{Key: h.Key, Protected: true, Sealed: s.box.Seal([]byte(*h.Value), purposeHeader)})
		default:
			out = append(out, ubihooks.Header{Key: h.Key, Value: *h.Value})
		}
	}
	return out, nil
}

// OpenHeaders returns headers with protected values decrypted, for sending only.
func (s *Service) OpenHeaders(hs []ubihooks.Header) ([]ubihooks.Header, error) {
	out := make([]ubihooks.Header, len(hs))
	for i, h := range hs {
		out[i] = h
		if h.Protected {
			v, err := s.box.Open(h.Sealed, purposeHeader)
			if err != nil {
				return nil, ubihooks.Errorf(ubihooks.EINTERNAL, "protected header %q cannot be decrypted with the configured encryption key", h.Key)
			}
			out[i].Value = string(v)
		}
	}
	return out, nil
}

// CreateWebhook validates and stores a webhook.
func (s *Service) CreateWebhook(ctx context.Context, projectID string, in ubihooks.WebhookCreate) (*ubihooks.Webhook, error) {
	if err := ubihooks.ValidateName("name", in.Name); err != nil {
		return nil, err
	}
	tg, err := s.resolveTarget(ctx, projectID, in.ObjectType, in.ObjectName, in.Version, in.Event)
	if err != nil {
		return nil, err
	}
	u, err := ubihooks.NormalizeURL(in.URL)
	if err != nil {
		return nil, err
	}
	w := &ubihooks.Webhook{ID: newID(), ProjectID: projectID, Name: in.Name, ObjectType: tg.object.Type, ObjectID: tg.object.ID,
		ObjectName: tg.object.Name, URL: u, Event: tg.event, Labels: in.Labels, Enabled: true}
	if tg.version != nil {
		w.VersionID, w.Version = tg.version.ID, tg.version.Name
	}
	if in.Description != nil {
		w.Description = *in.Description
	}
	if err := ubihooks.ValidateDescription(w.Description); err != nil {
		return nil, err
	}
	if err := ubihooks.ValidateLabels(in.Labels); err != nil {
		return nil, err
	}
	if w.Timeout, err = ubihooks.TimeoutFromSeconds(in.Timeout); err != nil {
		return nil, err
	}
	if w.Headers, err = s.sealHeaders(in.Headers, nil); err != nil {
		return nil, err
	}
	if in.Enabled != nil {
		w.Enabled = *in.Enabled
	}
	w.Retry = in.Retry != nil && *in.Retry
	w.IncludeResult = in.IncludeResult != nil && *in.IncludeResult
	w.CreatedAt = s.Now()
	w.UpdatedAt = w.CreatedAt
	if err := s.store.CreateWebhook(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// GetWebhook finds a webhook by name.
func (s *Service) GetWebhook(ctx context.Context, projectID, name string) (*ubihooks.Webhook, error) {
	return s.store.GetWebhook(ctx, projectID, name)
}

// WebhookQuery is a list call's filter as the caller wrote it: every field is optional.
type WebhookQuery struct {
	ObjectType string // "deployment" or "pipeline"
	ObjectName string // a deployment's or pipeline's name (an unknown name lists nothing)
	Event      string // an event type
	Labels     string // "k1:v1,k2:v2" (every pair must match)
}

// ListWebhooks lists webhooks; the filter values are validated so that a typo is an error
// rather than an empty list.
func (s *Service) ListWebhooks(ctx context.Context, projectID string, q WebhookQuery) ([]*ubihooks.Webhook, error) {
	objectType, event, labels := q.ObjectType, q.Event, q.Labels
	f := ubihooks.WebhookFilter{ObjectName: q.ObjectName}
	if objectType != "" {
		t, err := ubihooks.ParseObjectType(objectType)
		if err != nil {
			return nil, err
		}
		f.ObjectType = t
	}
	if event != "" {
		if !ubihooks.EventType(event).Valid() {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "event %q is not a valid event", event)
		}
		f.Event = ubihooks.EventType(event)
	}
	var err error
	if f.Labels, err = ubihooks.ParseLabelFilter(labels); err != nil {
		return nil, err
	}
	return s.store.ListWebhooks(ctx, projectID, f)
}

// UpdateWebhook applies a PATCH.
func (s *Service) UpdateWebhook(ctx context.Context, projectID, name string, in ubihooks.WebhookUpdate) (*ubihooks.Webhook, error) {
	if err := checkImmutable(in); err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, projectID, name)
	if err != nil {
		return nil, err
	}
	if err := s.applyUpdate(w, in); err != nil {
		return nil, err
	}
	w.UpdatedAt = s.Now()
	if err := s.store.UpdateWebhook(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// checkImmutable refuses a PATCH that sets what a webhook cannot change.
func checkImmutable(in ubihooks.WebhookUpdate) error {
	for _, f := range []struct {
		field string
		raw   []byte
	}{{"object_type", in.ObjectType}, {"object_name", in.ObjectName}, {"version", in.Version}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return ubihooks.Errorf(ubihooks.EINVALID, "%s cannot be changed; delete the webhook and create a new one", f.field)
		}
	}
	return nil
}

// applyUpdate validates the fields of a PATCH and sets them on w; absent fields stay. A
// protected header sent without a value keeps the stored secret of w's header.
func (s *Service) applyUpdate(w *ubihooks.Webhook, in ubihooks.WebhookUpdate) error {
	var err error
	if in.Name != nil {
		if err := ubihooks.ValidateName("name", *in.Name); err != nil {
			return err
		}
		w.Name = *in.Name
	}
	if in.URL != nil {
		if w.URL, err = ubihooks.NormalizeURL(*in.URL); err != nil {
			return err
		}
	}
	if in.Event != nil {
		if w.Event, err = ubihooks.ParseEvent(w.ObjectType, *in.Event); err != nil {
			return err
		}
	}
	if in.Description != nil {
		if err := ubihooks.ValidateDescription(*in.Description); err != nil {
			return err
		}
		w.Description = *in.Description
	}
	if in.Labels != nil {
		if err := ubihooks.ValidateLabels(*in.Labels); err != nil {
			return err
		}
		w.Labels = *in.Labels
	}
	if in.Timeout != nil {
		if w.Timeout, err = ubihooks.TimeoutFromSeconds(in.Timeout); err != nil {
			return err
		}
	}
	if in.Headers != nil {
		old := w.Headers
		if old == nil {
			old = []ubihooks.Header{}
		}
		if w.Headers, err = s.sealHeaders(*in.Headers, old); err != nil {
			return err
		}
	}
	if in.Enabled != nil {
		// Enabling a disabled webhook replaces ubihooks' own disable, if it was one: its
		// reason goes, and a new run of failures starts (the receiver gets a fresh chance).
		// Disabling an enabled one is the user's: no deliveries, nothing parked. An
		// enabled: false sent to a webhook that ubihooks disabled changes nothing (an edit
		// form sends every field back), so its events stay parked rather than dropped.
		if *in.Enabled && !w.Enabled {
			w.DisabledReason, w.DisabledAt = "", time.Time{}
			w.FailingSince, w.ConsecutiveFailures = time.Time{}, 0
		}
		w.Enabled = *in.Enabled
	}
	if in.Retry != nil {
		w.Retry = *in.Retry
	}
	if in.IncludeResult != nil {
		w.IncludeResult = *in.IncludeResult
	}
	return nil
}

// DeleteWebhook deletes a webhook and its delivery history.
func (s *Service) DeleteWebhook(ctx context.Context, projectID, name string) error {
	return s.store.DeleteWebhook(ctx, projectID, name)
}
