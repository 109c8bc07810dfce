package headstart

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// serviceTol bounds the difference between a text's outputs in a shared (micro-batched,
// padded) forward and in a forward of its own. onnxruntime's CPU kernels compute each row
// independently of its batch-mates and the masked padding adds exact zeros, so the
// measured difference is 0; the bound leaves room for float32 reassociation.
const serviceTol = 1e-6

// packTol bounds the same difference for packed forwards (OpenOptions.PackLen): a
// packed text's attention sums over a longer row whose other texts it does not see, so
// its masked terms are exact zeros but the real ones are added in another grouping by
// the kernels. Measured on the shipped Banking77 sample with all-MiniLM-L6-v2: at most
// 5.4e-7.
const packTol = 1e-5

// bankingTexts returns the first n texts of the shipped Banking77 sample's test split.
func bankingTexts(t testing.TB, n int) []string {
	t.Helper()
	recs := testutil.ReadCSV(t, filepath.Join("data", "banking77-sample", "test.csv"))
	var out []string
	for _, r := range recs[1:] {
		if len(out) == n {
			break
		}
		out = append(out, r[0])
	}
	return out
}

var fixture struct {
	once sync.Once
	h    *head.Head
	err  error
}

// bankingHead fits (once per test binary) a logistic regression on 4 training
// examples per intent of the shipped Banking77 sample, pooled from the last layer of
// the default backbone.
func bankingHead(t testing.TB) *head.Head {
	t.Helper()
	defaultModel(t)
	fixture.once.Do(func() {
		fixture.h, fixture.err = fitBankingHead(4)
	})
	if fixture.err != nil {
		t.Fatal(fixture.err)
	}
	return fixture.h
}

