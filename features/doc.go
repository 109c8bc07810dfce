// Package features turns a text dataset into a feature store: it reads rows from CSV, TSV
// or JSONL files, groups them into length-bucketed batches for the encoder, pools the
// encoder's hidden states into one vector per row, and writes the vectors, labels and row
// ids to a safetensors file with a manifest that records how they were made.
//
// The package is pure Go and never imports the runtime: the encoder's outputs reach it as
// plain slices, (B,T,C) row-major float32 hidden states and (B,T) int64 attention masks.
//
// The pieces, in the order the extract command uses them:
//
//	Spec          how a text becomes a vector (prefix, max_len, layers, pooling, normalisation):
//	              one value with defaults, validation, a canonical string and Compare; stores,
//	              heads, exported graphs and model cards embed it
//	Scan          one streaming pre-pass: row count, label set, file hash (validate before compute)
//	Open, Reader  rows, like bufio.Scanner: for r.Next() { r.Row() }; r.Err()
//	Buckets, Pad  length-sorted batches of at most B rows, padded to their own longest row
//	Pool          mean | cls | max | last over one row's unpadded tokens; Normalize (L2)
//	Checkpoint    completed chunks kept in <out>.partial so an interrupted run can resume
//	Writer        the safetensors store, streamed to a temporary file and renamed on Close
//	OpenStore     the store read back and validated
//
// Multi-label data (ReaderOptions.LabelSep: "card|arrival" is the set {card, arrival})
// gives a multi-label store: the manifest says multi_label and names the separator,
// label_names is the union of the rows' sets, and a label_sets tensor holds each row's
// set as a multi-hot row (see the layout in store.go). Checkpoint and Merge carry the
// sets; single-label stores are unchanged.
//
// Stores are deterministic: the same inputs give byte-identical files (no timestamps).
package features
