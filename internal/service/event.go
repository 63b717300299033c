package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
)

// eventNamespace derives event IDs: the ID of (request, event type) is fixed, so a
// transition that is recorded twice (a retry, a rescued lease, another replica) is one event.
var eventNamespace = uuid.MustParse("6f1c2a8e-5d0b-4c7e-9a53-1f0e8b6d2c41")

// EventID returns the stable ID of an event of a request. When the request id is a
// time-ordered (version 7) UUID, the event id keeps its 48-bit timestamp prefix, so that
// events inserted together sit together in the events index (random ids would dirty a
// random index page per insert); the other 74 bits stay a hash of (request, event type).
func EventID(requestID string, t ubihooks.EventType) string {
	id := uuid.NewSHA1(eventNamespace, []byte(requestID+"/"+string(t)))
	if r, err := uuid.Parse(requestID); err == nil && r.Version() == 7 {
		copy(id[:6], r[:6])
	}
	return id.String()
}

// Transition is one request status change to report to webhooks.
type Transition struct {
	ObjectType ubihooks.ObjectType
	ObjectName string
	Version    string // "" for the default version
	RequestID  string
	From, To   ubihooks.RequestStatus
	Result     json.RawMessage
}

// buildEvents returns the events of a transition of a request (object, version, project
// names filled in).
func buildEvents(r *ubihooks.Request, from, to ubihooks.RequestStatus, result json.RawMessage, now time.Time) []*ubihooks.Event {
	kinds := ubihooks.TransitionEvents(from, to)
	events := make([]*ubihooks.Event, 0, len(kinds))
	for _, k := range kinds {
		t := ubihooks.EventFor(r.ObjectType, k)
		status := to
		if k == "started" {
			status = ubihooks.RequestProcessing
		}
		e := &ubihooks.Event{ID: EventID(r.ID, t), ProjectID: r.ProjectID, ProjectName: r.ProjectName, Type: t,
			ObjectType: r.ObjectType, ObjectID: r.ObjectID, ObjectName: r.ObjectName, VersionID: r.VersionID,
			VersionName: r.VersionName, RequestID: r.ID, Status: string(status), CreatedAt: now}
		if k != "started" && to == ubihooks.RequestCompleted {
			e.SetResult(result)
		}
		events = append(events, e)
	}
	return events
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
		ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name}
	events := buildEvents(r, t.From, t.To, t.Result, s.Now())
	if len(events) == 0 {
		return 0, ubihooks.Errorf(ubihooks.EINVALID, "a transition from %s to %s emits no event", t.From, t.To)
	}
	return s.store.EmitEvents(ctx, events, s.Now())
}
