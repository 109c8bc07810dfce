package headstart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// Version is the tool version recorded in every artifact's manifest.
const Version = "0.1.0"

// Sentinel errors of this package.
var (
	ErrEmptyText   = errors.New("headstart: empty text")
	ErrBadOption   = errors.New("headstart: invalid option")
	ErrModelInputs = errors.New("headstart: model inputs cannot be fed by the tokenizer")
	// ErrManifestMismatch: a model directory's manifest.json says another hidden size
	// or block count than its graph has.
	ErrManifestMismatch = errors.New("headstart: model manifest disagrees with the graph")
	// ErrCheckpointExists: a run without Resume whose output has the checkpoint of an
	// interrupted run, which it would discard.
	ErrCheckpointExists = errors.New("headstart: checkpoint exists")
	// ErrMaxLen: a max_len above the rows of the model's position table (an
	// ErrBadOption too), found before any work.
	ErrMaxLen = fmt.Errorf("%w: max-len beyond the model's positions", ErrBadOption)
)

// ExtractOptions configure Extract. The zero value needs only Data and Out.
type ExtractOptions struct {
	// Model is a registry name (see models.List) or a directory holding model.onnx and
	// tokenizer.json. Default models.Default.
	Model string
	// Data is the dataset path (.csv, .tsv, .jsonl); Reader configures its columns.
	// Reader.LabelSep makes the store multi-label (features.Manifest.MultiLabel): the
	// label column holds sets such as "card|arrival".
	Data   string
	Reader features.ReaderOptions
	// Out is the feature store to write (safetensors).
	Out string

	// Spec is how each text becomes a vector: text prefix, truncation, the hidden states
	// pooled (indexed as HuggingFace's output_hidden_states: 0 is the embeddings
	// output, i the output of encoder block i-1; negative values count from the end),
	// pooling and normalisation. Its zero fields take the model card's conventions
	// (models.Manifest.Card: all-MiniLM-L6-v2 mean pooling, normalised, 256 tokens),
	// then the package defaults (features.Spec.WithDefaults: mean pooling of the last
	// block, 128 tokens, not normalised, no prefix). The store records the result.
	features.Spec
	// Exact uses Spec as given, its zero fields taking the package defaults only, not
	// the model card's: the way to turn off a card's normalisation or prefix.
	Exact bool
	// BatchSize is the number of texts per forward pass. Default 32.
	BatchSize int
	// ChunkRows is the number of rows between checkpoints, and the window within which
	// texts are sorted by length into batches. Default 8192 (2048 with CutTop: an
	// activation cache holds a chunk's tokens in memory), or BatchSize if larger.
	ChunkRows int
	// AllowEmpty embeds empty texts (as [CLS] [SEP]) instead of refusing them.
	AllowEmpty bool
	// Dtype of the stored features. Default float32.
	Dtype features.Dtype
	// Resume continues from the checkpoint of an interrupted run with the same options.
	Resume bool
	// Shard, when Count > 0, restricts the run to the rows whose 0-based row number r has
	// r mod Count == Index; the store records the shard, and features.Merge joins the
	// shards into the store a single run would have written.
	Shard features.Shard

	// Runtime settings: RuntimeLib is the onnxruntime shared library (default: see
	// onnx.FindLibrary); Session the threads, optimisation level and provider.
	RuntimeLib string
	Session    onnx.SessionOptions
	// Runs is how many batches the backbone computes at once, each on
	// Session.IntraOpThreads threads, all sharing one copy of the weights (one
	// session). On a CPU, two runs of half the threads each keep the cores busy
	// where one run spread over them all waits at every operation for the slowest
	// thread: about 10% faster for all-MiniLM-L6-v2 on 2 cores, for the activation
	// memory of the second run (a few MiB to 30). SplitThreads picks Runs and the
	// threads as pipeline extract does. The features are the same whatever Runs is.
	// Default 1.
	Runs int

	// CutTop, when > 0, writes an activation cache instead of pooled features: the
	// hidden states of every real token entering the top CutTop encoder blocks
	// (features.TokenCache), for training those blocks (package lora). Pooling, Layers
	// and Normalize do not apply; the graph is cut below the top blocks, so they are not
	// computed.
	CutTop int
	// CacheOut, with CutTop, makes one pass write both: the pooled features (Pooling,
	// Layers, Normalize) to Out and the activation cache to CacheOut, from the same
	// forward of every batch, so a user who wants both (pipeline experiment with
	// frozen and top-block strategies) runs the backbone once. Each file is the one a
	// separate run would write.
	CacheOut string

	// Progress, when set, is told the total rows, the rows already done, and each chunk done.
	Progress Progress
	// Warn, when set, is told what is suspect about the data as soon as the scan finds
	// it, before any compute (the run goes on): no label column (the store will be
	// unlabelled, which fitting refuses), rows without a label, labels that differ
	// only in case.
	Warn func(msg string)

	spool string // the copy of a single-pass Data (features.SinglePass) read after the scan
}

