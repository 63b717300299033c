package service

import (
	"context"

	"github.com/ubihooks/ubihooks"
)

// CreateWebhookTest validates a test configuration and queues a dummy event to its URL
// through the same engine path as real deliveries (signer, network guard, timeout, retry
// setting and real protected values). It answers at once with a pending test.
func (s *Service) CreateWebhookTest(ctx context.Context, p *ubihooks.Project, in ubihooks.WebhookTestCreate) (*ubihooks.WebhookTest, error) {
	tg, err := s.resolveTarget(ctx, p.ID, in.ObjectType, in.ObjectName, in.Version, in.Event)
	if err != nil {
		return nil, err
	}
	w := &ubihooks.Webhook{Event: tg.event, Retry: in.Retry != nil && *in.Retry, IncludeResult: in.IncludeResult != nil && *in.IncludeResult}
	if w.URL, err = ubihooks.NormalizeURL(in.URL); err != nil {
		return nil, err
	}
	if w.Timeout, err = ubihooks.TimeoutFromSeconds(in.Timeout); err != nil {
		return nil, err
	}
	if w.Headers, err = s.sealHeaders(in.Headers, nil); err != nil {
		return nil, err
	}
	v := tg.version
	if v == nil {
		if v, err = s.store.GetVersion(ctx, tg.object.ID, tg.object.DefaultVersion); err != nil {
			return nil, err
		}
	}
	return s.queueTest(ctx, p, tg.object, v, w)
}

// TestSavedWebhook tests a stored webhook as it is, protected header values included, or
// with the fields of in (when not nil) changed as a PATCH would change them, validated
// the same way; a protected header sent without a value keeps its stored secret. Nothing
// is saved: the test is a dummy event of the webhook's object and version (the object's
// default version for a webhook that follows it), queued as CreateWebhookTest queues one.
func (s *Service) TestSavedWebhook(ctx context.Context, p *ubihooks.Project, name string, in *ubihooks.WebhookUpdate) (*ubihooks.WebhookTest, error) {
	var upd ubihooks.WebhookUpdate
	if in != nil {
		upd = *in
	}
	if err := checkImmutable(upd); err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, p.ID, name)
	if err != nil {
		return nil, err
	}
	if err := s.applyUpdate(w, upd); err != nil {
		return nil, err
	}
	o, err := s.store.GetObject(ctx, p.ID, w.ObjectType, w.ObjectName)
	if err != nil {
		return nil, err
	}
	version := w.Version
	if version == "" {
		if version = o.DefaultVersion; version == "" {
			return nil, ubihooks.Errorf(ubihooks.EINVALID, "%s %q has no default version to test the webhook with; make one of its versions the default", o.Type, o.Name)
		}
	}
	v, err := s.store.GetVersion(ctx, o.ID, version)
	if err != nil {
		return nil, err
	}
	return s.queueTest(ctx, p, o, v, w)
}

// queueTest records a test with a dummy event of version v of o and one delivery of it to
// w's target (URL, sealed headers, timeout, retry and include_result), pending now.
func (s *Service) queueTest(ctx context.Context, p *ubihooks.Project, o *ubihooks.Object, v *ubihooks.Version, w *ubihooks.Webhook) (*ubihooks.WebhookTest, error) {
	now := s.Now()
	t := &ubihooks.WebhookTest{ID: newID(), ProjectID: p.ID, Status: ubihooks.TestPending, CreatedAt: now, UpdatedAt: now}
	e := ubihooks.TestEvent(&ubihooks.Request{ID: "00000000-0000-0000-0000-000000000000", ProjectID: p.ID, ProjectName: p.Name,
		ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name}, w.Event, now)
	d := &ubihooks.Delivery{ID: newID(), ProjectID: p.ID, EventID: e.ID, TestID: t.ID, URL: w.URL, Headers: w.Headers,
		Timeout: w.Timeout, Retry: w.Retry, IncludeResult: w.IncludeResult, NextAttemptAt: now, CreatedAt: now}
	if err := s.store.CreateWebhookTest(ctx, t, e, d); err != nil {
		return nil, err
	}
	return t, nil
}

// GetWebhookTest finds a test.
func (s *Service) GetWebhookTest(ctx context.Context, projectID, id string) (*ubihooks.WebhookTest, error) {
	return s.store.GetWebhookTest(ctx, projectID, id)
}

// GetWebhookTestDetail finds a test with the attempts of its delivery, by number (none
// before the first is made).
func (s *Service) GetWebhookTestDetail(ctx context.Context, projectID, id string) (*ubihooks.WebhookTest, []*ubihooks.Attempt, error) {
	t, err := s.store.GetWebhookTest(ctx, projectID, id)
	if err != nil {
		return nil, nil, err
	}
	attempts, err := s.store.ListWebhookTestAttempts(ctx, projectID, id)
	if err != nil {
		return nil, nil, err
	}
	return t, attempts, nil
}
