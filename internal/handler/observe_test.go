package handler_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ubihooks/ubihooks"
	"github.com/ubihooks/ubihooks/internal/handler"
)

// TestObserveMetrics: ObserveFunc sees each request once, with the route a handler named
// ("unmatched" otherwise) and the status answered, errors and silent handlers included.
func TestObserveMetrics(t *testing.T) {
	t.Parallel()
	type seen struct {
		route  string
		status int
	}
	for _, tc := range []struct {
		name string
		h    handler.Func
		want seen
	}{
		{"named route", func(w http.ResponseWriter, r *http.Request) error {
			handler.SetRoute(r.Context(), "GET /things/{id}")
			w.WriteHeader(http.StatusCreated)
			return nil
		}, seen{"GET /things/{id}", http.StatusCreated}},
		{"unmatched error", func(w http.ResponseWriter, r *http.Request) error {
			return ubihooks.Errorf(ubihooks.ENOTFOUND, "no such endpoint")
		}, seen{"unmatched", http.StatusNotFound}},
		{"nothing written", func(w http.ResponseWriter, r *http.Request) error { return nil }, seen{"unmatched", http.StatusOK}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []seen
			h := handler.New(tc.h, handler.Options{ObserveFunc: func(route string, status int, d time.Duration) {
				if d < 0 {
					t.Errorf("negative duration %v", d)
				}
				got = append(got, seen{route, status})
			}})
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/things/1", nil))
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("observed %v, want [%v]", got, tc.want)
			}
		})
	}
}
