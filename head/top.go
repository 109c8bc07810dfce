package head

import (
	"fmt"
	"slices"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/lora"
)

// Top is the trained top of the encoder that a head trained on an activation cache
// (pipeline extract --cut-top, fit-head --mode lora|full|reinit) carries: encoder blocks
// CutBlock..NumBlocks−1 with their trained weights, adapters merged. Such a head applies
// to the mean-pooled last hidden state of the backbone whose top blocks are replaced by
// these: headstart.NewClassifier and pipeline predict and export do that replacement;
// plain pooled features are refused.
type Top struct {
	// CutBlock is the 0-based index of the first replaced block; NumBlocks the
	// backbone's block count. Blocks holds NumBlocks − CutBlock blocks, bottom first.
	CutBlock, NumBlocks int
	// Heads is the blocks' attention head count.
	Heads  int
	Blocks []lora.Weights[float32]
	// Embeddings are the trained embedding tables (fit-head --embeddings, with
	// CutBlock 0); nil when the backbone's own embeddings stay.
	Embeddings *lora.EmbeddingWeights[float32]
	// Training records how the blocks were trained.
	Training TopTraining
}

// TopTraining records the settings and the course of a top-block training run.
type TopTraining struct {
	Mode        string            `json:"mode"`
	HeadInit    string            `json:"head_init,omitempty"` // logreg: linear probing then fine-tuning
	Rank        int               `json:"rank,omitempty"`
	Alpha       float64           `json:"alpha,omitempty"`
	Targets     string            `json:"targets,omitempty"`
	LoRADropout float64           `json:"lora_dropout,omitempty"`
	Epochs      int               `json:"epochs"`
	BatchSize   int               `json:"batch_size"`
	LR          float64           `json:"lr"`
	WeightDecay float64           `json:"weight_decay"`
	Warmup      float64           `json:"warmup"`
	Patience    int               `json:"patience,omitempty"`
	Seed        uint64            `json:"seed"`
	Trainable   int               `json:"trainable_params"`
	BestEpoch   int               `json:"best_epoch"`
	Stop        string            `json:"stop"`
	History     []lora.EpochStats `json:"history"`
}

// topMeta is the part of a Top stored in the head file's metadata; the weights are
// tensors.
type topMeta struct {
	CutBlock  int         `json:"cut_block"`
	NumBlocks int         `json:"num_blocks"`
	Heads     int         `json:"heads"`
	Hidden    int         `json:"hidden"`
	Inter     int         `json:"intermediate"`
	Eps       [2]float64  `json:"layer_norm_eps"`
	Training  TopTraining `json:"training"`
	// Embeddings describes the trained embedding tables, when there are any.
	Embeddings *embeddingsMeta `json:"embeddings,omitempty"`
	// RelativeBias describes the blocks' frozen relative position bias (MPNet),
	// when they have one; its table is the tensor relBiasTensor.
	RelativeBias *relBiasMeta `json:"relative_attention_bias,omitempty"`
}

// relBiasMeta is the shape of an MPNet relative position bias.
type relBiasMeta struct {
	Buckets     int `json:"buckets"`
	MaxDistance int `json:"max_distance"`
}

// relBiasTensor names the relative position bias table, (buckets, heads), in a
// head file.
const relBiasTensor = "encoder.relative_attention_bias.weight"

// embeddingsMeta is the shape of a Top's embedding tables.
type embeddingsMeta struct {
	Vocab     int     `json:"vocab"`
	Positions int     `json:"positions"`
	Types     int     `json:"types"` // 0: no token type table (DistilBERT)
	Eps       float64 `json:"layer_norm_eps"`
	// PadPositions and PaddingIdx: RoBERTa's positions (lora.EmbeddingWeights).
	PadPositions bool `json:"pad_positions,omitempty"`
	PaddingIdx   int  `json:"padding_idx,omitempty"`
}

// f32Tensor is a float32 tensor of a head file.
type f32Tensor struct {
	name  string
	shape []int64
	data  []float32
}