// openData opens the rows of Data for the pass after the scan: Data itself, or its
// spool, read under Data's name.
func (o *ExtractOptions) openData(ctx context.Context) (*features.Reader, error) {
	if o.spool == "" {
		return features.OpenContext(ctx, o.Data, o.Reader)
	}
	ro := o.Reader
	if ro.Name == "" {
		ro.Name = o.Data
	}
	if ro.Format == features.FormatAuto {
		f, err := features.FormatOf(o.Data)
		if err != nil {
			return nil, err
		}
		ro.Format = f
	}
	return features.OpenContext(ctx, o.spool, ro)
}

// dataPath is Data as the manifest records it: absolute, or "-" for standard input.
func (o *ExtractOptions) dataPath() string {
	if o.Data == "-" {
		return "-"
	}
	p, _ := filepath.Abs(o.Data)
	return p
}

// Progress receives extraction progress.
type Progress interface {
	Start(total, done int)
	Add(n int)
}

// ExtractSummary reports what Extract did.
type ExtractSummary struct {
	Out       string
	CacheOut  string // the activation cache written with ExtractOptions.CacheOut
	Rows      int    // rows in the store
	Resumed   int    // rows taken from a checkpoint
	Truncated int    // texts cut at MaxLen
	Tokens    int64  // real tokens computed in this run
	Padded    int64  // token positions computed (real + padding) in this run
	Dim       int    // feature dimension
	Provider  string
	Elapsed   time.Duration // wall time of this run
	RunTime   time.Duration // wall time spent computing batches (forward and pooling)
	// Fallback says why provider auto ran on the CPU ("" when it did not fall back).
	Fallback string
}

// SplitThreads shares threads (0: one per core) among the runs of an extraction
// (ExtractOptions.Runs) on provider p, as pipeline extract and experiment do: runs 0
// picks two runs on a CPU with at least two threads, else one. It returns the runs
// and each run's intra-op threads: at least 1, or 0 (onnxruntime's choice, one per
// physical core) for a single run when threads is 0.
func SplitThreads(threads, runs int, p onnx.Provider) (n, intraOp int) {
	all := threads
	if all == 0 {
		all = runtime.NumCPU()
	}
	n = runs
	if n == 0 {
		n = 1
		if p.Kind == onnx.ProviderCPU && all >= 2 {
			n = 2
		}
	}
	if n == 1 {
		return 1, threads
	}
	return n, max(1, all/n)
}

// PaddingEfficiency is real tokens over computed token positions.
func (s ExtractSummary) PaddingEfficiency() float64 {
	if s.Padded == 0 {
		return 1
	}
	return float64(s.Tokens) / float64(s.Padded)
}

