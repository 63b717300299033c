package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/sqlite"
	"github.com/ubihooks/ubihooks/internal/ubihookstest"
)

// TestSIGTERMAnswersWaitingRequests: on SIGTERM a direct request that waits for a run
// (here one that would wait 60s) is answered at once with a 503 in the API's error shape,
// rather than using up the shutdown grace; a second SIGTERM ends the process at once.
func TestSIGTERMAnswersWaitingRequests(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("process test")
	}
	env := []string{"UBIHOOKS_DATABASE=" + filepath.Join(t.TempDir(), "u.db"), "UBIHOOKS_ALLOW_NETWORKS=127.0.0.0/8"}
	token := procToken(t, env)
	backend := ubihookstest.NewBackend(t, ubihookstest.BackendConfig{Hold: ubihookstest.HoldAll})
	s := procStart(t, env, "--shutdown-timeout", "60s")
	api := s.api(t, token)
	procSetupDeployment(t, api, backend.URL, nil, "")

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", api.URL+"/deployments/d/requests?timeout=60", strings.NewReader(`{"x": 1}`))
		req.Header.Set("Authorization", "Token "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer res.Body.Close()
		var body map[string]any
		err = json.NewDecoder(res.Body).Decode(&body)
		answered <- answer{res.StatusCode, body, err}
	}()
	backend.WaitHeld(t, 30*time.Second, 1)

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answered:
		msg, _ := a.body["error"].(string)
		if a.err != nil || a.status != http.StatusServiceUnavailable || msg == "" || len(a.body) != 1 {
			t.Errorf("direct request at SIGTERM: status %d, body %v, err %v; want 503 with {\"error\": ...}", a.status, a.body, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the waiting direct request was not answered within 10s of SIGTERM")
	}

	// The executor still waits for the held run; a second signal does not.
	s.logs.Changed.Until(t, 10*time.Second, "the shutdown to begin", func() bool { return strings.Contains(s.logs.String(), "shutting down") })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a second SIGTERM did not end the process within 10s")
	}
}

// TestSIGTERMUnderLoadLeavesNothingLeased: a clean SIGTERM while deliveries are being
// sent, claimed ahead and dispatched leaves none of them leased to the stopped process:
// what it did not finish is pending again at once, for the next server, rather than after
// a lease. It logs how long the process took to exit.
func TestSIGTERMUnderLoadLeavesNothingLeased(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("process test")
	}
	db := filepath.Join(t.TempDir(), "u.db")
	env := []string{"UBIHOOKS_DATABASE=" + db, "UBIHOOKS_ALLOW_NETWORKS=127.0.0.0/8", "UBIHOOKS_LOG_LEVEL=warn"}
	token := procToken(t, env)
	// Receivers on several ports (several hosts, each with its own send slots) that take a
	// moment, so that sends are in flight, claims run ahead and a backlog waits.
	var recvs []*ubihookstest.Receiver
	var urls []string
	for range 8 {
		r := ubihookstest.NewReceiver(t, ubihookstest.ReceiverConfig{Respond: func(_ *ubihookstest.Arrival, w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNoContent)
		}})
		recvs = append(recvs, r)
		urls = append(urls, r.URL+"/hook")
	}
	received := func() int {
		n := 0
		for _, r := range recvs {
			n += r.Count()
		}
		return n
	}
	backend := procModelServer(t, time.Millisecond)
	s := procStart(t, env)
	api := s.api(t, token)
	procSetupDeployment(t, api, backend, urls, "deployment_request_completed")
	inputs := make([]map[string]any, 500)
	for i := range inputs {
		inputs[i] = map[string]any{"x": i}
	}
	for range 4 { // 2,000 requests, 16,000 deliveries
		api.Decode("POST", "/deployments/d/requests/batch", inputs, nil)
	}
	recvs[0].Until(t, 60*time.Second, "deliveries under way", func() bool { return received() >= 2000 })
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("no exit within 60s of SIGTERM")
	}
	took := time.Since(start)
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	st, err := sqlite.Open(t.Context(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(status string) int {
		var n int
		if err := st.DB().QueryRow(`SELECT COUNT(*) FROM deliveries WHERE status = ?`, status).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sending, pending := count("sending"), count("pending")
	t.Logf("SIGTERM under load: exit after %s, %d deliveries received, %d left sending, %d pending", took.Round(time.Millisecond), received(), sending, pending)
	if sending != 0 {
		t.Errorf("%d deliveries left sending (leased to the stopped process), want 0", sending)
	}
}
