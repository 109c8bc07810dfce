package headstart

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// Errors of the Model API (besides ErrBadOption, ErrEmptyText, ErrHeadMismatch and the
// errors of the packages it loads from).
var (
	// ErrClosed: a call on a Model after Close.
	ErrClosed = errors.New("headstart: model is closed")
	// ErrNoHeads: Classify on a Model opened without heads.
	ErrNoHeads = errors.New("headstart: model has no heads")
)

// TextError reports a text that cannot be encoded: empty (ErrEmptyText) or not valid
// UTF-8 (tokenize.ErrInvalidUTF8). Index is the text's position in the call.
type TextError struct {
	Index int
	Err   error
}

func (e *TextError) Error() string { return "text " + strconv.Itoa(e.Index) + ": " + e.Err.Error() }
func (e *TextError) Unwrap() error { return e.Err }

// OpenOptions configure Open. The zero value is valid: the default backbone, no heads,
// one session, mean pooling of the last layer, no micro-batching, label sets of
// multi-label heads at probability 0.5.
type OpenOptions struct {
	// Model is a registry name (see models.List) or a directory holding model.onnx and
	// tokenizer.json. Default: with heads, the backbone they record (models.Find: the
	// directory they were trained from, or the registry model of that name, with the
	// recorded sha256); without, models.Default.
	Model string
	// Heads are head files (head.Load) to classify with; LoadedHeads are heads already
	// in memory, which follow the files. Every head must have been trained on features
	// of this backbone, and all with the same max_len. Without heads Classify returns
	// ErrNoHeads.
	Heads       []string
	LoadedHeads []*head.Head
	// HeadNames name the heads in results, files first. Default: a file's base name
	// without extension, "head<i>" for a loaded head, made unique with "_<i>".
	HeadNames []string
	// Threshold is the probability from which a multi-label head predicts a label
	// (Prediction.Labels); it must be in (0, 1). Default DefaultThreshold (0.5).
	// Single-label heads ignore it.
	Threshold float64

	// Sessions is the number of forwards the backbone runs at once, all on one
	// onnxruntime session (one copy of the weights), each with buffers of its own.
	// Default 1. A forward is a cgo call, and the goroutine
	// making it keeps its scheduler P until the runtime's monitor takes it back, which
	// under load can be milliseconds; a process that also serves requests does better
	// with GOMAXPROCS at the cores plus Sessions (pipeline serve sets that), so that
	// its other goroutines are not left waiting for the forwards.
	Sessions int
	// Threads is the number of onnxruntime intra-op threads of each forward. Default:
	// with one session, onnxruntime's choice (one per physical core); with several,
	// runtime.NumCPU()/Sessions, at least 1.
	Threads int
	// Provider is the execution provider. Default CPU.
	Provider onnx.Provider
	// RuntimeLib is the onnxruntime shared library. Default: see onnx.FindLibraryFor.
	RuntimeLib string

	// Spec is how Embed makes vectors, and Exact whether its zero fields take the
	// model card's conventions (see ExtractOptions; defaults: the card's, else mean
	// pooling of the last block, 128 tokens, not normalised, no prefix). With heads,
	// Pooling, Layers and Normalize apply to Embed only (each head pools as it was
	// trained), and MaxLen and Prefix are the heads' (which must agree): any other
	// value given is an error (ErrHeadMismatch).
	features.Spec
	Exact bool
	// AllowEmpty embeds empty and blank texts (features.Blank: only whitespace and
	// control characters) as [CLS] [SEP]; by default they are refused with a
	// *TextError wrapping ErrEmptyText.
	AllowEmpty bool

	// MaxBatch is the most texts one forward takes. A call with more is split into
	// length-sorted chunks, run on as many sessions as are free. Default 32.
	MaxBatch int
	// Batching merges the texts of concurrent calls into shared forwards of up to
	// MaxBatch texts: a free session takes the chunks waiting in the queue that fit, up
	// to an even share of the work among the sessions (see hasShare).
	// With a float32 backbone results do not depend on batch-mates (see the package's
	// invariance tests), only throughput and latency do; an int8 export quantises its
	// activations with one scale per forward, so its outputs move slightly with the
	// batch (BENCHMARKS.md). Default false: one chunk per forward.
	Batching bool
	// MaxWait is how long, with Batching, a forward that has room waits for texts of
	// calls that are being tokenized, counted from its oldest chunk's arrival. It never
	// waits when no other call is on its way. Default 0: no waiting.
	MaxWait time.Duration
	// SplitCost is the fixed cost of one forward in token positions (see splitPlan):
	// the texts a session takes at once are sorted by length and run in as many
	// forwards as minimise that cost plus the positions computed, padding included.
	// Default 16 (about the overhead of a forward of all-MiniLM-L6-v2 on a CPU, in token
	// positions; BENCHMARKS.md); negative: one forward, padded to the longest text.
	SplitCost int
	// PackLen turns on sequence packing: the texts of at most PackLen tokens that a
	// session takes at once (one call's, or with Batching several calls') run in one
	// forward, several texts side by side in rows of PackLen tokens, each attending
	// only to its own tokens (onnx.EnablePacking), so that short texts cost no padding
	// and share one forward's fixed cost; longer texts run in a second forward, packed
	// in rows as long as the longest of them (SplitCost then does not apply). A text's
	// outputs are those of a forward of its own up to float32 rounding, as with padding.
	// A backbone whose graph EnablePacking does not recognise runs without packing
	// (Model.Packing says so, and why). Default 0: no packing; pipeline serve uses 32.
	PackLen int
	// OnBatch, when set, is called after every forward with its statistics, on the
	// session's goroutine: it must be quick and safe for concurrent use.
	OnBatch func(BatchInfo)
}

