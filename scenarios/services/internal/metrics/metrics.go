// Package metrics is a small Prometheus text-format (version 0.0.4) writer:
// counters, gauges and histograms with labels, enough for the services'
// /metrics endpoint without depending on the Prometheus client library.
package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// LatencyBuckets are the default histogram upper bounds, in seconds: from
// half a millisecond (a loopback hop) to ten seconds (a hung peer).
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Registry holds metric families and writes them in registration order.
type Registry struct {
	mu       sync.Mutex
	constant []labelPair
	families []family
}

type labelPair struct{ name, value string }

type family interface {
	write(b *bytes.Buffer, constant []labelPair)
}

// NewRegistry returns a registry whose series all carry the given constant
// labels, passed as name, value pairs.
func NewRegistry(constLabels ...string) *Registry {
	if len(constLabels)%2 != 0 {
		panic("metrics: constant labels must be name, value pairs")
	}
	r := &Registry{}
	for i := 0; i < len(constLabels); i += 2 {
		r.constant = append(r.constant, labelPair{constLabels[i], constLabels[i+1]})
	}
	return r
}

func (r *Registry) register(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families = append(r.families, f)
}

// WriteText writes every family in the Prometheus text format.
func (r *Registry) WriteText(w io.Writer) error {
	var b bytes.Buffer
	r.mu.Lock()
	for _, f := range r.families {
		f.write(&b, r.constant)
	}
	r.mu.Unlock()
	_, err := w.Write(b.Bytes())
	return err
}

// ServeHTTP serves the registry as a /metrics endpoint.
func (r *Registry) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = r.WriteText(w)
}

type desc struct {
	name, help, typ string
	labels          []string
}

func (d *desc) writeHeader(b *bytes.Buffer) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", d.name, escapeHelp(d.help), d.name, d.typ)
}

// vec is the label-values → series map shared by every metric kind.
type vec struct {
	desc
	mu     sync.Mutex
	series map[string]interface{}
	newFn  func(values []string) interface{}
}

func (v *vec) with(values []string) interface{} {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: %s wants %d label values, got %d", v.name, len(v.labels), len(values)))
	}
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.series[key]
	if !ok {
		s = v.newFn(append([]string(nil), values...))
		v.series[key] = s
	}
	return s
}

// sorted returns the series ordered by their label values, so output is stable.
func (v *vec) sorted() []interface{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := make([]string, 0, len(v.series))
	for k := range v.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]interface{}, len(keys))
	for i, k := range keys {
		out[i] = v.series[k]
	}
	return out
}

// CounterVec is a counter family partitioned by label values.
type CounterVec struct{ vec }

// Counter is one monotonically increasing series.
type Counter struct {
	values []string
	n      atomic.Uint64
}

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.n.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.n.Load() }

// Counter registers a counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	v := &CounterVec{vec{
		desc:   desc{name: name, help: help, typ: "counter", labels: labels},
		series: map[string]interface{}{},
		newFn:  func(values []string) interface{} { return &Counter{values: values} },
	}}
	r.register(v)
	return v
}

// With returns the series for the given label values, creating it at zero.
func (v *CounterVec) With(values ...string) *Counter { return v.with(values).(*Counter) }

func (v *CounterVec) write(b *bytes.Buffer, constant []labelPair) {
	v.writeHeader(b)
	for _, s := range v.sorted() {
		c := s.(*Counter)
		writeSample(b, v.name, constant, v.labels, c.values, "", "", strconv.FormatUint(c.Value(), 10))
	}
}

// GaugeVec is a gauge family partitioned by label values.
type GaugeVec struct{ vec }

// Gauge is one series that can go up and down.
type Gauge struct {
	values []string
	bits   atomic.Uint64
}

// Set sets the gauge to x.
func (g *Gauge) Set(x float64) { g.bits.Store(math.Float64bits(x)) }

// Value returns the current value.
func (g *Gauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }

// Gauge registers a gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	v := &GaugeVec{vec{
		desc:   desc{name: name, help: help, typ: "gauge", labels: labels},
		series: map[string]interface{}{},
		newFn:  func(values []string) interface{} { return &Gauge{values: values} },
	}}
	r.register(v)
	return v
}

