package headstart

import (
	"fmt"

	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/onnx"
)

// TopBlocks reads the weights of encoder blocks from..NumLayers−1 of the model (an
// exported BERT-family encoder) for training them with package lora, and returns them
// with the attention head count. An MPNet encoder's relative position bias rides along
// in every block's Weights.RelativeBias (one table, frozen).
func TopBlocks(m *onnx.Model, from int) (blocks []lora.Weights[float32], heads int, err error) {
	n, err := m.NumLayers()
	if err != nil {
		return nil, 0, err
	}
	if from < 0 || from >= n {
		return nil, 0, fmt.Errorf("%w: block %d: the model has blocks 0..%d", ErrBadOption, from, n-1)
	}
	// MPNet: the encoder's relative position bias, shared by the blocks, frozen.
	var rel *lora.RelativeBias[float32]
	rb, ok, err := m.RelativeBias()
	if err != nil {
		return nil, 0, err
	}
	if ok {
		rel = &lora.RelativeBias[float32]{Table: rb.Table, Buckets: rb.Buckets, MaxDistance: rb.MaxDistance}
	}
	for i := from; i < n; i++ {
		bw, err := m.BlockWeights(i)
		if err != nil {
			return nil, 0, err
		}
		if ok && rb.Heads != bw.Heads {
			return nil, 0, fmt.Errorf("%w: the relative position bias %q has %d heads; block %d has %d", onnx.ErrUnsupportedGraph, rb.Name, rb.Heads, i, bw.Heads)
		}
		w := loraWeights(bw)
		w.RelativeBias = rel
		blocks = append(blocks, w)
		heads = bw.Heads
	}
	return blocks, heads, nil
}

// ApplyTop writes the trained blocks of top into the model's graph (onnx.SetBlockWeights),
// so that it computes the backbone a head with top blocks was trained for.
func ApplyTop(m *onnx.Model, top *head.Top) error {
	n, err := m.NumLayers()
	if err != nil {
		return err
	}
	if top.NumBlocks != n {
		return fmt.Errorf("%w: the head's top blocks belong to a backbone of %d blocks; this one has %d", head.ErrFingerprint, top.NumBlocks, n)
	}
	for i, w := range top.Blocks {
		if err := m.SetBlockWeights(onnxWeights(top.CutBlock+i, w)); err != nil {
			return fmt.Errorf("top block %d: %w", top.CutBlock+i, err)
		}
	}
	if e := top.Embeddings; e != nil {
		if top.CutBlock != 0 {
			return fmt.Errorf("%w: trained embeddings under block %d; they go under block 0", head.ErrFingerprint, top.CutBlock)
		}
		if err := m.SetEmbeddingWeights(onnx.EmbeddingWeights{Word: e.Word, Position: e.Position, TokenType: e.TokenType,
			Norm: onnx.LayerNormWeights{Gamma: e.Norm.Gamma, Beta: e.Norm.Beta, Eps: float32(e.Norm.Eps)}}); err != nil {
			return fmt.Errorf("embeddings: %w", err)
		}
	}
	return nil
}

// Embeddings reads the embedding tables and their LayerNorm of the model (an exported
// BERT-family encoder: BERT, RoBERTa, XLM-R, DistilBERT, MPNet) for training them with package
// lora (TrainSettings.Embeddings), with the model's position convention.
func Embeddings(m *onnx.Model) (lora.EmbeddingWeights[float32], error) {
	ew, err := m.EmbeddingWeights()
	if err != nil {
		return lora.EmbeddingWeights[float32]{}, err
	}
	return lora.EmbeddingWeights[float32]{Word: ew.Word, Position: ew.Position, TokenType: ew.TokenType,
		Norm:         lora.LayerNorm[float32]{Gamma: ew.Norm.Gamma, Beta: ew.Norm.Beta, Eps: float64(ew.Norm.Eps)},
		PadPositions: ew.PadPositions, PaddingIdx: ew.PaddingIdx}, nil
}

func loraWeights(bw onnx.BlockWeights) lora.Weights[float32] {
	lin := func(l onnx.LinearWeights) lora.Linear[float32] {
		return lora.Linear[float32]{In: l.In, Out: l.Out, W: l.W, B: l.B}
	}
	norm := func(n onnx.LayerNormWeights) lora.LayerNorm[float32] {
		return lora.LayerNorm[float32]{Gamma: n.Gamma, Beta: n.Beta, Eps: float64(n.Eps)}
	}
	return lora.Weights[float32]{
		Query: lin(bw.Query), Key: lin(bw.Key), Value: lin(bw.Value),
		AttentionOutput: lin(bw.AttentionOutput), Intermediate: lin(bw.Intermediate), Output: lin(bw.Output),
		AttentionNorm: norm(bw.AttentionNorm), OutputNorm: norm(bw.OutputNorm),
	}
}

func onnxWeights(layer int, w lora.Weights[float32]) onnx.BlockWeights {
	lin := func(l lora.Linear[float32]) onnx.LinearWeights {
		return onnx.LinearWeights{In: l.In, Out: l.Out, W: l.W, B: l.B}
	}
	norm := func(n lora.LayerNorm[float32]) onnx.LayerNormWeights {
		return onnx.LayerNormWeights{Gamma: n.Gamma, Beta: n.Beta, Eps: float32(n.Eps)}
	}
	return onnx.BlockWeights{
		Layer: layer, Hidden: w.Query.In, IntermediateSize: w.Intermediate.Out,
		Query: lin(w.Query), Key: lin(w.Key), Value: lin(w.Value),
		AttentionOutput: lin(w.AttentionOutput), Intermediate: lin(w.Intermediate), Output: lin(w.Output),
		AttentionNorm: norm(w.AttentionNorm), OutputNorm: norm(w.OutputNorm),
	}
}
