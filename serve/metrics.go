package serve

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/headstart-ml/headstart"
)

// Metrics counts requests and forwards and writes them in the Prometheus text format
// (version 0.0.4). It is safe for concurrent use. The zero value is not usable: call
// NewMetrics.
type Metrics struct {
	mu         sync.Mutex
	requests   map[routeCode]uint64
	latency    map[string]*histogram // by route
	texts      map[string]uint64     // by route
	truncated  uint64
	batchSize  *histogram
	batchCalls *histogram
	forward    *histogram
	queueWait  *histogram
	tokens     uint64
	padded     uint64
	batchErrs  uint64

	inFlight   atomic.Int64
	queueDepth func() int // nil: not reported
}

type routeCode struct {
	route string
	code  int
}

// Histogram bucket bounds.
var (
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	sizeBuckets    = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}
)

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		requests: map[routeCode]uint64{}, latency: map[string]*histogram{}, texts: map[string]uint64{},
		batchSize: newHistogram(sizeBuckets), batchCalls: newHistogram(sizeBuckets),
		forward: newHistogram(latencyBuckets), queueWait: newHistogram(latencyBuckets),
	}
}

// ObserveBatch records one forward; pass it as headstart.OpenOptions.OnBatch.
func (m *Metrics) ObserveBatch(b headstart.BatchInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batchSize.observe(float64(b.Texts))
	m.batchCalls.observe(float64(b.Calls))
	m.forward.observe(b.Run.Seconds())
	m.queueWait.observe(b.Wait.Seconds())
	m.tokens += uint64(b.Tokens)
	m.padded += uint64(b.Padded)
	if b.Err != nil {
		m.batchErrs++
	}
}

// observeRequest records one answered request.
func (m *Metrics) observeRequest(route string, code int, d time.Duration, texts, truncated int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[routeCode{route, code}]++
	h := m.latency[route]
	if h == nil {
		h = newHistogram(latencyBuckets)
		m.latency[route] = h
	}
	h.observe(d.Seconds())
	m.texts[route] += uint64(texts)
	m.truncated += uint64(truncated)
}

// WriteTo writes the metrics in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	m.mu.Lock()
	p := promWriter{w: bw}
	p.header("headstart_http_requests_total", "counter", "HTTP requests answered, by route and status code (499: the client went away).")
	keys := make([]routeCode, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b routeCode) int {
		if a.route != b.route {
			if a.route < b.route {
				return -1
			}
			return 1
		}
		return a.code - b.code
	})
	for _, k := range keys {
		p.sample("headstart_http_requests_total", labels{"route", k.route, "code", strconv.Itoa(k.code)}, float64(m.requests[k]))
	}
	p.header("headstart_http_request_duration_seconds", "histogram", "Time from a request's arrival to its answer, by route.")
	for _, r := range sortedKeys(m.latency) {
		p.histogram("headstart_http_request_duration_seconds", labels{"route", r}, m.latency[r])
	}
	p.header("headstart_texts_total", "counter", "Texts received in accepted requests, by route.")
	for _, r := range sortedKeys(m.texts) {
		p.sample("headstart_texts_total", labels{"route", r}, float64(m.texts[r]))
	}
	p.header("headstart_truncated_texts_total", "counter", "Texts cut at the model's max_len.")
	p.sample("headstart_truncated_texts_total", nil, float64(m.truncated))
	p.header("headstart_http_requests_in_flight", "gauge", "Requests being handled.")
	p.sample("headstart_http_requests_in_flight", nil, float64(m.inFlight.Load()))
	if m.queueDepth != nil {
		p.header("headstart_queue_depth", "gauge", "Texts waiting for a backbone session.")
		p.sample("headstart_queue_depth", nil, float64(m.queueDepth()))
	}
	p.header("headstart_batch_size", "histogram", "Texts per backbone forward.")
	p.histogram("headstart_batch_size", nil, m.batchSize)
	p.header("headstart_batch_requests", "histogram", "Calls (requests, or chunks of long ones) merged into one backbone forward.")
	p.histogram("headstart_batch_requests", nil, m.batchCalls)
	p.header("headstart_forward_duration_seconds", "histogram", "Time of one backbone forward with pooling and heads.")
	p.histogram("headstart_forward_duration_seconds", nil, m.forward)
	p.header("headstart_queue_wait_seconds", "histogram", "Time the oldest text of a forward waited for it.")
	p.histogram("headstart_queue_wait_seconds", nil, m.queueWait)
	p.header("headstart_tokens_total", "counter", "Real tokens run through the backbone.")
	p.sample("headstart_tokens_total", nil, float64(m.tokens))
	p.header("headstart_padded_tokens_total", "counter", "Token positions computed (real and padding).")
	p.sample("headstart_padded_tokens_total", nil, float64(m.padded))
	p.header("headstart_forward_errors_total", "counter", "Backbone forwards that failed.")
	p.sample("headstart_forward_errors_total", nil, float64(m.batchErrs))
	m.mu.Unlock()
	err := bw.Flush()
	return cw.n, err
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// histogram counts observations in buckets with upper bounds (le) bounds.
type histogram struct {
	bounds []float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // first bound >= v
	h.counts[i]++
	h.sum += v
	h.count++
}

// labels are name, value pairs.
type labels []string

type promWriter struct{ w *bufio.Writer }

func (p promWriter) header(name, typ, help string) {
	p.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

func (p promWriter) sample(name string, l labels, v float64) {
	p.w.WriteString(name)
	if len(l) > 0 {
		p.w.WriteByte('{')
		for i := 0; i < len(l); i += 2 {
			if i > 0 {
				p.w.WriteByte(',')
			}
			p.w.WriteString(l[i] + `="` + escapeLabel(l[i+1]) + `"`)
		}
		p.w.WriteByte('}')
	}
	p.w.WriteByte(' ')
	p.w.WriteString(formatValue(v))
	p.w.WriteByte('\n')
}

func (p promWriter) histogram(name string, l labels, h *histogram) {
	var cum uint64
	for i, c := range h.counts {
		cum += c
		le := "+Inf"
		if i < len(h.bounds) {
			le = formatValue(h.bounds[i])
		}
		p.sample(name+"_bucket", append(slices.Clip(l), "le", le), float64(cum))
	}
	p.sample(name+"_sum", l, h.sum)
	p.sample(name+"_count", l, float64(h.count))
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeLabel escapes a label value: backslash, double quote and line feed.
func escapeLabel(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
