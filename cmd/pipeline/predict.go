package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/onnx"
)

type predictOptions struct {
	Model, Data, Out, Format, TextCol string
	InputFormat                       string // csv, tsv, jsonl, text; "" from Data's extension (stdin: csv)
	Heads                             []string
	BatchSize, Threads, Runs, Limit   int
	MaxLineBytes                      int
	Provider, RuntimeLib              string
	AllowEmpty                        bool
	Threshold                         float64 // multi-label heads: predict the labels with p >= Threshold
	ThresholdSet                      bool
	LabelSep                          string // multi-label heads: joins a row's labels in CSV

	// Set by check.
	outFormat string
	inFormat  features.Format
	provider  onnx.Provider
}

func newPredictCommand() *cli.Command {
	return &cli.Command{
		Name:  "predict",
		Usage: "classify texts with one or more heads (one backbone forward pass feeds them all)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "registry `NAME` or DIR (default: the backbone the heads record, found by name or by the directory they were trained from, with its sha256)"},
			&cli.StringSliceFlag{Name: "head", Required: true, Usage: "head `FILE`; repeat for several heads"},
			&cli.StringFlag{Name: "data", Required: true, Usage: "texts: `FILE` (.csv, .tsv, .jsonl, .txt) or - for standard input"},
			&cli.StringFlag{Name: "input-format", Usage: "csv | tsv | jsonl | text (one text per line) (default: from --data's extension, csv for -)"},
			&cli.StringFlag{Name: "text-col", Value: "text", Usage: "column (or JSON key) holding the text"},
			&cli.StringFlag{Name: "out", Value: "-", Usage: "`FILE` (.csv or .jsonl) or - for stdout"},
			&cli.StringFlag{Name: "format", Usage: "csv | jsonl (default: from --out's extension, csv for stdout)"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "texts per forward pass"},
			&cli.IntFlag{Name: "threads", Usage: "onnxruntime threads in all (0 = one per core)"},
			&cli.IntFlag{Name: "runs", Usage: "batches classified at once on one copy of the weights, each on --threads / `N` threads; 0: 2 on a CPU with 2 threads or more, else 1 (as extract)"},
			&cli.IntFlag{Name: "limit", Usage: "read at most N rows (0 = all)"},
			maxLineBytesFlag(),
			&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "cpu | cuda[:DEVICE] | auto"},
			&cli.BoolFlag{Name: "allow-empty", Usage: "classify empty texts instead of refusing them"},
			&cli.Float64Flag{Name: "threshold", Value: 0.5, Usage: "multi-label heads: predict every label whose probability is at least `P`, in (0, 1)"},
			&cli.StringFlag{Name: "label-sep", Value: "|", Usage: "multi-label heads: `SEP` joining a row's predicted labels in CSV output"},
			&cli.StringFlag{Name: "ort-lib", EnvVars: []string{"HEADSTART_ORT_LIB"}, Usage: "onnxruntime shared library"},
		},
		Action: func(c *cli.Context) error {
			return runPredict(c.Context, predictOptions{
				Model: c.String("model"), Heads: c.StringSlice("head"), Data: c.String("data"), Out: c.String("out"),
				Format: c.String("format"), InputFormat: c.String("input-format"), TextCol: c.String("text-col"), BatchSize: c.Int("batch-size"),
				Threads: c.Int("threads"), Runs: c.Int("runs"), Limit: c.Int("limit"), MaxLineBytes: c.Int("max-line-bytes"), Provider: c.String("provider"),
				RuntimeLib: c.String("ort-lib"), AllowEmpty: c.Bool("allow-empty"),
				Threshold: c.Float64("threshold"), ThresholdSet: c.IsSet("threshold"), LabelSep: c.String("label-sep"),
			}, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// headNames names each head by its file's base name, made unique.
func headNames(paths []string) []string {
	names := make([]string, len(paths))
	seen := map[string]int{}
	for i, p := range paths {
		n := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if seen[n]++; seen[n] > 1 {
			n += "_" + strconv.Itoa(i)
		}
		names[i] = n
	}
	return names
}

// check validates the flags that need no file and resolves what they leave open: the
// output format (from --out's extension), the input format and the provider.
func (o *predictOptions) check() (err error) {
	o.outFormat = o.Format
	if o.outFormat == "" {
		o.outFormat = "csv"
		if strings.HasSuffix(o.Out, ".jsonl") || strings.HasSuffix(o.Out, ".ndjson") {
			o.outFormat = "jsonl"
		}
	}
	if o.outFormat != "csv" && o.outFormat != "jsonl" {
		return usagef("--format %q unknown; want one of csv, jsonl", o.outFormat)
	}
	if o.inFormat, err = features.ParseFormat(o.InputFormat); err != nil {
		return usagef("--input-format: %w", err)
	}
	if o.inFormat == features.FormatAuto {
		if _, err := features.FormatOf(o.Data); err != nil { // before the model loads
			return usagef("%w with --input-format", err)
		}
	}
	if o.BatchSize < 1 {
		return usagef("--batch-size %d: want at least 1", o.BatchSize)
	}
	if o.Threads < 0 || o.Runs < 0 {
		return usagef("--threads %d, --runs %d: want 0 (the default) or more", o.Threads, o.Runs)
	}
	if o.Limit < 0 {
		return usagef("--limit %d: want 0 (all rows) or more", o.Limit)
	}
	if err := checkMaxLineBytes(o.MaxLineBytes); err != nil {
		return err
	}
	if o.provider, err = onnx.ParseProvider(o.Provider); err != nil {
		return usageError{err}
	}
	if !(o.Threshold > 0 && o.Threshold < 1) {
		return usagef("--threshold %g: want a probability in (0, 1)", o.Threshold)
	}
	if o.LabelSep == "" {
		o.LabelSep = "|"
	}
	return nil
}

func runPredict(ctx context.Context, o predictOptions, stdout, stderr io.Writer) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	var lock *fileio.Locked // nil (nothing to release) when writing to stdout
	if o.Out != "-" {
		if lock, err = fileio.Claim(o.Out, append([]string{o.Data}, o.Heads...)...); err != nil {
			return err
		}
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	heads, err := o.loadHeads()
	if err != nil {
		return err
	}
	// Output: stdout, or a temporary file renamed into place when everything succeeded.
	// It opens with the first row or at the end, after the model has loaded.
	var bw *stream
	var out *predictionWriter
	open := func() error {
		if bw != nil {
			return nil
		}
		if bw, err = openStream(o.Out, stdout); err != nil {
			return err
		}
		out = newPredictionWriter(bw.Writer, o.outFormat, headNames(o.Heads), heads, o.LabelSep)
		return out.header()
	}
	defer func() {
		if err != nil && bw != nil {
			err = errors.Join(err, bw.abort())
		}
	}()
	runs, intra := headstart.SplitThreads(o.Threads, o.Runs, o.provider)
	n, err := headstart.Predict(ctx, headstart.PredictOptions{
		Model: o.Model, Heads: heads, Data: o.Data, Out: o.Out, BatchSize: o.BatchSize, AllowEmpty: o.AllowEmpty, Threshold: o.Threshold,
		Reader:     features.ReaderOptions{Format: o.inFormat, TextCol: o.TextCol, Limit: o.Limit, MaxLineBytes: o.MaxLineBytes},
		RuntimeLib: o.RuntimeLib, Session: onnx.SessionOptions{IntraOpThreads: intra, Provider: o.provider}, Runs: runs,
	}, func(row features.Row, preds []headstart.Prediction) error {
		if err := open(); err != nil {
			return err
		}
		return out.row(row, preds)
	})
	if errors.Is(err, features.ErrUnknownFormat) {
		return usagef("%w with --input-format", err)
	}
	if err != nil {
		return err
	}
	if err := open(); err != nil { // no rows: the header alone
		return err
	}
	if err := bw.commit(); err != nil {
		return err
	}
	if o.Out != "-" {
		fmt.Fprintf(stderr, "predict: %s x %s -> %s\n", count(n, "row", "rows"), count(len(heads), "head", "heads"), o.Out)
	}
	return nil
}

// loadHeads loads the head files; --threshold needs a multi-label one.
func (o *predictOptions) loadHeads() ([]*head.Head, error) {
	heads := make([]*head.Head, len(o.Heads))
	multi := false
	for i, p := range o.Heads {
		var err error
		if heads[i], err = head.Load(p); err != nil {
			return nil, err
		}
		multi = multi || heads[i].MultiLabel
	}
	if o.ThresholdSet && !multi {
		return nil, usagef("--threshold applies to multi-label heads (fit on a store extracted with --label-sep); none of the heads given is")
	}
	return heads, nil
}

// predictionWriter writes predictions as CSV (a header, then a row per text) or JSONL
// (an object per text).
type predictionWriter struct {
	w      *bufio.Writer
	csv    *csv.Writer
	format string
	names  []string
	heads  []*head.Head
	sep    string // multi-label heads: joins the predicted labels in CSV
}

func newPredictionWriter(w *bufio.Writer, format string, names []string, heads []*head.Head, sep string) *predictionWriter {
	p := &predictionWriter{w: w, format: format, names: names, heads: heads, sep: sep}
	if format == "csv" {
		p.csv = csv.NewWriter(w)
	}
	return p
}

// header writes the CSV header: row, text, then per head NAME.label (NAME.labels for a
// multi-label head: the predicted set joined by the separator) and NAME.p.CLASS.
func (p *predictionWriter) header() error {
	if p.csv == nil {
		return nil
	}
	cols := []string{"row", "text"}
	for h, hd := range p.heads {
		if hd.MultiLabel {
			cols = append(cols, p.names[h]+".labels")
		} else {
			cols = append(cols, p.names[h]+".label")
		}
		for _, c := range hd.Classes {
			cols = append(cols, p.names[h]+".p."+c)
		}
	}
	return p.csv.Write(cols)
}

// row writes a row's predictions: preds[h] is head h's.
func (p *predictionWriter) row(row features.Row, preds []headstart.Prediction) error {
	if p.csv != nil {
		rec := []string{strconv.FormatInt(row.Index, 10), row.Text}
		for h, hd := range p.heads {
			pr := preds[h]
			if hd.MultiLabel {
				rec = append(rec, strings.Join(pr.Labels, p.sep))
			} else {
				rec = append(rec, pr.Label)
			}
			for _, v := range pr.Probs {
				rec = append(rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
			}
		}
		if err := p.csv.Write(rec); err != nil {
			return err
		}
		p.csv.Flush()
		return p.csv.Error()
	}
	type headOut struct {
		Label string             `json:"label"`
		Probs map[string]float32 `json:"probs"`
	}
	type multiOut struct {
		Labels []string           `json:"labels"`
		Probs  map[string]float32 `json:"probs"`
	}
	obj := struct {
		Row   int64          `json:"row"`
		Text  string         `json:"text"`
		Heads map[string]any `json:"heads"`
	}{Row: row.Index, Text: row.Text, Heads: map[string]any{}}
	for h, hd := range p.heads {
		pr := preds[h]
		probs := make(map[string]float32, len(hd.Classes))
		for k, c := range hd.Classes {
			probs[c] = pr.Probs[k]
		}
		if hd.MultiLabel {
			obj.Heads[p.names[h]] = multiOut{Labels: pr.Labels, Probs: probs}
		} else {
			obj.Heads[p.names[h]] = headOut{Label: pr.Label, Probs: probs}
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	_, err = p.w.Write(append(b, '\n'))
	return err
}
