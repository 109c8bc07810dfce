package onnx

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file names the modules of the encoder families whose blocks this
// package finds (HiddenStates, BlockWeights, SetBlockWeights): one table
// entry per block layout, read by the scope-based name matching of graph.go
// and block.go.

// Encoder families, as Layout.Family names them.
const (
	// FamilyBERT is HuggingFace's BertModel and the models built on it
	// (MiniLM, bge, e5): positions counted from 0, token type embeddings.
	FamilyBERT = "bert"
	// FamilyRoBERTa is RobertaModel and XLMRobertaModel: BERT's blocks, but
	// position ids counted from padding_idx+1 over the non-pad tokens
	// (create_position_ids_from_input_ids) and, in the usual export, no
	// token_type_ids input (a one-row table read at type 0).
	FamilyRoBERTa = "roberta"
	// FamilyDistilBERT is DistilBertModel: BERT's block math under other
	// module names (transformer/layer.N, q_lin, sa_layer_norm, ffn), no token
	// type embeddings.
	FamilyDistilBERT = "distilbert"
	// FamilyMPNet is MPNetModel: BERT's block math under other module names
	// (attention/attn/q, attention/LayerNorm) plus the encoder's relative
	// position bias added to every block's scores (Model.RelativeBias);
	// RoBERTa's positions (padding_idx 1), no token type embeddings.
	FamilyMPNet = "mpnet"
)

// Layout is what Model.Layout finds out about an encoder graph: its family
// and the embeddings' conventions that the Go forward (package lora) must
// follow to reproduce it.
type Layout struct {
	// Family is one of FamilyBERT, FamilyRoBERTa, FamilyDistilBERT,
	// FamilyMPNet.
	Family string
	// TokenTypes is true when the embeddings add a token_type_embeddings
	// table (BERT, RoBERTa); false for DistilBERT.
	TokenTypes bool
	// PadPositions is true when the position ids are computed from the input
	// ids as RoBERTa does: PaddingIdx + the count of non-pad tokens up to and
	// including the token, and PaddingIdx for a pad token; PaddingIdx is the
	// id compared with (RoBERTa's padding_idx, the <pad> id, 1). False for
	// position ids 0, 1, 2... (BERT, DistilBERT), with PaddingIdx 0.
	PadPositions bool
	PaddingIdx   int
	// RelativeBias is true when the blocks' attention scores get the
	// encoder's relative position bias (MPNet; Model.RelativeBias reads it).
	RelativeBias bool
}

// blockLayout names the modules of one family's encoder block, relative to
// the block's scope Block.N, in the form of torch.onnx's node names
// (attention/self/query for attention.self.query). Every family here
// computes BERT's post-LayerNorm block (see BlockWeights).
type blockLayout struct {
	// families lists the families whose blocks look like this, for messages;
	// family is the Layout.Family of a graph with these blocks (BERT's
	// becomes RoBERTa with RoBERTa's positions).
	families, family string
	// relativeBias: the encoder adds a relative position bias to every
	// block's attention scores (MPNet), which BlockWeights requires the graph
	// to have (Model.RelativeBias).
	relativeBias bool
	// block is the scope of the blocks up to the index: "encoder/layer"
	// finds */encoder/layer.3/...
	block string
	// The six dense layers, in the order of BlockWeights' fields.
	query, key, value, attentionOutput, intermediate, output string
	// The LayerNorm after the attention residual and the one that closes
	// the block.
	attentionNorm, outputNorm string
	// attention is the scope holding the score computation (its Div by √d);
	// activation the scope holding the GELU, as torch.onnx names it; actModule
	// the torch module path of the activation below the block, for graphs
	// whose names moduleNames rebuilds (the dynamo exporter).
	attention, activation, actModule string
}

