// Package onnx runs frozen ONNX encoders with onnxruntime and edits their
// graphs.
//
// It is the only package of headstart that uses cgo: it wraps
// github.com/yalue/onnxruntime_go and hands the rest of the code plain Go
// types (TensorInfo, Int64Tensor, Float32Tensor) so that no other package
// imports the runtime.
//
// # Runtime
//
// FindLibrary locates the onnxruntime shared library (an explicit path, then
// $HEADSTART_ORT_LIB, then the cache that scripts/setup.sh runtime fills);
// FindLibraryFor prefers the CUDA build that scripts/setup.sh gpu fetches
// (GPULibrary) when a session will ask for CUDA. Init loads it. A Session
// runs one model on the CPU or CUDA execution provider (SessionOptions); its
// Run method feeds int64 tensors (token ids, attention masks) and returns
// float32 tensors in caller-owned buffers.
//
// # CUDA
//
// The first CUDA session loads, by absolute path and dependencies first, the
// CUDA and cuDNN libraries that the provider library needs from the cuda
// directory beside the runtime (the dynamic loader reads $LD_LIBRARY_PATH
// only at process start, so setting it later would not help), then the
// driver (libcuda.so.1). What cannot be loaded is named in an error wrapping
// ErrCUDAUnavailable; ProviderAuto then runs on the CPU and Session.Fallback
// says why.
//
// # Global state
//
// The loaded runtime is the package's only global state, and it is
// process-wide because onnxruntime keeps one environment per process: Init
// loads one library once, and a later Init naming a different library is an
// error. Init is safe for concurrent use. Everything else (sessions, models)
// lives in values that the caller owns.
//
// # Models and graphs
//
// Describe reads a model's declared inputs and outputs from its protobuf
// without the runtime. Model holds a decoded ONNX protobuf (package onnxpb,
// generated from onnx.proto) for graph edits: HiddenStates finds the tensors
// that carry a BERT-family encoder's hidden states, in the order of
// HuggingFace's output_hidden_states, and ExposeOutputs turns them into graph
// outputs so that one forward pass returns every layer. Layout names the
// family (BERT, RoBERTa and XLM-R, DistilBERT, MPNet) whose module names the
// graph's blocks carry (layout.go holds one table entry per block layout);
// BlockWeights and EmbeddingWeights read the weights for package lora, and
// SetBlockWeights and SetEmbeddingWeights write trained ones back.
//
// Files are checked before the runtime sees them: anything that is not an
// ONNX model (a text file, an empty or truncated file) gives an error
// wrapping ErrNotONNX that names the file.
package onnx

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these where
// they apply, so callers can test with errors.Is; the wrapping error names the
// file, tensor or setting involved.
var (
	// ErrNoRuntime means the onnxruntime shared library could not be found
	// or loaded, or Init has not been called.
	ErrNoRuntime = errors.New("onnx: onnxruntime library not available")

	// ErrNotONNX means a file or buffer is not an ONNX model: not a valid
	// protobuf, truncated, or without a graph with nodes.
	ErrNotONNX = errors.New("onnx: not an ONNX model")

	// ErrCUDAUnavailable means the CUDA execution provider could not be
	// enabled (provider libraries missing next to the runtime, no CUDA
	// driver or device).
	ErrCUDAUnavailable = errors.New("onnx: CUDA execution provider unavailable")

	// ErrUnsupportedGraph means a graph edit does not recognise the graph's
	// layout (for example, no BERT-style encoder layers).
	ErrUnsupportedGraph = errors.New("onnx: unsupported graph")

	// ErrNotEncoder means a graph is not a text encoder: it outputs a task
	// head's result (a classifier's logits), not hidden states.
	ErrNotEncoder = errors.New("onnx: not an encoder")
)
