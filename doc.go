// Package headstart runs a pretrained encoder, exported to ONNX, frozen through
// onnxruntime, and turns texts into features that small heads train on.
//
// Extract is the whole of `pipeline extract` as a library call: it reads a dataset,
// tokenizes it exactly as HuggingFace tokenizers would, runs the backbone in
// length-bucketed batches (restoring the input order afterwards), pools the chosen
// hidden states, and writes a safetensors feature store atomically, checkpointing as it
// goes so that an interrupted run resumes to a byte-identical file.
//
// Model serves texts from a Go program: Open loads a backbone and any heads into a pool
// of sessions, and Embed and Classify are safe to call from any number of goroutines
// (with OpenOptions.Batching, concurrent calls share forwards). Classifying with a head
// file trained by `pipeline fit-head` takes three lines:
//
//	m, err := headstart.Open(ctx, headstart.OpenOptions{Heads: []string{"intent.safetensors"}})
//	defer m.Close()
//	results, err := m.Classify(ctx, []string{"I lost my card"}) // results[0].Predictions[0].Label
//
// Every other pipeline command is one call here with an options struct: FitHead and
// FitTop (fit-head), Evaluate (eval), Predict, Export, RunExperiment (experiment) and
// QuantizeModel (models quantize); the command adds flag parsing and printing.
//
// Package serve puts a Model behind HTTP (`pipeline serve`).
//
// The packages below do the parts: onnx (the runtime and graph editing; the only cgo),
// tokenize, features (readers, batching, pooling, the store), models (registry and cache).
package headstart