// topTensors lists the blocks' weights as tensors named
// top.<i>.<HuggingFace parameter name>, (Out, In) for weights, after an MPNet
// encoder's relative position bias (relBiasTensor) when the blocks have one.
func (t *Top) tensors() []f32Tensor {
	var out []f32Tensor
	if r := t.Blocks[0].RelativeBias; r != nil { // first: topFromMeta reads it before the blocks
		out = append(out, f32Tensor{relBiasTensor, []int64{int64(r.Buckets), int64(t.Heads)}, r.Table})
	}
	for i, b := range t.Blocks {
		p := fmt.Sprintf("top.%d.", i)
		for _, l := range []struct {
			name string
			l    lora.Linear[float32]
		}{
			{"attention.self.query", b.Query}, {"attention.self.key", b.Key}, {"attention.self.value", b.Value},
			{"attention.output.dense", b.AttentionOutput}, {"intermediate.dense", b.Intermediate}, {"output.dense", b.Output},
		} {
			out = append(out, f32Tensor{p + l.name + ".weight", []int64{int64(l.l.Out), int64(l.l.In)}, l.l.W},
				f32Tensor{p + l.name + ".bias", []int64{int64(l.l.Out)}, l.l.B})
		}
		for _, n := range []struct {
			name string
			n    lora.LayerNorm[float32]
		}{{"attention.output.LayerNorm", b.AttentionNorm}, {"output.LayerNorm", b.OutputNorm}} {
			out = append(out, f32Tensor{p + n.name + ".weight", []int64{int64(len(n.n.Gamma))}, n.n.Gamma},
				f32Tensor{p + n.name + ".bias", []int64{int64(len(n.n.Beta))}, n.n.Beta})
		}
	}
	if e := t.Embeddings; e != nil {
		c := int64(e.Hidden())
		out = append(out,
			f32Tensor{"embeddings.word_embeddings.weight", []int64{int64(len(e.Word)) / c, c}, e.Word},
			f32Tensor{"embeddings.position_embeddings.weight", []int64{int64(len(e.Position)) / c, c}, e.Position})
		if e.TokenType != nil {
			out = append(out, f32Tensor{"embeddings.token_type_embeddings.weight", []int64{int64(len(e.TokenType)) / c, c}, e.TokenType})
		}
		out = append(out,
			f32Tensor{"embeddings.LayerNorm.weight", []int64{c}, e.Norm.Gamma},
			f32Tensor{"embeddings.LayerNorm.bias", []int64{c}, e.Norm.Beta})
	}
	return out
}

func (t *Top) meta() *topMeta {
	b := t.Blocks[0]
	m := &topMeta{CutBlock: t.CutBlock, NumBlocks: t.NumBlocks, Heads: t.Heads, Hidden: b.Query.In,
		Inter: b.Intermediate.Out, Eps: [2]float64{b.AttentionNorm.Eps, b.OutputNorm.Eps}, Training: t.Training}
	if e := t.Embeddings; e != nil {
		c := e.Hidden()
		m.Embeddings = &embeddingsMeta{Vocab: len(e.Word) / c, Positions: len(e.Position) / c, Types: len(e.TokenType) / c, Eps: e.Norm.Eps,
			PadPositions: e.PadPositions, PaddingIdx: e.PaddingIdx}
	}
	if r := b.RelativeBias; r != nil {
		m.RelativeBias = &relBiasMeta{Buckets: r.Buckets, MaxDistance: r.MaxDistance}
	}
	return m
}

