// Package storetest is the conformance suite of ubihooks.Store. Every adapter (SQLite,
// PostgreSQL) runs Run from its tests; a store is conformant when the whole suite passes.
//
// The suite uses only the ubihooks.Store interface, so it holds for any engine. Each leaf
// subtest creates its own store with newStore and runs in parallel with the others.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// Run runs the conformance suite. newStore must return an empty, migrated store that is
// closed when t ends (t.Cleanup); it is called once per leaf subtest.
func Run(t *testing.T, newStore func(t *testing.T) ubihooks.Store) {
	s := suite{newStore: newStore}
	groups := []struct {
		name string
		fn   func(*testing.T, suite)
	}{
		{"Projects", testProjects},
		{"Tokens", testTokens},
		{"TokenLifecycle", testTokenLifecycle},
		{"Sessions", testSessions},
		{"Objects", testObjects},
		{"Versions", testVersions},
		{"Webhooks", testWebhooks},
		{"EmitEvents", testEmitEvents},
		{"Dispatch", testDispatch},
		{"Subscribe", testSubscribe},
		{"WebhookTests", testWebhookTests},
		{"ClaimDeliveries", testClaimDeliveries},
		{"RecordOutcomes", testRecordOutcomes},
		{"Leases", testLeases},
		{"DeliveryQueue", testDeliveryQueue},
		{"DeliveryHistory", testDeliveryHistory},
		{"RedeliverMany", testRedeliverMany},
		{"WebhookHealth", testWebhookHealth},
		{"DeleteExpired", testDeleteExpired},
		{"WebhookStats", testWebhookStats},
		{"SigningKeys", testSigningKeys},
		{"Requests", testRequests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			g.fn(t, s)
		})
	}
}

type suite struct {
	newStore func(*testing.T) ubihooks.Store
}

// run starts a parallel subtest with a fresh store holding one project.
func (s suite) run(t *testing.T, name string, fn func(t *testing.T, f *fx)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, newFx(t, s.newStore(t)))
	})
}

// base is the suite's clock: a fixed instant with microsecond precision, which every store
// must round-trip exactly.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC).Truncate(time.Microsecond)

// at returns base+d.
func at(d time.Duration) time.Time { return base.Add(d) }

func newID() string { return ubihooks.NewID() }

// fx is one subtest's store with its project, and constructors that fail the test on error.
type fx struct {
	t   *testing.T
	ctx context.Context
	s   ubihooks.Store
	p   *ubihooks.Project
}

func newFx(t *testing.T, s ubihooks.Store) *fx {
	f := &fx{t: t, ctx: t.Context(), s: s}
	f.p = f.project("acme")
	return f
}

func (f *fx) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fx) project(name string) *ubihooks.Project {
	f.t.Helper()
	p := &ubihooks.Project{ID: newID(), Name: name, OrganizationName: "org-" + name, CreatedAt: base}
	f.must(f.s.CreateProject(f.ctx, p))
	return p
}

// object creates a deployment or pipeline in f's project.
func (f *fx) object(t ubihooks.ObjectType, name string) *ubihooks.Object {
	f.t.Helper()
	return f.objectIn(f.p, t, name)
}

func (f *fx) objectIn(p *ubihooks.Project, t ubihooks.ObjectType, name string) *ubihooks.Object {
	f.t.Helper()
	o := &ubihooks.Object{ID: newID(), ProjectID: p.ID, Type: t, Name: name, Labels: map[string]string{},
		InputType: ubihooks.TypePlain, OutputType: ubihooks.TypePlain, CreatedAt: base, UpdatedAt: base}
	f.must(f.s.CreateObject(f.ctx, o))
	return o
}

// version creates a version; backend "" makes it an external runtime.
func (f *fx) version(o *ubihooks.Object, name, backend string) *ubihooks.Version {
	f.t.Helper()
	v := &ubihooks.Version{ID: newID(), ObjectID: o.ID, ProjectID: o.ProjectID, ObjectType: o.Type, ObjectName: o.Name,
		Name: name, Labels: map[string]string{}, Environment: "python3-12", BackendURL: backend, Concurrency: 2,
		CreatedAt: base, UpdatedAt: base}
	f.must(f.s.CreateVersion(f.ctx, v))
	return v
}