// BatchInfo describes one forward.
type BatchInfo struct {
	Texts  int           // rows in the forward
	Calls  int           // calls whose texts it holds
	Tokens int           // real tokens
	Padded int           // token positions computed (rows x longest row)
	Wait   time.Duration // queue time of its oldest chunk
	Run    time.Duration // forward, pooling and heads
	Err    error         // the forward's error, if any
}

// Task selects what Run computes; combine with |.
type Task uint8

// Tasks.
const (
	TaskEmbed Task = 1 << iota
	TaskClassify
)

// Result is the classification of one text.
type Result struct {
	// Predictions holds one prediction per head, in the order of Model.HeadNames.
	Predictions []Prediction
	// Truncated reports that the text was cut at the model's max_len.
	Truncated bool
}

// Output is what Run computes for n texts.
type Output struct {
	Embeddings [][]float32 // n rows of Dim values (TaskEmbed); rows share one array
	Results    []Result    // n results (TaskClassify)
	Truncated  []bool      // n flags: the text was cut at the model's max_len
}

// Model serves Embed and Classify from a pool of backbone sessions. It is safe for
// concurrent use. Open one per backbone and keep it for the life of the process: each
// session holds a copy of the weights.
type Model struct {
	tok      *tokenize.Tokenizer // shared: safe for concurrent use
	heads    []*head.Head
	names    []string
	dim      int
	maxBatch int
	batching bool
	maxWait  time.Duration
	split    int
	pack     int // PackLen; 0: no packing
	allowEmp bool
	thresh   float64
	onBatch  func(BatchInfo)
	backbone features.Backbone
	provider string

	packErr error // why PackLen was not applied

	workers []*worker
	queue   chan *piece
	quit    chan struct{}
	runners sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	calls    sync.WaitGroup // calls in progress
	closeErr error
	once     sync.Once

	arriving  atomic.Int64 // calls tokenizing or queueing their chunks
	queued    atomic.Int64 // texts waiting in the queue
	inForward atomic.Int64 // texts in the sessions' forwards
}

