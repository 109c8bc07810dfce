package headstart

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/tokenize"
)

// extractTokens is Extract with opts.CutTop > 0: it writes the activation cache of the
// rows (rows of them, the shard's when shard is set) entering the top opts.CutTop blocks.
func extractTokens(ctx context.Context, opts ExtractOptions, paths models.Paths, scan features.Summary, rows int64, shard *features.Shard, start time.Time) (sum ExtractSummary, err error) {
	enc, err := extractEncoder(&opts, paths, EncoderOptions{
		RuntimeLib: opts.RuntimeLib, Session: opts.Session, Exact: true,
		Spec: features.Spec{MaxLen: opts.MaxLen, Prefix: opts.Prefix, Layers: []int{-1 - opts.CutTop}}, cut: true,
	}, nil, &sum)
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, enc.Close()) }()
	sum.Dim = enc.hidden
	cut := enc.Layers()[0]

	w, err := openTokenWriter(&opts, opts.Out, enc, scan, rows, shard, cut)
	if err != nil {
		return sum, err
	}
	done := w.Rows()
	sum.Resumed = done
	if opts.Progress != nil {
		opts.Progress.Start(int(rows), done)
	}
	labelIndex := scan.LabelIndex() // labels as read -> their class (numbers compared as numbers)
	if err := runChunks(ctx, &opts, enc, labelIndex, done, &tokenSink{enc: enc, w: w}, &sum); err != nil {
		return sum, errors.Join(err, w.Commit(), w.Release())
	}
	if err := w.Close(); err != nil {
		return sum, err
	}
	sum.Out = opts.Out
	sum.Rows = int(rows)
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// openTokenWriter starts (or, with opts.Resume, continues) the activation cache at path
// of the rows entering hidden state cut, tokenizing every row first for the offsets.
func openTokenWriter(opts *ExtractOptions, path string, enc *Encoder, scan features.Summary, rows int64, shard *features.Shard, cut int) (*features.TokenWriter, error) {
	lens, ids, err := tokenLengths(opts, enc.Tokenizer())
	if err != nil {
		return nil, err
	}
	if int64(len(lens)) != rows {
		return nil, fmt.Errorf("%s changed while reading it: %d rows, then %d", opts.Data, rows, len(lens))
	}
	absData := opts.dataPath()
	man := features.TokenManifest{
		Manifest: features.Manifest{
			Tool:       "headstart " + Version,
			Backbone:   enc.Backbone(),
			Spec:       features.Spec{Pooling: features.NoPooling, Layers: []int{cut}, MaxLen: opts.MaxLen, Prefix: opts.Prefix},
			LabelNames: scan.Labels,
			Shard:      shard,
			Dataset: features.Dataset{
				Path: absData, SHA256: scan.SHA256, Rows: scan.Rows,
				TextCol: textCol(opts.Reader), LabelCol: labelCol(opts.Reader), Limit: opts.Reader.Limit,
			},
		},
		CutTop: opts.CutTop, CutBlock: cut, NumBlocks: enc.states - 1, Hidden: enc.hidden, IDs: true,
	}
	key := features.CheckpointKey(man.Manifest, "cut="+strconv.Itoa(cut), "dtype="+opts.Dtype.String(), "chunk="+strconv.Itoa(opts.ChunkRows))
	w, err := features.NewTokenWriter(path, man, lens, opts.Dtype, key, opts.Resume)
	if err != nil {
		return nil, err
	}
	if err := w.WriteIDs(ids); err != nil {
		return nil, errors.Join(err, w.Release())
	}
	return w, nil
}

// tokenLengths tokenizes every row of opts.Data (of the shard, if any) and returns the
// token counts in order, and every token's input id, row after row.
func tokenLengths(opts *ExtractOptions, tok *tokenize.Tokenizer) ([]int, []int64, error) {
	r, err := opts.openData(context.Background())
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var lens []int
	var ids []int64
	for r.Next() {
		row := r.Row()
		if opts.Shard.Count > 0 && int(row.Index%int64(opts.Shard.Count)) != opts.Shard.Index {
			continue
		}
		e, err := tok.Encode(row.Text)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: row %d: %w", opts.Data, row.Index, err)
		}
		lens = append(lens, len(e.IDs))
		ids = append(ids, e.IDs...)
	}
	return lens, ids, r.Err()
}

