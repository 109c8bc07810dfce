package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

type headJSON struct {
	Label string             `json:"label"`
	Probs map[string]float64 `json:"probs"`
}

type embedJSON struct {
	Embeddings [][]float64 `json:"embeddings"`
	Truncated  []bool      `json:"truncated"`
}

type classifyJSON struct {
	Results   []map[string]headJSON `json:"results"`
	Truncated []bool                `json:"truncated"`
}

func post(t testing.TB, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func textsBody(texts ...string) string {
	b, _ := json.Marshal(map[string][]string{"texts": texts})
	return string(b)
}

// TestEndpoints checks every endpoint's answer and every refusal: status, JSON body
// (an "error" message for refusals) and content type.
func TestEndpoints(t *testing.T) {
	m := openModel(t, headstart.OpenOptions{Batching: true, MaxWait: time.Millisecond})
	srv := httptest.NewServer(New(m, Options{Limits: Limits{MaxBodyBytes: 4096, MaxTexts: 4, MaxTextBytes: 1000}}))
	defer srv.Close()
	texts := []string{"I lost my card yesterday", "how long does a transfer to another country take?"}
	want, err := m.Run(context.Background(), texts, headstart.TaskEmbed|headstart.TaskClassify)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("card ", 190) // 950 bytes, more than 128 tokens

	huge := `{"texts": ["` + strings.Repeat("a", 5000) + `"]}`
	cases := []struct {
		name, method, path, body string
		code                     int
		errHas                   string // substring of the error message; "" for a success
	}{
		{"embed", "POST", RouteEmbed, textsBody(texts...), 200, ""},
		{"classify", "POST", RouteClassify, textsBody(texts...), 200, ""},
		{"truncated", "POST", RouteEmbed, textsBody("hi", long), 200, ""},
		{"health", "GET", RouteHealth, "", 200, ""},
		{"metrics", "GET", RouteMetrics, "", 200, ""},
		{"unknown path", "GET", "/v2/embed", "", 404, "no endpoint"},
		{"root", "GET", "/", "", 404, "no endpoint"},
		{"GET embed", "GET", RouteEmbed, "", 405, "takes POST"},
		{"POST metrics", "POST", RouteMetrics, "{}", 405, "takes GET"},
		{"empty body", "POST", RouteEmbed, "", 400, "empty request body"},
		{"blank body", "POST", RouteEmbed, " \n ", 400, "empty request body"},
		{"not JSON", "POST", RouteEmbed, "texts=hello", 400, "invalid JSON"},
		{"truncated JSON", "POST", RouteEmbed, `{"texts": ["a"`, 400, "ends early"},
		{"trailing data", "POST", RouteEmbed, `{"texts": ["a"]}{}`, 400, "after the object"},
		{"array body", "POST", RouteEmbed, `["a"]`, 400, "want an object"},
		{"null body", "POST", RouteEmbed, `null`, 400, `missing field "texts"`},
		{"missing texts", "POST", RouteEmbed, `{}`, 400, `missing field "texts"`},
		{"null texts", "POST", RouteEmbed, `{"texts": null}`, 400, `"texts" is null`},
		{"repeated texts", "POST", RouteEmbed, `{"texts": ["a"], "texts": ["b"]}`, 400, `"texts" appears twice`},
		{"case-variant texts", "POST", RouteEmbed, `{"Texts": ["a"]}`, 400, `unknown field "Texts"`},
		{"blank text", "POST", RouteClassify, `{"texts": ["a", " \t"]}`, 400, "texts[1]"},
		{"texts a string", "POST", RouteEmbed, `{"texts": "a"}`, 400, "want an array of strings"},
		{"texts an object", "POST", RouteEmbed, `{"texts": {"a": 1}}`, 400, "want an array of strings"},
		{"number text", "POST", RouteClassify, `{"texts": ["a", 3]}`, 400, "want a string"},
		{"nested array", "POST", RouteEmbed, `{"texts": [["a"]]}`, 400, "want a string"},
		{"null text", "POST", RouteEmbed, `{"texts": ["a", null]}`, 400, "texts[1] is null"},
		{"unknown field", "POST", RouteEmbed, `{"texts": ["a"], "model": "x"}`, 400, `unknown field "model"`},
		{"empty texts", "POST", RouteEmbed, `{"texts": []}`, 400, `"texts" is empty`},
		{"empty text", "POST", RouteClassify, `{"texts": ["a", ""]}`, 400, "texts[1] is empty"},
		{"invalid UTF-8", "POST", RouteEmbed, "{\"texts\": [\"ok\", \"caf\xe9\"]}", 400, "not valid UTF-8 (byte 21)"},
		{"invalid UTF-8 outside strings", "POST", RouteEmbed, "{\"texts\": [\"ok\"]}\xff", 400, "not valid UTF-8"},
		{"lone surrogate escape", "POST", RouteEmbed, `{"texts": ["\ud800"]}`, 200, ""},
		{"too many texts", "POST", RouteEmbed, textsBody("a", "b", "c", "d", "e"), 413, "limit is 4"},
		{"text too long", "POST", RouteEmbed, textsBody("a", strings.Repeat("b", 1001)), 413, "texts[1] is 1001 bytes"},
		{"huge body", "POST", RouteEmbed, huge, 413, "4096"},
		{"deep nesting", "POST", RouteEmbed, `{"texts": ` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d; want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.code >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || !strings.Contains(e.Error, tc.errHas) {
					t.Fatalf("error body %s (%v); want an error containing %q", body, err, tc.errHas)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
				if tc.code == 405 && resp.Header.Get("Allow") == "" {
					t.Fatal("405 without Allow")
				}
				return
			}
			switch tc.name {
			case "embed":
				var got embedJSON
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if len(got.Embeddings) != 2 || len(got.Truncated) != 2 || got.Truncated[0] {
					t.Fatalf("%s", body)
				}
				for i, row := range got.Embeddings {
					if d := maxDiff64(row, want.Embeddings[i]); !(d <= resultTol) {
						t.Fatalf("text %d: embedding differs from Model.Run by %g", i, d)
					}
				}
			case "classify":
				var got classifyJSON
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if len(got.Results) != 2 || got.Results[0]["intent"].Label != "lost_or_stolen_card" || len(got.Results[0]) != 2 {
					t.Fatalf("%s", body)
				}
				for i, r := range got.Results {
					for h, name := range []string{"intent", "again"} {
						p := want.Results[i].Predictions[h]
						hj := r[name]
						if hj.Label != p.Label || len(hj.Probs) != 77 {
							t.Fatalf("text %d head %s: %s with %d probabilities; want %s with 77", i, name, hj.Label, len(hj.Probs), p.Label)
						}
						sum := 0.0
						for k, c := range m.Heads()[h].Classes {
							sum += hj.Probs[c]
							if d := math.Abs(hj.Probs[c] - float64(p.Probs[k])); !(d <= resultTol) {
								t.Fatalf("text %d head %s class %s: %g; want %g", i, name, c, hj.Probs[c], p.Probs[k])
							}
						}
						if !(math.Abs(sum-1) < 1e-5) {
							t.Fatalf("probabilities sum to %g", sum)
						}
					}
				}
			case "truncated":
				var got embedJSON
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if len(got.Truncated) != 2 || got.Truncated[0] || !got.Truncated[1] {
					t.Fatalf("truncated %v; want [false true]", got.Truncated)
				}
			case "health":
				var h struct {
					Status string
					Heads  []string
					Dim    int
				}
				if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" || len(h.Heads) != 2 || h.Dim != 384 {
					t.Fatalf("%s (%v)", body, err)
				}
			case "metrics":
				if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
					t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
			default:
				if !json.Valid(body) {
					t.Fatalf("invalid JSON answer %s", body)
				}
			}
		})
	}

	// A declared Content-Length over the limit is refused before the body is read, and
	// a chunked body over the limit while it is read.
	for _, chunked := range []bool{false, true} {
		var r io.Reader = strings.NewReader(huge)
		if chunked {
			r = io.MultiReader(strings.NewReader(huge)) // unknown length: sent chunked
		}
		req, _ := http.NewRequest("POST", srv.URL+RouteEmbed, r)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("chunked=%v: status %d; want 413", chunked, resp.StatusCode)
		}
	}
}