func fitBankingHead(perLabel int) (_ *head.Head, err error) {
	dir, err := os.MkdirTemp("", "headstart-fixture")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Open(filepath.Join("data", "banking77-sample", "train.csv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	w.Write(recs[0])
	for _, r := range recs[1:] {
		if seen[r[1]]++; seen[r[1]] <= perLabel {
			w.Write(r)
		}
	}
	w.Flush()
	data, store := filepath.Join(dir, "train.csv"), filepath.Join(dir, "train.safetensors")
	if err := os.WriteFile(data, []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := Extract(context.Background(), ExtractOptions{Data: data, Out: store, Session: onnx.SessionOptions{IntraOpThreads: 2}}); err != nil {
		return nil, err
	}
	st, err := features.OpenStore(store)
	if err != nil {
		return nil, err
	}
	ds, err := head.FromStore(st, store)
	if err != nil {
		return nil, err
	}
	return head.Fit(ds, nil, head.Options{})
}

// maxDiff is the largest absolute difference, or +Inf when lengths differ or a value is NaN.
func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		x := math.Abs(float64(a[i]) - float64(b[i]))
		if !(x <= d) { // NaN propagates
			d = x
		}
	}
	return d
}

func openModel(t testing.TB, opts OpenOptions) *Model {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	m, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// TestModelMatchesEncoderAndClassifier: Model.Embed and Classify equal the
// single-goroutine Encoder and Classifier, and Embed on a model with heads equals Embed
// on one without.
func TestModelMatchesEncoderAndClassifier(t *testing.T) {
	h := bankingHead(t)
	texts := bankingTexts(t, 40)
	p := defaultModel(t)
	eo := EncoderOptions{Session: onnx.SessionOptions{IntraOpThreads: 1}, Spec: features.Spec{Normalize: true}}
	enc, err := NewEncoder(p, eo)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	clf, err := NewClassifier(p, []*head.Head{h}, eo)
	if err != nil {
		t.Fatal(err)
	}
	defer clf.Close()
	want, err := enc.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	wantP, err := clf.Classify(texts)
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	plain := openModel(t, OpenOptions{Spec: features.Spec{Normalize: true}, MaxBatch: 16})
	both := openModel(t, OpenOptions{Spec: features.Spec{Normalize: true}, LoadedHeads: []*head.Head{h}, MaxBatch: 16})
	for _, m := range []*Model{plain, both} {
		got, err := m.Embed(ctx, texts)
		if err != nil {
			t.Fatal(err)
		}
		d := enc.Dim()
		if m.Dim() != d || len(got) != len(texts) {
			t.Fatalf("Dim %d, %d rows; want %d, %d", m.Dim(), len(got), d, len(texts))
		}
		for i := range texts {
			if diff := maxDiff(got[i], want[i*d:(i+1)*d]); !(diff <= serviceTol) {
				t.Fatalf("text %d: embedding differs from Encoder.Embed by %g", i, diff)
			}
		}
	}
	if _, err := plain.Classify(ctx, texts); !errors.Is(err, ErrNoHeads) {
		t.Fatalf("Classify without heads: %v; want ErrNoHeads", err)
	}
	res, err := both.Classify(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	if got := both.HeadNames(); len(got) != 1 || got[0] != "head0" {
		t.Fatalf("HeadNames = %v", got)
	}
	for i, r := range res {
		p := r.Predictions[0]
		if p.Label != wantP[0][i].Label || !(maxDiff(p.Probs, wantP[0][i].Probs) <= serviceTol) {
			t.Fatalf("text %d: %s %v; Classifier: %s", i, p.Label, p.Probs[:3], wantP[0][i].Label)
		}
	}
	lost, err := both.Classify(ctx, []string{"I lost my card yesterday"})
	if err != nil || lost[0].Predictions[0].Label != "lost_or_stolen_card" {
		t.Fatalf("\"I lost my card yesterday\": %+v, %v; want lost_or_stolen_card", lost, err)
	}
}

// TestModelConcurrent: many goroutines calling at once, with and without
// micro-batching and with several sessions, get what sequential calls get.
func TestModelConcurrent(t *testing.T) {
	h := bankingHead(t)
	texts := bankingTexts(t, 120)
	ctx := context.Background()
	ref := openModel(t, OpenOptions{LoadedHeads: []*head.Head{h}})
	type call struct {
		texts []string
		task  Task
	}
	rng := rand.New(rand.NewPCG(3, 4))
	calls := make([]call, 64)
	for i := range calls {
		n := 1 + rng.IntN(6)
		if i%16 == 0 {
			n = 40 // longer than MaxBatch: split into chunks
		}
		lo := rng.IntN(len(texts) - n)
		calls[i] = call{texts[lo : lo+n], Task(1 + rng.IntN(3))}
	}
	want := make([]Output, len(calls))
	for i, c := range calls {
		var err error
		if want[i], err = ref.Run(ctx, c.texts, c.task); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		opts OpenOptions
	}{
		{"no batching", OpenOptions{Sessions: 2}},
		{"batching", OpenOptions{Batching: true, MaxWait: 2 * time.Millisecond}},
		{"batching 2 sessions", OpenOptions{Batching: true, Sessions: 2, MaxBatch: 16}},
		{"packing", OpenOptions{Sessions: 2, PackLen: 32}},
		{"packing and batching", OpenOptions{Batching: true, Sessions: 2, PackLen: 24, MaxWait: time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.LoadedHeads = []*head.Head{h}
			var merged, forwards int
			var mu sync.Mutex
			tc.opts.OnBatch = func(b BatchInfo) {
				mu.Lock()
				defer mu.Unlock()
				forwards++
				if b.Calls > 1 {
					merged++
				}
				if b.Texts > max(tc.opts.MaxBatch, 32) || b.Err != nil || b.Tokens > b.Padded {
					t.Errorf("batch %+v", b)
				}
			}
			m := openModel(t, tc.opts)
			tol := serviceTol
			if tc.opts.PackLen > 0 {
				if ok, err := m.Packing(); !ok {
					t.Fatalf("PackLen %d: no packing: %v", tc.opts.PackLen, err)
				}
				tol = packTol
			}
			got := make([]Output, len(calls))
			errs := make([]error, len(calls))
			var wg sync.WaitGroup
			for g := range 32 {
				wg.Go(func() {
					for i := g; i < len(calls); i += 32 {
						got[i], errs[i] = m.Run(ctx, calls[i].texts, calls[i].task)
					}
				})
			}
			wg.Wait()
			for i := range calls {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				compareOutputs(t, fmt.Sprintf("call %d", i), got[i], want[i], tol)
			}
			if m.QueueDepth() != 0 {
				t.Errorf("queue depth %d after all calls returned", m.QueueDepth())
			}
			t.Logf("%d forwards, %d merged several calls", forwards, merged)
			if tc.opts.Batching && merged == 0 {
				t.Errorf("micro-batching merged no calls in %d forwards", forwards)
			}
			if !tc.opts.Batching && merged > 0 {
				t.Errorf("without batching, %d forwards merged calls", merged)
			}
		})
	}
}

func compareOutputs(t *testing.T, name string, got, want Output, tol float64) {
	t.Helper()
	if len(got.Embeddings) != len(want.Embeddings) || len(got.Results) != len(want.Results) || len(got.Truncated) != len(want.Truncated) {
		t.Fatalf("%s: %d embeddings, %d results, %d flags; want %d, %d, %d", name,
			len(got.Embeddings), len(got.Results), len(got.Truncated), len(want.Embeddings), len(want.Results), len(want.Truncated))
	}
	for i := range got.Embeddings {
		if d := maxDiff(got.Embeddings[i], want.Embeddings[i]); !(d <= tol) {
			t.Fatalf("%s: text %d: embedding differs by %g", name, i, d)
		}
	}
	for i := range got.Results {
		g, w := got.Results[i].Predictions, want.Results[i].Predictions
		if len(g) != len(w) {
			t.Fatalf("%s: text %d: %d predictions; want %d", name, i, len(g), len(w))
		}
		for h := range g {
			if g[h].Label != w[h].Label || !(maxDiff(g[h].Probs, w[h].Probs) <= tol) {
				t.Fatalf("%s: text %d head %d: %s; want %s (probabilities differ by %g)", name, i, h, g[h].Label, w[h].Label, maxDiff(g[h].Probs, w[h].Probs))
			}
		}
	}
}

// TestModelCloseReleases: Close waits for calls in flight, stops every goroutine,
// and is idempotent; calls afterwards fail with ErrClosed.
func TestModelCloseReleases(t *testing.T) {
	defaultModel(t)
	texts := bankingTexts(t, 8)
	before := runtime.NumGoroutine()
	m, err := Open(context.Background(), OpenOptions{Sessions: 2, Threads: 1, Batching: true, MaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			v, err := m.Embed(ctx, texts)
			if err == nil && len(v) != len(texts) {
				err = fmt.Errorf("%d embeddings", len(v))
			}
			if err != nil && !errors.Is(err, ErrClosed) {
				errs <- err
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("call during Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := m.Embed(ctx, texts); !errors.Is(err, ErrClosed) {
		t.Fatalf("Embed after Close: %v; want ErrClosed", err)
	}
	// Goroutines of the runtime (timers, the test's own) may take a moment to exit.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close; %d before Open\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestModelCancel: a call honours its context while it waits for a session.
func TestModelCancel(t *testing.T) {
	defaultModel(t)
	m := openModel(t, OpenOptions{})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Embed(cancelled, []string{"hello"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	// Occupy the one session with a long call, then time out a short one queued behind it.
	long := make([]string, 128)
	for i := range long {
		long[i] = strings.Repeat("a fairly long sentence about bank cards ", 3)
	}
	done := make(chan error, 1)
	go func() { _, err := m.Embed(context.Background(), long); done <- err }()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	start := time.Now()
	_, err := m.Embed(ctx, []string{"hello"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued call: %v; want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("queued call returned after %v", el)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestModelErrors(t *testing.T) {
	h := bankingHead(t)
	ctx := context.Background()
	m := openModel(t, OpenOptions{LoadedHeads: []*head.Head{h}})
	for _, tc := range []struct {
		name  string
		texts []string
		task  Task
		want  error
		index int
	}{
		{"empty text", []string{"ok", ""}, TaskEmbed, ErrEmptyText, 1},
		{"blank text", []string{"ok", "fine", " \t\u3000\u200b\x00"}, TaskClassify, ErrEmptyText, 2},
		{"invalid UTF-8", []string{"ok", "fine", "bad \xff byte"}, TaskClassify, tokenize.ErrInvalidUTF8, 2},
		{"bad task", []string{"ok"}, 0, ErrBadOption, -1},
		{"unknown task", []string{"ok"}, 8, ErrBadOption, -1},
	} {
		_, err := m.Run(ctx, tc.texts, tc.task)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
			continue
		}
		var te *TextError
		if tc.index >= 0 && (!errors.As(err, &te) || te.Index != tc.index) {
			t.Errorf("%s: %v; want a *TextError at %d", tc.name, err, tc.index)
		}
	}
	if out, err := m.Run(ctx, nil, TaskEmbed|TaskClassify); err != nil || len(out.Embeddings)+len(out.Results) != 0 {
		t.Errorf("no texts: %v, %+v", err, out)
	}

	for _, tc := range []struct {
		name string
		opts OpenOptions
		want error
	}{
		{"sessions", OpenOptions{Sessions: -1}, ErrBadOption},
		{"threads", OpenOptions{Threads: -2}, ErrBadOption},
		{"max batch", OpenOptions{MaxBatch: -1}, ErrBadOption},
		{"pack len", OpenOptions{PackLen: -1}, ErrBadOption},
		{"max wait", OpenOptions{MaxWait: -time.Second}, ErrBadOption},
		{"max len", OpenOptions{Spec: features.Spec{MaxLen: 1}}, ErrBadOption},
		{"max len beyond positions", OpenOptions{Spec: features.Spec{MaxLen: 513}}, ErrMaxLen},
		{"max len vs head", OpenOptions{Spec: features.Spec{MaxLen: 64}, LoadedHeads: []*head.Head{h}}, ErrHeadMismatch},
		{"head names", OpenOptions{HeadNames: []string{"a", "b"}, LoadedHeads: []*head.Head{h}}, ErrBadOption},
		{"missing head file", OpenOptions{Heads: []string{filepath.Join(t.TempDir(), "none.safetensors")}}, os.ErrNotExist},
		{"unknown layer", OpenOptions{Spec: features.Spec{Layers: []int{99}}}, nil},
	} {
		m, err := Open(ctx, tc.opts)
		if err == nil {
			m.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		}
	}
}

// TestModelHeadFilesAndTruncation: heads load from files and are named after them; texts
// cut at max_len are reported.
func TestModelHeadFilesAndTruncation(t *testing.T) {
	h := bankingHead(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "intent.safetensors"), filepath.Join(dir, "sub", "intent.safetensors")
	os.Mkdir(filepath.Dir(b), 0o755)
	for _, p := range []string{a, b} {
		if err := h.Save(p); err != nil {
			t.Fatal(err)
		}
	}
	m := openModel(t, OpenOptions{Heads: []string{a, b}})
	if got := strings.Join(m.HeadNames(), ","); got != "intent,intent_1" {
		t.Fatalf("HeadNames = %s", got)
	}
	long := strings.Repeat("where is my card ", 100)
	res, err := m.Classify(context.Background(), []string{"I lost my card", long})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[0].Predictions) != 2 || res[0].Truncated || !res[1].Truncated {
		t.Fatalf("results %+v", res)
	}
	short := openModel(t, OpenOptions{Spec: features.Spec{MaxLen: 8}})
	out, err := short.Run(context.Background(), []string{"hi", "one two three four five six seven"}, TaskEmbed)
	if err != nil {
		t.Fatal(err)
	}
	if out.Truncated[0] || !out.Truncated[1] || short.MaxLen() != 8 {
		t.Fatalf("truncated %v, MaxLen %d", out.Truncated, short.MaxLen())
	}
}

func TestSplitPlan(t *testing.T) {
	for _, tc := range []struct {
		lens []int
		cost int
		want string
	}{
		{nil, 16, "[[0 0]]"},
		{[]int{7}, 16, "[[0 1]]"},
		{[]int{10, 10, 10, 10}, 16, "[[0 4]]"},
		{[]int{5, 5, 5, 100}, 16, "[[0 3] [3 4]]"},
		{[]int{5, 5, 5, 100}, 1000, "[[0 4]]"},
		{[]int{5, 5, 5, 100}, -1, "[[0 4]]"},
		{[]int{5, 6, 40, 41, 42, 128}, 0, "[[0 1] [1 2] [2 3] [3 4] [4 5] [5 6]]"},
	} {
		if got := fmt.Sprint(splitPlan(tc.lens, tc.cost)); got != tc.want {
			t.Errorf("splitPlan(%v, %d) = %s; want %s", tc.lens, tc.cost, got, tc.want)
		}
	}
	// Optimal against every partition of small random inputs.
	rng := rand.New(rand.NewPCG(5, 6))
	costOf := func(lens []int, plan [][2]int, c int) int {
		s := 0
		for _, g := range plan {
			s += c + (g[1]-g[0])*lens[g[1]-1]
		}
		return s
	}
	for range 200 {
		n := 1 + rng.IntN(9)
		lens := make([]int, n)
		for i := range lens {
			lens[i] = 2 + rng.IntN(60)
		}
		slices.Sort(lens)
		c := rng.IntN(40)
		got := costOf(lens, splitPlan(lens, c), c)
		best := math.MaxInt
		for mask := 0; mask < 1<<(n-1); mask++ { // bit i: cut after row i
			var plan [][2]int
			lo := 0
			for i := range n - 1 {
				if mask&(1<<i) != 0 {
					plan = append(plan, [2]int{lo, i + 1})
					lo = i + 1
				}
			}
			plan = append(plan, [2]int{lo, n})
			best = min(best, costOf(lens, plan, c))
		}
		if got != best {
			t.Fatalf("splitPlan(%v, %d) costs %d; the best partition %d", lens, c, got, best)
		}
	}
}

// TestPackRows: every text lands in exactly one row, no row exceeds the capacity, the
// longest texts open the rows, and first-fit decreasing stays within its bound of
// 11/9 of the fewest rows plus one (the fewest being at least total / capacity).
func TestPackRows(t *testing.T) {
	if got := fmt.Sprint(packRows([]int{5, 30, 20, 12, 3}, 32)); got != "[[1] [2 3] [0 4]]" {
		t.Errorf("packRows([5 30 20 12 3], 32) = %s; want [[1] [2 3] [0 4]]", got)
	}
	if got := packRows(nil, 32); len(got) != 0 {
		t.Errorf("packRows(nil) = %v; want no rows", got)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		capacity := 8 + rng.IntN(60)
		lens := make([]int, 1+rng.IntN(40))
		total := 0
		for i := range lens {
			lens[i] = 1 + rng.IntN(capacity)
			total += lens[i]
		}
		rows := packRows(lens, capacity)
		seen := make([]int, len(lens))
		for _, r := range rows {
			fill := 0
			for _, i := range r {
				seen[i]++
				fill += lens[i]
			}
			if fill > capacity {
				t.Fatalf("packRows(%v, %d): row %v holds %d tokens", lens, capacity, r, fill)
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("packRows(%v, %d): text %d placed %d times", lens, capacity, i, n)
			}
		}
		if lower := (total + capacity - 1) / capacity; 9*len(rows) > 11*lower+9 {
			t.Fatalf("packRows(%v, %d): %d rows; at least %d are needed, first-fit decreasing promises at most 11/9 of that plus 1", lens, capacity, len(rows), lower)
		}
	}
}

// TestPackingForwards: a call of 48 short Banking77 queries with PackLen 32 runs in
// forwards that compute few padding positions, and long texts (over PackLen tokens)
// go to a forward of their own; every output is that of the text alone within packTol.
func TestPackingForwards(t *testing.T) {
	h := bankingHead(t)
	ctx := context.Background()
	texts := bankingTexts(t, 48)
	long := strings.Repeat("my card payment was declined twice today and I do not know why ", 3)
	texts = append(texts, long, long[:100])
	var infos []BatchInfo
	var mu sync.Mutex
	m := openModel(t, OpenOptions{LoadedHeads: []*head.Head{h}, PackLen: 32, MaxBatch: 64, OnBatch: func(b BatchInfo) {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, b)
	}})
	ref := openModel(t, OpenOptions{LoadedHeads: []*head.Head{h}})
	got, err := m.Run(ctx, texts, TaskEmbed|TaskClassify)
	if err != nil {
		t.Fatal(err)
	}
	tokens, padded := 0, 0
	for _, b := range infos {
		tokens += b.Tokens
		padded += b.Padded
	}
	t.Logf("%d texts in %d forwards: %d tokens, %d positions computed", len(texts), len(infos), tokens, padded)
	if len(infos) != 2 {
		t.Errorf("%d forwards; want 2 (the short texts packed, the long ones packed apart)", len(infos))
	}
	if float64(padded) > 1.15*float64(tokens) {
		t.Errorf("%d positions computed for %d tokens; packing should waste under 15%%", padded, tokens)
	}
	for i, x := range texts {
		want, err := ref.Run(ctx, []string{x}, TaskEmbed|TaskClassify)
		if err != nil {
			t.Fatal(err)
		}
		one := Output{Embeddings: got.Embeddings[i : i+1], Results: got.Results[i : i+1], Truncated: got.Truncated[i : i+1]}
		compareOutputs(t, fmt.Sprintf("text %d", i), one, want, packTol)
	}
}
