package serve

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headstart-ml/headstart"
)

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)`)
)

type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseProm parses the Prometheus text format strictly: every sample belongs to a
// family declared by # TYPE before it, names and labels are well formed, values parse,
// and histograms have cumulative buckets ending in +Inf equal to _count.
func parseProm(r io.Reader) (map[string]string, []promSample, error) {
	types := map[string]string{}
	var samples []promSample
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if strings.HasPrefix(s, "#") {
			f := strings.SplitN(s, " ", 4)
			if len(f) < 4 || (f[1] != "HELP" && f[1] != "TYPE") || !metricName.MatchString(f[2]) {
				return nil, nil, fmt.Errorf("line %d: bad comment %q", line, s)
			}
			if f[1] == "TYPE" {
				if _, dup := types[f[2]]; dup {
					return nil, nil, fmt.Errorf("line %d: %s declared twice", line, f[2])
				}
				switch f[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, nil, fmt.Errorf("line %d: type %q", line, f[3])
				}
				types[f[2]] = f[3]
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(s)
		if m == nil {
			return nil, nil, fmt.Errorf("line %d: bad sample %q", line, s)
		}
		smp := promSample{name: m[1], labels: map[string]string{}}
		for rest := m[3]; rest != ""; {
			lp := labelPair.FindStringSubmatch(rest)
			if lp == nil {
				return nil, nil, fmt.Errorf("line %d: bad labels %q", line, m[3])
			}
			smp.labels[lp[1]] = lp[2]
			rest = rest[len(lp[0]):]
		}
		v, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: value %q: %v", line, m[4], err)
		}
		smp.value = v
		family := smp.name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(smp.name, suf); ok && types[b] == "histogram" {
				family = b
			}
		}
		typ, ok := types[family]
		if !ok {
			return nil, nil, fmt.Errorf("line %d: %s has no # TYPE before it", line, smp.name)
		}
		if typ == "counter" && !(v >= 0) {
			return nil, nil, fmt.Errorf("line %d: counter %s = %g", line, smp.name, v)
		}
		samples = append(samples, smp)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	// Histograms: buckets cumulative, +Inf last and equal to _count.
	type key struct{ name, labels string }
	last := map[key]float64{}
	inf := map[key]float64{}
	for _, s := range samples {
		base, ok := strings.CutSuffix(s.name, "_bucket")
		if !ok || types[base] != "histogram" {
			continue
		}
		le := s.labels["le"]
		rest := fmt.Sprint(without(s.labels, "le"))
		k := key{base, rest}
		if prev, seen := last[k]; seen && s.value < prev {
			return nil, nil, fmt.Errorf("%s%s: bucket le=%s = %g below the previous %g", base, rest, le, s.value, prev)
		}
		last[k] = s.value
		if le == "+Inf" {
			inf[k] = s.value
		}
	}
	for _, s := range samples {
		base, ok := strings.CutSuffix(s.name, "_count")
		if !ok || types[base] != "histogram" {
			continue
		}
		k := key{base, fmt.Sprint(s.labels)}
		if v, ok := inf[k]; !ok || v != s.value {
			return nil, nil, fmt.Errorf("%s%v: +Inf bucket %g, count %g", base, s.labels, v, s.value)
		}
	}
	return types, samples, nil
}

func without(m map[string]string, drop string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != drop {
			out[k] = v
		}
	}
	return out
}

func find(samples []promSample, name string, labels ...string) (float64, bool) {
outer:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for i := 0; i < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue outer
			}
		}
		return s.value, true
	}
	return math.NaN(), false
}

func TestMetricsParse(t *testing.T) {
	metrics := NewMetrics()
	m := openModel(t, headstart.OpenOptions{Batching: true, OnBatch: metrics.ObserveBatch})
	srv := httptest.NewServer(New(m, Options{Metrics: metrics}))
	defer srv.Close()
	for range 3 {
		post(t, srv.URL+RouteEmbed, textsBody("a", strings.Repeat("long ", 200)))
	}
	post(t, srv.URL+RouteClassify, textsBody("b"))
	post(t, srv.URL+RouteClassify, `{"texts": 1}`)
	http.Get(srv.URL + "/nowhere")
	resp, err := http.Get(srv.URL + RouteMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	types, samples, err := parseProm(strings.NewReader(string(text)))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for name, typ := range map[string]string{
		"headstart_http_requests_total": "counter", "headstart_http_request_duration_seconds": "histogram",
		"headstart_batch_size": "histogram", "headstart_queue_depth": "gauge", "headstart_http_requests_in_flight": "gauge",
	} {
		if types[name] != typ {
			t.Errorf("%s: type %q; want %s", name, types[name], typ)
		}
	}
	// 4 requests reached the model: 4 or more forwards (a long text and a short one may
	// run apart), 7 texts.
	if v, _ := find(samples, "headstart_batch_size_count"); !(v >= 4 && v <= 7) {
		t.Errorf("headstart_batch_size_count = %g; want 4 to 7", v)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"headstart_http_requests_total", []string{"route", RouteEmbed, "code", "200"}, 3},
		{"headstart_http_requests_total", []string{"route", RouteClassify, "code", "200"}, 1},
		{"headstart_http_requests_total", []string{"route", RouteClassify, "code", "400"}, 1},
		{"headstart_http_requests_total", []string{"route", "other", "code", "404"}, 1},
		{"headstart_http_request_duration_seconds_count", []string{"route", RouteEmbed}, 3},
		{"headstart_texts_total", []string{"route", RouteEmbed}, 6},
		{"headstart_truncated_texts_total", nil, 3},
		{"headstart_batch_size_sum", nil, 7},
		{"headstart_queue_depth", nil, 0},
		{"headstart_http_requests_in_flight", nil, 1}, // this scrape
	} {
		if v, ok := find(samples, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %g (found %v); want %g", c.name, c.labels, v, ok, c.want)
		}
	}
}

// TestHistogram: bucket boundaries are inclusive upper bounds (le).
func TestHistogram(t *testing.T) {
	h := newHistogram([]float64{1, 2, 4})
	for _, v := range []float64{0.5, 1, 1.5, 2, 3, 4, 5, 100} {
		h.observe(v)
	}
	if got := fmt.Sprint(h.counts); got != "[2 2 2 2]" || h.count != 8 || h.sum != 117 {
		t.Fatalf("counts %s, count %d, sum %g", got, h.count, h.sum)
	}
	if got := escapeLabel("a\"b\\c\nd"); got != `a\"b\\c\nd` {
		t.Fatalf("escapeLabel: %s", got)
	}
	var sb strings.Builder
	m := NewMetrics()
	m.observeRequest(`/x"y`, 200, time.Millisecond, 1, 0)
	m.WriteTo(&sb)
	if _, _, err := parseProm(strings.NewReader(sb.String())); err != nil {
		t.Fatalf("%v\n%s", err, sb.String())
	}
}
