package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
)

// BenchmarkDeliveryLifecycle measures what the database does for each delivery, without
// any HTTP: 16 emitters each emit events (one per transaction, fanned out to 4 webhooks)
// while the engine's side records the deliveries' outcomes in batches. It reports the CPU
// time and wall time per delivery, on two paths:
//
//   - claim: no dispatcher; deliveries are claimed in batches of up to 64.
//
//   - dispatch: a dispatcher takes every delivery at emission (the engine's path while it
//     has room); no claims.
//
//     go test -run XXX -bench DeliveryLifecycle -benchtime 20000x ./internal/sqlite/
func BenchmarkDeliveryLifecycle(b *testing.B) {
	b.Run("claim", func(b *testing.B) { benchLifecycle(b, false) })
	b.Run("dispatch", func(b *testing.B) { benchLifecycle(b, true) })
}

// takeAll is a dispatcher with room for everything; it hands what it is given to a channel.
type takeAll struct{ out chan []*ubihooks.Delivery }

func (takeAll) Lease() (string, time.Duration) { return "bench", time.Minute }
func (takeAll) Take(string) bool               { return true }
func (takeAll) Return([]string)                {}
func (t takeAll) Dispatch(ds []*ubihooks.Delivery) {
	t.out <- ds
}

func benchLifecycle(b *testing.B, dispatch bool) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	p := &ubihooks.Project{ID: ubihooks.NewID(), Name: "bench", OrganizationName: "org", CreatedAt: now}
	o := &ubihooks.Object{ID: ubihooks.NewID(), ProjectID: p.ID, Type: ubihooks.ObjectDeployment, Name: "bench",
		Labels: map[string]string{}, InputType: ubihooks.TypePlain, OutputType: ubihooks.TypePlain, CreatedAt: now, UpdatedAt: now}
	v := &ubihooks.Version{ID: ubihooks.NewID(), ObjectID: o.ID, ProjectID: p.ID, ObjectType: o.Type, ObjectName: o.Name,
		Name: "v1", Labels: map[string]string{}, Environment: "python3-12", Concurrency: 2, CreatedAt: now, UpdatedAt: now}
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(st.CreateProject(ctx, p))
	must(st.CreateObject(ctx, o))
	must(st.CreateVersion(ctx, v))
	const fanOut = 4
	for i := range fanOut {
		must(st.CreateWebhook(ctx, &ubihooks.Webhook{ID: ubihooks.NewID(), ProjectID: p.ID, Name: "hook-" + string(rune('a'+i)),
			ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name, URL: "http://127.0.0.1:9/hook/" + string(rune('a'+i)),
			Headers: []ubihooks.Header{{Key: "X-Hook", Value: "x"}}, Event: ubihooks.EventDeploymentCompleted,
			Labels: map[string]string{}, Timeout: 10 * time.Second, Enabled: true, CreatedAt: now, UpdatedAt: now}))
	}

	events := (b.N + fanOut - 1) / fanOut
	total := events * fanOut
	b.ResetTimer()
	cpu0 := cpuSeconds()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(events) {
				t := time.Now().UTC()
				e := &ubihooks.Event{ID: ubihooks.NewID(), ProjectID: p.ID, ProjectName: p.Name, Type: ubihooks.EventDeploymentCompleted,
					ObjectType: o.Type, ObjectID: o.ID, ObjectName: o.Name, VersionID: v.ID, VersionName: v.Name,
					RequestID: ubihooks.NewID(), Status: "completed", CreatedAt: t}
				if _, err := st.EmitEvents(ctx, []*ubihooks.Event{e}, t); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	// The engine's side: claims of up to 64 (or what is dispatched), and outcomes recorded
	// in batches.
	owner := "bench"
	var dispatched chan []*ubihooks.Delivery
	if dispatch {
		dispatched = make(chan []*ubihooks.Delivery, 64)
		st.SetDispatcher(takeAll{dispatched})
	}
	// An empty claim waits for the next commit that makes deliveries due, as the engine does.
	due := make(chan struct{}, 1)
	st.Subscribe(ctx, func(ubihooks.Channel) {
		select {
		case due <- struct{}{}:
		default:
		}
	})
	outcomes := make(chan []ubihooks.Outcome, 8)
	var recorded sync.WaitGroup
	recorded.Add(1)
	go func() {
		defer recorded.Done()
		for batch := range outcomes {
			if err := st.RecordOutcomes(ctx, batch, time.Now()); err != nil {
				b.Error(err)
			}
		}
	}()
	for done := 0; done < total; {
		t := time.Now()
		var ds []*ubihooks.Delivery
		if dispatch {
			ds = <-dispatched
		drain:
			for len(ds) < 64 {
				select {
				case more := <-dispatched:
					ds = append(ds, more...)
				default:
					break drain
				}
			}
		} else {
			var err error
			if ds, err = st.ClaimDeliveries(ctx, ubihooks.DeliveryClaim{Owner: owner, Limit: 64, Lease: time.Minute, Now: t}); err != nil {
				b.Fatal(err)
			}
		}
		if len(ds) == 0 {
			<-due
			continue
		}
		batch := make([]ubihooks.Outcome, len(ds))
		for i, d := range ds {
			batch[i] = ubihooks.Outcome{DeliveryID: d.ID, Owner: owner, Status: ubihooks.DeliverySucceeded,
				Attempt: ubihooks.Attempt{DeliveryID: d.ID, Number: 1, StartedAt: t, Duration: time.Millisecond, StatusCode: 204}}
		}
		outcomes <- batch
		done += len(ds)
	}
	close(outcomes)
	recorded.Wait()
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Microseconds())/float64(total), "wall-us/delivery")
	b.ReportMetric((cpuSeconds()-cpu0)*1e6/float64(total), "cpu-us/delivery")
	b.ReportMetric(0, "ns/op")
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
