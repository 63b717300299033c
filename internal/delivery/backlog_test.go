package delivery

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestBacklogsDeferral drives backlogs along a timeline for host h. Each step happens at
// its offset from t0; "defer" expects the deferral deferUntil decides (0: none), "stuck"
// whether h is stuck after the step.
func TestBacklogsDeferral(t *testing.T) {
	t.Parallel()
	const h = "h:443"
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type step struct {
		at    time.Duration
		op    string // began, answered, unanswered, idle, defer, probed, prune
		want  time.Duration
		stuck bool
	}
	ms := time.Millisecond
	tests := []struct {
		name  string
		steps []step
	}{
		{"busy, not stuck: answers within a second", []step{
			{at: 0, op: "began"}, {at: 900 * ms, op: "defer"}, {at: 1500 * ms, op: "answered"}, {at: 2400 * ms, op: "defer"}}},
		{"no answer for a second: 1s, then twice as far each time it comes due", []step{
			{at: 0, op: "began"}, {at: time.Second, op: "defer", want: time.Second, stuck: true},
			{at: 1500 * ms, op: "defer", stuck: true}, // its deferral runs
			{at: 2 * time.Second, op: "defer", want: 2 * time.Second, stuck: true},
			{at: 4 * time.Second, op: "defer", want: 4 * time.Second, stuck: true},
			{at: 8 * time.Second, op: "defer", want: 8 * time.Second, stuck: true},
			{at: 16 * time.Second, op: "defer", want: 16 * time.Second, stuck: true},
			{at: 32 * time.Second, op: "defer", want: 30 * time.Second, stuck: true},
			{at: 62 * time.Second, op: "defer", want: 30 * time.Second, stuck: true}}},
		{"an answer ends it; stuck again, it starts over at 1s", []step{
			{at: 0, op: "began"}, {at: time.Second, op: "defer", want: time.Second, stuck: true},
			{at: 2 * time.Second, op: "defer", want: 2 * time.Second, stuck: true},
			{at: 3 * time.Second, op: "answered"}, {at: 3500 * ms, op: "defer"},
			{at: 4 * time.Second, op: "defer", want: time.Second, stuck: true}}},
		{"a host never heard from is stuck at once", []step{{at: 0, op: "defer", want: time.Second, stuck: true}}},
		{"a timeout after a second of silence makes it stuck; the next claim pushes it later", []step{
			{at: 0, op: "began"}, {at: 900 * ms, op: "unanswered"}, {at: 1100 * ms, op: "unanswered", stuck: true},
			{at: 1500 * ms, op: "defer", stuck: true}, {at: 2100 * ms, op: "defer", want: 2 * time.Second, stuck: true}}},
		{"a timeout keeps a deferral that runs", []step{
			{at: 0, op: "began"}, {at: time.Second, op: "defer", want: time.Second, stuck: true},
			{at: 2 * time.Second, op: "defer", want: 2 * time.Second, stuck: true},
			{at: 3 * time.Second, op: "unanswered", stuck: true}, {at: 4 * time.Second, op: "defer", want: 4 * time.Second, stuck: true}}},
		{"idle: its progress is forgotten", []step{
			{at: 0, op: "began"}, {at: 500 * ms, op: "idle"}, {at: 600 * ms, op: "defer", want: time.Second, stuck: true}}},
		{"a probe renews the deferral with the same delay", []step{
			{at: 0, op: "began"}, {at: time.Second, op: "defer", want: time.Second, stuck: true},
			{at: 2 * time.Second, op: "probed", stuck: true}, {at: 2500 * ms, op: "defer", stuck: true},
			{at: 3 * time.Second, op: "defer", want: 2 * time.Second, stuck: true}}},
		{"prune forgets a deferral not renewed for a minute", []step{
			{at: 0, op: "defer", want: time.Second, stuck: true}, {at: 60 * time.Second, op: "prune", stuck: true},
			{at: 61 * time.Second, op: "prune"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBacklogs()
			for i, s := range tt.steps {
				now := t0.Add(s.at)
				switch s.op {
				case "began":
					b.began(h, now)
				case "answered":
					b.answered(h, now)
				case "unanswered":
					b.unanswered(h, now)
				case "idle":
					b.idle(h)
				case "probed":
					b.probed(h, now)
				case "prune":
					b.prune(now)
				case "defer":
					until, ok := b.deferUntil(h, now)
					if got := until.Sub(now); ok != (s.want > 0) || ok && got != s.want {
						t.Fatalf("step %d at %s: deferUntil = %s (ok %v), want %s", i, s.at, got, ok, s.want)
					}
				default:
					t.Fatalf("unknown op %q", s.op)
				}
				if got := b.stuck(h); got != s.stuck {
					t.Fatalf("step %d (%s at %s): stuck = %v, want %v", i, s.op, s.at, got, s.stuck)
				}
			}
		})
	}
}

// TestBacklogsStuckHosts: stuck hosts below their cap are left out of the main claim, and
// those whose deferral ended get a probe for their free send slots.
func TestBacklogsStuckHosts(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	q := newHostQueue(2, 4)
	b := newBacklogs()
	push := func(id, host string) {
		if !q.push(prepared{d: &ubihooks.Delivery{ID: id, Host: host}}) {
			t.Fatalf("push %s refused", id)
		}
	}
	// due: deferral ended, one send and nothing waiting → probe for 1 slot.
	push("d1", "due")
	q.pop()
	b.deferUntil("due", t0.Add(-2*time.Second))
	// idle: deferral ended, nothing sent or waiting → probe for 2 slots.
	b.deferUntil("idle", t0.Add(-time.Second))
	// running: deferral runs → left out, no probe.
	b.deferUntil("running", t0.Add(-500*time.Millisecond))
	// slotless: deferral ended, both slots sending → left out, no probe.
	push("s1", "slotless")
	push("s2", "slotless")
	q.pop()
	q.pop()
	b.deferUntil("slotless", t0.Add(-time.Minute))
	// capped: at its cap (2 sending, 2 waiting) → neither (the queue's cap keeps it out).
	for _, id := range []string{"c1", "c2", "c3", "c4"} {
		push(id, "capped")
	}
	q.pop()
	q.pop()
	b.deferUntil("capped", t0.Add(-time.Minute))
	// busy: saturated but not stuck → neither.
	push("b1", "busy")
	q.pop()

	exclude, probes := b.stuckHosts(&q, t0)
	slices.Sort(exclude)
	if want := []string{"due", "idle", "running", "slotless"}; !slices.Equal(exclude, want) {
		t.Errorf("left out %v, want %v", exclude, want)
	}
	slices.SortFunc(probes, func(a, b probe) int { return strings.Compare(a.host, b.host) })
	if want := []probe{{"due", 1}, {"idle", 2}}; !slices.Equal(probes, want) {
		t.Errorf("probes %v, want %v", probes, want)
	}
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
	stuck := e.receiver(ubihookstest.Hang())
	fast := e.receiver(nil)
	v1, v2 := "v1", "v2"
	e.hook(stuck.URL+"/", timeoutSecs(1), func(in *ubihooks.WebhookCreate) { in.Version = &v1 })
	fastHook := e.hook(fast.URL+"/", func(in *ubihooks.WebhookCreate) { in.Version = &v2 })
	for range 40 {
		e.transition(ubihooks.ObjectDeployment, "scorer", "v1", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
	}
	counter := &releaseCounter{}
	eng := e.start(func(c *Config) {
		counter.Store = c.Store
		c.Store = counter
		c.MaxPerHost = 2
	})
	// Three and a half seconds: three waves of timeouts, and the backlog due again in
	// between (it is deferred by 1s, then 2s). Meanwhile a new event for the fast receiver
	// each time the engine polls: each poll is a claim that could bring the stuck host's
	// backlog in.
	deadline := time.Now().Add(3500 * time.Millisecond)
	sent, firstClaim := 0, int64(-1)
	for time.Now().Before(deadline) {
		if firstClaim < 0 && stuck.Count() > 2 {
			firstClaim = counter.released.Load() // a call of the first wave was cut: the host is stuck
		}
		e.transition(ubihooks.ObjectDeployment, "scorer", "v2", uuid.NewString(), ubihooks.RequestProcessing, ubihooks.RequestCompleted, nil)
		sent++
		e.Until(5*time.Second, "the fast receiver to get it", func() bool { return fast.Count() == sent })
		eng.TestSignals.Polled.Wait(t, 5*time.Second)
	}
	if firstClaim < 0 {
		t.Fatal("the first wave of the stuck receiver did not end within 3.5s")
	}
	e.waitDone(fastHook, sent, 10*time.Second)
	if n := stuck.Count(); n < 4 {
		t.Errorf("the stuck receiver got %d calls in 3.5s, want at least two waves of 2", n)
	}
	// A call cut at its timeout frees its slot at once, and a delivery claimed ahead may
	// start on it before the receiver's handler has noticed the hang-up: for a moment,
	// each cut call can overlap with the one that took its slot. (TestPerHostConcurrency
	// checks the bound exactly, with calls that end by answering.)
	if _, maxActive := stuck.Concurrency(); maxActive > 2*2 {
		t.Errorf("the stuck receiver saw %d concurrent calls, want at most 2 (twice that while cut calls hang up)", maxActive)
	}
	if n := counter.released.Load() - firstClaim; n != 0 {
		t.Errorf("after the first wave, %d deliveries were claimed and handed back unattempted, want none", n)
	}
}