// deployment creates a deployment with a first (default) version "v1" that has a backend.
func (f *fx) deployment(name string) (*ubihooks.Object, *ubihooks.Version) {
	f.t.Helper()
	o := f.object(ubihooks.ObjectDeployment, name)
	v := f.version(o, "v1", "http://backend.invalid/"+name)
	o.DefaultVersion = v.Name
	return o, v
}

// webhook creates an enabled webhook on o for the event kind ("completed", …), bound to v
// unless v is nil.
func (f *fx) webhook(o *ubihooks.Object, v *ubihooks.Version, name, kind string, mods ...func(*ubihooks.Webhook)) *ubihooks.Webhook {
	f.t.Helper()
	w := &ubihooks.Webhook{ID: newID(), ProjectID: o.ProjectID, Name: name, ObjectType: o.Type, ObjectID: o.ID,
		ObjectName: o.Name, URL: "https://hooks.example.com/" + name, Headers: []ubihooks.Header{{Key: "X-Hook", Value: name}},
		Event: ubihooks.EventFor(o.Type, kind), Labels: map[string]string{}, Timeout: 5 * time.Second, Enabled: true,
		Retry: true, CreatedAt: base, UpdatedAt: base}
	if v != nil {
		w.VersionID, w.Version = v.ID, v.Name
	}
	for _, m := range mods {
		m(w)
	}
	f.must(f.s.CreateWebhook(f.ctx, w))
	return w
}

// event builds (without emitting) an event of kind for version v of o.
func (f *fx) event(o *ubihooks.Object, v *ubihooks.Version, kind string, created time.Time) *ubihooks.Event {
	// Its ID derives from its request's, as every real event's does (RequestTransition.Events).
	req := newID()
	e := &ubihooks.Event{ID: ubihooks.EventID(req, ubihooks.EventFor(o.Type, kind)), ProjectID: o.ProjectID, ProjectName: f.p.Name,
		Type: ubihooks.EventFor(o.Type, kind), ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name, VersionID: v.ID,
		VersionName: v.Name, RequestID: req, Status: kind, CreatedAt: created}
	if kind == "completed" {
		e.SetResult(json.RawMessage(`{"answer":42}`))
	}
	return e
}

func (f *fx) emit(now time.Time, events ...*ubihooks.Event) int {
	f.t.Helper()
	n, err := f.s.EmitEvents(f.ctx, events, now)
	f.must(err)
	return n
}

// deliveries lists a webhook's deliveries, newest first.
func (f *fx) deliveries(w *ubihooks.Webhook) []*ubihooks.Delivery {
	f.t.Helper()
	ds, err := f.s.ListDeliveries(f.ctx, ubihooks.DeliveryFilter{ProjectID: w.ProjectID, WebhookID: w.ID, Limit: 1000})
	f.must(err)
	return ds
}

// delivery gets one delivery with its attempts.
func (f *fx) delivery(id string) (*ubihooks.Delivery, []*ubihooks.Attempt) {
	f.t.Helper()
	d, as, err := f.s.GetDelivery(f.ctx, f.p.ID, id)
	f.must(err)
	return d, as
}

// claim leases up to limit due deliveries to owner for a minute.
func (f *fx) claim(owner string, limit int, now time.Time) []*ubihooks.Delivery {
	f.t.Helper()
	ds, err := f.s.ClaimDeliveries(f.ctx, ubihooks.DeliveryClaim{Owner: owner, Limit: limit, Lease: time.Minute, Now: now})
	f.must(err)
	return ds
}

func (f *fx) record(now time.Time, outcomes ...ubihooks.Outcome) {
	f.t.Helper()
	f.must(f.s.RecordOutcomes(f.ctx, outcomes, now))
}