func maxDiff64(a []float64, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		x := math.Abs(a[i] - float64(b[i]))
		if !(x <= d) {
			d = x
		}
	}
	return d
}

// TestEmbedOnlyAndClosed: a server without heads refuses /v1/classify with 404; a
// closed model answers 503.
func TestEmbedOnlyAndClosed(t *testing.T) {
	testutil.Model(t, models.Default)
	m, err := headstart.Open(context.Background(), headstart.OpenOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(m, Options{}))
	defer srv.Close()
	if code, _, body := post(t, srv.URL+RouteClassify, textsBody("a")); code != 404 || !bytes.Contains(body, []byte("--head")) {
		t.Fatalf("classify without heads: %d %s", code, body)
	}
	if code, _, body := post(t, srv.URL+RouteEmbed, textsBody("a")); code != 200 {
		t.Fatalf("embed: %d %s", code, body)
	}
	m.Close()
	if code, _, body := post(t, srv.URL+RouteEmbed, textsBody("a")); code != 503 {
		t.Fatalf("embed on a closed model: %d %s", code, body)
	}
}

// TestConcurrentRequests: 48 clients at once get exactly what each request gets alone,
// and micro-batching merged requests into shared forwards.
func TestConcurrentRequests(t *testing.T) {
	texts, _ := sample(t, "test")
	type reqT struct {
		route string
		body  string
	}
	var reqs []reqT
	for i := range 96 {
		n := 1 + i%5
		lo := (i * 7) % (len(texts) - n)
		route := RouteEmbed
		if i%2 == 1 {
			route = RouteClassify
		}
		reqs = append(reqs, reqT{route, textsBody(texts[lo : lo+n]...)})
	}
	// Sequential answers: a server without micro-batching, one request at a time.
	seqModel := openModel(t, headstart.OpenOptions{})
	seq := httptest.NewServer(New(seqModel, Options{}))
	defer seq.Close()
	want := make([][]byte, len(reqs))
	for i, r := range reqs {
		code, _, body := post(t, seq.URL+r.route, r.body)
		if code != 200 {
			t.Fatalf("sequential request %d: %d %s", i, code, body)
		}
		want[i] = body
	}

	metrics := NewMetrics()
	m := openModel(t, headstart.OpenOptions{Batching: true, MaxWait: 2 * time.Millisecond, OnBatch: metrics.ObserveBatch})
	srv := httptest.NewServer(New(m, Options{Metrics: metrics}))
	defer srv.Close()
	got := make([][]byte, len(reqs))
	codes := make([]int, len(reqs))
	var wg sync.WaitGroup
	const clients = 48
	for c := range clients {
		wg.Go(func() {
			for i := c; i < len(reqs); i += clients {
				codes[i], _, got[i] = post(t, srv.URL+reqs[i].route, reqs[i].body)
			}
		})
	}
	wg.Wait()
	for i := range reqs {
		if codes[i] != 200 {
			t.Fatalf("request %d: %d %s", i, codes[i], got[i])
		}
		if err := compareAnswers(reqs[i].route, got[i], want[i]); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	metrics.mu.Lock()
	merged := metrics.batchCalls.count - metrics.batchCalls.counts[0] // forwards of more than one request
	forwards := metrics.batchCalls.count
	metrics.mu.Unlock()
	t.Logf("%d requests in %d forwards, %d of them shared", len(reqs), forwards, merged)
	if merged == 0 {
		t.Fatal("no forward merged several requests")
	}
}

// compareAnswers compares two answers of a route within resultTol.
func compareAnswers(route string, got, want []byte) error {
	if route == RouteEmbed {
		var g, w embedJSON
		if err := errors.Join(json.Unmarshal(got, &g), json.Unmarshal(want, &w)); err != nil {
			return err
		}
		if len(g.Embeddings) != len(w.Embeddings) || fmt.Sprint(g.Truncated) != fmt.Sprint(w.Truncated) {
			return fmt.Errorf("%d embeddings %v; want %d %v", len(g.Embeddings), g.Truncated, len(w.Embeddings), w.Truncated)
		}
		for i := range g.Embeddings {
			for j := range g.Embeddings[i] {
				if d := math.Abs(g.Embeddings[i][j] - w.Embeddings[i][j]); !(d <= resultTol) {
					return fmt.Errorf("text %d: embedding[%d] differs by %g", i, j, d)
				}
			}
		}
		return nil
	}
	var g, w classifyJSON
	if err := errors.Join(json.Unmarshal(got, &g), json.Unmarshal(want, &w)); err != nil {
		return err
	}
	if len(g.Results) != len(w.Results) {
		return fmt.Errorf("%d results; want %d", len(g.Results), len(w.Results))
	}
	for i := range g.Results {
		for name, wh := range w.Results[i] {
			gh := g.Results[i][name]
			if gh.Label != wh.Label || len(gh.Probs) != len(wh.Probs) {
				return fmt.Errorf("text %d head %s: %s; want %s", i, name, gh.Label, wh.Label)
			}
			for c, p := range wh.Probs {
				if d := math.Abs(gh.Probs[c] - p); !(d <= resultTol) {
					return fmt.Errorf("text %d head %s class %s differs by %g", i, name, c, d)
				}
			}
		}
	}
	return nil
}

// TestShutdownDrains: cancelling Serve's context lets the requests in flight finish
// with 200 and then refuses new connections.
func TestShutdownDrains(t *testing.T) {
	m := openModel(t, headstart.OpenOptions{Threads: 1, MaxBatch: 8})
	srv := New(m, Options{ShutdownTimeout: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// Each request holds 64 long texts: several forwards on one thread.
	texts := make([]string, 64)
	for i := range texts {
		texts[i] = strings.Repeat(fmt.Sprintf("sentence %d about a card payment that failed ", i), 6)
	}
	const n = 4
	codes := make([]int, n)
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i], _, bodies[i] = post(t, url+RouteClassify, textsBody(texts...)) })
	}
	if !waitFor(10*time.Second, func() bool { return srv.metrics.inFlight.Load() == n }) {
		t.Fatalf("%d requests in flight; want %d", srv.metrics.inFlight.Load(), n)
	}
	cancel()
	wg.Wait()
	for i := range n {
		var got classifyJSON
		if codes[i] != 200 || json.Unmarshal(bodies[i], &got) != nil || len(got.Results) != len(texts) {
			t.Fatalf("request %d in flight at shutdown: %d %.200s", i, codes[i], bodies[i])
		}
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the requests drained")
	}
	if _, err := http.Get(url + RouteHealth); err == nil {
		t.Fatal("server still accepts connections after shutdown")
	}
}

// TestShutdownTimeout: requests that outlast ShutdownTimeout are cut off and Serve
// says so.
func TestShutdownTimeout(t *testing.T) {
	m := openModel(t, headstart.OpenOptions{Threads: 1, MaxBatch: 8})
	srv := New(m, Options{ShutdownTimeout: 10 * time.Millisecond})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	texts := make([]string, 128)
	for i := range texts {
		texts[i] = strings.Repeat("a long text about exchange rates and fees ", 8)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post("http://"+ln.Addr().String()+RouteEmbed, "application/json", strings.NewReader(textsBody(texts...)))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(10*time.Second, func() bool { return srv.metrics.inFlight.Load() == 1 })
	cancel()
	if err := <-served; err == nil || !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("Serve: %v; want a shutdown timeout", err)
	}
	<-done
}
