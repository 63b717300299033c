package service

import "sync"

// requestWaiters wakes in-process callers that wait for a request to finish (direct
// requests). Waiters on other replicas poll the store instead.
type requestWaiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

func (w *requestWaiters) init() { w.m = map[string][]chan struct{}{} }

// wait returns a channel closed when the request finishes in this process, and a cancel.
func (w *requestWaiters) wait(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	w.mu.Lock()
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[id]
		for i, c := range list {
			if c == ch {
				w.m[id] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(w.m[id]) == 0 {
			delete(w.m, id)
		}
	}
}

// done wakes every waiter of the request.
func (w *requestWaiters) done(id string) {
	w.mu.Lock()
	list := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	for _, c := range list {
		close(c)
	}
}
