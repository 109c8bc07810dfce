package headstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// ExportOptions configure Export. The zero value needs only Head and Out.
type ExportOptions struct {
	// Model is the registry name or directory of the backbone the head was trained on.
	// Default: the backbone the head records (models.Find).
	Model string
	// Head is the head file (from `pipeline fit-head` or head.Head.Save).
	Head string
	// Out is the ONNX file to write; OUT.tokenizer.json and OUT.manifest.json are written
	// beside it (ExportSidecars).
	Out string
}

// ExportSummary describes what Export wrote.
type ExportSummary struct {
	Backbone  string // the backbone's name
	Kind      string // the head's kind (logreg, mlp, ...)
	Classes   int
	MaxLen    int    // tokens per text the graph was exported for
	Bytes     int    // size of the ONNX file
	Tokenizer string // the tokenizer written beside Out
	Manifest  string // the manifest written beside Out
	// Inputs are the graph's inputs: input_ids, attention_mask, and token_type_ids
	// where the backbone reads them (not RoBERTa, XLM-R, DistilBERT or MPNet exports).
	Inputs []string
}

// ExportFormat names the layout of ExportManifest.
const ExportFormat = "headstart-export/1"

// ExportManifest is what Export writes beside the graph (OUT.manifest.json): everything
// a caller needs to feed the graph and read its output without headstart.
type ExportManifest struct {
	Format    string            `json:"format"`
	ONNX      string            `json:"onnx"`      // the graph's file name, in the same folder
	Tokenizer string            `json:"tokenizer"` // the backbone's tokenizer.json, copied beside it
	Backbone  features.Backbone `json:"backbone"`
	// Spec: pooling, layers, normalize and max_len the graph applies (texts are truncated
	// to max_len tokens by the caller's tokenizer), and the prefix to put before every text.
	features.Spec
	Labels     []string `json:"labels"`      // the probabilities' columns, in order
	MultiLabel bool     `json:"multi_label"` // one sigmoid per label instead of a softmax
	Output     string   `json:"output"`      // how probabilities follow from logits
	Inputs     []string `json:"inputs"`
	Outputs    []string `json:"outputs"`
}

// ExportSidecars names the files Export writes beside out: classifier.onnx gets
// classifier.tokenizer.json and classifier.manifest.json.
func ExportSidecars(out string) (tokenizer, manifest string) {
	stem := strings.TrimSuffix(out, filepath.Ext(out))
	return stem + ".tokenizer.json", stem + ".manifest.json"
}

