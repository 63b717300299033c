package delivery

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/service"
)

func TestRetryFalseIsOneAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(status(http.StatusInternalServerError))
	w := e.hook(rc.URL+"/", retry(false))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	d := ds[0]
	if d.Status != ubihooks.DeliveryFailed || d.Attempts != 1 || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts (%d recorded), want failed after 1", d.Status, d.Attempts, len(as[0]))
	}
	a := as[0][0]
	if a.StatusCode != 500 || a.ErrorClass != ubihooks.ClassHTTPStatus || !strings.Contains(a.Error, "500") {
		t.Errorf("attempt: status %d class %q error %q, want 500 http_status", a.StatusCode, a.ErrorClass, a.Error)
	}
	if d.LastStatusCode != 500 || d.LastError == "" {
		t.Errorf("delivery last status %d error %q", d.LastStatusCode, d.LastError)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestRetry covers retry: true with a short schedule (100ms steps, no jitter).
func TestRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		respond     func(e *env) func(*arrival, http.ResponseWriter, *http.Request)
		closed      bool // send to a port where nothing listens
		timeout     int
		schedule    []time.Duration
		wantStatus  ubihooks.DeliveryStatus
		wantCodes   []int
		wantClasses []string
		wantArrived int
	}{
		{name: "500 until exhausted", respond: func(*env) func(*arrival, http.ResponseWriter, *http.Request) { return status(500) },
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{500, 500, 500, 500},
			wantClasses: []string{"http_status", "http_status", "http_status", "http_status"}, wantArrived: 4},
		{name: "timeout", timeout: 1, schedule: []time.Duration{100 * time.Millisecond},
			respond: func(e *env) func(*arrival, http.ResponseWriter, *http.Request) {
				return func(_ *arrival, _ http.ResponseWriter, r *http.Request) { e.stall(r) }
			},
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{0, 0}, wantClasses: []string{"timeout", "timeout"}, wantArrived: 2},
		{name: "connection refused", closed: true,
			wantStatus: ubihooks.DeliveryFailed, wantCodes: []int{0, 0, 0, 0},
			wantClasses: []string{"connect", "connect", "connect", "connect"}},
		{name: "stops on success", respond: func(*env) func(*arrival, http.ResponseWriter, *http.Request) { return script(500, 500, 200) },
			wantStatus: ubihooks.DeliverySucceeded, wantCodes: []int{500, 500, 200}, wantClasses: []string{"http_status", "http_status", ""}, wantArrived: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			url := "http://" + closedPort(t) + "/hook"
			var rc *receiver
			if !tt.closed {
				rc = e.receiver(tt.respond(e))
				url = rc.URL + "/hook"
			}
			mods := []func(*ubihooks.WebhookCreate){retry(true)}
			if tt.timeout > 0 {
				mods = append(mods, timeoutSecs(tt.timeout))
			}
			w := e.hook(url, mods...)
			reqID := e.complete()
			e.start(func(c *Config) {
				if tt.schedule != nil {
					c.Retry = RetryPolicy{Schedule: tt.schedule}
				}
			})
			ds, as := e.waitDone(w, 1, 15*time.Second)
			d, attempts := ds[0], as[0]
			if d.Status != tt.wantStatus || d.Attempts != len(tt.wantCodes) {
				t.Errorf("delivery %s after %d attempts, want %s after %d", d.Status, d.Attempts, tt.wantStatus, len(tt.wantCodes))
			}
			var codes []int
			var classes []string
			for i, a := range attempts {
				codes = append(codes, a.StatusCode)
				classes = append(classes, a.ErrorClass)
				if a.Number != i+1 {
					t.Errorf("attempt %d numbered %d", i+1, a.Number)
				}
				if a.ErrorClass != "" && a.Error == "" {
					t.Errorf("attempt %d: class %s without a message", i+1, a.ErrorClass)
				}
			}
			if !slices.Equal(codes, tt.wantCodes) || !slices.Equal(classes, tt.wantClasses) {
				t.Errorf("attempts: codes %v classes %v, want %v %v", codes, classes, tt.wantCodes, tt.wantClasses)
			}
			if rc != nil {
				byEvent := rc.byEvent()
				want := service.EventID(reqID, ubihooks.EventDeploymentCompleted)
				if len(byEvent) != 1 || byEvent[want] != tt.wantArrived {
					t.Errorf("receiver got %v, want %d requests all with event id %s", byEvent, tt.wantArrived, want)
				}
			}
		})
	}
}

