package headstart

import (
	"context"
	"errors"
	"fmt"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// PredictOptions configure Predict (pipeline predict). The zero value needs Heads and
// Data.
type PredictOptions struct {
	// Model is a registry name or a directory. Default: the backbone the heads record,
	// found by name or by the directory they were trained from, with its sha256
	// (models.ResolveRecorded).
	Model string
	// Heads classify every row; one forward feeds them all (see NewClassifier).
	Heads []*head.Head
	// Data is the texts' file (.csv, .tsv, .jsonl, .txt) or "-" for standard input;
	// Reader says how to read it (format, text column, row limit, line length).
	Data   string
	Reader features.ReaderOptions
	// Out, when set, is the file the caller writes the predictions to: Predict refuses
	// it, before the model loads, when it is the backbone's model or tokenizer file.
	Out string
	// BatchSize is the number of texts per forward pass. Default 32.
	BatchSize int
	// AllowEmpty classifies empty texts (as [CLS] [SEP]) instead of refusing them.
	AllowEmpty bool
	// Threshold is the probability from which a multi-label head predicts a label
	// (Prediction.Labels). Default DefaultThreshold.
	Threshold float64
	// RuntimeLib is the onnxruntime shared library (default: see onnx.FindLibrary);
	// Session the threads and provider.
	RuntimeLib string
	Session    onnx.SessionOptions
	// Runs is how many batches are classified at once on the one session, each on
	// Session.IntraOpThreads threads, as ExtractOptions.Runs. Default 1.
	Runs int
}

// predictWindow is the number of rows read, tokenized and sorted by length into batches
// at a time: it bounds the memory of a run over any number of rows.
const predictWindow = 1024

// Predict classifies every row of o.Data with o.Heads and calls emit with each row and
// its predictions (preds[h] is head h's), in the order of the file, as the rows are
// classified. An error from emit stops the run and is returned. It returns the rows
// classified.
func Predict(ctx context.Context, o PredictOptions, emit func(row features.Row, preds []Prediction) error) (n int, err error) {
	if len(o.Heads) == 0 {
		return 0, fmt.Errorf("%w: Predict needs Heads", ErrBadOption)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.BatchSize < 1 {
		return 0, fmt.Errorf("%w: batch size %d: want at least 1", ErrBadOption, o.BatchSize)
	}
	if o.Runs == 0 {
		o.Runs = 1
	}
	if o.Runs < 1 {
		return 0, fmt.Errorf("%w: runs %d: want at least 1", ErrBadOption, o.Runs)
	}
	paths, err := models.ResolveRecorded(o.Model, o.Heads[0].Fingerprint.BackboneOf())
	if err != nil {
		return 0, err
	}
	if o.Out != "" && o.Out != "-" {
		if err := fileio.CheckOutput(o.Out, paths.Model, paths.Tokenizer); err != nil {
			return 0, err
		}
	}
	clf, err := NewClassifier(paths, o.Heads, EncoderOptions{RuntimeLib: o.RuntimeLib, Session: o.Session})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, clf.Close()) }()
	if o.Threshold != 0 {
		if err := clf.SetThreshold(o.Threshold); err != nil {
			return 0, err
		}
	}
	r, err := features.OpenContext(ctx, o.Data, o.Reader)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	w := predictRows{ctx: ctx, batchSize: o.BatchSize, emit: emit}
	w.workers = append(w.workers, predictWorker{clf: clf})
	for range o.Runs - 1 {
		w.workers = append(w.workers, predictWorker{clf: clf.fork()})
	}
	for r.Next() {
		row := r.Row()
		if !o.AllowEmpty && features.Blank(row.Text) {
			return n, fmt.Errorf("%w: %s: row %d has an empty text (or one of only whitespace and control characters); pass --allow-empty to classify it as [CLS] [SEP]", ErrEmptyText, o.Data, row.Index)
		}
		e, err := clf.Encoder().Tokenizer().Encode(row.Text)
		if err != nil {
			return n, fmt.Errorf("%s: row %d: %w", o.Data, row.Index, err)
		}
		w.rows, w.encs = append(w.rows, row), append(w.encs, e)
		n++
		if len(w.rows) == predictWindow {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	if err := r.Err(); err != nil {
		return n, err
	}
	return n, w.flush()
}

// predictRows is Predict's window of rows read and tokenized, not yet classified.
type predictRows struct {
	ctx       context.Context
	batchSize int
	emit      func(features.Row, []Prediction) error
	rows      []features.Row
	encs      []tokenize.Encoding
	workers   []predictWorker // classify batches at once (PredictOptions.Runs)
	lengths   []int           // reused for every window
	preds     [][]Prediction  // reused for every window; see flush
}

// predictWorker classifies batches on its own classifier (Classifier.fork of the
// first: one session).
type predictWorker struct {
	clf   *Classifier
	batch []tokenize.Encoding // reused for every forward
}

// flush classifies the window in length-bucketed batches, emits its rows in order and
// empties it.
func (w *predictRows) flush() error {
	if len(w.rows) == 0 {
		return nil
	}
	w.lengths = w.lengths[:0]
	for _, e := range w.encs {
		w.lengths = append(w.lengths, len(e.IDs))
	}
	// preds[i][h]: row i's prediction by head h. The rows' slices share one new block
	// per window (emit may keep them), each capped at its end.
	nh := len(w.workers[0].clf.heads)
	all := make([]Prediction, len(w.rows)*nh)
	w.preds = w.preds[:0]
	for i := range w.rows {
		w.preds = append(w.preds, all[i*nh:(i+1)*nh:(i+1)*nh])
	}
	preds := w.preds
	batches := features.Buckets(w.lengths, w.batchSize)
	err := eachBatch(w.ctx, len(batches), len(w.workers), func(k, i int) error {
		pw, b := &w.workers[k], batches[i]
		pw.batch = pw.batch[:0]
		for _, j := range b {
			pw.batch = append(pw.batch, w.encs[j])
		}
		ps, err := pw.clf.ClassifyEncoded(pw.batch)
		if err != nil {
			return err
		}
		for h := range ps {
			for i, j := range b {
				preds[j][h] = ps[h][i]
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, row := range w.rows {
		if err := w.emit(row, preds[i]); err != nil {
			return err
		}
	}
	w.rows, w.encs = w.rows[:0], w.encs[:0]
	return nil
}