// Export writes one ONNX graph that computes a head's probabilities from token ids:
// the backbone (with the head's trained top blocks and embeddings, if it has them),
// pooling, and the head. The graph takes the backbone's inputs, input_ids,
// attention_mask and, where the backbone reads them, token_type_ids (int64 [batch, seq],
// tokenized with the backbone's tokenizer, truncated at the head's max_len, recorded in
// the metadata; ExportSummary.Inputs and the manifest list them) and outputs
// probabilities [batch, classes] and logits. Beside Out it writes the backbone's tokenizer and an ExportManifest; the graph
// is written last, so a reader that finds it finds the other two.
//
// A head that does not fit the model (another backbone, tokenizer or feature spec) is
// an error wrapping head.ErrFingerprint, found before anything is written.
func Export(ctx context.Context, opts ExportOptions) (sum ExportSummary, err error) {
	if opts.Head == "" || opts.Out == "" {
		return sum, fmt.Errorf("%w: Export needs Head and Out", ErrBadOption)
	}
	lock, err := fileio.Claim(opts.Out, opts.Head)
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	h, err := head.Load(opts.Head)
	if err != nil {
		return sum, err
	}
	paths, err := models.ResolveRecorded(opts.Model, h.Fingerprint.BackboneOf())
	if err != nil {
		return sum, err
	}
	if err := fileio.CheckOutput(opts.Out, paths.Model, paths.Tokenizer); err != nil {
		return sum, err
	}
	backbone, err := exportBackbone(paths)
	if err != nil {
		return sum, err
	}
	fp := h.Fingerprint
	check := h.Check
	if h.Top != nil { // the graph gets the head's trained top blocks below
		check = func(m features.Manifest) error { return fp.Compare(head.FingerprintOf(m, 0)) }
	}
	if err := check(features.Manifest{Backbone: backbone, Spec: fp.Spec.Clone()}); err != nil {
		return sum, fmt.Errorf("head %s does not fit model %s: %w", opts.Head, paths.Model, err)
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	graph, err := exportGraph(paths, h, opts.Head)
	if err != nil {
		return sum, err
	}
	sum = ExportSummary{Backbone: paths.Name, Kind: h.Kind.String(), Classes: len(h.Classes), MaxLen: fp.MaxLen, Bytes: len(graph)}
	ins, _, err := onnx.DescribeBytes(graph)
	if err != nil {
		return sum, err
	}
	for _, in := range ins {
		sum.Inputs = append(sum.Inputs, in.Name)
	}
	sum.Tokenizer, sum.Manifest = ExportSidecars(opts.Out)
	for _, p := range []string{sum.Tokenizer, sum.Manifest} {
		if err := fileio.CheckOutput(p, opts.Head, paths.Model, paths.Tokenizer); err != nil {
			return sum, err
		}
	}
	tokJSON, err := os.ReadFile(paths.Tokenizer)
	if err != nil {
		return sum, err
	}
	man, err := json.MarshalIndent(ExportManifest{
		Format: ExportFormat, ONNX: filepath.Base(opts.Out), Tokenizer: filepath.Base(sum.Tokenizer), Backbone: backbone,
		Spec: fp.Spec.Clone(), Labels: h.Classes, MultiLabel: h.MultiLabel, Output: h.Output.String(),
		Inputs: sum.Inputs, Outputs: []string{"probabilities", "logits"},
	}, "", "  ")
	if err != nil {
		return sum, err
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	// The graph last: a reader that finds it finds its tokenizer and manifest too.
	for _, f := range []struct {
		path string
		b    []byte
	}{{sum.Tokenizer, tokJSON}, {sum.Manifest, append(man, '\n')}, {opts.Out, graph}} {
		if err := fileio.WriteFile(f.path, f.b); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// exportBackbone identifies the model files by name and sha256.
func exportBackbone(p models.Paths) (features.Backbone, error) {
	modelSHA, err := fileio.SHA256(p.Model)
	if err != nil {
		return features.Backbone{}, err
	}
	tokSHA, err := fileio.SHA256(p.Tokenizer)
	if err != nil {
		return features.Backbone{}, err
	}
	return features.Backbone{Name: p.Name, SHA256: modelSHA, TokenizerSHA256: tokSHA}, nil
}

// exportGraph returns the serialised backbone graph with h's top blocks written into it
// and h appended (onnx.AppendHead); headPath names h in errors.
func exportGraph(p models.Paths, h *head.Head, headPath string) ([]byte, error) {
	model, err := onnx.LoadModel(p.Model)
	if err != nil {
		return nil, err
	}
	if h.Top != nil {
		if err := ApplyTop(model, h.Top); err != nil {
			return nil, fmt.Errorf("head %s: %w", headPath, err)
		}
	}
	spec := HeadSpec(h)
	fpJSON, err := json.Marshal(h.Fingerprint)
	if err != nil {
		return nil, err
	}
	spec.Metadata = map[string]string{"max_len": strconv.Itoa(h.Fingerprint.MaxLen), "headstart.fingerprint": string(fpJSON)}
	if p := h.Fingerprint.Prefix; p != "" { // put before every text before tokenising it, as in training
		spec.Metadata["prefix"] = p
	}
	if err := model.AppendHead(spec); err != nil {
		return nil, err
	}
	return model.Marshal()
}

// HeadSpec converts a head into the graph description onnx.Model.AppendHead takes.
func HeadSpec(h *head.Head) onnx.HeadSpec {
	spec := onnx.HeadSpec{
		Spec: h.Fingerprint.Spec.Clone(),
		Mean: float32s(h.Mean), Std: float32s(h.Std), Output: h.Output.String(), Labels: h.Classes,
	}
	for _, l := range h.Layers {
		spec.Dense = append(spec.Dense, onnx.DenseLayer{W: float32s(l.W), B: float32s(l.B), Activation: l.Act.String()})
	}
	return spec
}

// float32s converts v to float32; nil stays nil.
func float32s(v []float64) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