// Open loads the backbone (and heads) into one session and starts opts.Sessions
// goroutines that run forwards on it, which Close stops. ctx bounds the loading.
func Open(ctx context.Context, opts OpenOptions) (_ *Model, err error) {
	if opts.Sessions == 0 {
		opts.Sessions = 1
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 32
	}
	if opts.Threshold == 0 {
		opts.Threshold = DefaultThreshold
	}
	if err := checkThreshold(opts.Threshold); err != nil {
		return nil, err
	}
	switch {
	case opts.Sessions < 1:
		return nil, fmt.Errorf("%w: Sessions %d: want at least 1", ErrBadOption, opts.Sessions)
	case opts.Threads < 0:
		return nil, fmt.Errorf("%w: Threads %d: want 0 (default) or more", ErrBadOption, opts.Threads)
	case opts.MaxBatch < 1:
		return nil, fmt.Errorf("%w: MaxBatch %d: want at least 1", ErrBadOption, opts.MaxBatch)
	case opts.MaxWait < 0:
		return nil, fmt.Errorf("%w: MaxWait %v is negative", ErrBadOption, opts.MaxWait)
	case opts.PackLen < 0:
		return nil, fmt.Errorf("%w: PackLen %d is negative", ErrBadOption, opts.PackLen)
	case opts.MaxLen < 0 || opts.MaxLen == 1:
		return nil, fmt.Errorf("%w: MaxLen %d must be at least 2 ([CLS] and [SEP])", ErrBadOption, opts.MaxLen)
	}
	threads := opts.Threads
	if threads == 0 && opts.Sessions > 1 {
		threads = max(1, runtime.NumCPU()/opts.Sessions)
	}

	heads := make([]*head.Head, 0, len(opts.Heads)+len(opts.LoadedHeads))
	for _, p := range opts.Heads {
		h, err := head.Load(p)
		if err != nil {
			return nil, err
		}
		heads = append(heads, h)
	}
	heads = append(heads, opts.LoadedHeads...)
	names, err := headNames(opts, len(heads))
	if err != nil {
		return nil, err
	}
	if len(heads) > 0 {
		ml, pre := heads[0].Fingerprint.MaxLen, heads[0].Fingerprint.Prefix
		if opts.MaxLen != 0 && opts.MaxLen != ml {
			return nil, fmt.Errorf("%w: MaxLen %d given, but head %q was trained with max_len %d", ErrHeadMismatch, opts.MaxLen, names[0], ml)
		}
		if opts.Prefix != "" && opts.Prefix != pre {
			return nil, fmt.Errorf("%w: Prefix %q given, but head %q was trained with prefix %q", ErrHeadMismatch, opts.Prefix, names[0], pre)
		}
		for i, h := range heads[1:] {
			if p := h.Fingerprint.Prefix; p != pre {
				return nil, fmt.Errorf("%w: head %q was trained with prefix %q, head %q with %q: classify with them separately", ErrHeadMismatch, names[i+1], p, names[0], pre)
			}
		}
		opts.MaxLen = ml
	}
	var paths models.Paths
	switch {
	case opts.Model == "" && len(heads) > 0: // the backbone the heads were trained on
		paths, err = models.Find(heads[0].Fingerprint.BackboneOf())
	case opts.Model == "":
		paths, err = models.Resolve(models.Default)
	default:
		paths, err = models.Resolve(opts.Model)
	}
	if err != nil {
		return nil, err
	}
	if opts.Spec, err = ModelSpec(paths, opts.Spec, opts.Exact); err != nil {
		return nil, err
	}
	if len(heads) > 0 { // the heads' texts were prefixed as they were trained
		opts.Prefix = heads[0].Fingerprint.Prefix
	}

	m := &Model{
		heads: heads, names: names, maxBatch: opts.MaxBatch, batching: opts.Batching,
		maxWait: opts.MaxWait, split: cmp.Or(opts.SplitCost, 16), pack: opts.PackLen, allowEmp: opts.AllowEmpty, thresh: opts.Threshold, onBatch: opts.OnBatch,
		queue: make(chan *piece, 1024), quit: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			for _, w := range m.workers {
				err = errors.Join(err, w.enc.Close())
			}
		}
	}()
	eo := EncoderOptions{
		RuntimeLib: opts.RuntimeLib, Spec: opts.Spec, Exact: true,
		Session: onnx.SessionOptions{IntraOpThreads: threads, Provider: opts.Provider},
		pack:    opts.PackLen > 0,
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w, err := newWorker(paths, heads, eo)
	if err != nil && eo.pack && errors.Is(err, onnx.ErrPackingUnsupported) {
		m.packErr, m.pack, eo.pack = err, 0, false
		w, err = newWorker(paths, heads, eo)
	}
	if err != nil {
		return nil, err
	}
	if w.clf != nil {
		w.clf.threshold = opts.Threshold
	}
	m.workers = append(m.workers, w)
	for range opts.Sessions - 1 { // the others share its session
		m.workers = append(m.workers, w.fork())
	}
	w0 := m.workers[0]
	m.tok, m.dim, m.backbone, m.provider = w0.enc.tok, len(w0.embSel)*w0.enc.hidden, w0.enc.Backbone(), w0.enc.Provider()
	for _, w := range m.workers {
		m.runners.Add(1)
		go m.run(w)
	}
	return m, nil
}

