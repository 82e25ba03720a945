package metrics

import (
	"strings"
	"testing"
)

func TestHistogramText(t *testing.T) {
	r := NewRegistry("name", "api-0")
	h := r.Histogram("sandbox_upstream_duration_seconds", "Upstream call latency.", []float64{0.01, 0.1, 1}, "upstream")
	up := h.With("http://backend:8080")
	for _, x := range []float64{0.005, 0.01, 0.05, 0.5, 3} {
		up.Observe(x)
	}

	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP sandbox_upstream_duration_seconds Upstream call latency.
# TYPE sandbox_upstream_duration_seconds histogram
sandbox_upstream_duration_seconds_bucket{name="api-0",upstream="http://backend:8080",le="0.01"} 2
sandbox_upstream_duration_seconds_bucket{name="api-0",upstream="http://backend:8080",le="0.1"} 3
sandbox_upstream_duration_seconds_bucket{name="api-0",upstream="http://backend:8080",le="1"} 4
sandbox_upstream_duration_seconds_bucket{name="api-0",upstream="http://backend:8080",le="+Inf"} 5
sandbox_upstream_duration_seconds_sum{name="api-0",upstream="http://backend:8080"} 3.565
sandbox_upstream_duration_seconds_count{name="api-0",upstream="http://backend:8080"} 5
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestCountersGaugesAndEscaping(t *testing.T) {
	r := NewRegistry()
	c := r.Counter("sandbox_requests_total", "Requests served.", "code")
	c.With("502").Inc()
	c.With("200").Add(3)
	g := r.Gauge("sandbox_app_fault", "Active app fault.", "kind")
	g.With(`we"ird\`).Set(1)
	r.GaugeFunc("sandbox_goroutines", "Goroutines.", func() float64 { return 7 })

	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP sandbox_requests_total Requests served.
# TYPE sandbox_requests_total counter
sandbox_requests_total{code="200"} 3
sandbox_requests_total{code="502"} 1
# HELP sandbox_app_fault Active app fault.
# TYPE sandbox_app_fault gauge
sandbox_app_fault{kind="we\"ird\\"} 1
# HELP sandbox_goroutines Goroutines.
# TYPE sandbox_goroutines gauge
sandbox_goroutines 7
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWithWrongArityPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("With with too few label values did not panic")
		}
	}()
	NewRegistry().Counter("c_total", "c", "a", "b").With("x")
}