// outcome builds a worker's report: a 200 for succeeded, a 503 with a retry 30s later for
// pending, a refused connection for failed.
func outcome(id, owner string, status ubihooks.DeliveryStatus, number int, now time.Time) ubihooks.Outcome {
	o := ubihooks.Outcome{DeliveryID: id, Owner: owner, Status: status, Attempt: ubihooks.Attempt{DeliveryID: id,
		Number: number, StartedAt: now, Duration: 250 * time.Millisecond, StatusCode: 200, ResponseBody: "ok"}}
	switch status {
	case ubihooks.DeliveryPending:
		o.NextAttemptAt = now.Add(30 * time.Second)
		o.Attempt.StatusCode, o.Attempt.ErrorClass, o.Attempt.Error, o.Attempt.ResponseBody = 503, ubihooks.ClassHTTPStatus, "HTTP 503", "busy"
	case ubihooks.DeliveryFailed:
		o.Attempt.StatusCode, o.Attempt.ErrorClass, o.Attempt.Error, o.Attempt.ResponseBody = 0, ubihooks.ClassConnect, "connection refused", ""
	}
	return o
}

// webhookTest records a webhook test of o/v with its dummy event and delivery.
func (f *fx) webhookTest(o *ubihooks.Object, v *ubihooks.Version, now time.Time) (*ubihooks.WebhookTest, *ubihooks.Event, *ubihooks.Delivery) {
	f.t.Helper()
	wt := &ubihooks.WebhookTest{ID: newID(), ProjectID: f.p.ID, Status: ubihooks.TestPending, CreatedAt: now, UpdatedAt: now}
	e := f.event(o, v, "completed", now)
	e.Test = true
	d := &ubihooks.Delivery{ID: newID(), ProjectID: f.p.ID, EventID: e.ID, TestID: wt.ID, URL: "https://hooks.example.com/test", Host: "hooks.example.com",
		Headers: []ubihooks.Header{{Key: "X-Test", Value: "1"}, {Key: "Authorization", Protected: true, Sealed: []byte("sealed")}},
		Timeout: 3 * time.Second, IncludeResult: true, Status: ubihooks.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}
	f.must(f.s.CreateWebhookTest(f.ctx, wt, e, d))
	return wt, e, d
}

// wantCode checks the ubihooks error code of err.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ubihooks.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err: %v), want %q", what, got, err, code)
	}
}

// same compares got and want field by field: times with Equal, empty and nil slices and
// maps as equal, everything else with reflect.DeepEqual. It reports one error per field.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	for _, d := range diff(what, reflect.ValueOf(got), reflect.ValueOf(want)) {
		t.Error(d)
	}
}

var timeType = reflect.TypeFor[time.Time]()

func diff(path string, g, w reflect.Value) []string {
	if g.Type() == timeType {
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		if !gt.Equal(wt) {
			return []string{fmt.Sprintf("%s = %v, want %v", path, gt, wt)}
		}
		return nil
	}
	switch g.Kind() {
	case reflect.Pointer:
		if g.IsNil() || w.IsNil() {
			if g.IsNil() != w.IsNil() {
				return []string{fmt.Sprintf("%s = %s, want %s", path, show(g), show(w))}
			}
			return nil
		}
		return diff(path, g.Elem(), w.Elem())
	case reflect.Struct:
		var out []string
		for i := range g.NumField() {
			if sf := g.Type().Field(i); sf.IsExported() {
				out = append(out, diff(path+"."+sf.Name, g.Field(i), w.Field(i))...)
			}
		}
		return out
	case reflect.Slice, reflect.Map:
		if g.Len() == 0 && w.Len() == 0 {
			return nil
		}
	}
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		return []string{fmt.Sprintf("%s = %s, want %s", path, show(g), show(w))}
	}
	return nil
}

func show(v reflect.Value) string {
	switch {
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		return fmt.Sprintf("%q", v.Bytes())
	case v.Kind() == reflect.Pointer && v.IsNil():
		return "nil"
	case v.Kind() == reflect.Pointer:
		return "&" + show(v.Elem())
	}
	return fmt.Sprintf("%#v", v.Interface())
}

// names returns the names of objects, versions or webhooks, in order.
func names[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

func ids[T any](xs []T, id func(T) string) []string { return names(xs, id) }

func deliveryID(d *ubihooks.Delivery) string { return d.ID }
func requestID(r *ubihooks.Request) string   { return r.ID }

// sameList compares two string lists (names or IDs) in order.
func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func sortedStrings(xs []string) []string {
	out := append([]string(nil), xs...)
	sort.Strings(out)
	return out
}