// topFromMeta rebuilds a Top from its metadata and tensors (by name); it checks every
// tensor's shape.
func topFromMeta(m *topMeta, get func(name string, shape []int64) ([]float32, error)) (*Top, error) {
	n := m.NumBlocks - m.CutBlock
	if m.CutBlock < 0 || n < 1 || n > 1000 || m.Hidden < 1 || m.Inter < 1 || m.Heads < 1 {
		return nil, fmt.Errorf("top blocks %d..%d of hidden size %d, intermediate %d, %d heads", m.CutBlock, m.NumBlocks-1, m.Hidden, m.Inter, m.Heads)
	}
	t := &Top{CutBlock: m.CutBlock, NumBlocks: m.NumBlocks, Heads: m.Heads, Training: m.Training}
	c, in := m.Hidden, m.Inter
	var rb *lora.RelativeBias[float32]
	if r := m.RelativeBias; r != nil {
		if r.Buckets < 4 || r.Buckets > 1<<16 || r.MaxDistance < 1 {
			return nil, fmt.Errorf("relative position bias of %d buckets, max distance %d", r.Buckets, r.MaxDistance)
		}
		table, err := get(relBiasTensor, []int64{int64(r.Buckets), int64(m.Heads)})
		if err != nil {
			return nil, err
		}
		rb = &lora.RelativeBias[float32]{Table: table, Buckets: r.Buckets, MaxDistance: r.MaxDistance}
	}
	for i := range n {
		p := fmt.Sprintf("top.%d.", i)
		var err error
		lin := func(name string, fin, fout int) lora.Linear[float32] {
			l := lora.Linear[float32]{In: fin, Out: fout}
			if err == nil {
				l.W, err = get(p+name+".weight", []int64{int64(fout), int64(fin)})
			}
			if err == nil {
				l.B, err = get(p+name+".bias", []int64{int64(fout)})
			}
			return l
		}
		norm := func(name string, eps float64) lora.LayerNorm[float32] {
			n := lora.LayerNorm[float32]{Eps: eps}
			if err == nil {
				n.Gamma, err = get(p+name+".weight", []int64{int64(c)})
			}
			if err == nil {
				n.Beta, err = get(p+name+".bias", []int64{int64(c)})
			}
			return n
		}
		w := lora.Weights[float32]{
			Query: lin("attention.self.query", c, c), Key: lin("attention.self.key", c, c), Value: lin("attention.self.value", c, c),
			AttentionOutput: lin("attention.output.dense", c, c), Intermediate: lin("intermediate.dense", c, in), Output: lin("output.dense", in, c),
			AttentionNorm: norm("attention.output.LayerNorm", m.Eps[0]), OutputNorm: norm("output.LayerNorm", m.Eps[1]),
			RelativeBias: rb,
		}
		if err != nil {
			return nil, err
		}
		t.Blocks = append(t.Blocks, w)
	}
	if em := m.Embeddings; em != nil {
		if m.CutBlock != 0 || em.Vocab < 1 || em.Positions < 1 || em.Types < 0 || em.PaddingIdx < 0 || em.PaddingIdx >= em.Positions {
			return nil, fmt.Errorf("embeddings of %d words, %d positions, %d types, padding_idx %d above block %d", em.Vocab, em.Positions, em.Types, em.PaddingIdx, m.CutBlock)
		}
		e := &lora.EmbeddingWeights[float32]{Norm: lora.LayerNorm[float32]{Eps: em.Eps}, PadPositions: em.PadPositions, PaddingIdx: em.PaddingIdx}
		var err error
		for _, x := range []struct {
			dst  *[]float32
			name string
			rows int
		}{
			{&e.Word, "word_embeddings.weight", em.Vocab}, {&e.Position, "position_embeddings.weight", em.Positions},
			{&e.TokenType, "token_type_embeddings.weight", em.Types},
		} {
			if x.rows == 0 { // no token type table
				continue
			}
			if *x.dst, err = get("embeddings."+x.name, []int64{int64(x.rows), int64(c)}); err != nil {
				return nil, err
			}
		}
		if e.Norm.Gamma, err = get("embeddings.LayerNorm.weight", []int64{int64(c)}); err != nil {
			return nil, err
		}
		if e.Norm.Beta, err = get("embeddings.LayerNorm.bias", []int64{int64(c)}); err != nil {
			return nil, err
		}
		t.Embeddings = e
	}
	return t, nil
}

