// Package exportrun runs a classifier written by headstart.Export (pipeline export) the
// way a caller without headstart would: onnxruntime on the graph, with the tokenizer,
// max_len and prefix that the manifest beside it names. Tests use it to check exports.
package exportrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/onnx"
	"github.com/headstart-ml/headstart/tokenize"
)

// manifest is the part of headstart.ExportManifest a caller needs to feed the graph.
type manifest struct {
	Tokenizer string `json:"tokenizer"` // beside the graph
	MaxLen    int    `json:"max_len"`
	Prefix    string `json:"prefix"`
	// Inputs are the graph's inputs, some of input_ids, attention_mask,
	// token_type_ids.
	Inputs []string `json:"inputs"`
}

// Probs runs the graph onnxFile on each text alone (batch 1, no padding) and returns
// its probabilities, reading only the graph and the files its manifest names.
func Probs(onnxFile string, texts []string) (_ [][]float32, err error) {
	manPath := strings.TrimSuffix(onnxFile, filepath.Ext(onnxFile)) + ".manifest.json"
	b, err := os.ReadFile(manPath)
	if err != nil {
		return nil, err
	}
	var man manifest
	if err := json.Unmarshal(b, &man); err != nil {
		return nil, fmt.Errorf("%s: %w", manPath, err)
	}
	tok, err := tokenize.Load(filepath.Join(filepath.Dir(onnxFile), man.Tokenizer), tokenize.Options{MaxLen: man.MaxLen})
	if err != nil {
		return nil, err
	}
	if err := onnx.Init(""); err != nil {
		return nil, err
	}
	sess, err := onnx.NewSessionFromFile(onnxFile, man.Inputs, []string{"probabilities"}, onnx.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, sess.Close()) }()
	var out [][]float32
	for _, text := range texts {
		e, err := tok.Encode(man.Prefix + text)
		if err != nil {
			return nil, err
		}
		shape := []int64{1, int64(len(e.IDs))}
		feed := make([]onnx.Int64Tensor, len(man.Inputs))
		for i, name := range man.Inputs {
			switch name {
			case "input_ids":
				feed[i] = onnx.Int64Tensor{Shape: shape, Data: e.IDs}
			case "attention_mask":
				feed[i] = onnx.Int64Tensor{Shape: shape, Data: e.Mask}
			case "token_type_ids":
				feed[i] = onnx.Int64Tensor{Shape: shape, Data: e.TypeIDs}
			default:
				return nil, fmt.Errorf("%s: graph input %q is none of input_ids, attention_mask, token_type_ids", manPath, name)
			}
		}
		res, err := sess.Run(nil, feed)
		if err != nil {
			return nil, err
		}
		out = append(out, slices.Clone(res[0].Data))
	}
	return out, nil
}
