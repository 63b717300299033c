package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// Process-level tests: they build the real binary and kill it with SIGKILL.

var (
	procBinOnce sync.Once
	procBin     string
	procBinErr  error
)

func procBinary(t *testing.T) string {
	t.Helper()
	procBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ubihooks-bin-*")
		if err != nil {
			procBinErr = err
			return
		}
		procBin = filepath.Join(dir, "ubihooks")
		out, err := exec.Command("go", "build", "-o", procBin, ".").CombinedOutput()
		if err != nil {
			procBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if procBinErr != nil {
		t.Fatal(procBinErr)
	}
	return procBin
}

// procServer is a running `ubihooks serve` process.
type procServer struct {
	cmd    *exec.Cmd
	addr   string
	logs   *ubihookstest.SyncBuffer
	exited chan struct{} // closed once the process is gone
}

// procServing finds the address in the line serve logs once it listens.
var procServing = regexp.MustCompile(`msg="ubihooks serving" addr=http://([^/ ]+)/`)

// procStart starts `ubihooks serve` on a port of its choosing, logging at info, and
// returns once it logged that it serves.
func procStart(t *testing.T, env []string, args ...string) *procServer {
	t.Helper()
	cmd := exec.Command(procBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--log-level", "info"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &procServer{cmd: cmd, logs: &ubihookstest.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
		p.logs.Changed.Signal()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("logs of serve on %s:\n%s", p.addr, p.logs)
		}
	})
	var m []string
	serving := func() bool {
		m = procServing.FindStringSubmatch(p.logs.String())
		select {
		case <-p.exited:
			return true
		default:
			return m != nil
		}
	}
	if !p.logs.Changed.Await(60*time.Second, serving) || m == nil {
		t.Fatalf("serve did not become ready:\n%s", p.logs)
	}
	p.addr = m[1]
	return p
}

// kill kills the process with SIGKILL and waits until it is gone.
func (p *procServer) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed process did not exit within 30s")
	}
}

// api is a client of the process's API, with paths below /projects/p1.
func (p *procServer) api(t *testing.T, token string) *ubihookstest.API {
	return &ubihookstest.API{T: t, URL: "http://" + p.addr + "/v2.1/projects/p1", Token: token}
}

func procToken(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(procBinary(t), append([]string{"token", "create", "--project", "p1", "--create"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// procReceiver counts webhook deliveries by (path, event id) and by request id.
type procReceiver struct {
	*ubihookstest.Receiver
	mu        sync.Mutex
	byKey     map[string]int // path + " " + payload id
	byRequest map[string]int // payload request_id
	total     int
}

func newProcReceiver(t *testing.T) *procReceiver {
	r := &procReceiver{byKey: map[string]int{}, byRequest: map[string]int{}}
	r.Receiver = ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{
		Respond: ubihookstest.Status(http.StatusNoContent),
		OnArrival: func(a *ubihookstest.Arrival) {
			if a.ID() == "" {
				return // refused and reported by the receiver
			}
			requestID, _ := a.Payload["request_id"].(string)
			r.mu.Lock()
			r.byKey[a.Path+" "+a.ID()]++
			r.byRequest[requestID]++
			r.total++
			r.mu.Unlock()
		},
	})
	return r
}

func (r *procReceiver) counts() (distinct, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byKey), r.total
}

// procModelServer doubles x, like examples/modelserver, with a small delay so that work
// is in flight when a process is killed.
func procModelServer(t *testing.T, delay time.Duration) string {
	return ubihookstest.NewBackend(t, ubihookstest.BackendConfig{Delay: delay, Model: func(in any) (any, error) {
		x, _ := in.(map[string]any)["x"].(float64)
		return map[string]any{"y": 2 * x}, nil
	}}).URL
}

func procSetupDeployment(t *testing.T, api *ubihookstest.API, backend string, receiverURLs []string, event string) {
	t.Helper()
	api.Decode("POST", "/deployments", map[string]any{"name": "d", "input_type": "structured", "output_type": "structured",
		"input_fields": []map[string]string{{"name": "x", "data_type": "double"}}, "output_fields": []map[string]string{{"name": "y", "data_type": "double"}}}, nil)
	api.Decode("POST", "/deployments/d/versions", map[string]any{"version": "v1", "backend_url": backend, "maximum_instances": 64}, nil)
	for i, u := range receiverURLs {
		api.Decode("POST", "/webhooks", map[string]any{"name": fmt.Sprintf("w%d", i), "object_type": "deployment",
			"object_name": "d", "event": event, "url": u, "retry": true}, nil)
	}
}

// TestSIGKILLSQLiteLosesNoAcknowledgedEvent kills the SQLite server under load: every
// request the API answered completed (its events were committed before the answer) must
// reach the webhook after a restart on the same database.
func TestSIGKILLSQLiteLosesNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("process test")
	}
	dir := t.TempDir()
	env := []string{"UBIHOOKS_DATABASE=" + filepath.Join(dir, "u.db"), "UBIHOOKS_ALLOW_NETWORKS=127.0.0.0/8",
		"UBIHOOKS_LEASE=3s", "UBIHOOKS_RESCUE_INTERVAL=500ms", "UBIHOOKS_LOG_LEVEL=warn"}
	token := procToken(t, env)
	recv := newProcReceiver(t)
	backend := procModelServer(t, 2*time.Millisecond)
	s1 := procStart(t, env)
	api := s1.api(t, token)
	procSetupDeployment(t, api, backend, []string{recv.URL + "/hook"}, "deployment_request_completed")

	var mu sync.Mutex
	var ackedChanged ubihookstest.Progress
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var r struct{ ID, Status string }
				if _, err := api.Call("POST", "/deployments/d/requests", map[string]any{"x": 1}, &r); err != nil {
					return // the server is gone
				}
				if r.Status == "completed" {
					mu.Lock()
					acked[r.ID] = true
					mu.Unlock()
					ackedChanged.Signal()
				}
			}
		}()
	}
	ackedChanged.Until(t, 30*time.Second, "some acknowledged requests", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 })
	s1.kill(t)
	cancel()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()

	procStart(t, env)
	recv.Until(t, 60*time.Second, "every acknowledged event at the receiver", func() bool {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for id := range acked {
			if recv.byRequest[id] == 0 {
				return false
			}
		}
		return true
	})
	_, total := recv.counts()
	t.Logf("acknowledged %d completed requests before SIGKILL; after restart all %d completed events arrived (lost = 0, %d deliveries in all)", n, n, total)
}