// TestRetryAfter: a 429 with Retry-After: 1 delays the next attempt by at least 1s, although
// the schedule says 100ms.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(func(a *arrival, w http.ResponseWriter, _ *http.Request) {
		if a.N == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 2 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 2", ds[0].Status, len(as[0]))
	}
	if as[0][0].StatusCode != 429 || !strings.Contains(as[0][0].Error, "Retry-After") {
		t.Errorf("first attempt: %d %q, want 429 naming the Retry-After", as[0][0].StatusCode, as[0][0].Error)
	}
	got := rc.all()
	if gap := got[1].At.Sub(got[0].At); gap < time.Second {
		t.Errorf("second attempt came %s after the first, want at least 1s (Retry-After: 1)", gap)
	}
	if gap := as[0][1].StartedAt.Sub(as[0][0].StartedAt.Add(as[0][0].Duration)); gap < time.Second {
		t.Errorf("recorded attempts are %s apart, want at least 1s", gap)
	}
	if got[0].id() != got[1].id() {
		t.Errorf("retry has event id %s, first attempt %s", got[1].id(), got[0].id())
	}
}

// TestDefaultRetryPolicyIsUsed: an engine configured without a policy retries on
// DefaultRetryPolicy's schedule (5s ±20% after the first attempt).
func TestDefaultRetryPolicyIsUsed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(status(503))
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	eng := e.start(func(c *Config) { c.Retry = RetryPolicy{} })
	if want := DefaultRetryPolicy(); !reflect.DeepEqual(eng.cfg.Retry, want) {
		t.Errorf("engine policy = %+v, want DefaultRetryPolicy %+v", eng.cfg.Retry, want)
	}
	var d *ubihooks.Delivery
	var as []*ubihooks.Attempt
	e.waitFor(10*time.Second, "the first attempt", func() bool {
		ds := e.deliveries(w)
		if len(ds) != 1 || ds[0].Attempts != 1 {
			return false
		}
		d, as = e.delivery(w, ds[0].ID)
		return len(as) == 1
	})
	if d.Status != ubihooks.DeliveryPending {
		t.Fatalf("after a 503 with retry: status %s, want pending", d.Status)
	}
	ended := as[0].StartedAt.Add(as[0].Duration)
	first := DefaultRetryPolicy().Schedule[0]
	if gap := d.NextAttemptAt.Sub(ended); gap < first*8/10-10*time.Millisecond || gap > first*12/10+10*time.Millisecond {
		t.Errorf("next attempt due %s after the first ended, want %s ±20%%", gap, first)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestRedirectIsSuccess: a 3xx counts as success and is not followed.
func TestRedirectIsSuccess(t *testing.T) {
	t.Parallel()
	e := setup(t)
	target := e.receiver(nil)
	rc := e.receiver(func(_ *arrival, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/landing", http.StatusFound)
	})
	w := e.hook(rc.URL+"/", retry(true))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 1", ds[0].Status, len(as[0]))
	}
	if a := as[0][0]; a.StatusCode != http.StatusFound || a.ErrorClass != "" {
		t.Errorf("attempt: %d class %q, want 302 success", a.StatusCode, a.ErrorClass)
	}
	if n := target.count(); n != 0 {
		t.Errorf("the Location target received %d requests, want 0", n)
	}
	if n := rc.count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestTimeoutCutsAttempt: a receiver that never answers is cut at the webhook's timeout.
func TestTimeoutCutsAttempt(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var cut atomic.Bool
	rc := e.receiver(func(_ *arrival, _ http.ResponseWriter, r *http.Request) {
		e.stall(r)
		cut.Store(r.Context().Err() != nil)
	})
	w := e.hook(rc.URL+"/", timeoutSecs(1))
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	if ds[0].Status != ubihooks.DeliveryFailed || len(as[0]) != 1 {
		t.Fatalf("delivery %s with %d attempts, want failed after 1", ds[0].Status, len(as[0]))
	}
	a := as[0][0]
	if a.ErrorClass != ubihooks.ClassTimeout || a.StatusCode != 0 {
		t.Errorf("attempt class %q status %d, want timeout", a.ErrorClass, a.StatusCode)
	}
	if a.Duration < time.Second || a.Duration > 1800*time.Millisecond {
		t.Errorf("attempt took %s, want about the 1s timeout", a.Duration)
	}
	if !strings.Contains(a.Error, "1s") {
		t.Errorf("error %q does not name the webhook's timeout", a.Error)
	}
	e.waitFor(5*time.Second, "the receiver to see the cut", cut.Load)
}

// TestNetworkPolicy: without allowed networks, loopback, private and link-local
// (metadata) destinations are refused at dial time, permanently (no retry), with a message
// that names no address; with 127.0.0.0/8 allowed, loopback works.
func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := setup(t, noAllowedNetworks)
		rc := e.receiver(nil)
		port := rc.URL[strings.LastIndexByte(rc.URL, ':')+1:]
		urls := []string{
			rc.URL + "/loopback",
			"http://localhost:" + port + "/name",
			"http://10.0.0.1:8080/private",
			"http://169.254.169.254/latest/meta-data/",
		}
		var hooks []*ubihooks.Webhook
		for _, u := range urls {
			hooks = append(hooks, e.hook(u, retry(true)))
		}
		e.complete()
		e.start()
		for i, w := range hooks {
			ds, as := e.waitDone(w, 1, 10*time.Second)
			d := ds[0]
			if d.Status != ubihooks.DeliveryFailed || d.Attempts != 1 || len(as[0]) != 1 {
				t.Errorf("%s: delivery %s after %d attempts, want failed after 1 (no retry)", urls[i], d.Status, d.Attempts)
				continue
			}
			a := as[0][0]
			if a.ErrorClass != ubihooks.ClassRefusedByPolicy {
				t.Errorf("%s: class %q, want refused_by_policy", urls[i], a.ErrorClass)
			}
			for _, leak := range []string{"127.0.0.1", "::1", "10.0.0.1", "169.254"} {
				if strings.Contains(a.Error, leak) || strings.Contains(d.LastError, leak) {
					t.Errorf("%s: error %q names the address %s", urls[i], a.Error, leak)
				}
			}
			if !strings.Contains(a.Error, "allow-networks") {
				t.Errorf("%s: error %q does not say how to allow it", urls[i], a.Error)
			}
		}
		if n := rc.count(); n != 0 {
			t.Errorf("the loopback receiver got %d requests, want 0", n)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		e := setup(t) // allows 127.0.0.0/8
		rc := e.receiver(nil)
		w := e.hook(rc.URL + "/loopback")
		e.complete()
		e.start()
		ds, _ := e.waitDone(w, 1, 10*time.Second)
		if ds[0].Status != ubihooks.DeliverySucceeded || rc.count() != 1 {
			t.Errorf("delivery %s, receiver got %d; want succeeded and 1", ds[0].Status, rc.count())
		}
	})
}

