package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
			"outputs probabilities [batch, classes] and logits. Labels are in the metadata under \"labels\".\n" +
			"Beside OUT.onnx it writes OUT.tokenizer.json (the backbone's tokenizer) and OUT.manifest.json\n" +
			"(max_len, pooling, layers, normalize, prefix, labels, backbone), all a caller needs to use it.",
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
	side := exportSidecars(out)
	for _, p := range []string{side.tokenizer, side.manifest} {
		if err := fileio.CheckOutput(p, headPath, paths.Model, paths.Tokenizer); err != nil {
			return err
		}
	}
	tokJSON, err := os.ReadFile(paths.Tokenizer)
	if err != nil {
		return err
	}
	man, err := json.MarshalIndent(exportManifest{
		Format: exportFormat, ONNX: filepath.Base(out), Tokenizer: filepath.Base(side.tokenizer),
		Backbone: exportBackbone{Name: paths.Name, SHA256: modelSHA, TokenizerSHA256: tokSHA},
		Spec:     fp.Spec.Clone(), Labels: h.Classes, MultiLabel: h.MultiLabel, Output: h.Output.String(),
		Inputs: []string{"input_ids", "attention_mask", "token_type_ids"}, Outputs: []string{"probabilities", "logits"},
	}, "", "  ")
	if err != nil {
		return err
	}
	// The graph last: a reader that finds it finds its tokenizer and manifest too.
	for _, f := range []struct {
		path string
		b    []byte
	}{{side.tokenizer, tokJSON}, {side.manifest, append(man, '\n')}, {out, b}} {
		if err := fileio.WriteFile(f.path, f.b); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "export: %s + %s head (%d classes) -> %s (%.1f MB; inputs input_ids, attention_mask, token_type_ids; outputs probabilities, logits; max_len %d), with %s and %s beside it\n",
		paths.Name, h.Kind, len(h.Classes), out, float64(len(b))/1e6, fp.MaxLen, filepath.Base(side.tokenizer), filepath.Base(side.manifest))
	return nil
}

// exportFormat names the layout of export's manifest.
const exportFormat = "headstart-export/1"

// exportManifest is what export writes beside the graph (OUT.manifest.json): everything
// a caller needs to feed the graph and read its output without headstart.
type exportManifest struct {
	Format    string         `json:"format"`
	ONNX      string         `json:"onnx"`      // the graph's file name, in the same folder
	Tokenizer string         `json:"tokenizer"` // the backbone's tokenizer.json, copied beside it
	Backbone  exportBackbone `json:"backbone"`
	// Spec: pooling, layers, normalize and max_len the graph applies (texts are truncated
	// to max_len tokens by the caller's tokenizer), and the prefix to put before every text.
	features.Spec
	Labels     []string `json:"labels"`      // the probabilities' columns, in order
	MultiLabel bool     `json:"multi_label"` // one sigmoid per label instead of a softmax
	Output     string   `json:"output"`      // how probabilities follow from logits
	Inputs     []string `json:"inputs"`
	Outputs    []string `json:"outputs"`
}

type exportBackbone struct {
	Name            string `json:"name"`
	SHA256          string `json:"sha256"`
	TokenizerSHA256 string `json:"tokenizer_sha256"`
}

// exportSidecars names the files export writes beside OUT: classifier.onnx gets
// classifier.tokenizer.json and classifier.manifest.json.
func exportSidecars(out string) (s struct{ tokenizer, manifest string }) {
	stem := strings.TrimSuffix(out, filepath.Ext(out))
	s.tokenizer, s.manifest = stem+".tokenizer.json", stem+".manifest.json"
	return s
}