// headNames names the heads as OpenOptions.HeadNames documents.
func headNames(opts OpenOptions, n int) ([]string, error) {
	if opts.HeadNames != nil {
		if len(opts.HeadNames) != n {
			return nil, fmt.Errorf("%w: %d head names for %d heads", ErrBadOption, len(opts.HeadNames), n)
		}
		for i, s := range opts.HeadNames {
			if s == "" || slices.Contains(opts.HeadNames[:i], s) {
				return nil, fmt.Errorf("%w: head name %q is empty or repeated; names must be unique", ErrBadOption, s)
			}
		}
		return slices.Clone(opts.HeadNames), nil
	}
	names := make([]string, n)
	seen := map[string]bool{}
	for i := range names {
		s := "head" + strconv.Itoa(i)
		if i < len(opts.Heads) {
			p := opts.Heads[i]
			s = strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		}
		if seen[s] {
			s += "_" + strconv.Itoa(i)
		}
		seen[s] = true
		names[i] = s
	}
	return names, nil
}

// Dim is the length of one embedding.
func (m *Model) Dim() int { return m.dim }

// MaxLen is the truncation length in tokens, special tokens included.
func (m *Model) MaxLen() int { return m.tok.MaxLen() }

// HeadNames returns the heads' names, in the order of Result.Predictions.
func (m *Model) HeadNames() []string { return slices.Clone(m.names) }

// Heads returns the heads (shared: do not modify), in the order of HeadNames.
func (m *Model) Heads() []*head.Head { return slices.Clone(m.heads) }

// Threshold is the probability from which a multi-label head predicts a label
// (OpenOptions.Threshold).
func (m *Model) Threshold() float64 { return m.thresh }

// Backbone identifies the model and tokenizer files.
func (m *Model) Backbone() features.Backbone { return m.backbone }

// Provider names the execution provider the sessions run on.
func (m *Model) Provider() string { return m.provider }

// Packing reports whether forwards pack short texts (OpenOptions.PackLen), and when
// PackLen was asked for but the backbone's graph does not allow it, why.
func (m *Model) Packing() (bool, error) { return m.pack > 0, m.packErr }

// Sessions is the number of backbone sessions.
func (m *Model) Sessions() int { return len(m.workers) }

// QueueDepth is the number of texts waiting for a session.
func (m *Model) QueueDepth() int { return int(m.queued.Load()) }

// Embed returns one embedding per text, in order.
func (m *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out, err := m.Run(ctx, texts, TaskEmbed)
	return out.Embeddings, err
}