// tokenSink copies each batch's real token states into its chunk's packed buffer and
// writes each chunk to the cache, committing it.
type tokenSink struct {
	enc  *Encoder
	w    *features.TokenWriter
	view int       // the cached state is enc.views[view]
	buf  []float32 // the chunk's tokens, packed in row order
	pre  []int     // per row of the chunk: its first token in buf
}

func (t *tokenSink) begin(c *chunk) error {
	t.pre = t.pre[:0]
	n := 0
	for _, e := range c.encs {
		t.pre = append(t.pre, n)
		n += len(e.IDs)
	}
	c2 := n * t.enc.hidden
	if cap(t.buf) < c2 {
		t.buf = make([]float32, c2)
	}
	t.buf = t.buf[:c2]
	return nil
}

func (t *tokenSink) batch(enc *Encoder, c *chunk, b []int, encs []tokenize.Encoding) error {
	if err := enc.forward(encs); err != nil {
		return err
	}
	t.copyStates(enc, b, encs)
	return nil
}

// copyStates copies the real tokens of enc's last forward's cached state into the
// chunk's packed buffer.
func (t *tokenSink) copyStates(enc *Encoder, b []int, encs []tokenize.Encoding) {
	T, C := enc.batch.T, enc.hidden
	h := enc.views[t.view]
	for i, j := range b {
		l := len(encs[i].IDs)
		copy(t.buf[t.pre[j]*C:(t.pre[j]+l)*C], h[i*T*C:(i*T+l)*C])
	}
}

func (t *tokenSink) end(c *chunk) error {
	if err := t.w.WriteRows(t.buf, c.labels, c.rowIDs); err != nil {
		return err
	}
	return t.w.Commit()
}

func (t *tokenSink) rows() int { return t.w.Rows() }

// bothSink writes pooled features and the activation cache from one forward per batch
// (ExtractOptions.CacheOut). The two files commit chunks separately, so after an
// interruption one may hold a chunk more than the other: the run restarts at the
// earlier (at) and each file skips the chunks it already has.
type bothSink struct {
	pool               *poolSink
	tok                *tokenSink
	at                 int // first row of the current chunk
	wantPool, wantToks bool
}

func (s *bothSink) begin(c *chunk) error {
	s.wantPool = s.at >= s.pool.rows()
	s.wantToks = s.at >= s.tok.rows()
	return errors.Join(s.pool.begin(c), s.tok.begin(c))
}

func (s *bothSink) batch(enc *Encoder, c *chunk, b []int, encs []tokenize.Encoding) error {
	if !s.wantPool {
		return s.tok.batch(enc, c, b, encs)
	}
	if err := s.pool.batch(enc, c, b, encs); err != nil { // runs the forward
		return err
	}
	if s.wantToks {
		s.tok.copyStates(enc, b, encs)
	}
	return nil
}

func (s *bothSink) end(c *chunk) error {
	s.at += len(c.rowIDs)
	if s.wantToks {
		if err := s.tok.end(c); err != nil {
			return err
		}
	}
	if s.wantPool {
		return s.pool.end(c)
	}
	return nil
}

func (s *bothSink) rows() int { return min(s.pool.rows(), s.tok.rows()) }

// extractEncoder opens the encoder of an extraction (newEncoder) and records its
// provider and any fallback in sum; a failure on a model with fewer blocks than
// opts.CutTop says so.
func extractEncoder(opts *ExtractOptions, paths models.Paths, eo EncoderOptions, extra []int, sum *ExtractSummary) (*Encoder, error) {
	enc, err := newEncoder(paths, eo, extra)
	if err != nil {
		if blocks, berr := numBlocks(paths); berr == nil && opts.CutTop > blocks {
			return nil, fmt.Errorf("%w: cut-top %d: %s has %d encoder blocks", ErrBadOption, opts.CutTop, paths.Model, blocks)
		}
		return nil, err
	}
	sum.Provider = enc.Provider()
	if err := enc.Fallback(); err != nil {
		sum.Fallback = err.Error()
	}
	return enc, nil
}
