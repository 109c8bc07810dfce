// Package lora trains the top of a frozen encoder natively: one BERT
// (post-LayerNorm) encoder block in float32, forward and backward side by
// side, with optional LoRA adapters on its dense layers (Hu et al. 2021,
// "LoRA: Low-Rank Adaptation of Large Language Models", as HuggingFace PEFT
// implements it).
//
// # The block
//
// Block computes what HuggingFace transformers' BertLayer computes, on the
// hidden states x of a batch of sequences, each sequence attending to its
// own tokens only:
//
//	q, k, v = x·Wqᵀ + bq, x·Wkᵀ + bk, x·Wvᵀ + bv          split into H heads of width d = C/H
//	ctx_h   = softmax(q_h·k_hᵀ / √d) · v_h                 per sequence and head; ctx (T,C)
//	h       = LN₁(ctx·Woᵀ + bo + x)                        attention.output
//	u       = h·Wiᵀ + bi                                   intermediate.dense, (T,I)
//	y       = LN₂(GELU(u)·Wdᵀ + bd + h)                    output
//
// with LN the LayerNorm over the C features (biased variance, ε inside the
// square root) and GELU the exact 0.5·u·(1 + erf(u/√2)). BERT masks padding
// by adding (1 − m)·min_float32 to the scores of padded keys (the
// all-MiniLM-L6-v2 export; older ones add −10000); in float32 that gives them
// exactly zero weight, which is what attending over the sequence's own
// tokens gives, so the block equals onnxruntime's output on every real token
// (tested on blocks 0 and 5 of all-MiniLM-L6-v2: within 5e-6, the bound being
// 1e-4). The package takes plain weights (Weights); onnx.Model.BlockWeights
// reads them from an exported graph, and this package never imports the
// runtime. RoBERTa's and XLM-R's RobertaLayer and DistilBERT's
// TransformerBlock compute exactly this block under other module names (the
// onnx package's layouts); their embeddings differ only in the positions and
// the token types (EmbeddingWeights.PadPositions, a nil TokenType).
//
// MPNet's blocks are these with one addition: the encoder's relative
// position bias, a learned scalar per head and bucket of the distance j − i
// (Weights.RelativeBias, shared by the blocks, frozen), added to the scores
// before the softmax, as MPNetSelfAttention adds position_bias.
//
// Activations are (N,C) row-major matrices of N token slots; Rows says where
// each sequence lies, packed back to back or padded to a common length.
// Internally the block packs the tokens, so padding costs nothing but a copy.
//
// # Forward and backward
//
// Forward caches what Backward needs; Backward takes the gradient of a loss
// with respect to the block's output and accumulates (+=) the gradients of
// the trainable parameters and of the input; ZeroGrad clears the parameter
// gradients (llm.c's convention). Every backward is checked against central
// finite differences in float64: Block is generic over float32 and float64,
// the same code instantiated twice.
//
// # Matrix products
//
// Every matrix product goes through gonum's BLAS interface (blas32 for
// float32, blas64 for float64), so a faster implementation, such as
// OpenBLAS through gonum.org/v1/netlib installed with blas32.Use, speeds the
// block up without changing it. The pure Go default works everywhere.
// Measured on the 2-core development machine (BENCHMARKS.md, issue 4),
// Debian's OpenBLAS, built in with -tags openblas (package
// internal/gemm/openblas), computes the block's largest product 1.1-1.4x
// faster than the default AVX2/FMA kernel of internal/gemm but runs the
// whole block's forward and backward up to 20% slower, so the kernel stays
// the default.
//
// # LoRA
//
// With Settings.LoRA.Rank r > 0, each targeted dense layer y = x·Wᵀ + b
// becomes
//
//	y = x·Wᵀ + b + (α/r) · dropout(x)·Aᵀ·Bᵀ,    A (r,In), B (Out,r)
//
// as PEFT's lora.Linear: A is drawn Kaiming-uniform (bound 1/√In), B starts
// at zero, so the adapted block starts equal to the frozen one. The base
// weights are frozen; only A and B train. MergedWeights folds the adapters
// back, W' = W + (α/r)·B·A, for export.
//
// # Training
//
// Train trains the top blocks of an encoder on cached activations
// (Examples: the states entering the bottom trained block, packed per
// sequence, as pipeline extract --cut-top writes them), with a linear
// softmax classifier over the mean of the top block's token states, in one
// of three modes: ModeLoRA (adapters only, base frozen), ModeFull (every
// weight of the blocks) and ModeReinit (the blocks re-drawn as BERT
// initialises them, then trained). The recipe is HuggingFace Trainer's with
// PEFT: AdamW (decoupled weight decay on weight matrices and adapters, not
// on biases and LayerNorms), linear warmup and linear decay to zero, batches
// drawn from a per-epoch permutation of the seed, evaluation after each
// epoch and the best epoch kept. Training is deterministic for a seed and a
// thread count, checkpoints every epoch, and resumes to the same bits. The
// bottom block skips its input gradient (nothing below it trains). Stack
// computes the probabilities of the trained top; Result.Blocks are its
// merged weights, which onnx.Model.SetBlockWeights writes into the graph.
//
// Any number of blocks trains, up to all of them; Advance runs frozen blocks
// over a deeper cache once, so one cache cut at the embeddings feeds every
// depth. With TrainSettings.Embeddings the embedding tables train too, from
// the examples' token ids (Embeddings, forward and backward): full
// fine-tuning. TrainSettings.Recompute holds one block's activations at a
// time (ShareCache) and recomputes each block's forward before its backward.
//
// # SetFit
//
// SetFit (Tunstall et al. 2022) fine-tunes the blocks contrastively: pairs of
// examples drawn as the setfit package draws them (SetFitPairs), the cosine
// similarity of their mean-pooled embeddings regressed on whether they share
// a class (sentence-transformers' CosineSimilarityLoss); the caller then fits
// a logistic regression on the fine-tuned embeddings.
package lora

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these and
// name the setting or weight concerned.
var (
	// ErrBadWeights means weights whose shapes do not form a block: a
	// projection that is not C → C, a feed-forward pair that does not
	// agree, a LayerNorm of the wrong width, a hidden size that the heads
	// do not divide.
	ErrBadWeights = errors.New("lora: bad block weights")
	// ErrBadSetting means an invalid setting: a rank larger than a
	// targeted layer's dimensions, a dropout outside [0, 1), an unknown
	// target.
	ErrBadSetting = errors.New("lora: invalid setting")
	// ErrBadData means training or evaluation examples that do not fit: offsets
	// that do not cover the states, an empty sequence, a class out of range, a
	// NaN or infinite state.
	ErrBadData = errors.New("lora: bad examples")
	// ErrDiverged means the training loss became NaN or infinite; the error
	// says at which epoch and step, and which state was kept.
	ErrDiverged = errors.New("lora: training diverged")
	// ErrCheckpoint means a training checkpoint that cannot be resumed: made
	// with other settings or data, or corrupt.
	ErrCheckpoint = errors.New("lora: unusable checkpoint")
)