func (o *ExtractOptions) setDefaults() error {
	if o.Model == "" {
		o.Model = models.Default
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.Runs == 0 {
		o.Runs = 1
	}
	if o.ChunkRows == 0 {
		// Pooled rows are small, so the window can hold most datasets' short texts
		// whole; an activation cache holds every token of its chunk.
		o.ChunkRows = max(8192, o.BatchSize)
		if o.CutTop > 0 {
			o.ChunkRows = max(2048, o.BatchSize)
		}
	}
	switch {
	case o.Data == "":
		return fmt.Errorf("%w: no data file given", ErrBadOption)
	case o.Out == "":
		return fmt.Errorf("%w: no output file given", ErrBadOption)
	case o.MaxLen < 0 || o.MaxLen == 1:
		return fmt.Errorf("%w: max-len %d must be at least 2 ([CLS] and [SEP])", ErrBadOption, o.MaxLen)
	case o.BatchSize < 1:
		return fmt.Errorf("%w: batch-size %d must be at least 1", ErrBadOption, o.BatchSize)
	case o.Runs < 0:
		return fmt.Errorf("%w: runs %d must be at least 1 (or 0: one)", ErrBadOption, o.Runs)
	case o.Shard.Count < 0 || (o.Shard.Count > 0 && (o.Shard.Index < 0 || o.Shard.Index >= o.Shard.Count)):
		return fmt.Errorf("%w: shard %d/%d: want 0 <= index < count", ErrBadOption, o.Shard.Index, o.Shard.Count)
	case o.CutTop < 0:
		return fmt.Errorf("%w: cut-top %d must be at least 1 (or 0: pooled features)", ErrBadOption, o.CutTop)
	case o.CacheOut != "" && o.CutTop == 0:
		return fmt.Errorf("%w: cache-out %s needs cut-top (the blocks to cache the input of)", ErrBadOption, o.CacheOut)
	case o.CacheOut != "" && sameOutput(o.CacheOut, o.Out):
		return fmt.Errorf("%w: cache-out and out are the same file %s", ErrBadOption, o.Out)
	case o.CutTop > 0 && o.Reader.LabelSep != "":
		return fmt.Errorf("%w: label-sep %q: activation caches (cut-top) hold one label per row; multi-label data needs pooled features", ErrBadOption, o.Reader.LabelSep)
	case o.ChunkRows < o.BatchSize:
		return fmt.Errorf("%w: chunk rows %d smaller than batch size %d", ErrBadOption, o.ChunkRows, o.BatchSize)
	}
	return nil
}

// sameOutput reports whether two output paths name one file: the same absolute path,
// or, when both exist, the same file (links).
func sameOutput(a, b string) bool {
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	if aa == ab {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// Extract writes the pooled features of every row of opts.Data to opts.Out.
// Cancelling ctx stops it after the current batch; the finished chunks stay in the
// checkpoint (opts.Out + ".partial") for a later run with Resume.
func Extract(ctx context.Context, opts ExtractOptions) (sum ExtractSummary, err error) {
	start := time.Now()
	if err := opts.setDefaults(); err != nil {
		return sum, err
	}
	unlock, err := claimOutputs(&opts)
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, unlock()) }()
	paths, err := models.Resolve(opts.Model)
	if err != nil {
		return sum, err
	}
	if opts.Spec, err = ModelSpec(paths, opts.Spec, opts.Exact); err != nil {
		return sum, err
	}
	for _, out := range []string{opts.Out, opts.CacheOut} {
		if out == "" {
			continue
		}
		if err := fileio.CheckOutput(out, paths.Model, paths.Tokenizer); err != nil {
			return sum, err
		}
	}
	if err := checkMaxLen(paths, opts.MaxLen, nil); err != nil {
		return sum, err
	}

	// Pre-pass: validate the whole file (columns, UTF-8, empty texts), count rows,
	// collect labels and hash it, before spending any compute. An input that can be
	// read only once (standard input, a FIFO) is copied to a spool beside the output
	// as it is scanned, and the rows are read from the spool.
	var spool *os.File
	if features.SinglePass(opts.Data) {
		if spool, err = os.CreateTemp(filepath.Dir(opts.Out), "."+filepath.Base(opts.Out)+".input-*"); err != nil {
			return sum, fmt.Errorf("spooling %s: %w", opts.Data, err)
		}
		defer func() { err = errors.Join(err, spool.Close(), os.Remove(spool.Name())) }()
		opts.spool = spool.Name()
	}
	scan, err := features.ScanContext(ctx, opts.Data, opts.Reader, spool)
	if err != nil {
		return sum, err
	}
	if scan.EmptyTexts > 0 && !opts.AllowEmpty {
		row, err := firstEmptyRow(ctx, &opts)
		if err != nil {
			return sum, err
		}
		return sum, fmt.Errorf("%w: %s: row %d (0-based, as in row_ids%s) has an empty %q (or one of only whitespace and control characters); fix the data or pass --allow-empty to embed it as [CLS] [SEP]",
			ErrEmptyText, opts.Data, row, moreAfter(scan.EmptyTexts-1), textCol(opts.Reader))
	}
	if scan.Rows == 0 {
		return sum, fmt.Errorf("%w: %s has no data rows", ErrBadOption, opts.Data)
	}
	if opts.Warn != nil {
		for _, w := range labelWarnings(&opts, scan) {
			opts.Warn(w)
		}
	}
	multi := opts.Reader.LabelSep != ""
	if multi && len(scan.Labels) == 0 {
		return sum, fmt.Errorf("%w: label-sep %q: no row of %s has a label in column %q; a multi-label store needs labels", ErrBadOption, opts.Reader.LabelSep, opts.Data, labelCol(opts.Reader))
	}
	rows := scan.Rows
	var shard *features.Shard
	if opts.Shard.Count > 0 {
		shard = &features.Shard{Index: opts.Shard.Index, Count: opts.Shard.Count}
		rows = shardRows(scan.Rows, *shard)
		if rows == 0 {
			return sum, fmt.Errorf("%w: shard %d/%d of %s holds no rows (%d rows in all)", ErrBadOption, shard.Index, shard.Count, opts.Data, scan.Rows)
		}
	}

	if opts.CutTop > 0 && opts.CacheOut == "" {
		return extractTokens(ctx, opts, paths, scan, rows, shard, start)
	}

	var extra []int // with CacheOut: the state entering the top CutTop blocks
	if opts.CutTop > 0 {
		extra = []int{-1 - opts.CutTop}
	}
	enc, err := extractEncoder(&opts, paths, EncoderOptions{
		RuntimeLib: opts.RuntimeLib, Session: opts.Session, Spec: opts.Spec, Exact: true,
	}, extra, &sum)
	if err != nil {
		return sum, err
	}
	encOpen := true
	defer func() {
		if encOpen {
			err = errors.Join(err, enc.Close())
		}
	}()
	sum.Dim = enc.Dim()
	// Opening the encoder leaves garbage (the graph's skeleton, tokenizer.json's parse)
	// that the Go runtime would keep mapped through the run, on top of which
	// onnxruntime's arena grows: handing it back now takes about 19 MiB off the peak
	// resident memory of an extraction with all-MiniLM-L6-v2 (262 -> 243 MiB).
	debug.FreeOSMemory()

	man := storeManifest(&opts, enc, scan, shard)
	key := features.CheckpointKey(man, "batch="+strconv.Itoa(opts.BatchSize), "chunk="+strconv.Itoa(opts.ChunkRows))
	nsets := 0 // label-set columns per row (multi-label)
	if multi {
		nsets = len(scan.Labels)
	}
	ck, err := features.OpenCheckpointSets(opts.Out, key, enc.Dim(), nsets, opts.Resume)
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, ck.Close()) }()
	var sink chunkSink = &poolSink{enc: enc, ck: ck}
	done := int(ck.Rows())
	var tw *features.TokenWriter
	if opts.CacheOut != "" {
		cut := enc.states - 1 - opts.CutTop // the hidden state entering the top blocks
		if tw, err = openTokenWriter(&opts, opts.CacheOut, enc, scan, rows, shard, cut); err != nil {
			return sum, err
		}
		// Each file resumes from its own checkpoint; both commit whole chunks, so the
		// run restarts at the earlier one and the other skips the chunks it has.
		both := &bothSink{pool: sink.(*poolSink), tok: &tokenSink{enc: enc, w: tw, view: slices.Index(enc.layers, cut)}}
		done = min(done, tw.Rows())
		both.at = done
		sink = both
	}
	sum.Resumed = done
	if opts.Progress != nil {
		opts.Progress.Start(int(rows), done)
	}

	labelIndex := scan.LabelIndex() // labels as read -> their class (numbers compared as numbers)
	if err := runChunks(ctx, &opts, enc, labelIndex, done, sink, &sum); err != nil {
		if tw != nil {
			err = errors.Join(err, tw.Commit(), tw.Release())
		}
		return sum, err
	}
	if tw != nil {
		if err := tw.Close(); err != nil {
			return sum, err
		}
		sum.CacheOut = opts.CacheOut
	}
	// The session (weights and activation arena) goes before the store is written from
	// the checkpoint, so that the buffers of that copy do not add to the peak.
	encOpen = false
	if err := enc.Close(); err != nil {
		return sum, err
	}

	w, err := features.NewWriter(opts.Out, man, int(rows), sum.Dim, opts.Dtype)
	if err != nil {
		return sum, err
	}
	if err := ck.Finish(w); err != nil {
		return sum, errors.Join(err, w.Abort())
	}
	sum.Out = opts.Out
	sum.Rows = int(rows)
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// claimOutputs checks, before any work, the files Extract writes (Out, and CacheOut when
// set) against the data file and locks them (fileio.Claim), and refuses to discard the
// checkpoint of an interrupted run when Resume is not set. The returned func releases
// the locks.
func claimOutputs(opts *ExtractOptions) (release func() error, err error) {
	var locks []*fileio.Locked
	release = func() error {
		var err error
		for _, l := range locks {
			err = errors.Join(err, l.Release())
		}
		return err
	}
	for _, out := range []string{opts.Out, opts.CacheOut} {
		if out == "" {
			continue
		}
		l, err := fileio.Claim(out, opts.Data)
		if err != nil {
			return nil, errors.Join(err, release())
		}
		locks = append(locks, l)
		if opts.Resume {
			continue
		}
		for _, ck := range []string{out + ".partial.json", out + ".partial"} {
			if _, serr := os.Stat(ck); serr == nil {
				return nil, errors.Join(fmt.Errorf("%w: %s: a checkpoint of an interrupted run is there; pass --resume to continue it, or remove %s and %s to start afresh",
					ErrCheckpointExists, ck, out+".partial", out+".partial.json"), release())
			}
		}
	}
	return release, nil
}

