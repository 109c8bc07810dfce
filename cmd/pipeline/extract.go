package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

type extractOptions struct {
	Model, Data, Out               string
	TextCol, LabelCol, LabelSep    string
	InputFormat                    string // csv, tsv, jsonl, text; "" from Data's extension
	LabelRequired                  bool
	Layers, Dtype                  string
	Resume, AllowEmpty             bool
	BatchSize, Threads, Runs       int
	ChunkRows, Limit               int
	MaxLineBytes                   int
	Provider, OptLevel, RuntimeLib string
	JSON                           bool
	Shard                          string
	CutTop                         int
	CacheOut                       string
	LayersSet                      bool
	ChunkRowsSet                   bool // --chunk-rows given; else the library's default
	Spec                           specFlags
}

func newExtractCommand() *cli.Command {
	return &cli.Command{
		Name:  "extract",
		Usage: "run the frozen backbone over a dataset and write pooled features (safetensors)",
		Description: "Reads texts (CSV/TSV with a header, or JSONL), tokenizes them, runs the backbone in\n" +
			"length-bucketed batches and writes one pooled vector per row to --out, atomically.\n" +
			"A checkpoint (OUT.partial) is kept while it runs; after Ctrl-C or a kill, rerun with\n" +
			"--resume to continue: the result is byte-identical to an uninterrupted run.",
		Flags: append(specFlagList(),
			&cli.StringFlag{Name: "model", Value: "all-minilm-l6-v2", Usage: "registry `NAME` or a DIR holding model.onnx and tokenizer.json"},
			&cli.StringFlag{Name: "data", Required: true, Usage: "input `FILE` (.csv, .tsv, .jsonl, .txt), or - for stdin (CSV unless --input-format); stdin or a FIFO is read once, copied to a temporary file beside --out"},
			&cli.StringFlag{Name: "input-format", Usage: "csv | tsv | jsonl | text (one text per line, no labels) (default: from --data's extension)"},
			&cli.StringFlag{Name: "text-col", Value: "text", Usage: "column (or JSON key) holding the text"},
			&cli.StringFlag{Name: "label-col", Value: "label", Usage: "column holding the label (optional unless given explicitly)"},
			&cli.StringFlag{Name: "label-sep", Usage: "multi-label: the label column holds several labels separated by `SEP` (e.g. \"|\": card|arrival); in JSONL a label may also be an array ([\"card\", \"arrival\"]); an empty field is no labels; the store gets label_sets"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output `FILE.safetensors`"},
			&cli.StringFlag{Name: "layers", Value: "-1", Usage: "hidden states to pool, comma-separated and concatenated (0 = embeddings, -1 = last block), e.g. -4,-3,-2,-1"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "texts per forward pass"},
			&cli.IntFlag{Name: "chunk-rows", Usage: "rows per checkpoint (and length-sorting window) (default: 8192, or 2048 with --cut-top)"},
			&cli.IntFlag{Name: "threads", Usage: "onnxruntime threads in all (0 = one per core)"},
			&cli.IntFlag{Name: "runs", Usage: "batches computed at once, sharing one copy of the weights, each on --threads / `N` threads; 0: 2 on a CPU with 2 threads or more (faster; --runs 1 holds the least memory); the features do not depend on it"},
			&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "cpu | cuda[:DEVICE] | auto"},
			&cli.StringFlag{Name: "opt-level", Value: "all", Usage: "graph optimisation: all | extended | basic | disabled"},
			&cli.StringFlag{Name: "dtype", Value: "float32", Usage: "stored feature type: float32 | float16"},
			&cli.IntFlag{Name: "limit", Usage: "read at most N rows (0 = all)"},
			maxLineBytesFlag(),
			&cli.BoolFlag{Name: "resume", Usage: "continue an interrupted run from its checkpoint"},
			&cli.BoolFlag{Name: "allow-empty", Usage: "embed empty texts as [CLS] [SEP] instead of refusing them"},
			&cli.StringFlag{Name: "ort-lib", EnvVars: []string{"HEADSTART_ORT_LIB"}, Usage: "onnxruntime shared library (default: the setup cache)"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON on stdout"},
			&cli.IntFlag{Name: "cut-top", Usage: "write an activation cache instead of pooled features: the states of every token entering the top `K` blocks, for fit-head --mode lora|full|reinit"},
			&cli.StringFlag{Name: "cache-out", Usage: "with --cut-top: write the pooled features to --out and the activation cache to `FILE`, both from one forward pass"},
			&cli.StringFlag{Name: "shard", Usage: "process only shard `I/N` (rows r with r mod N = I); auto or auto/N reads the index from JOB_COMPLETION_INDEX (Kubernetes) or SLURM_ARRAY_TASK_ID (Slurm); join shards with `features merge`"},
		),
		Action: func(c *cli.Context) error {
			return runExtract(c.Context, extractOptions{
				Model: c.String("model"), Data: c.String("data"), Out: c.String("out"),
				InputFormat: c.String("input-format"), TextCol: c.String("text-col"), LabelCol: c.String("label-col"), LabelSep: c.String("label-sep"), LabelRequired: c.IsSet("label-col"),
				Layers: c.String("layers"), Dtype: c.String("dtype"), Spec: readSpecFlags(c),
				Resume: c.Bool("resume"), AllowEmpty: c.Bool("allow-empty"),
				BatchSize: c.Int("batch-size"), Threads: c.Int("threads"), Runs: c.Int("runs"),
				ChunkRows: c.Int("chunk-rows"), ChunkRowsSet: c.IsSet("chunk-rows"), Limit: c.Int("limit"), MaxLineBytes: c.Int("max-line-bytes"),
				Provider: c.String("provider"), OptLevel: c.String("opt-level"), RuntimeLib: c.String("ort-lib"),
				JSON: c.Bool("json"), Shard: c.String("shard"),
				CutTop: c.Int("cut-top"), CacheOut: c.String("cache-out"), LayersSet: c.IsSet("layers"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// parseLayers parses "-4,-3,-2,-1".
func parseLayers(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("--layers %q: %q is not an integer; want comma-separated layer indices such as -1 or -4,-3,-2,-1", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func (o extractOptions) toLib() (headstart.ExtractOptions, error) {
	var lo headstart.ExtractOptions
	var err error
	if _, err := features.ParsePooling(o.Spec.Pooling); err != nil {
		return lo, usageError{err}
	}
	if lo.Dtype, err = features.ParseDtype(o.Dtype); err != nil {
		return lo, usageError{err}
	}
	layers, err := parseLayers(o.Layers)
	if err != nil {
		return lo, err
	}
	if lo.Session.Provider, err = onnx.ParseProvider(o.Provider); err != nil {
		return lo, usageError{err}
	}
	if lo.Session.OptLevel, err = onnx.ParseOptLevel(o.OptLevel); err != nil {
		return lo, usageError{err}
	}
	if o.Threads < 0 {
		return lo, usagef("--threads %d: want 0 (one per core) or more", o.Threads)
	}
	if o.Limit < 0 {
		return lo, usagef("--limit %d: want 0 (all rows) or more", o.Limit)
	}
	// Zero is not "the default" here: the flags have their defaults, so a 0 was typed.
	switch {
	case o.Spec.MaxLen != nil && *o.Spec.MaxLen < 2:
		return lo, usagef("--max-len %d: want at least 2 ([CLS] and [SEP]) and at most the model's positions (512 for BERT-family models)", *o.Spec.MaxLen)
	case o.BatchSize < 1:
		return lo, usagef("--batch-size %d: want at least 1", o.BatchSize)
	case o.Runs < 0:
		return lo, usagef("--runs %d: want 0 (two on a CPU with two threads or more, else one) or more", o.Runs)
	case o.ChunkRowsSet && o.ChunkRows < 1:
		return lo, usagef("--chunk-rows %d: want at least 1 (and at least --batch-size)", o.ChunkRows)
	}
	lo.Runs, lo.Session.IntraOpThreads = headstart.SplitThreads(o.Threads, o.Runs, lo.Session.Provider)
	lo.Model, lo.Data, lo.Out = o.Model, o.Data, o.Out
	if o.LabelSep != "" && strings.TrimSpace(o.LabelSep) == "" {
		return lo, usagef("--label-sep %q: want a separator that is not whitespace (labels are trimmed), e.g. \"|\"", o.LabelSep)
	}
	inFormat, err := features.ParseFormat(o.InputFormat)
	if err != nil {
		return lo, usagef("--input-format: %w", err)
	}
	// Multi-label data needs the label column.
	if err := checkMaxLineBytes(o.MaxLineBytes); err != nil {
		return lo, err
	}
	lo.Reader = features.ReaderOptions{Format: inFormat, TextCol: o.TextCol, LabelCol: o.LabelCol, RequireLabel: o.LabelRequired || o.LabelSep != "", Limit: o.Limit, LabelSep: o.LabelSep, MaxLineBytes: o.MaxLineBytes}
	lo.Resume, lo.AllowEmpty = o.Resume, o.AllowEmpty
	lo.BatchSize = o.BatchSize
	if o.ChunkRowsSet {
		lo.ChunkRows = o.ChunkRows
	}
	lo.RuntimeLib = o.RuntimeLib
	switch {
	case o.CutTop < 0:
		return lo, usagef("--cut-top %d: want the number of top blocks to train (1 or more)", o.CutTop)
	case o.CacheOut != "" && o.CutTop == 0:
		return lo, usagef("--cache-out needs --cut-top K (the top blocks whose input to cache)")
	case o.CutTop > 0 && o.CacheOut == "" && (o.Spec.Pooling != "" || o.Spec.Normalize != nil || o.LayersSet):
		return lo, usagef("--cut-top caches token states for training the top blocks; --pooling, --normalize and --layers do not apply (the trained model pools with mean)")
	case o.CutTop > 0 && o.LabelSep != "":
		return lo, usagef("--cut-top caches hold one label per row; --label-sep (multi-label) needs pooled features")
	}
	lo.CutTop, lo.CacheOut = o.CutTop, o.CacheOut
	// The model's card gives what the flags leave out; the library gets the whole spec.
	paths, err := models.Resolve(o.Model)
	if err != nil {
		return lo, err
	}
	if lo.Spec, err = resolveSpec(o.Spec, paths, layers); err != nil {
		return lo, err
	}
	lo.Exact = true
	if lo.Shard, err = parseShard(o.Shard, nil); err != nil {
		return lo, err
	}
	return lo, nil
}

func runExtract(ctx context.Context, o extractOptions, stdout, stderr io.Writer) error {
	lo, err := o.toLib()
	if err != nil {
		return err
	}
	p := newProgress(stderr, "extract", "rows")
	lo.Progress = p
	lo.Warn = func(msg string) { fmt.Fprintln(stderr, "extract: warning:", msg) }
	sum, err := headstart.Extract(ctx, lo)
	p.Finish()
	if err != nil {
		return err
	}
	if lo.Session.Provider.Kind == onnx.ProviderAuto {
		if sum.Fallback != "" {
			fmt.Fprintf(stderr, "extract: --provider %s: CUDA unavailable, running on %s: %s\n", o.Provider, sum.Provider, sum.Fallback)
		} else {
			fmt.Fprintf(stderr, "extract: --provider %s: CUDA loaded, running on %s\n", o.Provider, sum.Provider)
		}
	}
	if o.JSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"out": sum.Out, "cache_out": sum.CacheOut, "rows": sum.Rows, "resumed": sum.Resumed, "dim": sum.Dim, "truncated": sum.Truncated,
			"provider": sum.Provider, "provider_fallback": sum.Fallback, "seconds": sum.Elapsed.Seconds(), "run_seconds": sum.RunTime.Seconds(),
			"rows_per_s":   float64(sum.Rows-sum.Resumed) / sum.Elapsed.Seconds(),
			"run_fraction": sum.RunTime.Seconds() / sum.Elapsed.Seconds(), "padding_efficiency": sum.PaddingEfficiency(),
			"tokens": sum.Tokens, "runs": lo.Runs, "intra_op_threads": lo.Session.IntraOpThreads,
		})
	}
	fmt.Fprintf(stderr, "extract: %d rows (%d resumed) -> %s [%d dims, %s, %s]; %d truncated at %d tokens; %.1f rows/s, %.0f%% of wall time computing batches, padding efficiency %.1f%%\n",
		sum.Rows, sum.Resumed, sum.Out, sum.Dim, sum.Provider, count(lo.Runs, "run", "runs"), sum.Truncated, lo.MaxLen,
		float64(sum.Rows-sum.Resumed)/sum.Elapsed.Seconds(), 100*sum.RunTime.Seconds()/sum.Elapsed.Seconds(), 100*sum.PaddingEfficiency())
	if sum.CacheOut != "" {
		fmt.Fprintf(stderr, "extract: activation cache (the states entering the top %d blocks, same forward) -> %s\n", lo.CutTop, sum.CacheOut)
	}
	return nil
}

// maxLineBytesFlag is the --max-line-bytes flag of the commands that read datasets.
func maxLineBytesFlag() cli.Flag {
	return &cli.IntFlag{Name: "max-line-bytes", Value: features.DefaultMaxLineBytes,
		Usage: "longest row (a line; a CSV record) in `BYTES`: a longer one is an error naming it, so that an input without line ends cannot exhaust memory"}
}

func checkMaxLineBytes(n int) error {
	if n < 1 {
		return usagef("--max-line-bytes %d: want at least 1 (default %d)", n, features.DefaultMaxLineBytes)
	}
	return nil
}
