package storetest

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// newRequest builds (without inserting) a pending top-level request on v.
func (f *fx) newRequest(v *ubihooks.Version, created time.Time, mods ...func(*ubihooks.Request)) *ubihooks.Request {
	r := &ubihooks.Request{ID: newID(), ProjectID: v.ProjectID, ProjectName: f.p.Name, ObjectType: v.ObjectType,
		ObjectID: v.ObjectID, ObjectName: v.ObjectName, VersionID: v.ID, VersionName: v.Name, Status: ubihooks.RequestPending,
		Input: json.RawMessage(`{"x":1}`), Timeout: time.Minute, Origin: "api", CreatedAt: created}
	for _, m := range mods {
		m(r)
	}
	return r
}

// request creates a pending top-level request on v, created at `created`.
func (f *fx) request(v *ubihooks.Version, created time.Time, mods ...func(*ubihooks.Request)) *ubihooks.Request {
	f.t.Helper()
	r := f.newRequest(v, created, mods...)
	f.must(f.s.CreateRequests(f.ctx, []*ubihooks.Request{r}))
	return r
}

// step makes a request step seq of the pipeline request parent.
func step(parent *ubihooks.Request, seq int) func(*ubihooks.Request) {
	return func(r *ubihooks.Request) { r.ParentID, r.Sequence = parent.ID, seq }
}

func (f *fx) getRequest(id string) *ubihooks.Request {
	f.t.Helper()
	r, err := f.s.GetRequest(f.ctx, f.p.ID, id)
	f.must(err)
	return r
}

func (f *fx) transition(r *ubihooks.Request, from, to ubihooks.RequestStatus, now time.Time) *ubihooks.Request {
	f.t.Helper()
	got, _, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: r.ProjectID, RequestID: r.ID,
		From: []ubihooks.RequestStatus{from}, To: to, Now: now})
	f.must(err)
	return got
}

