package metrics_test

import (
	"testing"
	"time"

	"github.com/ubihooks/ubihooks/internal/metrics"
)

// BenchmarkDelivery is what the delivery engine records per delivery: one attempt and
// one final outcome.
func BenchmarkDelivery(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	for b.Loop() {
		m.Attempt("", 3*time.Millisecond)
		m.DeliveryFinished("succeeded")
	}
}