// blockLayouts are the block layouts this package reads, tried in order.
// A layout matches a graph when nodes named */<block>.N/<outputNorm>/* exist
// and block 0 has nodes under <query>/.
var blockLayouts = []*blockLayout{
	{
		families: "BERT, RoBERTa, XLM-RoBERTa", family: FamilyBERT,
		block: "encoder/layer",
		query: "attention/self/query", key: "attention/self/key", value: "attention/self/value",
		attentionOutput: "attention/output/dense", intermediate: "intermediate/dense", output: "output/dense",
		attentionNorm: "attention/output/LayerNorm", outputNorm: "output/LayerNorm",
		attention: "attention/self", activation: "intermediate", actModule: "intermediate.intermediate_act_fn",
	},
	{
		families: "DistilBERT", family: FamilyDistilBERT,
		block: "transformer/layer",
		query: "attention/q_lin", key: "attention/k_lin", value: "attention/v_lin",
		attentionOutput: "attention/out_lin", intermediate: "ffn/lin1", output: "ffn/lin2",
		attentionNorm: "sa_layer_norm", outputNorm: "output_layer_norm",
		attention: "attention", activation: "ffn", actModule: "ffn.activation",
	},
	{
		families: "MPNet", family: FamilyMPNet, relativeBias: true,
		block: "encoder/layer",
		query: "attention/attn/q", key: "attention/attn/k", value: "attention/attn/v",
		attentionOutput: "attention/attn/o", intermediate: "intermediate/dense", output: "output/dense",
		attentionNorm: "attention/LayerNorm", outputNorm: "output/LayerNorm",
		attention: "attention/attn", activation: "intermediate", actModule: "intermediate.intermediate_act_fn",
	},
}

// bertBlocks is the layout of BertLayer, the default.
var bertBlocks = blockLayouts[0]

// outputNormPattern matches the names of the nodes of a block's closing
// LayerNorm; submatch 1 is the block index.
func (l *blockLayout) outputNormPattern() *regexp.Regexp {
	return regexp.MustCompile(`(?:^|/)` + regexp.QuoteMeta(l.block) + `\.(\d+)/` + regexp.QuoteMeta(l.outputNorm) + `/`)
}

// blockPattern matches the nodes of block i; submatch 1 is the name
// relative to the block.
func (l *blockLayout) blockPattern(i int) *regexp.Regexp {
	return regexp.MustCompile(`(?:^|/)` + regexp.QuoteMeta(l.block) + `\.` + fmt.Sprint(i) + `/(.+)$`)
}

// outputNormName is the node-name pattern of the closing LayerNorm, for
// messages: */encoder/layer.N/output/LayerNorm/*.
func (l *blockLayout) outputNormName() string {
	return "*/" + l.block + ".N/" + l.outputNorm + "/*"
}

// linearField is a dense layer of a block: its BlockWeights field, its scope in
// the graph and the field's value.
type linearField struct {
	field, scope string
	w            *LinearWeights
}

// linears pairs the dense layers' scopes with BlockWeights' fields.
func (l *blockLayout) linears(bw *BlockWeights) []linearField {
	return []linearField{
		{"Query", l.query, &bw.Query}, {"Key", l.key, &bw.Key}, {"Value", l.value, &bw.Value},
		{"AttentionOutput", l.attentionOutput, &bw.AttentionOutput},
		{"Intermediate", l.intermediate, &bw.Intermediate}, {"Output", l.output, &bw.Output},
	}
}

// supportedBlocks lists the closing-LayerNorm patterns of every layout with
// their families, for messages.
func supportedBlocks() string {
	s := make([]string, len(blockLayouts))
	for i, l := range blockLayouts {
		s[i] = l.outputNormName() + " (" + l.families + ")"
	}
	return strings.Join(s, ", ")
}

// layerScopePattern finds scopes that look like a list of blocks in any
// model, for saying what a graph that matches no layout holds instead.
var layerScopePattern = regexp.MustCompile(`(?:^|/)((?:[A-Za-z_][A-Za-z0-9_]*/)?[A-Za-z_][A-Za-z0-9_]*)\.\d+/`)

