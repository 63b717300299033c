package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// recordingService notes its starts and stops in a shared log; fail makes Start fail.
type recordingService struct {
	name string
	log  *[]string
	fail bool
}

func (s *recordingService) Start(context.Context) error {
	if s.fail {
		return errors.New("refused")
	}
	*s.log = append(*s.log, "start "+s.name)
	return nil
}

func (s *recordingService) Stop(context.Context) error {
	*s.log = append(*s.log, "stop "+s.name)
	return nil
}

func TestServicesStartInOrderStopInReverse(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var got []string
	services := []namedService{{"a", &recordingService{name: "a", log: &got}}, {"b", &recordingService{name: "b", log: &got}},
		{"c", &recordingService{name: "c", log: &got}}}
	if err := startServices(t.Context(), services, log); err != nil {
		t.Fatal(err)
	}
	stopServices(t.Context(), services, log)
	if want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}

	// A service that fails to start stops those started before it, in reverse.
	got = nil
	services[2].svc = &recordingService{name: "c", log: &got, fail: true}
	err := startServices(t.Context(), services, log)
	if err == nil || err.Error() != "start the c: refused" {
		t.Errorf("startServices with a failing service: %v, want \"start the c: refused\"", err)
	}
	if want := []string{"start a", "start b", "stop b", "stop a"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// waitingService stops only once the other service's Stop began, or ctx ended.
type waitingService struct {
	other   chan struct{} // closed when the other service's Stop begins
	stopped chan struct{} // closed when this Stop begins
	waited  bool          // the other began while this one stopped
}

func (s *waitingService) Start(context.Context) error { return nil }

func (s *waitingService) Stop(ctx context.Context) error {
	close(s.stopped)
	select {
	case <-s.other:
		s.waited = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestShutdownStopsAllAtOnce: on shutdown no service waits for another to stop before it
// begins stopping (the engine stops claiming while the HTTP server drains).
func TestShutdownStopsAllAtOnce(t *testing.T) {
	t.Parallel()
	a := &waitingService{stopped: make(chan struct{})}
	b := &waitingService{stopped: make(chan struct{})}
	a.other, b.other = b.stopped, a.stopped
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	shutdownServices(ctx, []namedService{{"a", a}, {"b", b}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !a.waited || !b.waited {
		t.Errorf("a saw b stopping: %v, b saw a stopping: %v; want both", a.waited, b.waited)
	}
}
