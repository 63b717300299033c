package delivery

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestStop: a graceful stop lets in-flight sends finish within its bound, and releases
// those that do not (pending again, no attempt recorded) for the next engine.
func TestStop(t *testing.T) {
	t.Parallel()
	t.Run("finishes in flight", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		arrived, answer := make(chan struct{}, 1), make(chan struct{})
		rc := e.receiver(func(*ubihookstest.Arrival, http.ResponseWriter, *http.Request) {
			arrived <- struct{}{}
			select { // a slow receiver: it answers once the engine is stopping
			case <-answer:
			case <-e.Done():
			}
		})
		w := e.hook(rc.URL + "/")
		e.complete()
		eng := e.start()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("no arrival")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- eng.Stop(ctx) }()
		if n := eng.TestSignals.Stopping.Wait(t, 5*time.Second); n != 1 {
			t.Errorf("Stop waits for %d sends, want 1", n)
		}
		close(answer)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("Stop took %s", d)
		}
		// Recorded before Stop returned: no waiting needed.
		ds := e.deliveries(w)
		d, as := e.delivery(w, ds[0].ID)
		if d.Status != ubihooks.DeliverySucceeded || len(as) != 1 || as[0].StatusCode != 200 {
			t.Errorf("after Stop: delivery %s with %d attempts, want succeeded after 1", d.Status, len(as))
		}
	})
	t.Run("releases at the bound", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		var answer atomic.Bool
		arrived := make(chan struct{}, 4)
		rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			if !answer.Load() {
				<-r.Context().Done() // the client gives up, or the test ends
			}
		})
		w := e.hook(rc.URL+"/", timeoutSecs(20), retry(true))
		reqID := e.complete()
		eng := e.start()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("no arrival")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := eng.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("Stop took %s, want about its 300ms bound", d)
		}
		ds := e.deliveries(w)
		d, as := e.delivery(w, ds[0].ID)
		if d.Status != ubihooks.DeliveryPending || d.Attempts != 0 || len(as) != 0 || d.LeaseOwner != "" {
			t.Fatalf("after Stop: delivery %s, %d attempts (%d recorded), lease owner %q; want pending, none, none",
				d.Status, d.Attempts, len(as), d.LeaseOwner)
		}
		// The next engine sends it again, same event id.
		answer.Store(true)
		e.start()
		ds, all := e.waitDone(w, 1, 10*time.Second)
		if ds[0].Status != ubihooks.DeliverySucceeded || len(all[0]) != 1 {
			t.Errorf("next engine: delivery %s with %d attempts, want succeeded after 1", ds[0].Status, len(all[0]))
		}
		want := ubihooks.EventID(reqID, ubihooks.EventDeploymentCompleted)
		if got := rc.ByID(); len(got) != 1 || got[want] != 2 {
			t.Errorf("receiver counts by event id %v, want %s twice", got, want)
		}
	})
}

// TestStopReleasesPrefetched: deliveries claimed ahead, waiting for a send slot of their
// host, go back to the queue unattempted on a graceful stop, as the cut sends do.
func TestStopReleasesPrefetched(t *testing.T) {
	t.Parallel()
	e := setup(t)
	arrived := make(chan struct{}, 8)
	rc := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done() // the client gives up, or the test ends
	})
	w := e.hook(rc.URL+"/", timeoutSecs(20), retry(true))
	for range 3 {
		e.complete()
	}
	eng := e.start(func(c *Config) { c.MaxPerHost, c.Prefetch = 1, 4 })
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no arrival")
	}
	var leased int
	if err := e.Store.DB().QueryRow(`SELECT COUNT(*) FROM deliveries WHERE status = ?`, string(ubihooks.DeliverySending)).Scan(&leased); err != nil {
		t.Fatal(err)
	}
	if leased < 2 {
		t.Fatalf("%d deliveries leased with one host slot, want the sending one and at least one claimed ahead", leased)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := eng.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.deliveries(w) {
		_, as := e.delivery(w, d.ID)
		if d.Status != ubihooks.DeliveryPending || d.Attempts != 0 || len(as) != 0 || d.LeaseOwner != "" {
			t.Errorf("after Stop: delivery %s, %d attempts (%d recorded), lease owner %q; want pending, none, none",
				d.Status, d.Attempts, len(as), d.LeaseOwner)
		}
	}
	if n := len(arrived); n != 0 {
		t.Errorf("%d more sends began after the first, want none (one host slot)", n)
	}
}

