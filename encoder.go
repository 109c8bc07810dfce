package headstart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// EncoderOptions configure NewEncoder. The zero value is valid.
type EncoderOptions struct {
	// RuntimeLib is the onnxruntime shared library; default
	// onnx.FindLibraryFor("", Session.Provider), or the runtime already loaded.
	RuntimeLib string
	// Session holds threads, optimisation level and provider. Default: CPU, all cores.
	Session onnx.SessionOptions
	// Spec and Exact as in ExtractOptions: the zero fields of Spec take the model
	// card's conventions unless Exact, then the package defaults.
	features.Spec
	Exact bool

	// top replaces the model's top blocks by trained ones (a head with top blocks).
	top *head.Top
	// cut makes the session compute only the hidden states of Layers: the graph is
	// pruned after them (the activation cache of extract --cut-top).
	cut bool
	// pack edits the graph for packed batches (onnx.EnablePacking), so that
	// forwardPacked may put several texts in one row; forward still runs one text per
	// row.
	pack bool
}

// Encoder turns texts into pooled vectors with one backbone session. It is not safe for
// concurrent use: use one Encoder per goroutine.
type Encoder struct {
	tok      *tokenize.Tokenizer
	sess     *onnx.Session
	inputs   []string // model input names, in the order the session takes them
	layers   []int    // resolved hidden-state indices
	hidden   int      // width of one hidden state
	opts     EncoderOptions
	pool     features.Pooling // opts.Pooling
	backbone features.Backbone

	// layers[:nreq] are the layers asked for (Dim, Layers, Embed); layers[nreq:] are
	// extra hidden states exposed for a caller that pools its own (see newEncoder).
	nreq   int
	states int // hidden states the model has (embeddings output + blocks)

	// packed: the graph takes position ids and a token-to-token mask (opts.pack).
	packed bool
	// segs, after forwardPacked, places each text in the (R,T) batch; nil after
	// forward, whose rows are one text each (e.batch).
	segs []segment

	// Reused per batch.
	batch    features.Batch
	posIDs   []int64
	mask4    []int64
	ones     []int64
	outs     []onnx.Float32Tensor
	ins      []onnx.Int64Tensor
	vecs     []float32
	views    [][]float32
	layerOut []int // session output index of each requested layer
}

// feedable are the inputs a BERT-family tokenizer produces.
var feedable = []string{"input_ids", "attention_mask", "token_type_ids"}

// NewEncoder loads the tokenizer and opens a session on the backbone, exposing the hidden
// states that opts.Layers names.
func NewEncoder(p models.Paths, opts EncoderOptions) (_ *Encoder, err error) {
	if opts.Spec, err = ModelSpec(p, opts.Spec, opts.Exact); err != nil {
		return nil, err
	}
	return newEncoder(p, opts, nil)
}

