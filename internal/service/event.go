package service

import (
	"context"
	"encoding/json"

	"github.com/ubihooks/ubihooks"
)

// Transition is one request status change to report to webhooks.
type Transition struct {
	ObjectType ubihooks.ObjectType
	ObjectName string
	Version    string // "" for the default version
	RequestID  string
	From, To   ubihooks.RequestStatus
	Result     json.RawMessage
}

// RecordTransition reports one request transition of an object's version and fans out its
// events to the matching webhooks, in one transaction. It is how runtimes outside ubihooks
// (and tests) drive webhooks; requests run by ubihooks use the same event builder.
func (s *Service) RecordTransition(ctx context.Context, p *ubihooks.Project, t Transition) (int, error) {
	if !t.From.Valid() || !t.To.Valid() {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "status must be one of pending, processing, completed, failed, cancelled")
	}
	if t.RequestID == "" {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "request_id is required")
	}
	if len(t.Result) > 0 && !json.Valid(t.Result) {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "result must be valid JSON")
	}
	o, err := s.store.GetObject(ctx, p.ID, t.ObjectType, t.ObjectName)
	if err != nil {
		return 0, err
	}
	name := t.Version
	if name == "" {
		name = o.DefaultVersion
	}
	v, err := s.store.GetVersion(ctx, o.ID, name)
	if err != nil {
		return 0, err
	}
	r := &ubihooks.Request{ID: t.RequestID, ProjectID: p.ID, ProjectName: p.Name, ObjectType: o.Type, ObjectID: o.ID,
		ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name, Status: t.From}
	events := ubihooks.RequestTransition{To: t.To, Result: t.Result, Now: s.Now()}.Events(r)
	if len(events) == 0 {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "a transition from %s to %s emits no event", t.From, t.To)
	}
	return s.store.EmitEvents(ctx, events, s.Now())
}
