package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