// lateClaimStore answers the engine's first claim only once the test lets it, as a
// busy writer does: the claim is committed (the deliveries are leased), and its answer
// comes back after a stop began. A claim whose context is canceled meanwhile fails with
// the context's error, as the real store's read of what it claimed does.
type lateClaimStore struct {
	ubihooks.Store
	once    sync.Once
	claimed chan struct{}
	proceed chan struct{}
}

func (s *lateClaimStore) ClaimDeliveries(ctx context.Context, c ubihooks.DeliveryClaim) ([]*ubihooks.Delivery, error) {
	ds, err := s.Store.ClaimDeliveries(context.WithoutCancel(ctx), c)
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return ds, nil
	}
	close(s.claimed)
	<-s.proceed
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return ds, nil
}

// TestStopReleasesClaimInFlight: deliveries whose claim was on its way when a graceful
// stop began are claimed all the same; the stop hands them back rather than leaving them
// leased until their leases expire.
func TestStopReleasesClaimInFlight(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)
	w := e.hook(rc.URL + "/")
	for range 5 {
		e.complete() // before the engine starts: they wait for a claim
	}
	st := &lateClaimStore{Store: e.Store, claimed: make(chan struct{}), proceed: make(chan struct{})}
	eng := e.start(func(c *Config) { c.Store = st })
	select {
	case <-st.claimed:
	case <-time.After(10 * time.Second):
		t.Fatal("no claim")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- eng.Stop(context.Background()) }()
	eng.TestSignals.Closing.Wait(t, 5*time.Second)
	close(st.proceed)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	for _, d := range e.deliveries(w) {
		if d.Status == ubihooks.DeliverySending {
			t.Errorf("after Stop: delivery %s %s, leased to %q; want it handed back", d.ID, d.Status, d.LeaseOwner)
		}
	}
	if n := rc.Count(); n != 0 {
		t.Errorf("%d sends after the stop began, want none", n)
	}
}

// gatedDispatcher holds the hand-over of dispatched deliveries until the test lets it go.
type gatedDispatcher struct {
	*Engine
	dispatching chan struct{}
	proceed     chan struct{}
}

func (g *gatedDispatcher) Dispatch(ds []*ubihooks.Delivery) {
	close(g.dispatching)
	<-g.proceed
	g.Engine.Dispatch(ds)
}

// TestStopReleasesLateDispatch: deliveries leased to the engine at emission and handed
// over only after its stop are given back to the queue, not left leased to a stopped
// engine.
func TestStopReleasesLateDispatch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)
	w := e.hook(rc.URL + "/")
	eng := e.start()
	g := &gatedDispatcher{Engine: eng, dispatching: make(chan struct{}), proceed: make(chan struct{})}
	e.Store.SetDispatcher(g)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		e.transition(ubihooks.ObjectDeployment, "scorer", "", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}()
	select {
	case <-g.dispatching:
	case <-time.After(10 * time.Second):
		t.Fatal("no dispatch")
	}
	if err := eng.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(g.proceed)
	<-emitted
	ds := e.deliveries(w)
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	if d := ds[0]; d.Status != ubihooks.DeliveryPending || d.LeaseOwner != "" || d.Attempts != 0 {
		t.Errorf("after Stop: delivery %s, leased to %q, %d attempts; want pending, not leased, none", d.Status, d.LeaseOwner, d.Attempts)
	}
	if n := rc.Count(); n != 0 {
		t.Errorf("%d sends after the stop, want none", n)
	}
}