// storeManifest describes the pooled-feature store Extract writes.
func storeManifest(opts *ExtractOptions, enc *Encoder, scan features.Summary, shard *features.Shard) features.Manifest {
	absData := opts.dataPath()
	return features.Manifest{
		Tool:       "headstart " + Version,
		Backbone:   enc.Backbone(),
		Spec:       features.Spec{Pooling: opts.Pooling, Layers: enc.Layers(), Normalize: opts.Normalize, MaxLen: opts.MaxLen, Prefix: opts.Prefix},
		Dtype:      opts.Dtype.String(),
		LabelNames: scan.Labels,
		MultiLabel: opts.Reader.LabelSep != "",
		LabelSep:   opts.Reader.LabelSep,
		Shard:      shard,
		Dataset: features.Dataset{
			Path: absData, SHA256: scan.SHA256, Rows: scan.Rows,
			TextCol: textCol(opts.Reader), LabelCol: labelCol(opts.Reader), Limit: opts.Reader.Limit,
		},
	}
}

// chunk is a window of rows tokenized and cut into length-sorted batches, ready for the backbone.
type chunk struct {
	rowIDs  []int64
	labels  []int64
	sets    []uint8 // (rows, K) multi-hot label sets when opts.Reader.LabelSep is set; else nil
	batches [][]int // indices into the chunk, per batch
	encs    []tokenize.Encoding
	tokens  int64
	trunc   int
	err     error
}

