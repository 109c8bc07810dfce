package onnx

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/internal/fpu"
	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// TestEnablePackingUnsupported: a graph without a position-embedding table, or whose
// mask is not expanded by the two Unsqueezes, is refused with ErrPackingUnsupported and
// left as it was.
func TestEnablePackingUnsupported(t *testing.T) {
	s := synth{vocab: 16, hidden: 4, layers: 2}
	noPositions := s.build()
	// The synthetic graph casts attention_mask before its one Unsqueeze: give it a
	// position-embedding Gather, so that the mask is what gets refused.
	castMask := s.build()
	g := castMask.GetGraph()
	g.Initializer = append(g.Initializer, floatInit("embeddings.position_embeddings.weight", []int64{8, 4}, make([]float32, 32)))
	g.Node = append(g.Node, node("Gather", "/embeddings/position_embeddings/Gather",
		[]string{"embeddings.position_embeddings.weight", "/embeddings/Cast_output_0"}, "/embeddings/position_embeddings/Gather_output_0"))
	for _, tc := range []struct {
		name  string
		model *onnxpb.ModelProto
		want  string
	}{
		{"no position embeddings", noPositions, "no Gather reads a *position_embeddings* table"},
		{"mask cast before its Unsqueeze", castMask, `"attention_mask" is not read by exactly one Unsqueeze`},
	} {
		m := &Model{Proto: tc.model}
		before, _ := m.Marshal()
		err := m.EnablePacking()
		if !errors.Is(err, ErrPackingUnsupported) || !strings.Contains(fmt.Sprint(err), tc.want) {
			t.Errorf("%s: EnablePacking: %v; want ErrPackingUnsupported saying %q", tc.name, err, tc.want)
		}
		if after, _ := m.Marshal(); !slices.Equal(before, after) {
			t.Errorf("%s: the refused edit changed the model", tc.name)
		}
	}
}

// TestEnablePackingReal edits the shipped all-MiniLM-L6-v2 and runs two texts packed in
// one row: each text's hidden states equal those of a forward of its own (tolerance
// 1e-5; a text's masked attention terms are exact zeros, the rest are summed in another
// grouping). The edited graph takes exactly the packed inputs, a second edit is
// refused, and Run leaves the caller's floating-point control word as it found it.
func TestEnablePackingReal(t *testing.T) {
	requireRuntime(t)
	path := requireModel(t, defaultModel)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.EnablePacking(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range m.Inputs() {
		names = append(names, in.Name)
	}
	if want := []string{"input_ids", "token_type_ids", PositionIDsInput, PackedMaskInput}; !slices.Equal(names, want) {
		t.Fatalf("inputs after EnablePacking: %v; want %v", names, want)
	}
	again := &Model{Proto: proto.Clone(m.Proto).(*onnxpb.ModelProto)}
	if err := again.EnablePacking(); !errors.Is(err, ErrPackingUnsupported) {
		t.Errorf("second EnablePacking: %v; want ErrPackingUnsupported", err)
	}
	packedData, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	opts := SessionOptions{IntraOpThreads: 1}
	packed, err := NewSessionFromBytes(packedData, names, []string{"last_hidden_state"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer packed.Close()
	plain, err := NewSessionFromFile(path, []string{"input_ids", "attention_mask", "token_type_ids"}, []string{"last_hidden_state"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	// "[CLS] the card never arrived [SEP]" and "[CLS] hello [SEP]"-like id runs, then
	// one position of padding.
	a := []int64{101, 1996, 4003, 2196, 3369, 102}
	b := []int64{101, 7592, 2088, 102}
	T := len(a) + len(b) + 1
	ids, types, pos := make([]int64, T), make([]int64, T), make([]int64, T)
	mask := make([]int64, T*T)
	copy(ids, a)
	copy(ids[len(a):], b)
	for i := range T {
		for j := range T {
			same := (i < len(a) && j < len(a)) || (i >= len(a) && i < len(a)+len(b) && j >= len(a) && j < len(a)+len(b))
			if same {
				mask[i*T+j] = 1
			}
		}
		switch {
		case i < len(a):
			pos[i] = int64(i)
		case i < len(a)+len(b):
			pos[i] = int64(i - len(a))
		}
	}
	before := fpu.Control()
	out, err := packed.Run(nil, []Int64Tensor{{[]int64{1, int64(T)}, ids}, {[]int64{1, int64(T)}, types}, {[]int64{1, int64(T)}, pos}, {[]int64{1, 1, int64(T), int64(T)}, mask}})
	if err != nil {
		t.Fatal(err)
	}
	if after := fpu.Control(); after != before {
		t.Errorf("floating-point control word %#x after Run, %#x before", after, before)
	}
	C := 384
	for k, text := range [][]int64{a, b} {
		n := len(text)
		ones := make([]int64, n)
		for i := range ones {
			ones[i] = 1
		}
		alone, err := plain.Run(nil, []Int64Tensor{{[]int64{1, int64(n)}, text}, {[]int64{1, int64(n)}, ones}, {[]int64{1, int64(n)}, make([]int64, n)}})
		if err != nil {
			t.Fatal(err)
		}
		off := 0
		if k == 1 {
			off = len(a)
		}
		checkClose(t, "packed text "+string(rune('a'+k)), out[0].Data[off*C:(off+n)*C], alone[0].Data, 1e-5)
	}
}