// CheckTokens returns nil when the activation cache described by m fits the head: the
// head carries trained top blocks that start where the cache was cut, on the same
// backbone, tokenizer and max_len. Otherwise an error wrapping ErrFingerprint names
// what differs.
func (h *Head) CheckTokens(m features.TokenManifest, name string) error {
	if h.Top == nil {
		return errorf(ErrFingerprint, "head: %s is an activation cache; this head was trained on pooled features: evaluate it on features from pipeline extract without --cut-top", name)
	}
	fp := FingerprintOf(m.Manifest, 0)
	fp.Pooling, fp.Layers, fp.Normalize = h.Fingerprint.Pooling, h.Fingerprint.Layers, h.Fingerprint.Normalize
	if err := h.Fingerprint.Compare(fp); err != nil {
		return fmt.Errorf("cache %s: %w", name, err)
	}
	if m.CutBlock != h.Top.CutBlock || m.NumBlocks != h.Top.NumBlocks {
		return errorf(ErrFingerprint, "head: cache %s holds the states entering block %d of %d (--cut-top %d); the head's trained blocks start at block %d of %d (--cut-top %d)",
			name, m.CutBlock, m.NumBlocks, m.CutTop, h.Top.CutBlock, h.Top.NumBlocks, h.Top.NumBlocks-h.Top.CutBlock)
	}
	if m.Hidden != h.Dim {
		return errorf(ErrDimension, "head: cache %s has hidden size %d; the head takes %d", name, m.Hidden, h.Dim)
	}
	if h.Top.Embeddings != nil && !m.IDs {
		return errorf(ErrFingerprint, "head: this head trained the embeddings; cache %s holds no input ids: extract it again with this version", name)
	}
	return nil
}

// Stack returns the head with its top blocks as a lora.Stack, which computes the head's
// probabilities from cached activations (Stack.Probs). The head must have a Top, one
// softmax layer and no standardisation.
func (h *Head) Stack() (*lora.Stack, error) {
	if h.Top == nil {
		return nil, fmt.Errorf("head: no trained top blocks")
	}
	g := h.Fold()
	if len(g.Layers) != 1 || (g.Output != Softmax && g.Output != Binary) || g.Fingerprint.Pooling != "mean" {
		return nil, fmt.Errorf("head: a head with top blocks must be one softmax or binary layer on mean pooling; this one has %d layers, output %v, pooling %s", len(g.Layers), g.Output, g.Fingerprint.Pooling)
	}
	l := g.Layers[0]
	var w, b []float32
	if g.Output == Binary { // one logit z: the softmax of [0, z] is [1−σ(z), σ(z)]
		w, b = make([]float32, 2*len(l.W)), make([]float32, 2)
		for i, v := range l.W {
			w[len(l.W)+i] = float32(v)
		}
		b[1] = float32(l.B[0])
	} else {
		w, b = make([]float32, len(l.W)), make([]float32, len(l.B))
		for i, v := range l.W {
			w[i] = float32(v)
		}
		for i, v := range l.B {
			b[i] = float32(v)
		}
	}
	st, err := lora.NewStack(slices.Clone(h.Top.Blocks), h.Top.Heads, w, b)
	if err != nil {
		return nil, err
	}
	st.Normalize = g.Fingerprint.Normalize
	if h.Top.Embeddings != nil {
		if err := st.SetEmbeddings(*h.Top.Embeddings); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// LinearProbe fits the classifier a top-block run starts from (linear probing then
// fine-tuning): scikit-learn's default logistic regression (C=1, lbfgs, max_iter=100) on
// the mean-pooled output of the pretrained blocks over train, returned as softmax
// weights w (K, C) and biases b (K) for lora.TrainSettings.HeadW and HeadB (a binary
// model's one logit z becomes the logits [0, z]).
func LinearProbe(blocks []lora.Weights[float32], heads int, train *lora.Examples, classes []string, threads int) (w, b []float32, err error) {
	k, c := len(classes), blocks[0].Query.In
	st, err := lora.NewStack(blocks, heads, make([]float32, k*c), make([]float32, k))
	if err != nil {
		return nil, nil, err
	}
	x := make([]float32, train.Len()*c)
	if err := st.Pooled(x, train, 64); err != nil {
		return nil, nil, err
	}
	h, err := FitLogReg(Dataset{N: train.Len(), D: c, X: x, Labels: train.Labels, Classes: classes, Name: "linear probe"},
		LogRegSettings{Threads: threads})
	if err != nil {
		return nil, nil, fmt.Errorf("linear probe: %w", err)
	}
	l := h.Fold().Layers[0]
	w, b = make([]float32, k*c), make([]float32, k)
	switch h.Output {
	case Binary:
		for j := range c {
			w[c+j] = float32(l.W[j])
		}
		b[1] = float32(l.B[0])
	default:
		for i, v := range l.W {
			w[i] = float32(v)
		}
		for i, v := range l.B {
			b[i] = float32(v)
		}
	}
	return w, b, nil
}
