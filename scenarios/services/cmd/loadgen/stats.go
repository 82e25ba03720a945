package main

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Error kinds counted in err_kinds.
const (
	errTimeout = "timeout"
	errRefused = "refused"
	errReset   = "reset"
	errHTTP5xx = "http_5xx"
	errOther   = "other"
)

// record is one line of the stats file: one second of what users felt.
type record struct {
	TsMs     int64    `json:"ts_ms"`
	Sent     int64    `json:"sent"`
	OK       int64    `json:"ok"`
	Errors   int64    `json:"errors"`
	Skipped  int64    `json:"skipped"`
	ErrKinds errKinds `json:"err_kinds"`
	P50Ms    millis   `json:"p50_ms"`
	P90Ms    millis   `json:"p90_ms"`
	P99Ms    millis   `json:"p99_ms"`
	MaxMs    millis   `json:"max_ms"`
	Inflight int64    `json:"inflight"`
}

type errKinds struct {
	Timeout int64 `json:"timeout"`
	Refused int64 `json:"refused"`
	Reset   int64 `json:"reset"`
	HTTP5xx int64 `json:"http_5xx"`
	Other   int64 `json:"other"`
}

func (k *errKinds) add(kind string) {
	switch kind {
	case errTimeout:
		k.Timeout++
	case errRefused:
		k.Refused++
	case errReset:
		k.Reset++
	case errHTTP5xx:
		k.HTTP5xx++
	default:
		k.Other++
	}
}

// millis is a latency in milliseconds, written to the microsecond and always
// with a decimal point, so readers see a float even for whole values.
type millis float64

func (m millis) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(math.Round(float64(m)*1000)/1000, 'f', -1, 64)
	for _, c := range s {
		if c == '.' || c == 'e' {
			return []byte(s), nil
		}
	}
	return []byte(s + ".0"), nil
}

// window accumulates one second of outcomes. Safe for concurrent use.
type window struct {
	mu      sync.Mutex
	sent    int64
	ok      int64
	errors  int64
	skipped int64
	kinds   errKinds
	lat     []float64 // ms, of requests completed in this window
}

func (w *window) started() {
	w.mu.Lock()
	w.sent++
	w.mu.Unlock()
}

func (w *window) skip() {
	w.mu.Lock()
	w.skipped++
	w.mu.Unlock()
}

// done records a completed request; kind is "" for success.
func (w *window) done(latency time.Duration, kind string) {
	ms := float64(latency) / float64(time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind == "" {
		w.ok++
	} else {
		w.errors++
		w.kinds.add(kind)
	}
	w.lat = append(w.lat, ms)
}

// take closes the window at now and starts the next one.
func (w *window) take(now time.Time, inflight int64) record {
	w.mu.Lock()
	r := record{
		TsMs:     now.UnixNano() / int64(time.Millisecond),
		Sent:     w.sent,
		OK:       w.ok,
		Errors:   w.errors,
		Skipped:  w.skipped,
		ErrKinds: w.kinds,
		Inflight: inflight,
	}
	lat := w.lat
	w.sent, w.ok, w.errors, w.skipped, w.kinds = 0, 0, 0, 0, errKinds{}
	w.lat = make([]float64, 0, cap(lat))
	w.mu.Unlock()

	sort.Float64s(lat)
	r.P50Ms = millis(percentile(lat, 50))
	r.P90Ms = millis(percentile(lat, 90))
	r.P99Ms = millis(percentile(lat, 99))
	r.MaxMs = millis(percentile(lat, 100))
	return r
}

// percentile is the nearest-rank p-th percentile of sorted samples: the
// smallest sample that at least p% of the samples are ≤. 0 when empty.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}
