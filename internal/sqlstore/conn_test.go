package sqlstore_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/sqlstore"
)

// TestGroupCommitRerun: when a transaction in a group-committed batch fails, the others
// run again and their writes are kept; a transaction function that runs twice writes
// everything the second time too.
func TestGroupCommitRerun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, p, o, v, _ := newHookedStore(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: p.ID, ProjectName: "p", Type: ubihooks.EventDeploymentCompleted,
		ObjectType: ubihooks.ObjectDeployment, ObjectID: o.ID, ObjectName: "d", VersionID: v.ID, VersionName: "v1",
		RequestID: "r1", Status: "completed", CreatedAt: now}
	if _, err := st.EmitEvents(ctx, []*ubihooks.Event{e}, now); err != nil {
		t.Fatal(err)
	}
	ds, err := st.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: "w1", Limit: 10, Lease: time.Minute, Now: now})
	if err != nil || len(ds) != 1 {
		t.Fatalf("claim = %d, %v; want 1 delivery", len(ds), err)
	}

	sig := sqlstore.WriterSignals(st)
	release := sqlstore.LockWriter(st)
	recorded := make(chan error, 1)
	go func() {
		recorded <- st.RecordOutcomes(ctx, []ubihooks.Outcome{{DeliveryID: ds[0].ID, Owner: "w1", Status: ubihooks.DeliverySucceeded,
			Attempt: ubihooks.Attempt{StartedAt: now, StatusCode: 204}}}, now)
	}()
	waitQueued(t, sig, 1)
	failed := make(chan error, 1)
	go func() { failed <- sqlstore.FailingTx(ctx, st) }()
	waitQueued(t, sig, 2)
	release() // both run in one batch: the failing one makes the record run twice

	if err := <-failed; err == nil {
		t.Error("the failing transaction reported success")
	}
	if err := <-recorded; err != nil {
		t.Fatalf("RecordOutcomes = %v", err)
	}
	d, attempts, err := st.GetDelivery(ctx, p.ID, ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != ubihooks.DeliverySucceeded || d.Attempts != 1 || len(attempts) != 1 {
		t.Fatalf("after a rerun: status %s, attempts %d, attempt rows %d; want succeeded, 1, 1", d.Status, d.Attempts, len(attempts))
	}
}

// newHookedStore opens a SQLite store (closed when t ends) with a project, a deployment with
// one version, and a webhook on its completed requests.
func newHookedStore(t *testing.T) (*sqlstore.Store, *ubihooks.Project, *ubihooks.Object, *ubihooks.Version, *ubihooks.Webhook) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := &ubihooks.Project{ID: ubihooks.NewID(), Name: "p", OrganizationName: "o", CreatedAt: now}
	must(st.CreateProject(ctx, p))
	o := &ubihooks.Object{ID: ubihooks.NewID(), ProjectID: p.ID, Type: ubihooks.ObjectDeployment, Name: "d", InputType: "plain", OutputType: "plain", CreatedAt: now, UpdatedAt: now}
	must(st.CreateObject(ctx, o))
	v := &ubihooks.Version{ID: ubihooks.NewID(), ObjectID: o.ID, ProjectID: p.ID, Name: "v1", CreatedAt: now, UpdatedAt: now}
	must(st.CreateVersion(ctx, v))
	w := &ubihooks.Webhook{ID: ubihooks.NewID(), ProjectID: p.ID, Name: "w", ObjectID: o.ID, URL: "http://r.example/",
		Event: ubihooks.EventDeploymentCompleted, Timeout: time.Second, Enabled: true, CreatedAt: now, UpdatedAt: now}
	must(st.CreateWebhook(ctx, w))
	return st, p, o, v, w
}

// waitQueued waits until n transactions wait for the held writer.
func waitQueued(t *testing.T, sig *sqlstore.WriterTestSignals, n int) {
	t.Helper()
	sig.Queued.WaitFor(t, 5*time.Second, func(queued int) bool { return queued >= n })
}

// TestGroupCommitPanic: a transaction function that panics fails alone — its caller panics
// with the same value — and the writer goes on with the rest of the batch and later ones.
func TestGroupCommitPanic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(id string) *ubihooks.SigningKey {
		return &ubihooks.SigningKey{ID: id, KeyID: "sha512:" + id, PublicKey: []byte(id), SealedPrivate: []byte(id), CreatedAt: now}
	}
	var once sync.Once
	sig := sqlstore.WriterSignals(st)
	unlock := sqlstore.LockWriter(st)
	release := func() { once.Do(unlock) }
	defer release()
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_ = sqlstore.PanickingTx(ctx, st)
	}()
	waitQueued(t, sig, 1)
	added := make(chan error, 1)
	go func() { added <- st.AddSigningKey(ctx, key("k1"), false) }()
	waitQueued(t, sig, 2)
	release()
	if p := <-panicked; p != "boom" {
		t.Errorf("the caller of the panicking transaction recovered %v, want boom", p)
	}
	if err := <-added; err != nil {
		t.Fatalf("a transaction batched with a panicking one: %v", err)
	}
	if err := st.AddSigningKey(ctx, key("k2"), true); err != nil {
		t.Fatalf("the writer after a panic: %v", err)
	}
	keys, err := st.ListSigningKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("signing keys after the panic: %d, %v; want both", len(keys), err)
	}
}