// runChunks tokenizes chunk i+1 in a goroutine while the backbone runs chunk i, and
// hands each chunk's batches to sink. With opts.Reader.LabelSep each chunk also gets the
// rows' multi-hot label sets over the classes of labelIndex, and labels -1.
func runChunks(ctx context.Context, opts *ExtractOptions, enc *Encoder, labelIndex map[string]int64, skip int, sink chunkSink, sum *ExtractSummary) error {
	nclass := 0 // labelIndex maps every spelling of a class ("2", "2.0")
	for _, i := range labelIndex {
		nclass = max(nclass, int(i)+1)
	}
	r, err := opts.openData(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(ctx)
	chunks := make(chan chunk, 1)
	// On any return, the reading goroutine is stopped and waited for before the reader
	// closes under it.
	defer func() {
		cancel()
		for range chunks {
		}
	}()
	multi := opts.Reader.LabelSep != ""
	go func() {
		defer close(chunks)
		inShard := func(i int64) bool { return opts.Shard.Count == 0 || int(i%int64(opts.Shard.Count)) == opts.Shard.Index }
		for i := 0; i < skip && r.Next(); {
			if inShard(r.Row().Index) {
				i++
			}
		}
		for {
			c := chunk{}
			for len(c.rowIDs) < opts.ChunkRows && r.Next() {
				if len(c.rowIDs)%256 == 255 && ctx.Err() != nil {
					return
				}
				row := r.Row()
				if !inShard(row.Index) {
					continue
				}
				e, err := enc.Tokenizer().Encode(row.Text)
				if err != nil {
					c.err = fmt.Errorf("%s: row %d: %w", opts.Data, row.Index, err)
					break
				}
				if e.Truncated {
					c.trunc++
				}
				c.tokens += int64(len(e.IDs))
				c.encs = append(c.encs, e)
				c.rowIDs = append(c.rowIDs, row.Index)
				l := int64(-1)
				if multi {
					at := len(c.sets)
					c.sets = append(c.sets, make([]uint8, nclass)...)
					for _, name := range row.Labels {
						c.sets[at+int(labelIndex[name])] = 1
					}
				} else if row.HasLabel {
					l = labelIndex[row.Label]
				}
				c.labels = append(c.labels, l)
			}
			if c.err == nil {
				c.err = r.Err()
			}
			if len(c.rowIDs) == 0 && c.err == nil {
				return
			}
			lengths := make([]int, len(c.encs))
			for i, e := range c.encs {
				lengths[i] = len(e.IDs)
			}
			c.batches = features.Buckets(lengths, opts.BatchSize)
			select {
			case chunks <- c:
			case <-ctx.Done():
				return
			}
			if c.err != nil {
				return
			}
		}
	}()

	workers := make([]*batchWorker, opts.Runs)
	for w := range workers {
		workers[w] = &batchWorker{enc: enc}
		if w > 0 {
			workers[w].enc = enc.fork()
		}
	}
	for c := range chunks {
		if c.err != nil {
			return c.err
		}
		n := len(c.rowIDs)
		if err := sink.begin(&c); err != nil {
			return err
		}
		t0 := time.Now()
		if err := runBatches(ctx, &c, sink, workers); err != nil {
			return err
		}
		sum.RunTime += time.Since(t0)
		for _, w := range workers {
			sum.Padded += w.padded
			w.padded = 0
		}
		if err := sink.end(&c); err != nil {
			return err
		}
		sum.Tokens += c.tokens
		sum.Truncated += c.trunc
		// The window's garbage (its encodings, the last window's buffers) goes back to
		// the system now rather than at the runtime's leisure: without this the Go heap
		// held 58 MiB resident for 20 MiB live on SST-2, the difference growing the peak.
		debug.FreeOSMemory()
		if opts.Progress != nil {
			opts.Progress.Add(n)
		}
	}
	return nil
}

// batchWorker computes batches on its own encoder (Encoder.fork of the first: one
// session, separate buffers).
type batchWorker struct {
	enc    *Encoder
	batch  []tokenize.Encoding // reused for every batch
	padded int64               // token positions computed since the counter was read
}

// runBatches hands the batches of c to sink, on len(workers) goroutines at once when
// there are several (each batch fills its own rows of the chunk's outputs; see
// eachBatch). The first error stops the others after their current batch; a cancelled
// ctx stops them all.
func runBatches(ctx context.Context, c *chunk, sink chunkSink, workers []*batchWorker) error {
	err := eachBatch(ctx, len(c.batches), len(workers), func(k, i int) error {
		w, b := workers[k], c.batches[i]
		w.batch = w.batch[:0]
		for _, j := range b {
			w.batch = append(w.batch, c.encs[j])
		}
		if err := sink.batch(w.enc, c, b, w.batch); err != nil {
			return err
		}
		w.padded += int64(w.enc.batch.B * w.enc.batch.T)
		return nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("extract interrupted after %d rows (checkpoint kept; rerun with --resume): %w", sink.rows(), err)
	}
	return err
}

// eachBatch calls do(k, i) for every batch i < n, on workers goroutines (k is the
// goroutine's index) or, with one worker, in order on the caller's. The batches are
// sorted by length (features.Buckets): worker 0 takes them from one end and the others
// from the other, so that the longest batches, which need the most activation memory,
// do not run at the same time. The first error, or ctx's, stops every worker after its
// current batch and is returned.
func eachBatch(ctx context.Context, n, workers int, do func(k, i int) error) error {
	if workers == 1 || n == 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := do(0, i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		mu     sync.Mutex
		lo, hi = 0, n // batches lo..hi-1 are still to take
		wg     sync.WaitGroup
		errs   = make([]error, workers)
		stop   atomic.Bool
	)
	take := func(first bool) int {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case lo >= hi:
			return -1
		case first:
			lo++
			return lo - 1
		default:
			hi--
			return hi
		}
	}
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := take(k == 0)
				if i < 0 {
					return
				}
				if errs[k] = ctx.Err(); errs[k] == nil {
					errs[k] = do(k, i)
				}
				if errs[k] != nil {
					stop.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// chunkSink consumes the chunks of runChunks: begin before a chunk's batches, batch for
// each of them (b indexes the chunk's rows, encs are their encodings; enc is the
// encoder to compute it with), end after them. batch may be called from several
// goroutines at once, each with its own enc and disjoint rows b.
type chunkSink interface {
	begin(c *chunk) error
	batch(enc *Encoder, c *chunk, b []int, encs []tokenize.Encoding) error
	end(c *chunk) error
	rows() int // rows safely stored so far
}

// poolSink pools each batch and appends each chunk to a checkpoint.
type poolSink struct {
	enc *Encoder
	ck  *features.Checkpoint
	out []float32 // the chunk's pooled rows
}

func (p *poolSink) begin(c *chunk) error {
	n, d := len(c.rowIDs), p.enc.Dim()
	if cap(p.out) < n*d {
		p.out = make([]float32, n*d)
	}
	p.out = p.out[:n*d]
	return nil
}

func (p *poolSink) batch(enc *Encoder, c *chunk, b []int, encs []tokenize.Encoding) error {
	vecs, err := enc.encodeBatch(encs)
	if err != nil {
		return err
	}
	d := enc.Dim()
	for i, j := range b {
		copy(p.out[j*d:(j+1)*d], vecs[i*d:(i+1)*d])
	}
	return nil
}

func (p *poolSink) end(c *chunk) error {
	if c.sets != nil {
		return p.ck.AppendSets(p.out, c.sets, c.rowIDs)
	}
	return p.ck.Append(p.out, c.labels, c.rowIDs)
}

func (p *poolSink) rows() int { return int(p.ck.Rows()) }

func firstEmptyRow(ctx context.Context, opts *ExtractOptions) (int64, error) {
	r, err := opts.openData(ctx)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	for r.Next() {
		if features.Blank(r.Row().Text) {
			return r.Row().Index, nil
		}
	}
	return -1, r.Err()
}

func textCol(o features.ReaderOptions) string {
	if o.TextCol == "" {
		return "text"
	}
	return o.TextCol
}

func labelCol(o features.ReaderOptions) string {
	if o.LabelCol == "" {
		return "label"
	}
	return o.LabelCol
}

// shardRows counts the row numbers r in [0, n) with r mod s.Count == s.Index.
func shardRows(n int64, s features.Shard) int64 {
	c := int64(s.Count)
	k := n / c
	if n%c > int64(s.Index) {
		k++
	}
	return k
}

// moreAfter says how many more rows share a problem after the one named: "" for none,
// "; 1 more after it", "; 3 more after it".
func moreAfter(n int64) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("; %d more after it", n)
}

// labelWarnings says what is suspect about the labels of a scanned dataset: no label
// column or an empty one (an unlabelled store), rows without a label, labels differing
// only in case. Plain text has no labels to warn about.
func labelWarnings(opts *ExtractOptions, scan features.Summary) []string {
	format := opts.Reader.Format
	if format == features.FormatAuto {
		format, _ = features.FormatOf(opts.Data)
	}
	if format == features.FormatText {
		return nil
	}
	col := labelCol(opts.Reader)
	var out []string
	switch {
	case scan.Labelled == 0 && !slices.Contains(scan.Columns, col):
		what := "column"
		if format == features.FormatJSONL {
			what = "key (in the first object)"
		}
		out = append(out, fmt.Sprintf("%s has no %s %q (found: %s): the store will be unlabelled, which fit-head and eval refuse; name the label column with --label-col (ReaderOptions.LabelCol)",
			opts.Data, what, col, strings.Join(scan.Columns, ", ")))
	case scan.Labelled == 0:
		out = append(out, fmt.Sprintf("column %q of %s is empty in every row: the store will be unlabelled, which fit-head and eval refuse", col, opts.Data))
	case scan.Labelled < scan.Rows:
		out = append(out, fmt.Sprintf("%d of %d rows of %s have no label (an empty or blank %q): fit-head and eval refuse unlabelled rows",
			scan.Rows-scan.Labelled, scan.Rows, opts.Data, col))
	}
	for _, g := range scan.CaseVariants {
		q := make([]string, len(g))
		for i, l := range g {
			q[i] = strconv.Quote(l)
		}
		out = append(out, fmt.Sprintf("labels of %s that differ only in case: %s are separate classes; if they are one, fix the data", opts.Data, strings.Join(q, ", ")))
	}
	return out
}