// With returns the series for the given label values, creating it at zero.
func (v *GaugeVec) With(values ...string) *Gauge { return v.with(values).(*Gauge) }

func (v *GaugeVec) write(b *bytes.Buffer, constant []labelPair) {
	v.writeHeader(b)
	for _, s := range v.sorted() {
		g := s.(*Gauge)
		writeSample(b, v.name, constant, v.labels, g.values, "", "", formatFloat(g.Value()))
	}
}

type gaugeFunc struct {
	desc
	fn func() float64
}

// GaugeFunc registers an unlabelled gauge whose value is read at scrape time.
func (r *Registry) GaugeFunc(name, help string, fn func() float64) {
	r.register(&gaugeFunc{desc{name: name, help: help, typ: "gauge"}, fn})
}

func (g *gaugeFunc) write(b *bytes.Buffer, constant []labelPair) {
	g.writeHeader(b)
	writeSample(b, g.name, constant, nil, nil, "", "", formatFloat(g.fn()))
}

// HistogramVec is a histogram family partitioned by label values.
type HistogramVec struct {
	vec
	buckets []float64
}

// Histogram is one series of observations counted into fixed buckets.
type Histogram struct {
	values []string
	upper  []float64

	mu     sync.Mutex
	counts []uint64 // counts[i] = observations in (upper[i-1], upper[i]]; the last is +Inf
	sum    float64
}

// Histogram registers a histogram family with the given bucket upper bounds
// (sorted ascending; +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) *HistogramVec {
	if !sort.Float64sAreSorted(buckets) {
		panic("metrics: histogram buckets must be sorted: " + name)
	}
	v := &HistogramVec{buckets: buckets}
	v.vec = vec{
		desc:   desc{name: name, help: help, typ: "histogram", labels: labels},
		series: map[string]interface{}{},
		newFn: func(values []string) interface{} {
			return &Histogram{values: values, upper: v.buckets, counts: make([]uint64, len(v.buckets)+1)}
		},
	}
	r.register(v)
	return v
}

// With returns the series for the given label values, creating it empty.
func (v *HistogramVec) With(values ...string) *Histogram { return v.with(values).(*Histogram) }

// Observe records one value (seconds, for latency histograms).
func (h *Histogram) Observe(x float64) {
	i := sort.SearchFloat64s(h.upper, x) // first bound >= x, as "le" means
	h.mu.Lock()
	h.counts[i]++
	h.sum += x
	h.mu.Unlock()
}

func (v *HistogramVec) write(b *bytes.Buffer, constant []labelPair) {
	v.writeHeader(b)
	for _, s := range v.sorted() {
		h := s.(*Histogram)
		h.mu.Lock()
		counts := append([]uint64(nil), h.counts...)
		sum := h.sum
		h.mu.Unlock()

		var cum uint64
		for i, c := range counts {
			cum += c
			le := "+Inf"
			if i < len(h.upper) {
				le = formatFloat(h.upper[i])
			}
			writeSample(b, v.name+"_bucket", constant, v.labels, h.values, "le", le, strconv.FormatUint(cum, 10))
		}
		writeSample(b, v.name+"_sum", constant, v.labels, h.values, "", "", formatFloat(sum))
		writeSample(b, v.name+"_count", constant, v.labels, h.values, "", "", strconv.FormatUint(cum, 10))
	}
}

func writeSample(b *bytes.Buffer, name string, constant []labelPair, labels, values []string, extraName, extraValue, value string) {
	b.WriteString(name)
	n := 0
	sep := func() {
		if n == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		n++
	}
	for _, p := range constant {
		sep()
		writeLabel(b, p.name, p.value)
	}
	for i, l := range labels {
		sep()
		writeLabel(b, l, values[i])
	}
	if extraName != "" {
		sep()
		writeLabel(b, extraName, extraValue)
	}
	if n > 0 {
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}

func writeLabel(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(labelEscaper.Replace(value))
	b.WriteByte('"')
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

func formatFloat(x float64) string {
	switch {
	case math.IsInf(x, +1):
		return "+Inf"
	case math.IsInf(x, -1):
		return "-Inf"
	case math.IsNaN(x):
		return "NaN"
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}