// foundScopes names the block-list scopes of the graph (encoder/layer,
// model/layers, h), at most four, or "no numbered module scopes".
func foundScopes(names map[*onnxpb.NodeProto]string) string {
	var found []string
	for _, name := range names {
		if sm := layerScopePattern.FindStringSubmatch(name); sm != nil && !slices.Contains(found, sm[1]) {
			found = append(found, sm[1])
		}
	}
	if len(found) == 0 {
		return "no numbered module scopes (*/name.N/*) in the node names"
	}
	slices.Sort(found)
	for i := range found {
		found[i] = "*/" + found[i] + ".N/*"
	}
	return "nodes under " + firstFew(found)
}

// Layout returns the graph's encoder family and embedding conventions. The
// blocks are found as HiddenStates finds them. RoBERTa's positions are
// recognised by the graph's structure, whatever its node names: the indices of
// the Gather from the position_embeddings table are computed from the values
// of input_ids (not only from its shape, as BERT's slice of 0, 1, 2...), and
// padding_idx is the constant of the Equal on that path. A graph whose blocks
// match no family gives an error wrapping ErrUnsupportedGraph that names what
// the graph holds and what is supported; so does one whose position ids come
// from the ids in another way.
func (m *Model) Layout() (Layout, error) {
	l, err := m.encoderLayout()
	if err != nil {
		return Layout{}, err
	}
	return m.layout(l)
}

// layout is Layout on an encoder layout already found.
func (m *Model) layout(l *encoderLayout) (Layout, error) {
	g := m.Proto.GetGraph()
	inits := m.initializers()
	producer := producers(g)
	out := Layout{Family: l.blocks.family, RelativeBias: l.blocks.relativeBias}
	var pos *onnxpb.NodeProto // the Gather from the position table
	for _, n := range g.GetNode() {
		if n.GetOpType() != "Gather" || len(n.GetInput()) != 2 {
			continue
		}
		table := n.GetInput()[0]
		if p := producer[table]; p != nil && p.GetOpType() == "Identity" && len(p.GetInput()) == 1 {
			table = p.GetInput()[0]
		}
		switch {
		case strings.Contains(table, "token_type_embeddings"):
			out.TokenTypes = true
		case strings.Contains(table, "position_embeddings") && inits[table] != nil:
			pos = n
		}
	}
	if pos == nil {
		return out, nil
	}
	// RoBERTa: Equal(input_ids, padding_idx) → Not → Cast → CumSum → Mul →
	// Cast → Add(padding_idx). One walk back from the position ids, as dependsOn
	// walks, finds whether they come from the values of input_ids and the
	// constants that the Equals on the way compare with.
	var pads []int64
	fromIDs := false
	seen := map[string]bool{}
	queue := []string{pos.GetInput()[1]}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		fromIDs = fromIDs || t == "input_ids"
		p := producer[t]
		if seen[t] || p == nil || p.GetOpType() == "Shape" || p.GetOpType() == "Size" {
			continue
		}
		seen[t] = true
		queue = append(queue, p.GetInput()...)
		if p.GetOpType() != "Equal" {
			continue
		}
		for _, in := range p.GetInput() {
			if c, err := constantTensor(inits, producer, in); err == nil {
				if v, err := intsOf(c); err == nil && len(v) == 1 && !slices.Contains(pads, v[0]) {
					pads = append(pads, v[0])
				}
			}
		}
	}
	if !fromIDs {
		return out, nil
	}
	if (out.Family != FamilyBERT && out.Family != FamilyMPNet) || len(pads) != 1 || pads[0] < 0 {
		return out, fmt.Errorf("%w: the position ids are computed from the values of input_ids, with %d Equal nodes comparing them with a constant %v under %s blocks; only RoBERTa's and MPNet's (one padding_idx) are supported",
			ErrUnsupportedGraph, len(pads), pads, l.blocks.families)
	}
	if out.Family == FamilyBERT {
		out.Family = FamilyRoBERTa
	}
	out.PadPositions, out.PaddingIdx = true, int(pads[0])
	return out, nil
}
