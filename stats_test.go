package ubihooks

import (
	"reflect"
	"testing"
	"time"
)

func TestDurationPercentile(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name    string
		sorted  []time.Duration
		percent int
		want    time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one p95", ms(7), 95, 7 * time.Millisecond},
		{"two p50", ms(1, 9), 50, time.Millisecond},
		{"three p50", ms(1, 2, 9), 50, 2 * time.Millisecond},
		{"four p50", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"twenty p95", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 95, 19 * time.Millisecond},
		{"hundred p95", ms(hundred...), 95, 95 * time.Millisecond},
		{"hundred p7 (7.000000000000001 in floating point)", ms(hundred...), 7, 7 * time.Millisecond},
		{"p100", ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := DurationPercentile(tc.sorted, tc.percent); got != tc.want {
			t.Errorf("%s: DurationPercentile(%d) = %v, want %v", tc.name, tc.percent, got, tc.want)
		}
	}
}

func TestStatsBuckets(t *testing.T) {
	t.Parallel()
	since := time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	h := func(n int) time.Time { return since.Add(time.Duration(n) * time.Hour) }
	starts := func(bs []StatsBucket) []time.Time {
		out := make([]time.Time, len(bs))
		for i, b := range bs {
			out[i] = b.Start
		}
		return out
	}

	// An hour: one bucket, whatever came in.
	got := StatsBuckets([]StatsBucket{{Start: h(0), Succeeded: 2, Failed: 1}}, since, h(1))
	if want := []StatsBucket{{Start: since, Succeeded: 2, Failed: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("1h window: %v, want %v", got, want)
	}

	// A day: 24 hourly buckets, empty ones included, input order irrelevant.
	got = StatsBuckets([]StatsBucket{{Start: h(23), Failed: 4}, {Start: h(2), Succeeded: 1}, {Start: h(0), Succeeded: 3}}, since, h(24))
	if len(got) != 24 {
		t.Fatalf("24h window: %d buckets, want 24", len(got))
	}
	for i, b := range got {
		want := StatsBucket{Start: h(i)}
		switch i {
		case 0:
			want.Succeeded = 3
		case 2:
			want.Succeeded = 1
		case 23:
			want.Failed = 4
		}
		if b != want {
			t.Errorf("24h window, bucket %d = %v, want %v", i, b, want)
		}
	}

	// A week: 28 buckets of six hours; hours 0-5 fall in the first, 6 in the second, 167 in
	// the last.
	got = StatsBuckets([]StatsBucket{{Start: h(0), Succeeded: 1}, {Start: h(5), Succeeded: 1, Failed: 2}, {Start: h(6), Failed: 1},
		{Start: h(167), Succeeded: 5}}, since, h(168))
	if len(got) != 28 || !got[27].Start.Equal(h(162)) {
		t.Fatalf("7d window: %d buckets, last from %v; want 28, the last from %v", len(got), starts(got)[len(got)-1], h(162))
	}
	if got[0] != (StatsBucket{Start: since, Succeeded: 2, Failed: 2}) || got[1] != (StatsBucket{Start: h(6), Failed: 1}) ||
		got[27] != (StatsBucket{Start: h(162), Succeeded: 5}) {
		t.Errorf("7d window: first buckets %v, %v, last %v", got[0], got[1], got[27])
	}

	// Buckets outside the window count in the nearest one.
	got = StatsBuckets([]StatsBucket{{Start: h(-1), Succeeded: 1}, {Start: h(30), Failed: 1}}, since, h(24))
	if got[0].Succeeded != 1 || got[23].Failed != 1 {
		t.Errorf("out of window: first %v, last %v; want the counts there", got[0], got[23])
	}
}

func TestStatsWindows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want time.Duration
		size time.Duration
	}{{"1h", time.Hour, time.Hour}, {"24h", 24 * time.Hour, time.Hour}, {"7d", 168 * time.Hour, 6 * time.Hour}} {
		got, err := ParseStatsWindow(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("ParseStatsWindow(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
		if n := StatsWindowName(got); n != tc.name {
			t.Errorf("StatsWindowName(%v) = %q, want %q", got, n, tc.name)
		}
		if err := ValidateStatsWindow(got); err != nil {
			t.Errorf("ValidateStatsWindow(%v) = %v", got, err)
		}
		if s := StatsBucketSize(got); s != tc.size {
			t.Errorf("StatsBucketSize(%v) = %v, want %v", got, s, tc.size)
		}
	}
	for _, bad := range []string{"", "2h", "1d", "168h", "7D", " 1h"} {
		_, err := ParseStatsWindow(bad)
		if ErrorCode(err) != EINVALID || ErrorMessage(err) != "window must be one of 1h, 24h, 7d" {
			t.Errorf("ParseStatsWindow(%q) = %v, want EINVALID with the windows", bad, err)
		}
	}
	if err := ValidateStatsWindow(2 * time.Hour); ErrorCode(err) != EINVALID {
		t.Errorf("ValidateStatsWindow(2h) = %v, want EINVALID", err)
	}
	for _, tc := range []struct {
		s, f int
		want float64
	}{{0, 0, -1}, {3, 1, 0.75}, {0, 2, 0}, {5, 0, 1}} {
		if got := SuccessRate(tc.s, tc.f); got != tc.want {
			t.Errorf("SuccessRate(%d, %d) = %v, want %v", tc.s, tc.f, got, tc.want)
		}
	}
}
