package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []float64
		p      float64
		want   float64
	}{
		{"empty", nil, 50, 0},
		{"one", []float64{7}, 50, 7},
		{"one p99", []float64{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50},
		{"p90 of 1..100", hundred, 90, 90},
		{"p99 of 1..100", hundred, 99, 99},
		{"max of 1..100", hundred, 100, 100},
		{"p50 of four", []float64{1, 2, 3, 4}, 50, 2},
		{"p99 of four", []float64{1, 2, 3, 4}, 99, 4},
		{"p0 is the minimum", []float64{1, 2, 3}, 0, 1},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestWindowRecord(t *testing.T) {
	var w window
	for i := 0; i < 5; i++ {
		w.started()
	}
	w.skip()
	// Completed out of order; only the sorted order matters.
	w.done(40*time.Millisecond, "")
	w.done(1500*time.Microsecond, "")
	w.done(2*time.Second, errTimeout)
	w.done(3*time.Millisecond, errHTTP5xx)

	r := w.take(time.UnixMilli(1764100000123), 1)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ts_ms":1764100000123,"sent":5,"ok":2,"errors":2,"skipped":1,` +
		`"err_kinds":{"timeout":1,"refused":0,"reset":0,"http_5xx":1,"other":0},` +
		`"p50_ms":3.0,"p90_ms":2000.0,"p99_ms":2000.0,"max_ms":2000.0,"inflight":1}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}

	// The next window starts empty.
	b, _ = json.Marshal(w.take(time.UnixMilli(1764100001123), 0))
	if !strings.Contains(string(b), `"sent":0,"ok":0,"errors":0,"skipped":0`) || !strings.Contains(string(b), `"p50_ms":0.0`) {
		t.Errorf("window not reset: %s", b)
	}
}

func TestMillisJSON(t *testing.T) {
	for in, want := range map[millis]string{0: "0.0", 1.9: "1.9", 402: "402.0", 0.0004: "0.0", 0.1234567: "0.123"} {
		b, err := json.Marshal(in)
		if err != nil || string(b) != want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", float64(in), b, err, want)
		}
	}
}
