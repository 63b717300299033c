package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

func procFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// procServer is a running `ubihooks serve` process.
type procServer struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

type lockedBuffer struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func procStart(t *testing.T, env []string, args ...string) *procServer {
	t.Helper()
	addr := procFreeAddr(t)
	cmd := exec.Command(procBinary(t), append([]string{"serve", "--listen", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &procServer{cmd: cmd, addr: addr, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stdout = lockedBuffer{p.mu, p.logs}
	cmd.Stderr = lockedBuffer{p.mu, p.logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("logs of serve on %s:\n%s", addr, p.logText())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/v2.1/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve on %s did not become ready:\n%s", addr, p.logText())
	return nil
}

func (p *procServer) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *procServer) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

func procToken(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(procBinary(t), append([]string{"token", "create", "--project", "p1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// procAPI calls the API and decodes the answer into out (when not nil); it returns the status.
func procAPI(addr, token, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+"/v2.1"+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Token "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

func procMust(t *testing.T, addr, token, method, path string, body any, out any) {
	t.Helper()
	if _, err := procAPI(addr, token, method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// procReceiver counts webhook deliveries by (path, event id) and by request id.
type procReceiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	byKey     map[string]int // path + " " + payload id
	byRequest map[string]int // payload request_id
	total     int
}

func newProcReceiver(t *testing.T) *procReceiver {
	r := &procReceiver{byKey: map[string]int{}, byRequest: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p struct {
			ID        string `json:"id"`
			RequestID string `json:"request_id"`
		}
		b, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(b, &p); err != nil || p.ID == "" {
			http.Error(w, "bad payload", 400)
			return
		}
		r.mu.Lock()
		r.byKey[req.URL.Path+" "+p.ID]++
		r.byRequest[p.RequestID]++
		r.total++
		r.mu.Unlock()
		w.WriteHeader(204)
	}))
	t.Cleanup(r.srv.Close)
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ X float64 }
		_ = json.NewDecoder(r.Body).Decode(&in)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"y": %v}`, 2*in.X)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func procWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func procSetupDeployment(t *testing.T, addr, token, backend string, receiverURLs []string, event string) {
	t.Helper()
	procMust(t, addr, token, "POST", "/projects/p1/deployments", map[string]any{"name": "d", "input_type": "structured", "output_type": "structured",
		"input_fields": []map[string]string{{"name": "x", "data_type": "double"}}, "output_fields": []map[string]string{{"name": "y", "data_type": "double"}}}, nil)
	procMust(t, addr, token, "POST", "/projects/p1/deployments/d/versions", map[string]any{"version": "v1", "backend_url": backend, "maximum_instances": 64}, nil)
	for i, u := range receiverURLs {
		procMust(t, addr, token, "POST", "/projects/p1/webhooks", map[string]any{"name": fmt.Sprintf("w%d", i), "object_type": "deployment",
			"object_name": "d", "event": event, "url": u, "retry": true}, nil)
	}
}

// TestSIGKILLSQLiteLosesNoAcknowledgedEvent kills the SQLite server under load: every
// request the API answered completed (its events were committed before the answer) must
// reach the webhook after a restart on the same database.
func TestSIGKILLSQLiteLosesNoAcknowledgedEvent(t *testing.T) {
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
	procSetupDeployment(t, s1.addr, token, backend, []string{recv.srv.URL + "/hook"}, "deployment_request_completed")

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var r struct{ ID, Status string }
				if _, err := procAPI(s1.addr, token, "POST", "/projects/p1/deployments/d/requests", map[string]any{"x": 1}, &r); err != nil {
					return // the server is gone
				}
				if r.Status == "completed" {
					mu.Lock()
					acked[r.ID] = true
					mu.Unlock()
				}
			}
		}()
	}
	procWaitFor(t, 30*time.Second, "some acknowledged requests", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 })
	s1.kill(t)
	cancel()
	wg.Wait()
	mu.Lock()
	n := len(acked)
	mu.Unlock()

	s2 := procStart(t, env)
	_ = s2
	procWaitFor(t, 60*time.Second, "every acknowledged event at the receiver", func() bool {
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
	pgURL := procPostgresSchema(t)
	if testing.Short() {
		t.Skip("process test")
	}
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
		urls = append(urls, fmt.Sprintf("%s/hook/%d", recv.srv.URL, i))
	}
	procSetupDeployment(t, replicas[0].addr, token, backend, urls, "deployment_request_completed")

	ids := map[string]bool{}
	for b := 0; b < requests/500; b++ {
		inputs := make([]map[string]any, 500)
		for i := range inputs {
			inputs[i] = map[string]any{"x": b*500 + i}
		}
		var out []struct{ ID string }
		procMust(t, replicas[b%3].addr, token, "POST", "/projects/p1/deployments/d/requests/batch", inputs, &out)
		for _, r := range out {
			ids[r.ID] = true
		}
	}
	procWaitFor(t, 60*time.Second, "a quarter of the deliveries", func() bool { d, _ := recv.counts(); return d >= requests*webhooks/4 })
	replicas[2].kill(t)
	killedAt, _ := recv.counts()

	procWaitFor(t, 180*time.Second, "all 10,000 deliveries", func() bool { d, _ := recv.counts(); return d >= requests*webhooks })
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
	// No request stays processing: every one ends completed.
	procWaitFor(t, 60*time.Second, "no request left processing", func() bool {
		var list []struct{ ID, Status string }
		procMust(t, replicas[0].addr, token, "GET", "/projects/p1/deployments/d/requests?status=processing&limit=1000", nil, &list)
		return len(list) == 0
	})
	var done []struct{ ID string }
	for off := 0; off < requests; off += 1000 {
		var page []struct{ ID string }
		procMust(t, replicas[0].addr, token, "GET", fmt.Sprintf("/projects/p1/deployments/d/requests?status=completed&limit=1000&offset=%d", off), nil, &page)
		done = append(done, page...)
	}
	if len(done) != requests {
		t.Fatalf("completed requests = %d, want %d", len(done), requests)
	}
}

// procPostgresSchema returns a URL to a fresh schema of the test PostgreSQL, or skips
// (fails under CI) when none is configured.
func procPostgresSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("UBIHOOKS_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("UBIHOOKS_TEST_POSTGRES_URL is required under CI")
		}
		t.Skip("UBIHOOKS_TEST_POSTGRES_URL is not set")
	}
	schema := fmt.Sprintf("ubh_proc_%d", time.Now().UnixNano())
	psql := func(sql string) {
		out, err := exec.Command("psql", base, "-v", "ON_ERROR_STOP=1", "-c", sql).CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
	}
	psql("CREATE SCHEMA " + schema)
	t.Cleanup(func() { psql("DROP SCHEMA " + schema + " CASCADE") })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
