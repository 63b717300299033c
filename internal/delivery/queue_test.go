package delivery

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestHostQueue drives a hostQueue through scripts of steps. Deliveries are named by their
// host and a number ("a1" goes to host "a"). Steps:
//
//	push a1 b1    each is accepted        push! a3     each is refused (host full)
//	pop a1 b1 -   pops in this order; "-": nothing may be popped
//	sent a        a send to a ended, a still sending; "sent a idle": a's last send
//	reserve a     unreserve a
//	places 3      load a 2      saturated a b      fullsending a      drain a1 b1
func TestHostQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		maxPerHost, hostCap int
		script              []string
	}{
		{name: "hosts take turns, oldest first", maxPerHost: 9, hostCap: 9, script: []string{
			"push a1 a2 a3 b1 b2 c1", "places 6", "pop a1 b1 c1 a2 b2 a3 -", "places 6", "load a 3"}},
		{name: "a host at its send slots is skipped", maxPerHost: 1, hostCap: 9, script: []string{
			"push a1 a2 b1", "pop a1 b1 -", "saturated a b", "sent b idle", "pop -", "sent a idle", "pop a2 -", "saturated a"}},
		{name: "a host that got its turn goes behind the others, a new host behind all", maxPerHost: 2, hostCap: 9, script: []string{
			"push a1 a2 b1", "pop a1", "push c1", "pop b1 a2 c1 -"}},
		{name: "the cap counts sending, waiting and reserved", maxPerHost: 1, hostCap: 3, script: []string{
			"push a1", "pop a1", "push a2", "reserve a", "load a 3", "push! a3", "fullsending a", "push b1 b2 b3", "push! b4",
			"fullsending a", "unreserve a", "push a3", "places 6"}},
		{name: "a host neither sending nor full is in no list", maxPerHost: 1, hostCap: 2, script: []string{
			"push a1 a2", "saturated", "fullsending", "pop a1", "saturated a", "fullsending a", "sent a idle", "fullsending"}},
		{name: "a second send is not the last", maxPerHost: 2, hostCap: 4, script: []string{
			"push a1 a2", "pop a1 a2", "sent a", "sent a idle", "places 0"}},
		{name: "drain empties the queue but keeps sends and reservations", maxPerHost: 1, hostCap: 9, script: []string{
			"push a1 a2 b1", "pop a1", "reserve c", "drain a2 b1", "places 2", "pop -", "push a3", "pop -", "sent a idle", "pop a3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newHostQueue(tt.maxPerHost, tt.hostCap)
			for _, step := range tt.script {
				runQueueStep(t, &q, step)
			}
		})
	}
}

func runQueueStep(t *testing.T, q *hostQueue, step string) {
	t.Helper()
	f := strings.Fields(step)
	op, args := f[0], f[1:]
	switch op {
	case "push", "push!":
		for _, id := range args {
			if got := q.push(prepared{d: &ubihooks.Delivery{ID: id, Host: id[:1]}}); got != (op == "push") {
				t.Fatalf("%s: push(%s) = %v", step, id, got)
			}
		}
	case "pop":
		for _, want := range args {
			p, ok := q.pop()
			if want == "-" {
				if ok {
					t.Fatalf("%s: popped %s, want nothing", step, p.d.ID)
				}
				continue
			}
			if !ok {
				t.Fatalf("%s: popped nothing, want %s", step, want)
			}
			if p.d.ID != want {
				t.Fatalf("%s: popped %s, want %s", step, p.d.ID, want)
			}
		}
	case "sent":
		if idle := q.sent(args[0]); idle != (len(args) > 1 && args[1] == "idle") {
			t.Fatalf("%s: sent reports idle %v", step, idle)
		}
	case "reserve":
		q.reserve(args[0])
	case "unreserve":
		q.unreserve(args[0])
	case "places":
		if want, _ := strconv.Atoi(args[0]); q.places() != want {
			t.Fatalf("%s: places = %d (sending %d, waiting %d, reserved %d)", step, q.places(), q.sending, q.nWaiting, q.nReserved)
		}
	case "load":
		if want, _ := strconv.Atoi(args[1]); q.load(args[0]) != want {
			t.Fatalf("%s: load = %d", step, q.load(args[0]))
		}
	case "saturated", "fullsending":
		got := q.saturated()
		if op == "fullsending" {
			got = q.fullSending()
		}
		slices.Sort(got)
		if !slices.Equal(got, args) {
			t.Fatalf("%s: got %v", step, got)
		}
	case "drain":
		var got []string
		for _, p := range q.drain() {
			got = append(got, p.d.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, args) {
			t.Fatalf("%s: drained %v", step, got)
		}
		if q.nWaiting != 0 || len(q.hosts) != 0 || len(q.waiting) != 0 {
			t.Fatalf("%s: after drain %d waiting, hosts %v", step, q.nWaiting, q.hosts)
		}
	default:
		t.Fatalf("unknown step %q", step)
	}
}

// TestPerHostConcurrency: with MaxPerHost=2, a stalled receiver holds at most two
// requests while another receiver keeps receiving.
func TestPerHostConcurrency(t *testing.T) {
	t.Parallel()
	e := setup(t)
	release := make(chan struct{})
	slow := e.receiver(func(_ *ubihookstest.Arrival, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-e.Done():
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
	e.Until(10*time.Second, "2 stalled requests", func() bool { active, _ := slow.Concurrency(); return active == 2 })
	for range 5 {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v2", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	ds, _ := e.waitDone(fastHook, 5, 10*time.Second)
	for _, d := range ds {
		if d.Status != ubihooks.DeliverySucceeded {
			t.Errorf("fast delivery %s", d.Status)
		}
	}
	if active, maxActive := slow.Concurrency(); active != 2 || maxActive != 2 || slow.Count() != 2 {
		t.Errorf("while stalled: slow receiver has %d active (max %d, %d arrived), want 2 (max 2, 2 arrived)", active, maxActive, slow.Count())
	}
	close(release)
	ds, _ = e.waitDone(slowHook, 6, 10*time.Second)
	for _, d := range ds {
		if d.Status != ubihooks.DeliverySucceeded || d.Attempts != 1 {
			t.Errorf("slow delivery %s after %d attempts, want succeeded after 1", d.Status, d.Attempts)
		}
	}
	if _, maxActive := slow.Concurrency(); maxActive > 2 {
		t.Errorf("slow receiver saw %d concurrent requests, want at most 2", maxActive)
	}
	if n := slow.Count(); n != 6 {
		t.Errorf("slow receiver got %d requests, want 6", n)
	}
}
