package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

func newExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write one ONNX graph: token ids -> backbone -> pooling -> head -> probabilities",
		Description: "The graph takes input_ids, attention_mask and token_type_ids (int64 [batch, seq], tokenized\n" +
			"with the model's tokenizer.json, truncated at the head's max_len, recorded in the metadata) and\n" +
			"outputs probabilities [batch, classes] and logits. Labels are in the metadata under \"labels\".",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Value: "all-minilm-l6-v2", Usage: "registry `NAME` or DIR the head was trained on"},
			&cli.StringFlag{Name: "head", Required: true, Usage: "head `FILE` from fit-head"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "`FILE.onnx` to write"},
		},
		Action: func(c *cli.Context) error {
			return runExport(c.String("model"), c.String("head"), c.String("out"), c.App.ErrWriter)
		},
	}
}

// headSpec converts a head into the graph description onnx.AppendHead takes.
func headSpec(h *head.Head) onnx.HeadSpec {
	f32 := func(v []float64) []float32 {
		if v == nil {
			return nil
		}
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	spec := onnx.HeadSpec{
		Spec: h.Fingerprint.Spec.Clone(),
		Mean: f32(h.Mean), Std: f32(h.Std), Output: h.Output.String(), Labels: h.Classes,
	}
	for _, l := range h.Layers {
		spec.Dense = append(spec.Dense, onnx.DenseLayer{W: f32(l.W), B: f32(l.B), Activation: l.Act.String()})
	}
	return spec
}

func runExport(modelArg, headPath, out string, stderr io.Writer) (err error) {
	lock, err := fileio.Claim(out, headPath)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	h, err := head.Load(headPath)
	if err != nil {
		return err
	}
	paths, err := models.Resolve(modelArg)
	if err != nil {
		return err
	}
	if err := fileio.CheckOutput(out, paths.Model, paths.Tokenizer); err != nil {
		return err
	}
	modelSHA, err := fileio.SHA256(paths.Model)
	if err != nil {
		return err
	}
	tokSHA, err := fileio.SHA256(paths.Tokenizer)
	if err != nil {
		return err
	}
	fp := h.Fingerprint
	m := features.Manifest{Backbone: features.Backbone{Name: paths.Name, SHA256: modelSHA, TokenizerSHA256: tokSHA}, Spec: fp.Spec.Clone()}
	check := h.Check
	if h.Top != nil { // the graph gets the head's trained top blocks below
		check = func(m features.Manifest) error { return fp.Compare(head.FingerprintOf(m, 0)) }
	}
	if err := check(m); err != nil {
		return fmt.Errorf("head %s does not fit model %s: %w", headPath, paths.Model, err)
	}
	model, err := onnx.LoadModel(paths.Model)
	if err != nil {
		return err
	}
	if h.Top != nil {
		if err := headstart.ApplyTop(model, h.Top); err != nil {
			return fmt.Errorf("head %s: %w", headPath, err)
		}
	}
	spec := headSpec(h)
	fpJSON, _ := json.Marshal(fp)
	spec.Metadata = map[string]string{"max_len": strconv.Itoa(fp.MaxLen), "headstart.fingerprint": string(fpJSON)}
	if err := model.AppendHead(spec); err != nil {
		return err
	}
	b, err := model.Marshal()
	if err != nil {
		return err
	}
	if err := fileio.WriteFile(out, b); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "export: %s + %s head (%d classes) -> %s (%.1f MB; inputs input_ids, attention_mask, token_type_ids; outputs probabilities, logits; max_len %d)\n",
		paths.Name, h.Kind, len(h.Classes), out, float64(len(b))/1e6, fp.MaxLen)
	return nil
}