// newEncoder is NewEncoder that also exposes the hidden states extra names (indexed like
// opts.Layers, negative from the end; duplicates of opts.Layers allowed). They are
// appended to e.layers after the requested ones and are not part of Dim or Embed.
func newEncoder(p models.Paths, opts EncoderOptions, extra []int) (_ *Encoder, err error) {
	opts.Spec = opts.Spec.WithDefaults()
	pool, err := opts.Pool()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOption, err)
	}
	// The runtime is process-wide: the first encoder picks it (the CUDA build when its
	// provider may use CUDA and the build is in the cache), later ones reuse it.
	lib := ""
	if opts.RuntimeLib != "" || onnx.LibraryPath() == "" {
		if lib, err = onnx.FindLibraryFor(opts.RuntimeLib, opts.Session.Provider); err != nil {
			return nil, err
		}
	}
	if err := onnx.Init(lib); err != nil {
		return nil, err
	}
	// The model file's checksum and the tokenizer are made on another core while
	// onnxruntime opens the session (about 0.12 s of 0.3 for all-MiniLM-L6-v2).
	type shaResult struct {
		sum string
		err error
	}
	type tokResult struct {
		tok *tokenize.Tokenizer
		err error
	}
	shaC, tokC := make(chan shaResult, 1), make(chan tokResult, 1)
	go func() {
		sum, err := fileio.SHA256(p.Model) // of the file, before any graph edit
		shaC <- shaResult{sum, err}
	}()
	go func() {
		tok, err := tokenize.Load(p.Tokenizer, tokenize.Options{MaxLen: opts.MaxLen, Prefix: opts.Prefix})
		tokC <- tokResult{tok, err}
	}()
	// The model is held once, by onnxruntime: the graph is read without its weights
	// (onnx.OpenModel), and the session opens the file itself, or a temporary copy
	// when the graph is edited.
	model, err := onnx.OpenModel(p.Model)
	if err != nil {
		return nil, err
	}
	if err := checkMaxLen(p, opts.MaxLen, model); err != nil {
		return nil, err
	}
	if opts.top != nil {
		if err := ApplyTop(model, opts.top); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Model, err)
		}
	}
	inputs, outputs := model.Inputs(), model.Outputs()
	e := &Encoder{opts: opts, pool: pool}
	for _, in := range inputs {
		if !slices.Contains(feedable, in.Name) {
			return nil, fmt.Errorf("%w: %s declares input %q (%s); the tokenizer feeds only %v", ErrModelInputs, p.Model, in.Name, in, feedable)
		}
		if in.DType != onnx.DTypeInt64 {
			return nil, fmt.Errorf("%w: %s: input %q is %s; want int64", ErrModelInputs, p.Model, in.Name, in.DType)
		}
		e.inputs = append(e.inputs, in.Name)
	}
	if !slices.Contains(e.inputs, "input_ids") {
		return nil, fmt.Errorf("%w: %s has no input_ids input (inputs: %v)", ErrModelInputs, p.Model, e.inputs)
	}
	// The hidden states at the block boundaries; a graph without them (fused by
	// onnxruntime's transformer optimizer) still gives its last hidden state, enough
	// for --layers -1 and nothing else.
	states, err := model.HiddenStates()
	lastOnly := 0 // width of the last hidden state when only it is known
	if err != nil {
		last, hidden, lerr := model.LastHiddenState()
		if lerr != nil || !slices.Equal(opts.Layers, []int{-1}) || len(extra) > 0 || opts.cut || opts.top != nil {
			if lerr == nil && slices.Equal(opts.Layers, []int{-1}) {
				err = fmt.Errorf("%w (its last hidden state, output %q, is all it gives)", err, last)
			}
			return nil, fmt.Errorf("%s: %w", p.Model, err)
		}
		states, lastOnly = []string{last}, hidden
	}
	// The hidden size, and the check that the graph is an encoder at all (a
	// classifier's own outputs refuse it), come from the whole graph, before any edit:
	// after a cut at the embeddings output (extract --cut-top L) no block is left to
	// read the size from, and exposed hidden states would hide a classifier.
	if e.hidden = lastOnly; e.hidden == 0 {
		if e.hidden, err = model.HiddenSize(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Model, err)
		}
	}
	if err := model.CheckEncoder(e.hidden); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Model, err)
	}
	if m := p.Manifest; m.HiddenSize > 0 && m.HiddenSize != e.hidden {
		return nil, fmt.Errorf("%w: %s says hidden_size %d; the graph %s has hidden states of width %d",
			ErrManifestMismatch, cardFile(p), m.HiddenSize, p.Model, e.hidden)
	}
	if m := p.Manifest; m.Layers > 0 && lastOnly == 0 && m.Layers != len(states)-1 {
		return nil, fmt.Errorf("%w: %s says %d layers; the graph %s has %d encoder blocks",
			ErrManifestMismatch, cardFile(p), m.Layers, p.Model, len(states)-1)
	}
	if e.layers, err = onnx.ResolveLayers(opts.Layers, len(states)); err != nil {
		return nil, err
	}
	e.nreq, e.states = len(e.layers), len(states)
	for _, x := range extra {
		r, err := onnx.ResolveLayers([]int{x}, len(states))
		if err != nil {
			return nil, err
		}
		if !slices.Contains(e.layers, r[0]) {
			e.layers = append(e.layers, r[0])
		}
	}
	var names []string
	for _, l := range e.layers {
		if !slices.Contains(names, states[l]) {
			names = append(names, states[l])
		}
	}
	declared := make([]string, len(outputs))
	for i, o := range outputs {
		declared[i] = o.Name
	}
	missing := slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(declared, n) })
	if opts.pack {
		if err := model.EnablePacking(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.Model, err)
		}
		e.inputs, e.packed = e.inputs[:0], true
		for _, in := range model.Inputs() {
			e.inputs = append(e.inputs, in.Name)
		}
	}
	edited := missing || opts.cut || opts.top != nil || opts.pack
	if edited {
		if opts.cut {
			err = model.KeepOutputs(names...)
		} else {
			err = model.ExposeOutputs(names...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Model, err)
		}
	}
	if edited {
		e.sess, err = sessionFromEdited(model, e.inputs, names, opts.Session)
	} else {
		e.sess, err = onnx.NewSessionFromFile(p.Model, e.inputs, names, opts.Session)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Model, err)
	}
	sha, tr := <-shaC, <-tokC
	switch {
	case sha.err != nil:
		err = fmt.Errorf("headstart: read model: %w", sha.err)
	case tr.err != nil:
		err = tr.err
	}
	if err != nil {
		return nil, errors.Join(err, e.sess.Close())
	}
	modelSHA := sha.sum
	e.tok = tr.tok
	if rows, ok := model.WordEmbeddingRows(); ok && e.tok.VocabSize() > rows {
		return nil, errors.Join(fmt.Errorf("%w: %s produces ids up to %d but the word embedding table of %s has %d rows; the two files are not from one model",
			tokenize.ErrVocabSize, p.Tokenizer, e.tok.VocabSize()-1, p.Model, rows), e.sess.Close())
	}
	// Map each requested layer to its session output.
	e.views = make([][]float32, len(e.layers))
	e.layerOut = make([]int, len(e.layers))
	for i, l := range e.layers {
		e.layerOut[i] = slices.Index(names, states[l])
	}
	e.backbone = features.Backbone{Name: p.Name, SHA256: modelSHA, TokenizerSHA256: e.tok.SHA256()}
	if p.CardFrom != "registry" && p.Dir != "" { // a directory model: record where it is, to find it again
		if e.backbone.Dir, err = filepath.Abs(p.Dir); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// fork returns an encoder that shares e's tokenizer and session (whose Run is safe for
// concurrent use) with buffers of its own, so that the two may compute batches at the
// same time. Only e is closed: closing it ends the fork too.
func (e *Encoder) fork() *Encoder {
	f := &Encoder{
		tok: e.tok, sess: e.sess, inputs: e.inputs, layers: e.layers, hidden: e.hidden,
		opts: e.opts, pool: e.pool, backbone: e.backbone, nreq: e.nreq, states: e.states,
		packed: e.packed, layerOut: e.layerOut,
	}
	f.views = make([][]float32, len(e.views))
	return f
}

// Tokenizer returns the encoder's tokenizer.
func (e *Encoder) Tokenizer() *tokenize.Tokenizer { return e.tok }

// Dim is the length of one pooled vector: hidden size times the number of layers.
func (e *Encoder) Dim() int { return e.hidden * e.nreq }

// Layers returns the resolved hidden-state indices (0 = embeddings output).
func (e *Encoder) Layers() []int { return slices.Clone(e.layers[:e.nreq]) }

// Backbone identifies the model and tokenizer files (sha256).
func (e *Encoder) Backbone() features.Backbone { return e.backbone }

// Provider names the execution provider the session runs on.
func (e *Encoder) Provider() string { return e.sess.Provider().String() }

// Fallback says why an encoder asked for provider auto runs on the CPU (an
// error wrapping onnx.ErrCUDAUnavailable); nil when it did not fall back.
func (e *Encoder) Fallback() error { return e.sess.Fallback() }

// Close releases the session.
func (e *Encoder) Close() error { return e.sess.Close() }

// Embed tokenizes texts and returns one pooled vector per text, in order, as rows of a
// len(texts) x Dim() matrix. Texts are processed as one batch.
func (e *Encoder) Embed(texts []string) ([]float32, error) {
	encs := make([]tokenize.Encoding, len(texts))
	for i, t := range texts {
		var err error
		if encs[i], err = e.tok.Encode(t); err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
	}
	v, err := e.encodeBatch(encs)
	if err != nil {
		return nil, err
	}
	return slices.Clone(v), nil
}

// encodeBatch pads encs into one batch, runs the backbone and pools. The returned slice
// (len(encs) x Dim()) is reused by the next call.
func (e *Encoder) encodeBatch(encs []tokenize.Encoding) ([]float32, error) {
	if err := e.forward(encs); err != nil {
		return nil, err
	}
	B := e.batch.B
	d := e.Dim()
	if cap(e.vecs) < B*d {
		e.vecs = make([]float32, B*d)
	}
	e.vecs = e.vecs[:B*d]
	e.poolLayers(e.vecs, e.views[:e.nreq], e.pool)
	if e.opts.Normalize {
		features.NormalizeRows(e.vecs, d)
	}
	return e.vecs, nil
}

// forward pads encs into e.batch, one text per row, and runs the backbone; afterwards
// e.views[i] holds the (B,T,C) hidden states of e.layers[i], valid until the next call.
func (e *Encoder) forward(encs []tokenize.Encoding) error {
	ids := make([][]int64, len(encs))
	types := make([][]int64, len(encs))
	for i := range encs {
		ids[i], types[i] = encs[i].IDs, encs[i].TypeIDs
	}
	features.Pad(&e.batch, ids, types, e.tok.PadID())
	e.segs = e.segs[:0]
	B, T := e.batch.B, e.batch.T
	if e.packed {
		// Each row is one text: positions 0..T-1, and every token attends to the row's
		// real tokens, as attention_mask would have it.
		e.posIDs = slices.Grow(e.posIDs[:0], B*T)[:B*T]
		e.mask4 = slices.Grow(e.mask4[:0], B*T*T)[:B*T*T]
		for b := range B {
			m := e.batch.AttentionMask[b*T : (b+1)*T]
			for t := range T {
				e.posIDs[b*T+t] = int64(t)
				copy(e.mask4[(b*T+t)*T:(b*T+t+1)*T], m)
			}
		}
	}
	return e.run(B, T)
}

// segment is where forwardPacked put one text: row, first position, tokens.
type segment struct{ row, off, n int }

// forwardPacked runs encs packed into rows: rows[r] lists the texts (indices into encs)
// of row r, side by side from position 0, each text's tokens attending only to its own.
// Every text must be in exactly one row. T is the fullest row's length; the rest of a
// row is padding, which no text attends to. Afterwards e.segs[i] places text i in the
// (len(rows), T, C) hidden states of e.views. The encoder must have been opened with
// pack.
func (e *Encoder) forwardPacked(encs []tokenize.Encoding, rows [][]int) error {
	if !e.packed {
		return errors.New("headstart: forwardPacked on an encoder without a packed graph")
	}
	R, T := len(rows), 0
	e.segs = slices.Grow(e.segs[:0], len(encs))[:len(encs)]
	for i := range e.segs {
		e.segs[i].n = -1
	}
	for r, row := range rows {
		off := 0
		for _, i := range row {
			if e.segs[i].n >= 0 {
				return fmt.Errorf("headstart: forwardPacked: text %d placed twice", i)
			}
			n := len(encs[i].IDs)
			e.segs[i] = segment{row: r, off: off, n: n}
			off += n
		}
		T = max(T, off)
	}
	for i, s := range e.segs {
		if s.n < 0 {
			return fmt.Errorf("headstart: forwardPacked: text %d in no row", i)
		}
	}
	b := &e.batch
	b.B, b.T = R, T
	b.InputIDs = slices.Grow(b.InputIDs[:0], R*T)[:R*T]
	b.AttentionMask = slices.Grow(b.AttentionMask[:0], R*T)[:R*T]
	b.TokenTypeIDs = slices.Grow(b.TokenTypeIDs[:0], R*T)[:R*T]
	e.posIDs = slices.Grow(e.posIDs[:0], R*T)[:R*T]
	e.mask4 = slices.Grow(e.mask4[:0], R*T*T)[:R*T*T]
	pad := e.tok.PadID()
	for k := range b.InputIDs {
		b.InputIDs[k], b.AttentionMask[k], b.TokenTypeIDs[k], e.posIDs[k] = pad, 0, 0, 0
	}
	clear(e.mask4)
	for i, s := range e.segs {
		base := s.row*T + s.off
		copy(b.InputIDs[base:base+s.n], encs[i].IDs)
		copy(b.TokenTypeIDs[base:base+s.n], encs[i].TypeIDs)
		for t := range s.n {
			b.AttentionMask[base+t] = 1
			e.posIDs[base+t] = int64(t)
			m := e.mask4[(base+t)*T : (base+t+1)*T]
			for u := range s.n {
				m[s.off+u] = 1
			}
		}
	}
	return e.run(R, T)
}

// run feeds the (B,T) batch in e.batch (and, for a packed graph, e.posIDs and e.mask4)
// to the session and points e.views at the hidden states.
func (e *Encoder) run(B, T int) error {
	shape := []int64{int64(B), int64(T)}
	e.ins = e.ins[:0]
	for _, name := range e.inputs {
		in := onnx.Int64Tensor{Shape: shape}
		switch name {
		case "input_ids":
			in.Data = e.batch.InputIDs
		case "attention_mask":
			in.Data = e.batch.AttentionMask
		case "token_type_ids":
			in.Data = e.batch.TokenTypeIDs
		case onnx.PositionIDsInput:
			in.Data = e.posIDs
		case onnx.PackedMaskInput:
			in = onnx.Int64Tensor{Shape: []int64{int64(B), 1, int64(T), int64(T)}, Data: e.mask4}
		}
		e.ins = append(e.ins, in)
	}
	var err error
	e.outs, err = e.sess.Run(e.outs, e.ins)
	if err != nil {
		return err
	}
	C := e.hidden
	for i, o := range e.layerOut {
		if got := e.outs[o].Shape; len(got) != 3 || got[0] != int64(B) || got[1] != int64(T) || got[2] != int64(C) {
			return fmt.Errorf("headstart: backbone output %d has shape %v; want [%d %d %d]", o, got, B, T, C)
		}
		e.views[i] = e.outs[o].Data
	}
	return nil
}

// texts is the number of texts of the last forward.
func (e *Encoder) texts() int {
	if len(e.segs) > 0 {
		return len(e.segs)
	}
	return e.batch.B
}

// poolLayers pools views (hidden states of the last forward, as e.views holds them)
// into dst, one row of len(views)·C per text, as features.PoolLayers does for a padded
// batch; after forwardPacked each text is pooled over its own segment.
func (e *Encoder) poolLayers(dst []float32, views [][]float32, p features.Pooling) {
	if len(e.segs) == 0 {
		features.PoolLayers(dst, views, e.batch.AttentionMask, e.batch.B, e.batch.T, e.hidden, p)
		return
	}
	C, L, T := e.hidden, len(views), e.batch.T
	if len(dst) != len(e.segs)*L*C {
		panic("headstart: poolLayers: shape mismatch")
	}
	for i, s := range e.segs {
		if len(e.ones) < s.n {
			e.ones = make([]int64, max(s.n, 2*len(e.ones)))
			for k := range e.ones {
				e.ones[k] = 1
			}
		}
		base := s.row*T + s.off
		for l, h := range views {
			off := i*L*C + l*C
			features.Pool(dst[off:off+C], h[base*C:(base+s.n)*C], e.ones[:s.n], s.n, C, p)
		}
	}
}

// CheckMaxLen returns an error wrapping ErrMaxLen when maxLen exceeds the positions of
// the model at p (see onnx.Model.MaxPositions); Extract, Open and NewEncoder check it
// themselves, before any work: this is for a caller that wants to know sooner.
func CheckMaxLen(p models.Paths, maxLen int) error { return checkMaxLen(p, maxLen, nil) }

// checkMaxLen returns an ErrMaxLen error when maxLen exceeds the rows of the position
// table of the model at p (model, when not nil, is that model already parsed): beyond
// it onnxruntime would fail mid-run with a broadcast error. A model whose table is not
// found is not checked.
func checkMaxLen(p models.Paths, maxLen int, model *onnx.Model) error {
	if model == nil {
		var err error
		if model, err = onnx.OpenModel(p.Model); err != nil {
			return fmt.Errorf("%s: %w", p.Model, err)
		}
	}
	n, ok := model.MaxPositions()
	if !ok {
		return nil
	}
	what := "its position-embedding table's rows"
	if l, err := model.Layout(); err == nil && l.PadPositions { // RoBERTa: rows 0..padding_idx are no token's
		n -= l.PaddingIdx + 1
		what += fmt.Sprintf(" less padding_idx+1 = %d", l.PaddingIdx+1)
	}
	if maxLen > n {
		return fmt.Errorf("%w: --max-len %d: %s has %d positions (%s); want 2..%d",
			ErrMaxLen, maxLen, p.Model, n, what, n)
	}
	return nil
}

// sessionFromEdited opens a session on an edited model through a temporary file,
// removed once onnxruntime has read it: the weights are copied from the model's own
// file to the temporary one in a stream, so that only onnxruntime holds them.
func sessionFromEdited(m *onnx.Model, inputs, outputs []string, opts onnx.SessionOptions) (_ *onnx.Session, err error) {
	f, err := os.CreateTemp("", "headstart-model-*.onnx")
	if err != nil {
		return nil, fmt.Errorf("headstart: temporary model file: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer func() {
		if rerr := os.Remove(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("headstart: removing the temporary model file: %w", rerr)
		}
	}()
	if err := m.WriteFile(tmp); err != nil {
		return nil, err
	}
	return onnx.NewSessionFromFile(tmp, inputs, outputs, opts)
}

// numBlocks returns the number of encoder blocks of the model at p.
func numBlocks(p models.Paths) (int, error) {
	m, err := onnx.OpenModel(p.Model)
	if err != nil {
		return 0, err
	}
	return m.NumLayers()
}

// cardFile names where p's stated sizes come from, for errors.
func cardFile(p models.Paths) string {
	switch p.CardFrom {
	case "registry":
		return "the registry entry " + p.Name
	case "sentence-transformers files":
		return filepath.Join(p.Dir, "config.json")
	}
	return filepath.Join(p.Dir, models.ManifestFile)
}