func (f *fx) claimRequests(c ubihooks.RequestClaim) []*ubihooks.Request {
	f.t.Helper()
	if c.Owner == "" {
		c.Owner = "worker"
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	rs, err := f.s.ClaimRequests(f.ctx, c)
	f.must(err)
	return rs
}

func testRequests(t *testing.T, s suite) {
	s.run(t, "CreateGet", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		r := f.request(v, base, func(r *ubihooks.Request) {
			r.Input, r.Timeout, r.Batch, r.Origin = json.RawMessage(`"plain text"`), 90*time.Second, true, "batch"
		})
		same(t, "request", f.getRequest(r.ID), r)

		rs := []*ubihooks.Request{f.newRequest(v, at(time.Second)), f.newRequest(v, at(2*time.Second))}
		f.must(f.s.CreateRequests(f.ctx, rs))
		for _, r := range rs {
			same(t, "request of a batch", f.getRequest(r.ID), r)
		}

		// One transaction: a batch with a taken ID inserts nothing.
		fresh := f.newRequest(v, at(3*time.Second))
		err := f.s.CreateRequests(f.ctx, []*ubihooks.Request{fresh, f.newRequest(v, base, func(x *ubihooks.Request) { x.ID = r.ID })})
		wantCode(t, "CreateRequests(taken ID)", err, ubihooks.ECONFLICT)
		_, err = f.s.GetRequest(f.ctx, f.p.ID, fresh.ID)
		wantCode(t, "GetRequest(from a failed batch)", err, ubihooks.ENOTFOUND)

		_, err = f.s.GetRequest(f.ctx, f.project("other").ID, r.ID)
		wantCode(t, "GetRequest(other project)", err, ubihooks.ENOTFOUND)
		_, err = f.s.GetRequest(f.ctx, f.p.ID, newID())
		wantCode(t, "GetRequest(missing)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "List", func(t *testing.T, f *fx) {
		dep, v1 := f.deployment("dep")
		v2 := f.version(dep, "v2", "")
		pipe := f.object(ubihooks.ObjectPipeline, "pipe")
		pv := f.version(pipe, "p1", "")
		r1, r2, r3 := f.request(v1, base), f.request(v1, at(time.Second)), f.request(v2, at(2*time.Second))
		pr := f.request(pv, at(3*time.Second))
		s1 := f.request(v1, at(4*time.Second), step(pr, 1))
		s0 := f.request(v1, at(5*time.Second), step(pr, 0))
		f.transition(r2, ubihooks.RequestPending, ubihooks.RequestProcessing, at(6*time.Second))
		oo := f.objectIn(f.project("other"), ubihooks.ObjectDeployment, "dep")
		f.request(f.version(oo, "v1", "http://b.invalid"), at(7*time.Second))

		for _, c := range []struct {
			name string
			f    ubihooks.RequestFilter
			want []*ubihooks.Request
		}{
			{"project (top-level only, newest first)", ubihooks.RequestFilter{}, []*ubihooks.Request{pr, r3, r2, r1}},
			{"object", ubihooks.RequestFilter{ObjectID: dep.ID}, []*ubihooks.Request{r3, r2, r1}},
			{"version", ubihooks.RequestFilter{ObjectID: dep.ID, VersionID: v1.ID}, []*ubihooks.Request{r2, r1}},
			{"status processing", ubihooks.RequestFilter{Status: ubihooks.RequestProcessing}, []*ubihooks.Request{r2}},
			{"object and status pending", ubihooks.RequestFilter{ObjectID: dep.ID, Status: ubihooks.RequestPending}, []*ubihooks.Request{r3, r1}},
			{"steps of a pipeline request, by sequence", ubihooks.RequestFilter{ParentID: pr.ID}, []*ubihooks.Request{s0, s1}},
			{"limit", ubihooks.RequestFilter{Limit: 2}, []*ubihooks.Request{pr, r3}},
			{"limit and offset", ubihooks.RequestFilter{Limit: 2, Offset: 2}, []*ubihooks.Request{r2, r1}},
			{"object of another project", ubihooks.RequestFilter{ObjectID: oo.ID}, nil},
		} {
			c.f.ProjectID = f.p.ID
			rs, err := f.s.ListRequests(f.ctx, c.f)
			f.must(err)
			sameList(t, "ListRequests("+c.name+")", ids(rs, requestID), ids(c.want, requestID))
		}
	})
	s.run(t, "Transition", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		r := f.request(v, base)
		_, _, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID,
			From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: ubihooks.RequestCompleted, Now: at(time.Second)})
		wantCode(t, "TransitionRequest(wrong From)", err, ubihooks.ECONFLICT)
		same(t, "request after a refused transition", f.getRequest(r.ID), r)

		got := f.transition(r, ubihooks.RequestPending, ubihooks.RequestProcessing, at(time.Second))
		want := *r
		want.Status, want.StartedAt = ubihooks.RequestProcessing, at(time.Second)
		same(t, "processing request", got, &want)
		same(t, "processing request read back", f.getRequest(r.ID), &want)

		got, n, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID,
			From: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing}, To: ubihooks.RequestCompleted,
			Result: json.RawMessage(`{"y":2}`), Now: at(2 * time.Second)})
		f.must(err)
		if n != 0 {
			t.Errorf("transition without webhooks emitted %d deliveries", n)
		}
		want.Status, want.Result, want.CompletedAt = ubihooks.RequestCompleted, json.RawMessage(`{"y":2}`), at(2*time.Second)
		same(t, "completed request", got, &want)
		same(t, "completed request read back", f.getRequest(r.ID), &want)
		_, _, err = f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID,
			From: []ubihooks.RequestStatus{ubihooks.RequestPending, ubihooks.RequestProcessing}, To: ubihooks.RequestCancelled, Now: at(3 * time.Second)})
		wantCode(t, "TransitionRequest(from a final state)", err, ubihooks.ECONFLICT)

		// Failing straight from pending starts and ends the request at once.
		r2 := f.request(v, base)
		got, _, err = f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r2.ID,
			From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestFailed, ErrorMessage: "boom", Now: at(3 * time.Second)})
		f.must(err)
		want = *r2
		want.Status, want.ErrorMessage, want.StartedAt, want.CompletedAt = ubihooks.RequestFailed, "boom", at(3*time.Second), at(3*time.Second)
		same(t, "failed request", got, &want)

		// A cancelled pending request never started.
		r3 := f.request(v, base)
		got = f.transition(r3, ubihooks.RequestPending, ubihooks.RequestCancelled, at(4*time.Second))
		want = *r3
		want.Status, want.CompletedAt = ubihooks.RequestCancelled, at(4*time.Second)
		same(t, "cancelled request", got, &want)

		_, _, err = f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: newID(),
			From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestCancelled, Now: base})
		wantCode(t, "TransitionRequest(missing)", err, ubihooks.ENOTFOUND)
		_, _, err = f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.project("other").ID, RequestID: r.ID,
			From: []ubihooks.RequestStatus{ubihooks.RequestCompleted}, To: ubihooks.RequestCancelled, Now: base})
		wantCode(t, "TransitionRequest(other project)", err, ubihooks.ENOTFOUND)
	})
	s.run(t, "TransitionOwner", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		r := f.request(v, base)
		if rs := f.claimRequests(ubihooks.RequestClaim{Owner: "w1", Limit: 1, Now: base}); len(rs) != 1 {
			t.Fatalf("claimed %d requests, want 1", len(rs))
		}
		tr := ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID, From: []ubihooks.RequestStatus{ubihooks.RequestProcessing},
			To: ubihooks.RequestCompleted, Owner: "w2", Now: at(time.Second)}
		_, _, err := f.s.TransitionRequest(f.ctx, tr)
		wantCode(t, "TransitionRequest(by a worker without the lease)", err, ubihooks.ECONFLICT)
		if got := f.getRequest(r.ID); got.Status != ubihooks.RequestProcessing || got.LeaseOwner != "w1" {
			t.Errorf("after a refused transition: status %s, owner %q; want processing, w1", got.Status, got.LeaseOwner)
		}
		tr.Owner = "w1"
		got, _, err := f.s.TransitionRequest(f.ctx, tr)
		f.must(err)
		if got.Status != ubihooks.RequestCompleted || got.LeaseOwner != "" || !got.LeaseExpiresAt.IsZero() {
			t.Errorf("completed by its owner: status %s, owner %q, lease %v; want completed and no lease", got.Status, got.LeaseOwner, got.LeaseExpiresAt)
		}
	})
	s.run(t, "TransitionEvents", func(t *testing.T, f *fx) {
		o, v := f.deployment("dep")
		w := f.webhook(o, nil, "hook", "completed")
		r := f.request(v, base)
		before := f.transition(r, ubihooks.RequestPending, ubihooks.RequestProcessing, at(time.Second))
		tr := ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID, From: []ubihooks.RequestStatus{ubihooks.RequestProcessing},
			To: ubihooks.RequestCompleted, Result: json.RawMessage(`{"ok":true}`), Now: at(2 * time.Second)}
		// The store emits the events of the transition of the request as it was before it
		// (processing, no result): completed and finished, with the result.
		emitted := tr.Events(before)
		if len(emitted) != 2 || emitted[0].Type != ubihooks.EventDeploymentCompleted || string(emitted[0].Result) != `{"ok":true}` {
			t.Fatalf("events of processing → completed: %+v, want completed (with the result) and finished", emitted)
		}
		got, n, err := f.s.TransitionRequest(f.ctx, tr)
		f.must(err)
		if n != 1 {
			t.Errorf("transition emitted %d deliveries, want 1", n)
		}
		if got.Status != ubihooks.RequestCompleted {
			t.Errorf("status %s, want completed", got.Status)
		}
		ds := f.deliveries(w)
		if len(ds) != 1 {
			t.Fatalf("webhook has %d deliveries, want 1", len(ds))
		}
		same(t, "event", ds[0].Event, withDefault(emitted[0], true))
		if !ds[0].NextAttemptAt.Equal(at(2 * time.Second)) {
			t.Errorf("delivery due at %v, want the transition time %v", ds[0].NextAttemptAt, at(2*time.Second))
		}

		// A refused transition emits nothing.
		tr.To = ubihooks.RequestFailed
		_, n, err = f.s.TransitionRequest(f.ctx, tr)
		wantCode(t, "TransitionRequest(already completed)", err, ubihooks.ECONFLICT)
		if n != 0 || len(f.deliveries(w)) != 1 {
			t.Errorf("a refused transition emitted deliveries (n=%d)", n)
		}
	})
	s.run(t, "TransitionConcurrent", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		r := f.request(v, base)
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, _, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: r.ID,
					From: []ubihooks.RequestStatus{ubihooks.RequestPending}, To: ubihooks.RequestProcessing, Now: at(time.Second)})
				switch ubihooks.ErrorCode(err) {
				case "":
					wins.Add(1)
				case ubihooks.ECONFLICT:
					conflicts.Add(1)
				default:
					t.Errorf("concurrent TransitionRequest: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 7 {
			t.Errorf("8 concurrent pending→processing transitions: %d won, %d conflicted; want 1 and 7", wins.Load(), conflicts.Load())
		}
	})
	s.run(t, "Claim", func(t *testing.T, f *fx) {
		dep, v1 := f.deployment("dep")
		ext := f.version(dep, "ext", "")
		pipe := f.object(ubihooks.ObjectPipeline, "pipe")
		pv := f.version(pipe, "p1", "")
		depHook, pipeHook := f.webhook(dep, nil, "dep-started", "started"), f.webhook(pipe, nil, "pipe-started", "started")
		r1 := f.request(v1, base)
		f.request(ext, at(time.Second))
		rp := f.request(pv, at(2*time.Second))
		st := f.request(v1, at(3*time.Second), step(rp, 0))
		r2, r3 := f.request(v1, at(4*time.Second)), f.request(v1, at(5*time.Second))

		now := at(10 * time.Second)
		rs := f.claimRequests(ubihooks.RequestClaim{Owner: "w1", Limit: 3, Lease: time.Minute, Now: now})
		sameList(t, "claim (oldest first, backends and pipelines, no steps)", ids(rs, requestID), []string{r1.ID, rp.ID, r2.ID})
		for _, r := range rs {
			if r.Status != ubihooks.RequestProcessing || r.LeaseOwner != "w1" || !r.LeaseExpiresAt.Equal(now.Add(time.Minute)) ||
				r.Attempts != 1 || !r.StartedAt.Equal(now) {
				t.Errorf("claimed request: status %s, owner %q, lease %v, attempts %d, started %v; want processing, w1, %v, 1, %v",
					r.Status, r.LeaseOwner, r.LeaseExpiresAt, r.Attempts, r.StartedAt, now.Add(time.Minute), now)
			}
			same(t, "claimed request read back", f.getRequest(r.ID), r)
		}
		if n := len(f.deliveries(depHook)); n != 2 {
			t.Errorf("deployment started webhook: %d deliveries, want 2", n)
		}
		if n := len(f.deliveries(pipeHook)); n != 1 {
			t.Errorf("pipeline started webhook: %d deliveries, want 1", n)
		}
		sameList(t, "second claim", ids(f.claimRequests(ubihooks.RequestClaim{Limit: 3, Now: now}), requestID), []string{r3.ID})
		sameList(t, "third claim", ids(f.claimRequests(ubihooks.RequestClaim{Limit: 3, Now: now}), requestID), nil)
		if got := f.getRequest(st.ID); got.Status != ubihooks.RequestPending {
			t.Errorf("pipeline step was claimed: status %s", got.Status)
		}
	})
	s.run(t, "ClaimExternal", func(t *testing.T, f *fx) {
		dep, v1 := f.deployment("dep")
		ext, ext2 := f.version(dep, "ext", ""), f.version(dep, "ext2", "")
		rb, re, re2 := f.request(v1, base), f.request(ext, at(time.Second)), f.request(ext2, at(2*time.Second))
		claim := func(c ubihooks.RequestClaim) []string {
			t.Helper()
			c.Limit, c.Now = 10, at(time.Minute)
			return ids(f.claimRequests(c), requestID)
		}
		sameList(t, "external claim of a version with a backend", claim(ubihooks.RequestClaim{External: true, VersionID: v1.ID}), nil)
		sameList(t, "external claim of ext", claim(ubihooks.RequestClaim{External: true, VersionID: ext.ID, Owner: "runtime"}), []string{re.ID})
		sameList(t, "backend claim", claim(ubihooks.RequestClaim{}), []string{rb.ID})
		sameList(t, "external claim of ext2", claim(ubihooks.RequestClaim{External: true, VersionID: ext2.ID}), []string{re2.ID})
		if got := f.getRequest(re.ID); got.LeaseOwner != "runtime" {
			t.Errorf("external request lease owner %q, want runtime", got.LeaseOwner)
		}
	})
	s.run(t, "ClaimExclude", func(t *testing.T, f *fx) {
		dep, v1 := f.deployment("dep")
		v2 := f.version(dep, "v2", "http://b2.invalid")
		r1, r2, r3 := f.request(v1, base), f.request(v2, at(time.Second)), f.request(v1, at(2*time.Second))
		claim := func(limit int, exclude ...string) []string {
			t.Helper()
			return ids(f.claimRequests(ubihooks.RequestClaim{Limit: limit, Now: at(time.Minute), ExcludeVersions: exclude}), requestID)
		}
		sameList(t, "claim excluding v1", claim(10, v1.ID), []string{r2.ID})
		sameList(t, "claim excluding both", claim(10, v1.ID, v2.ID), nil)
		sameList(t, "claim, limit 1", claim(1), []string{r1.ID})
		sameList(t, "claim the rest", claim(10), []string{r3.ID})
	})
	s.run(t, "Rescue", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		r := f.request(v, base)
		done := f.request(v, base)
		f.claimRequests(ubihooks.RequestClaim{Owner: "w1", Limit: 2, Lease: time.Minute, Now: base})
		f.must(func() error {
			_, _, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: done.ID,
				From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: ubihooks.RequestCompleted, Owner: "w1", Now: at(time.Second)})
			return err
		}())
		if n, err := f.s.RescueRequests(f.ctx, at(30*time.Second)); err != nil || n != 0 {
			t.Errorf("RescueRequests before the lease expired = %d, %v; want 0", n, err)
		}
		if n, err := f.s.RescueRequests(f.ctx, at(2*time.Minute)); err != nil || n != 1 {
			t.Errorf("RescueRequests after the lease expired = %d, %v; want 1", n, err)
		}
		got := f.getRequest(r.ID)
		if got.Status != ubihooks.RequestPending || got.LeaseOwner != "" || !got.LeaseExpiresAt.IsZero() || got.Attempts != 1 || !got.StartedAt.Equal(base) {
			t.Errorf("rescued request: status %s, owner %q, lease %v, attempts %d, started %v; want pending, no lease, 1, %v",
				got.Status, got.LeaseOwner, got.LeaseExpiresAt, got.Attempts, got.StartedAt, base)
		}
		if got := f.getRequest(done.ID); got.Status != ubihooks.RequestCompleted {
			t.Errorf("a completed request was rescued: status %s", got.Status)
		}
		rs := f.claimRequests(ubihooks.RequestClaim{Owner: "w2", Limit: 10, Now: at(3 * time.Minute)})
		if len(rs) != 1 || rs[0].ID != r.ID || rs[0].Attempts != 2 || rs[0].LeaseOwner != "w2" || !rs[0].StartedAt.Equal(base) {
			t.Errorf("reclaim after rescue: %d requests; want %s with 2 attempts, owner w2 and the first start time", len(rs), r.ID)
		}
	})
	s.run(t, "Release", func(t *testing.T, f *fx) {
		_, v := f.deployment("dep")
		// again was claimed before, then rescued: its first attempt and start time stay.
		again := f.request(v, base)
		f.claimRequests(ubihooks.RequestClaim{Owner: "w1", Limit: 1, Lease: time.Minute, Now: base})
		if n, err := f.s.RescueRequests(f.ctx, at(2*time.Minute)); err != nil || n != 1 {
			t.Fatalf("RescueRequests = %d, %v; want 1", n, err)
		}
		r1, r2, done := f.request(v, at(time.Second)), f.request(v, at(2*time.Second)), f.request(v, at(3*time.Second))
		other := f.request(v, at(4*time.Second))
		claimed := at(3 * time.Minute)
		sameList(t, "claim of w1", ids(f.claimRequests(ubihooks.RequestClaim{Owner: "w1", Limit: 4, Now: claimed}), requestID),
			[]string{again.ID, r1.ID, r2.ID, done.ID})
		sameList(t, "claim of w2", ids(f.claimRequests(ubihooks.RequestClaim{Owner: "w2", Limit: 10, Now: claimed}), requestID),
			[]string{other.ID})
		f.must(func() error {
			_, _, err := f.s.TransitionRequest(f.ctx, ubihooks.RequestTransition{ProjectID: f.p.ID, RequestID: done.ID,
				From: []ubihooks.RequestStatus{ubihooks.RequestProcessing}, To: ubihooks.RequestCompleted, Owner: "w1", Now: at(4 * time.Minute)})
			return err
		}())
		before := map[string]*ubihooks.Request{}
		for _, r := range []*ubihooks.Request{again, r1, r2, done, other} {
			before[r.ID] = f.getRequest(r.ID)
		}

		// Another owner releases nothing of w1's.
		f.must(f.s.ReleaseRequests(f.ctx, "w2", []string{r1.ID, r2.ID}, at(5*time.Minute)))
		same(t, "request of w1 after a release by w2", f.getRequest(r1.ID), before[r1.ID])
		f.must(f.s.ReleaseRequests(f.ctx, "w1", nil, at(5*time.Minute)))

		all := []string{again.ID, r1.ID, r2.ID, done.ID, other.ID, newID()}
		f.must(f.s.ReleaseRequests(f.ctx, "w1", all, at(5*time.Minute)))
		check := func(when string) {
			t.Helper()
			for _, c := range []struct {
				r        *ubihooks.Request
				attempts int
				started  time.Time
			}{{r1, 0, time.Time{}}, {r2, 0, time.Time{}}, {again, 1, base}} {
				got := f.getRequest(c.r.ID)
				if got.Status != ubihooks.RequestPending || got.LeaseOwner != "" || !got.LeaseExpiresAt.IsZero() ||
					got.Attempts != c.attempts || !got.StartedAt.Equal(c.started) || !got.CompletedAt.IsZero() {
					t.Errorf("%s: released request: status %s, owner %q, lease %v, attempts %d, started %v, completed %v; want pending, no lease, %d attempts, started %v",
						when, got.Status, got.LeaseOwner, got.LeaseExpiresAt, got.Attempts, got.StartedAt, got.CompletedAt, c.attempts, c.started)
				}
			}
			same(t, when+": finished request", f.getRequest(done.ID), before[done.ID])
			same(t, when+": request of another owner", f.getRequest(other.ID), before[other.ID])
		}
		check("after the release")
		// Released requests are no longer w1's: a second release takes back nothing more.
		f.must(f.s.ReleaseRequests(f.ctx, "w1", all, at(6*time.Minute)))
		check("after a second release")

		reclaimed := at(7 * time.Minute)
		rs := f.claimRequests(ubihooks.RequestClaim{Owner: "w3", Limit: 10, Now: reclaimed})
		sameList(t, "claim after the release (oldest first)", ids(rs, requestID), []string{again.ID, r1.ID, r2.ID})
		for _, r := range rs {
			attempts, started := 1, reclaimed
			if r.ID == again.ID {
				attempts, started = 2, base
			}
			if r.Attempts != attempts || !r.StartedAt.Equal(started) || r.LeaseOwner != "w3" {
				t.Errorf("reclaimed request %s: attempts %d, started %v, owner %q; want %d, %v, w3", r.ID, r.Attempts, r.StartedAt, r.LeaseOwner, attempts, started)
			}
		}
	})
}