// Classify returns, for every text in order, the prediction of every head, all from
// one backbone forward.
func (m *Model) Classify(ctx context.Context, texts []string) ([]Result, error) {
	out, err := m.Run(ctx, texts, TaskClassify)
	return out.Results, err
}

// Run tokenizes texts and computes what task asks for. It waits for a session (or,
// with Batching, for a place in a shared forward) until ctx is done; it returns
// ctx.Err() then, and ErrClosed after Close. A text that cannot be encoded gives a
// *TextError and nothing is computed.
func (m *Model) Run(ctx context.Context, texts []string, task Task) (Output, error) {
	if task&(TaskEmbed|TaskClassify) == 0 || task&^(TaskEmbed|TaskClassify) != 0 {
		return Output{}, fmt.Errorf("%w: task %d; want TaskEmbed, TaskClassify or both", ErrBadOption, task)
	}
	if task&TaskClassify != 0 && len(m.heads) == 0 {
		return Output{}, ErrNoHeads
	}
	if err := m.enter(); err != nil {
		return Output{}, err
	}
	defer m.calls.Done()
	m.arriving.Add(1)
	arriving := true
	defer func() {
		if arriving {
			m.arriving.Add(-1)
		}
	}()
	if err := ctx.Err(); err != nil {
		return Output{}, err
	}

	n := len(texts)
	encs := make([]tokenize.Encoding, n)
	out := Output{Truncated: make([]bool, n)}
	lengths := make([]int, n)
	for i, t := range texts {
		if !m.allowEmp && features.Blank(t) {
			return Output{}, &TextError{Index: i, Err: ErrEmptyText}
		}
		if err := m.tok.EncodeInto(&encs[i], t); err != nil {
			return Output{}, &TextError{Index: i, Err: err}
		}
		out.Truncated[i], lengths[i] = encs[i].Truncated, len(encs[i].IDs)
	}
	if task&TaskEmbed != 0 {
		flat := make([]float32, n*m.dim)
		out.Embeddings = make([][]float32, n)
		for i := range out.Embeddings {
			out.Embeddings[i] = flat[i*m.dim : (i+1)*m.dim : (i+1)*m.dim]
		}
	}
	if task&TaskClassify != 0 {
		out.Results = make([]Result, n)
		for i := range out.Results {
			out.Results[i].Truncated = out.Truncated[i]
		}
	}
	if n == 0 {
		return out, nil
	}

	// One chunk for a short call (in order); length-sorted chunks for a long one.
	var groups [][]int
	if n <= m.maxBatch {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		groups = [][]int{all}
	} else {
		groups = features.Buckets(lengths, m.maxBatch)
	}
	c := &call{ctx: ctx, task: task, out: &out, pending: len(groups), done: make(chan struct{})}
	for _, g := range groups {
		ch := &piece{call: c, rows: g, encs: make([]tokenize.Encoding, len(g)), queuedAt: time.Now()}
		for j, i := range g {
			ch.encs[j] = encs[i]
		}
		m.queued.Add(int64(len(g)))
		select {
		case m.queue <- ch:
		case <-ctx.Done():
			m.queued.Add(-int64(len(g)))
			return Output{}, ctx.Err()
		}
	}
	m.arriving.Add(-1)
	arriving = false
	select {
	case <-c.done:
	case <-ctx.Done():
		return Output{}, ctx.Err()
	}
	if c.err != nil {
		return Output{}, c.err
	}
	return out, nil
}

// enter registers a call, or returns ErrClosed.
func (m *Model) enter() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.calls.Add(1)
	return nil
}

// Close waits for the calls in progress, stops the sessions' goroutines and releases
// the sessions. Later calls return ErrClosed; a second Close does nothing and returns
// nil.
func (m *Model) Close() error {
	first := false
	m.once.Do(func() {
		first = true
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.calls.Wait()
		close(m.quit)
		m.runners.Wait()
		for _, w := range m.workers {
			m.closeErr = errors.Join(m.closeErr, w.enc.Close())
		}
	})
	if !first {
		return nil
	}
	return m.closeErr
}
