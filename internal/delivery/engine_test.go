package delivery

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
)

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
	v1 := e.Version(e.dep, "v1")
	ev := &ubihooks.Event{ID: ubihooks.EventID(reqID, ubihooks.EventDeploymentCompleted), ProjectID: e.Project.ID, ProjectName: "acme",
		Type: ubihooks.EventDeploymentCompleted, ObjectType: ubihooks.ObjectDeployment, ObjectID: e.dep.ID, ObjectName: "scorer",
		VersionID: v1.ID, VersionName: "v1", RequestID: reqID, Status: "completed", CreatedAt: time.Now().UTC()}
	if n, err := e.Store.EmitEvents(context.Background(), []*ubihooks.Event{ev}, time.Now()); err != nil || n != 0 {
		t.Errorf("EmitEvents of the same event: %d, %v; want 0 deliveries", n, err)
	}
	for _, w := range []*ubihooks.Webhook{a, b} {
		ds, as := e.waitDone(w, 1, time.Second)
		if ds[0].Status != ubihooks.DeliverySucceeded || len(as[0]) != 1 {
			t.Errorf("%s: delivery %s with %d attempts, want succeeded after 1", w.Name, ds[0].Status, len(as[0]))
		}
	}
	counts := map[string]int{}
	for _, x := range rc.Arrivals() {
		counts[x.Path+" "+x.ID()]++
	}
	want := map[string]int{"/a " + ev.ID: 1, "/b " + ev.ID: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("receiver counts by webhook and event id = %v, want %v", counts, want)
	}
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
		if n := rc.Count(); n != 0 {
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
		if ds[0].Status != ubihooks.DeliverySucceeded || rc.Count() != 1 {
			t.Errorf("delivery %s, receiver got %d; want succeeded and 1", ds[0].Status, rc.Count())
		}
	})
}

// flushingStore is a store with its own record flush interval (see RecordFlusher).
type flushingStore struct {
	ubihooks.Store
	flush time.Duration
}

func (s flushingStore) RecordFlushInterval() time.Duration { return s.flush }

func TestEngineConfig(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	got := []any{c.BatchSize, c.MaxInFlight, c.MaxUnrecorded, c.MaxPerHost, c.Prefetch, c.Lease, c.PollInterval,
		c.RescueInterval, c.FlushInterval, c.UserAgent}
	want := []any{128, 256, 1024, 32, 512, 90 * time.Second, 500 * time.Millisecond, 10 * time.Second, 2 * time.Millisecond, "ubihooks"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults %v, want %v", got, want)
	}
	if !reflect.DeepEqual(c.Retry, DefaultRetryPolicy()) || c.Logger == nil || c.NowFunc == nil {
		t.Errorf("defaults: retry %+v, logger %v, clock set %v; want DefaultRetryPolicy and both set", c.Retry, c.Logger, c.NowFunc != nil)
	}
	if c := (Config{MaxInFlight: 10}).withDefaults(); c.MaxUnrecorded != 40 || c.Prefetch != 20 {
		t.Errorf("MaxInFlight 10: MaxUnrecorded %d, Prefetch %d; want 40 and 20", c.MaxUnrecorded, c.Prefetch)
	}
	if c := (Config{MaxInFlight: 10, MaxUnrecorded: 3, Prefetch: 5, UserAgent: "x"}).withDefaults(); c.MaxUnrecorded != 3 || c.Prefetch != 5 || c.UserAgent != "x" {
		t.Errorf("set values changed: MaxUnrecorded %d, Prefetch %d, UserAgent %q", c.MaxUnrecorded, c.Prefetch, c.UserAgent)
	}
	// A store's flush interval is the default; a configured one wins over it.
	if c := (Config{Store: flushingStore{flush: 7 * time.Millisecond}}).withDefaults(); c.FlushInterval != 7*time.Millisecond {
		t.Errorf("store's flush interval 7ms: FlushInterval %v", c.FlushInterval)
	}
	if c := (Config{Store: flushingStore{flush: 7 * time.Millisecond}, FlushInterval: time.Millisecond}).withDefaults(); c.FlushInterval != time.Millisecond {
		t.Errorf("FlushInterval 1ms with a store's 7ms: FlushInterval %v", c.FlushInterval)
	}

	e := setup(t)
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"no store", func(c *Config) { c.Store = nil }, "lacks Store"},
		{"nothing to send with", func(c *Config) { c.Client, c.SignerFunc, c.OpenHeadersFunc = nil, nil, nil },
			"lacks Client, SignerFunc, OpenHeadersFunc"},
		{"no owner", func(c *Config) { c.Owner = "" }, "lacks Owner"},
		{"negative bound", func(c *Config) { c.MaxPerHost = -1 }, "MaxPerHost is negative"},
		{"negative interval", func(c *Config) { c.RescueInterval = -time.Second }, "RescueInterval is negative"},
	}
	for _, tt := range tests {
		cfg := e.engineConfig()
		tt.mod(&cfg)
		err := cfg.withDefaults().validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: validate = %v, want an error with %q", tt.name, err, tt.wantErr)
		}
		eng := NewEngine(cfg) // must not fail on an invalid config: Start does
		if err := eng.Start(e.Ctx); (err == nil) != (tt.wantErr == "") {
			t.Errorf("%s: Start = %v", tt.name, err)
		}
		if err := eng.Stop(e.Ctx); err != nil {
			t.Errorf("%s: Stop = %v", tt.name, err)
		}
	}
}

// TestEngineLifecycle: Start once, Stop any number of times (also before Start), and no
// deliveries taken outside a run.
func TestEngineLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t)
	eng := NewEngine(e.engineConfig())
	if err := eng.Stop(e.Ctx); err != nil {
		t.Errorf("Stop before Start = %v, want nil", err)
	}
	eng.Abort() // before Start: nothing to do
	if eng.Take("example.com:443") {
		t.Error("Take before Start = true, want false")
	}
	if err := eng.Start(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(e.Ctx); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start = %v, want already started", err)
	}
	if !eng.Take("example.com:443") {
		t.Error("Take while running = false, want true")
	}
	eng.Return([]string{"example.com:443"})
	for range 2 {
		if err := eng.Stop(e.Ctx); err != nil {
			t.Errorf("Stop = %v, want nil", err)
		}
	}
	if eng.Take("example.com:443") {
		t.Error("Take after Stop = true, want false")
	}
	if err := eng.Start(e.Ctx); err == nil {
		t.Error("Start after Stop = nil, want an error")
	}
}