// TestReplicaKill runs three replicas on one PostgreSQL database, sends 10,000 deliveries
// and kills one replica with SIGKILL mid-run: every delivery arrives (by event id), the
// only duplicates come from the killed replica's in-flight work, and no request stays
// processing.
func TestReplicaKill(t *testing.T) {
	t.Parallel()
	base := ubihookstest.PostgresBase(t)
	if base == "" {
		t.Skip("UBIHOOKS_TEST_POSTGRES_URL is not set")
	}
	if testing.Short() {
		t.Skip("process test")
	}
	pgURL := ubihookstest.PostgresSchema(t, base)
	const (
		webhooks = 4
		requests = 2500 // × 4 webhooks = 10,000 deliveries
	)
	env := []string{"UBIHOOKS_DATABASE=" + pgURL, "UBIHOOKS_ENCRYPTION_KEY=" + strings.Repeat("A", 43) + "=",
		"UBIHOOKS_ALLOW_NETWORKS=127.0.0.0/8", "UBIHOOKS_LEASE=4s", "UBIHOOKS_RESCUE_INTERVAL=500ms", "UBIHOOKS_LOG_LEVEL=warn"}
	token := procToken(t, env)
	recv := newProcReceiver(t)
	backend := procModelServer(t, 5*time.Millisecond)
	var replicas []*procServer
	for i := 0; i < 3; i++ {
		replicas = append(replicas, procStart(t, env))
	}
	var urls []string
	for i := 0; i < webhooks; i++ {
		urls = append(urls, fmt.Sprintf("%s/hook/%d", recv.URL, i))
	}
	api := replicas[0].api(t, token)
	procSetupDeployment(t, api, backend, urls, "deployment_request_completed")

	ids := map[string]bool{}
	for b := 0; b < requests/500; b++ {
		inputs := make([]map[string]any, 500)
		for i := range inputs {
			inputs[i] = map[string]any{"x": b*500 + i}
		}
		var out []struct{ ID string }
		replicas[b%3].api(t, token).Decode("POST", "/deployments/d/requests/batch", inputs, &out)
		for _, r := range out {
			ids[r.ID] = true
		}
	}
	recv.Until(t, 60*time.Second, "a quarter of the deliveries", func() bool { d, _ := recv.counts(); return d >= requests*webhooks/4 })
	replicas[2].kill(t)
	killedAt, _ := recv.counts()

	recv.Until(t, 180*time.Second, "all 10,000 deliveries", func() bool { d, _ := recv.counts(); return d >= requests*webhooks })
	distinct, total := recv.counts()
	lost := requests*webhooks - distinct
	t.Logf("replica kill: %d deliveries expected, %d distinct arrived (lost = %d), %d duplicates; %d had arrived when replica 3 was killed",
		requests*webhooks, distinct, lost, total-distinct, killedAt)
	if lost != 0 {
		t.Fatalf("lost = %d", lost)
	}
	// Duplicates can only come from work the killed replica had in flight: at most its
	// send slots (256) plus the deliveries of the requests it was running (64 × 4).
	if dup := total - distinct; dup > 256+64*webhooks {
		t.Fatalf("duplicates = %d, more than the killed replica could have had in flight", dup)
	}
	// No request stays processing: every request's completed event arrived at every
	// webhook, so every request is completed already.
	var list []struct{ ID, Status string }
	api.Decode("GET", "/deployments/d/requests?status=processing&limit=1000", nil, &list)
	if len(list) != 0 {
		t.Fatalf("%d requests still processing, want none", len(list))
	}
	var done []struct{ ID string }
	for off := 0; off < requests; off += 1000 {
		var page []struct{ ID string }
		api.Decode("GET", fmt.Sprintf("/deployments/d/requests?status=completed&limit=1000&offset=%d", off), nil, &page)
		done = append(done, page...)
	}
	if len(done) != requests {
		t.Fatalf("completed requests = %d, want %d", len(done), requests)
	}
}