// TestFanOutIdempotent: recording the same transition again (or emitting its events
// again) creates no delivery, so each webhook receives each event once.
func TestFanOutIdempotent(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rc := e.receiver(nil)
	a := e.hook(rc.URL + "/a")
	b := e.hook(rc.URL + "/b")
	e.start()
	reqID := uuid.NewString()
	record := func() int {
		return e.transition(ubihooks.ObjectDeployment, "scorer", "", reqID, ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	if n := record(); n != 2 {
		t.Fatalf("first record created %d deliveries, want 2 (one per webhook)", n)
	}
	if n := record(); n != 0 {
		t.Errorf("repeated record created %d deliveries, want 0", n)
	}
	e.waitDone(a, 1, 10*time.Second)
	e.waitDone(b, 1, 10*time.Second)
	if n := record(); n != 0 {
		t.Errorf("record after delivery created %d deliveries, want 0", n)
	}
	v1 := e.version(e.dep, "v1")
	ev := &ubihooks.Event{ID: service.EventID(reqID, ubihooks.EventDeploymentCompleted), ProjectID: e.project.ID, ProjectName: "acme",
		Type: ubihooks.EventDeploymentCompleted, ObjectType: ubihooks.ObjectDeployment, ObjectID: e.dep.ID, ObjectName: "scorer",
		VersionID: v1.ID, VersionName: "v1", RequestID: reqID, Status: "completed", CreatedAt: time.Now().UTC()}
	if n, err := e.st.EmitEvents(context.Background(), []*ubihooks.Event{ev}, time.Now()); err != nil || n != 0 {
		t.Errorf("EmitEvents of the same event: %d, %v; want 0 deliveries", n, err)
	}
	for _, w := range []*ubihooks.Webhook{a, b} {
		ds, as := e.waitDone(w, 1, time.Second)
		if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 1 {
			t.Errorf("%s: delivery %s with %d attempts, want succeeded after 1", w.Name, ds[0].Status, len(as[0]))
		}
	}
	counts := map[string]int{}
	for _, x := range rc.all() {
		counts[x.Path+" "+x.id()]++
	}
	want := map[string]int{"/a " + ev.ID: 1, "/b " + ev.ID: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("receiver counts by webhook and event id = %v, want %v", counts, want)
	}
}

// TestPerHostConcurrency: with MaxPerHost=2, a stalled receiver holds at most two
// requests while another receiver keeps receiving.
func TestPerHostConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	release := make(chan struct{})
	slow := e.receiver(func(_ *arrival, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-e.quit:
		}
	})
	fast := e.receiver(nil)
	v1, v2 := "v1", "v2"
	slowHook := e.hook(slow.URL+"/", timeoutSecs(20), func(in *ubihooks.WebhookCreate) { in.Version = &v1 })
	fastHook := e.hook(fast.URL+"/", func(in *ubihooks.WebhookCreate) { in.Version = &v2 })
	for range 6 {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v1", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	e.start(func(c *Config) { c.MaxPerHost = 2 })
	e.waitFor(10*time.Second, "2 stalled requests", func() bool { active, _ := slow.concurrency(); return active == 2 })
	for range 5 {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v2", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	ds, _ := e.waitDone(fastHook, 5, 10*time.Second)
	for _, d := range ds {
		if d.Status != ubihooks.DeliverySucceeded {
			t.Errorf("fast delivery %s", d.Status)
		}
	}
	if active, maxActive := slow.concurrency(); active != 2 || maxActive != 2 || slow.count() != 2 {
		t.Errorf("while stalled: slow receiver has %d active (max %d, %d arrived), want 2 (max 2, 2 arrived)", active, maxActive, slow.count())
	}
	close(release)
	ds, _ = e.waitDone(slowHook, 6, 10*time.Second)
	for _, d := range ds {
		if d.Status != ubihooks.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("slow delivery %s after %d attempts, want succeeded after 1", d.Status, d.Attempts)
		}
	}
	if _, maxActive := slow.concurrency(); maxActive > 2 {
		t.Errorf("slow receiver saw %d concurrent requests, want at most 2", maxActive)
	}
	if n := slow.count(); n != 6 {
		t.Errorf("slow receiver got %d requests, want 6", n)
	}
}

// TestStop: a graceful stop lets in-flight sends finish within its bound, and releases
// those that do not (pending again, no attempt recorded) for the next engine.
func TestStop(t *testing.T) {
	t.Parallel()
	t.Run("finishes in flight", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		arrived := make(chan struct{}, 1)
		rc := e.receiver(func(*arrival, http.ResponseWriter, *http.Request) {
			arrived <- struct{}{}
			time.Sleep(300 * time.Millisecond) // a slow receiver
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
		if err := eng.Stop(ctx); err != nil {
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
		rc := e.receiver(func(_ *arrival, _ http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			if !answer.Load() {
				e.stall(r)
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
		want := service.EventID(reqID, ubihooks.EventDeploymentCompleted)
		if got := rc.byEvent(); len(got) != 1 || got[want] != 2 {
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
	rc := e.receiver(func(_ *arrival, _ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		e.stall(r)
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
	if err := e.st.DB().QueryRow(`SELECT COUNT(*) FROM deliveries WHERE status = ?`, string(ubihooks.DeliverySending)).Scan(&leased); err != nil {
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

// TestProtectedHeader: a protected header's value reaches the receiver but is stored
// nowhere (attempts, response bodies echoing it, the database file) and logged nowhere.
func TestProtectedHeader(t *testing.T) {
	t.Parallel()
	e := setup(t)
	secretValue := "s3cr3t-" + uuid.NewString()
	rc := e.receiver(func(a *arrival, w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-Api-Key")
		w.Header().Set("X-Echo", got)
		if a.N == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "key %s rejected", got)
			return
		}
		fmt.Fprintf(w, "ok, key was %s", got)
	})
	on, off := true, false
	plain := "visible-value"
	w := e.hook(rc.URL+"/", retry(true), func(in *ubihooks.WebhookCreate) {
		in.Headers = []ubihooks.HeaderInput{{Key: "X-Api-Key", Value: &secretValue, Protected: &on}, {Key: "X-Plain", Value: &plain, Protected: &off}}
	})
	e.complete()
	e.start()
	ds, as := e.waitDone(w, 1, 10*time.Second)
	d, attempts := ds[0], as[0]
	if d.Status != ubihooks.DeliverySucceeded || len(attempts) != 2 {
		t.Fatalf("delivery %s with %d attempts, want succeeded after 2", d.Status, len(attempts))
	}
	for _, a := range rc.all() {
		if got := a.Header.Get("X-Api-Key"); got != secretValue {
			t.Errorf("arrival %d: X-Api-Key = %q, want the protected value", a.N, got)
		}
		if got := a.Header.Get("X-Plain"); got != plain {
			t.Errorf("arrival %d: X-Plain = %q", a.N, got)
		}
	}
	for _, a := range attempts {
		if strings.Contains(a.ResponseBody, secretValue) || strings.Contains(a.Error, secretValue) {
			t.Errorf("attempt %d stores the protected value: body %q error %q", a.Number, a.ResponseBody, a.Error)
		}
		if !strings.Contains(a.ResponseBody, "[redacted]") {
			t.Errorf("attempt %d body %q: want the echoed value replaced by [redacted]", a.Number, a.ResponseBody)
		}
	}
	stored, err := e.svc.GetWebhook(context.Background(), e.project.ID, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, hs := range [][]ubihooks.Header{d.Headers, stored.Headers} {
		for _, h := range hs {
			if h.Value == secretValue || strings.Contains(h.String(), secretValue) {
				t.Errorf("stored header %s carries the protected value", h.Key)
			}
			if h.Key == "X-Api-Key" && (!h.Protected || len(h.Sealed) == 0 || h.Value != "") {
				t.Errorf("stored protected header: protected %v, sealed %d bytes, value %q", h.Protected, len(h.Sealed), h.Value)
			}
		}
	}

	// The tables, as the database returns them ...
	db := e.st.DB()
	for _, table := range []string{"webhooks", "deliveries", "attempts", "events"} {
		dump := dumpTable(t, db, table)
		if !strings.Contains(dump, w.ID) && table != "attempts" && table != "events" {
			t.Errorf("table %s dump does not contain the webhook (dump broken?)", table)
		}
		if strings.Contains(dump, secretValue) {
			t.Errorf("table %s contains the protected value", table)
		}
		if table == "webhooks" && !strings.Contains(dump, plain) {
			t.Errorf("webhooks table lacks the plain header value; the dump is not what it seems")
		}
	}
	// ... and the bytes of the database files (main file and WAL).
	files, _ := filepath.Glob(filepath.Join(e.dir, "*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	sawPlain := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("%s contains the protected value", filepath.Base(f))
		}
		sawPlain = sawPlain || bytes.Contains(b, []byte(plain))
	}
	if !sawPlain {
		t.Errorf("no database file contains the plain header value; the byte scan is not looking at the data")
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "delivery attempt failed") {
		t.Errorf("logs lack the failed attempt; is the capture working?\n%s", logs)
	}
	if strings.Contains(logs, secretValue) {
		t.Errorf("logs contain the protected value:\n%s", logs)
	}
}

func dumpTable(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if bs, ok := v.([]byte); ok {
				b.Write(bs)
			} else {
				fmt.Fprint(&b, v)
			}
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// releaseCounter counts deliveries claimed and handed back unattempted.
type releaseCounter struct {
	ubihooks.Store
	released atomic.Int64
}

func (s *releaseCounter) ReleaseDeliveries(ctx context.Context, owner string, ids []string, now time.Time) error {
	s.released.Add(int64(len(ids)))
	return s.Store.ReleaseDeliveries(ctx, owner, ids, now)
}

// TestStuckHostBacklog: a receiver that answers nothing (each call runs to its timeout)
// keeps exactly its slots busy, wave after wave, and once it is known to be stuck its
// backlog no longer comes in with the claims for other hosts (claimed, then handed back):
// it gets claims of its own, for its free slots only, while the other receivers'
// deliveries go on arriving. (The very first claim, before anything is known of the host,
// takes what is due and hands back what exceeds its slots.)
func TestStuckHostBacklog(t *testing.T) {
	t.Parallel()
	e := setup(t)
	stuck := e.receiver(func(_ *arrival, _ http.ResponseWriter, r *http.Request) { e.stall(r) })
	fast := e.receiver(nil)
	v1, v2 := "v1", "v2"
	e.hook(stuck.URL+"/", timeoutSecs(1), func(in *ubihooks.WebhookCreate) { in.Version = &v1 })
	fastHook := e.hook(fast.URL+"/", func(in *ubihooks.WebhookCreate) { in.Version = &v2 })
	for range 40 {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v1", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	counter := &releaseCounter{}
	e.start(func(c *Config) {
		counter.Store = c.Store
		c.Store = counter
		c.MaxPerHost = 2
	})
	// Three and a half seconds: three waves of timeouts, and the backlog due again in
	// between (it is deferred by 1s, then 2s).
	start := time.Now()
	deadline := start.Add(3500 * time.Millisecond)
	sent, firstClaim := 0, int64(-1)
	for time.Now().Before(deadline) {
		if firstClaim < 0 && time.Since(start) > 1200*time.Millisecond {
			firstClaim = counter.released.Load() // after the first wave timed out
		}
		e.transition(ubihooks.ObjectDeployment, "scorer", "v2", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
		sent++
		time.Sleep(20 * time.Millisecond)
	}
	e.waitDone(fastHook, sent, 10*time.Second)
	if n := stuck.count(); n < 4 {
		t.Errorf("the stuck receiver got %d calls in 3.5s, want at least two waves of 2", n)
	}
	// A call cut at its timeout frees its slot at once, and a delivery claimed ahead may
	// start on it before the receiver's handler has noticed the hang-up: for a moment,
	// each cut call can overlap with the one that took its slot. (TestPerHostConcurrency
	// checks the bound exactly, with calls that end by answering.)
	if _, maxActive := stuck.concurrency(); maxActive > 2*2 {
		t.Errorf("the stuck receiver saw %d concurrent calls, want at most 2 (twice that while cut calls hang up)", maxActive)
	}
	if n := counter.released.Load() - firstClaim; n != 0 {
		t.Errorf("after the first wave, %d deliveries were claimed and handed back unattempted, want none", n)
	}
}

// gatedRecorder holds every RecordOutcomes call until open is closed, and counts how many
// are under way at once.
type gatedRecorder struct {
	ubihooks.Store
	open              chan struct{}
	active, maxAtOnce atomic.Int64
}

func (s *gatedRecorder) RecordOutcomes(ctx context.Context, outcomes []ubihooks.Outcome, now time.Time) error {
	n := s.active.Add(1)
	for {
		m := s.maxAtOnce.Load()
		if n <= m || s.maxAtOnce.CompareAndSwap(m, n) {
			break
		}
	}
	<-s.open
	defer s.active.Add(-1)
	return s.Store.RecordOutcomes(ctx, outcomes, now)
}

// TestRecordsOverlap: while one batch of outcomes waits for the database (the writer busy,
// or its commit on its way to disk), the next batches are recorded beside it — up to
// recordConcurrency at once — instead of after it; sends go on meanwhile.
func TestRecordsOverlap(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.receiver(nil)
	h := e.hook(r.URL + "/")
	gate := &gatedRecorder{open: make(chan struct{})}
	e.start(func(c *Config) {
		gate.Store = c.Store
		c.Store = gate
		c.FlushInterval = time.Millisecond
	})
	const n = 40
	for i := range n {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v1", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
		if i%10 == 9 {
			e.waitFor(5*time.Second, "the receiver to get the deliveries so far", func() bool { return r.count() == i+1 })
			time.Sleep(5 * time.Millisecond) // past the flush interval: the batch goes
		}
	}
	e.waitFor(5*time.Second, "record calls to pile up", func() bool { return gate.active.Load() >= recordConcurrency })
	time.Sleep(20 * time.Millisecond) // time for a call beyond the bound, were there one
	close(gate.open)
	e.waitDone(h, n, 10*time.Second)
	if m := gate.maxAtOnce.Load(); m != recordConcurrency {
		t.Errorf("at most %d record calls were under way at once, want %d", m, recordConcurrency)
	}
}
