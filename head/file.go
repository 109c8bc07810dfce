package head

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/safetensors"
)

// A head file is a safetensors file (https://github.com/huggingface/safetensors) that
// safetensors.numpy.load_file reads:
//
//	8 bytes   N, little-endian uint64: the header's length
//	N bytes   JSON header, padded with spaces so that 8+N is a multiple of 8:
//	          {"__metadata__":{"headstart_head":"<metadata JSON>",
//	                           "headstart_head_sha256":"<hex SHA-256>"},
//	           "<tensor>":{"dtype":"F64","shape":[...],"data_offsets":[b,e]}, ...}
//	data      the tensors, little-endian float64, in the order listed below, no gaps
//
// Tensors: "mean" and "std" [D] when the head standardises its input, then for each
// layer i (0-based) "layers.<i>.weight" [out, in] and "layers.<i>.bias" [out]; a head
// with trained top blocks (Top) then has, in float32 (F32), for each block i (bottom
// first) and each HuggingFace BertLayer parameter, "top.<i>.<name>", for example
// "top.0.attention.self.query.weight" [out, in], "top.0.output.LayerNorm.bias" [C]. The
// metadata JSON (fileMeta) holds the format version, the kind, the output, the class
// names, the input dimension, the feature fingerprint, each layer's shape and
// activation, the training settings and the training summary. The checksum is the
// SHA-256 of the metadata JSON's bytes followed by the data bytes, so any change to
// the metadata or the weights is detected. The file has no timestamp: saving the same
// head twice gives the same bytes.

// FileVersion is the version of the head file format written by Save for a head with
// top blocks (version 2 added them: metadata "top" and F32 tensors top.<i>.<name>);
// heads without are written as version 1, unchanged. Load reads versions 1 to
// FileVersion.
const FileVersion = 2

// Metadata keys in the safetensors __metadata__ map.
const (
	MetaKey     = "headstart_head"
	MetaHashKey = "headstart_head_sha256"
)

// fileMeta is the head's description stored in the file.
type fileMeta struct {
	FormatVersion  int             `json:"format_version"`
	Kind           Kind            `json:"kind"`
	Output         Output          `json:"output"`
	Classes        []string        `json:"classes"`
	MultiLabel     bool            `json:"multi_label"`
	Dim            int             `json:"dim"`
	Fingerprint    Fingerprint     `json:"fingerprint"`
	Standardize    bool            `json:"standardize"`
	Layers         []layerMeta     `json:"layers"`
	LogRegSettings *LogRegSettings `json:"logreg_settings,omitempty"`
	MLPSettings    *MLPSettings    `json:"mlp_settings,omitempty"`
	Summary        Summary         `json:"summary"`
	Top            *topMeta        `json:"top,omitempty"`
}

type layerMeta struct {
	Out        int        `json:"out"`
	In         int        `json:"in"`
	Activation Activation `json:"activation"`
}

type namedTensor struct {
	name  string
	shape []int64
	data  []float64
}

func (h *Head) tensors() []namedTensor {
	var ts []namedTensor
	if h.Mean != nil {
		ts = append(ts, namedTensor{"mean", []int64{int64(h.Dim)}, h.Mean}, namedTensor{"std", []int64{int64(h.Dim)}, h.Std})
	}
	for i, l := range h.Layers {
		ts = append(ts,
			namedTensor{fmt.Sprintf("layers.%d.weight", i), []int64{int64(l.Out), int64(l.In)}, l.W},
			namedTensor{fmt.Sprintf("layers.%d.bias", i), []int64{int64(l.Out)}, l.B})
	}
	return ts
}

// Encode returns the head file's bytes.
func (h *Head) Encode() ([]byte, error) {
	meta := fileMeta{
		FormatVersion: FileVersion, Kind: h.Kind, Output: h.Output, Classes: h.Classes, MultiLabel: h.MultiLabel,
		Dim: h.Dim, Fingerprint: h.Fingerprint, Standardize: h.Mean != nil,
		LogRegSettings: h.LogRegSettings, MLPSettings: h.MLPSettings, Summary: h.Summary,
	}
	for _, l := range h.Layers {
		meta.Layers = append(meta.Layers, layerMeta{l.Out, l.In, l.Act})
	}
	if h.Top != nil {
		if len(h.Top.Blocks) == 0 {
			return nil, errors.New("head: encoding: top with no blocks")
		}
		meta.FormatVersion, meta.Top = FileVersion, h.Top.meta()
	} else {
		meta.FormatVersion = 1 // heads without top blocks keep version 1's bytes
	}
	if err := meta.check(); err != nil {
		return nil, fmt.Errorf("head: encoding: %w", err)
	}
	mj, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("head: encoding the metadata: %w", err)
	}
	var data []byte
	var tensors []safetensors.Tensor
	for _, t := range h.tensors() {
		b := len(data)
		for _, v := range t.data {
			data = binary.LittleEndian.AppendUint64(data, math.Float64bits(v))
		}
		tensors = append(tensors, safetensors.Tensor{Name: t.name, Dtype: "F64", Shape: t.shape, Begin: int64(b), End: int64(len(data))})
	}
	if h.Top != nil {
		for _, t := range h.Top.tensors() {
			b := len(data)
			for _, v := range t.data {
				data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
			}
			tensors = append(tensors, safetensors.Tensor{Name: t.name, Dtype: "F32", Shape: t.shape, Begin: int64(b), End: int64(len(data))})
		}
	}
	sum := sha256.New()
	sum.Write(mj)
	sum.Write(data)
	hdr, err := safetensors.Encode(map[string]string{MetaKey: string(mj), MetaHashKey: hex.EncodeToString(sum.Sum(nil))}, tensors)
	if err != nil {
		return nil, fmt.Errorf("head: encoding: %w", err)
	}
	return append(hdr, data...), nil
}

// Save writes the head to path atomically (fileio.WriteFile): into a uniquely named
// temporary file in the same directory, flushed, then renamed over path, with mode 0666
// less the umask. On error path is left as it was.
func (h *Head) Save(path string) error {
	b, err := h.Encode()
	if err != nil {
		return err
	}
	return fileio.WriteFile(path, b)
}

// Load reads and verifies a head file written by Save: its structure, its checksum
// (ErrCorruptHead on any mismatch, naming the file) and its version (ErrVersion).
func Load(path string) (*Head, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	h, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("head file %s: %w", path, err)
	}
	return h, nil
}

// Decode parses a head file's bytes (see Load). Whatever b holds, it returns a
// head or an error wrapping ErrCorruptHead or ErrVersion, and allocates in
// proportion to len(b): sizes in the header are checked against the bytes present
// before anything is allocated for them.
func Decode(b []byte) (*Head, error) {
	meta, data, entries, err := decodeMeta(b)
	if err != nil {
		return nil, err
	}
	h := &Head{
		Kind: meta.Kind, Output: meta.Output, Classes: meta.Classes, MultiLabel: meta.MultiLabel, Dim: meta.Dim,
		Fingerprint: meta.Fingerprint, LogRegSettings: meta.LogRegSettings, MLPSettings: meta.MLPSettings, Summary: meta.Summary,
	}
	var want []namedTensor
	if meta.Standardize {
		want = append(want, namedTensor{"mean", []int64{int64(meta.Dim)}, nil}, namedTensor{"std", []int64{int64(meta.Dim)}, nil})
	}
	for i, l := range meta.Layers {
		want = append(want,
			namedTensor{fmt.Sprintf("layers.%d.weight", i), []int64{int64(l.Out), int64(l.In)}, nil},
			namedTensor{fmt.Sprintf("layers.%d.bias", i), []int64{int64(l.Out)}, nil})
	}
	if meta.Top != nil {
		if h.Top, err = decodeTop(meta.Top, want, entries, data); err != nil {
			return nil, err
		}
		data = data[:len(data)-int(4*topValues(h.Top))]
	}
	if err := decodeF64(want, entries, data); err != nil {
		return nil, err
	}
	i := 0
	if meta.Standardize {
		h.Mean, h.Std = want[0].data, want[1].data
		for j, s := range h.Std {
			if !(s > 0) {
				return nil, corrupt("std[%d] = %v; want positive", j, s)
			}
		}
		i = 2
	}
	for _, l := range meta.Layers {
		h.Layers = append(h.Layers, Dense{Out: l.Out, In: l.In, Act: l.Activation, W: want[i].data, B: want[i+1].data})
		i += 2
	}
	return h, nil
}

// corrupt is an error wrapping ErrCorruptHead.
func corrupt(format string, args ...any) error { return errorf(ErrCorruptHead, format, args...) }

// decodeMeta parses a head file's header, checks its checksum and reads its metadata:
// it returns the metadata, the data bytes and the tensor entries (a copy, which the
// caller may change).
func decodeMeta(b []byte) (meta fileMeta, data []byte, entries map[string]safetensors.Tensor, err error) {
	sf, err := safetensors.Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return meta, nil, nil, corrupt("%s", strings.TrimPrefix(err.Error(), safetensors.ErrInvalid.Error()+": "))
	}
	data = b[sf.Base:]
	md, entries := sf.Meta, maps.Clone(sf.Tensors)
	if md == nil {
		return meta, nil, nil, corrupt("__metadata__ is missing: not a headstart head file")
	}
	mj, ok := md[MetaKey]
	if !ok {
		return meta, nil, nil, corrupt("no %q in __metadata__: not a headstart head file", MetaKey)
	}
	sum := sha256.New()
	io.WriteString(sum, mj)
	sum.Write(data)
	if got := hex.EncodeToString(sum.Sum(nil)); got != md[MetaHashKey] {
		return meta, nil, nil, corrupt("checksum mismatch (stored %q, computed %s): the file was corrupted or edited", md[MetaHashKey], got)
	}
	dec := json.NewDecoder(strings.NewReader(mj))
	if err := dec.Decode(&meta); err != nil {
		return meta, nil, nil, corrupt("metadata: %v", err)
	}
	if meta.FormatVersion < 1 {
		return meta, nil, nil, corrupt("format version %d", meta.FormatVersion)
	}
	if meta.FormatVersion > FileVersion {
		return meta, nil, nil, errorf(ErrVersion, "head file format version %d; this program reads versions 1 to %d (upgrade headstart)", meta.FormatVersion, FileVersion)
	}
	if err := meta.check(); err != nil {
		return meta, nil, nil, corrupt("%v", err)
	}
	return meta, data, entries, nil
}

// elements returns the element count of shape when its values, size bytes each, fit in
// left bytes; ok is false otherwise (or for a dimension below 1). The count is bounded
// before anything is allocated, so that a header describing more than the file holds
// (or a product that overflows) is refused rather than trusted.
func elements(shape []int64, left, size int64) (n int64, ok bool) {
	n = 1
	for _, s := range shape {
		if s < 1 || n > left/size/s {
			return 0, false
		}
		n *= s
	}
	return n, true
}

// decodeTop reads the top blocks of a head file, whose F32 tensors follow the F64 ones
// (want) in data; it removes them from entries.
func decodeTop(m *topMeta, want []namedTensor, entries map[string]safetensors.Tensor, data []byte) (*Top, error) {
	at := int64(0)
	for _, t := range want {
		n, ok := elements(t.shape, int64(len(data)), 8)
		if !ok {
			return nil, corrupt("tensor %q of shape %v needs more than the file's %d data bytes", t.name, t.shape, len(data))
		}
		if at += 8 * n; at > int64(len(data)) {
			return nil, corrupt("tensors need more than the file's %d data bytes", len(data))
		}
	}
	top, err := topFromMeta(m, func(name string, shape []int64) ([]float32, error) {
		e, ok := entries[name]
		if !ok {
			return nil, corrupt("tensor %q missing", name)
		}
		delete(entries, name)
		if e.Dtype != "F32" || !slices.Equal(e.Shape, shape) {
			return nil, corrupt("tensor %q is %s %v; want F32 %v", name, e.Dtype, e.Shape, shape)
		}
		n, ok := elements(shape, int64(len(data))-at, 4)
		if !ok {
			return nil, corrupt("tensor %q of shape %v needs more than the %d data bytes left at offset %d", name, shape, int64(len(data))-at, at)
		}
		if e.Begin != at || e.End != at+4*n {
			return nil, corrupt("tensor %q at data offsets [%d, %d]; want [%d, %d]", name, e.Begin, e.End, at, at+4*n)
		}
		v := make([]float32, n)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[at+4*int64(j):]))
			if math.IsNaN(float64(v[j])) || math.IsInf(float64(v[j]), 0) {
				return nil, corrupt("tensor %q holds %v", name, v[j])
			}
		}
		at += 4 * n
		return v, nil
	})
	if err != nil {
		if errors.Is(err, ErrCorruptHead) {
			return nil, err
		}
		return nil, corrupt("top: %v", err)
	}
	if at != int64(len(data)) {
		return nil, corrupt("tensors describe %d data bytes but the file holds %d", at, len(data))
	}
	return top, nil
}

// decodeF64 reads the F64 tensors want names, the only entries left, which fill data.
func decodeF64(want []namedTensor, entries map[string]safetensors.Tensor, data []byte) error {
	if len(entries) != len(want) {
		names := slices.Sorted(maps.Keys(entries))
		return corrupt("%d tensors (%s); the metadata describes %d", len(entries), strings.Join(names, ", "), len(want))
	}
	var at int64
	for i := range want {
		t := &want[i]
		e, ok := entries[t.name]
		if !ok {
			return corrupt("tensor %q missing", t.name)
		}
		if e.Dtype != "F64" || !slices.Equal(e.Shape, t.shape) {
			return corrupt("tensor %q is %s %v; want F64 %v", t.name, e.Dtype, e.Shape, t.shape)
		}
		n, ok := elements(t.shape, int64(len(data))-at, 8)
		if !ok {
			return corrupt("tensor %q of shape %v needs more than the %d data bytes left at offset %d", t.name, t.shape, int64(len(data))-at, at)
		}
		if e.Begin != at || e.End != at+8*n {
			return corrupt("tensor %q at data offsets [%d, %d]; want [%d, %d]", t.name, e.Begin, e.End, at, at+8*n)
		}
		t.data = make([]float64, n)
		for j := range t.data {
			t.data[j] = math.Float64frombits(binary.LittleEndian.Uint64(data[at+8*int64(j):]))
			if math.IsNaN(t.data[j]) || math.IsInf(t.data[j], 0) {
				return corrupt("tensor %q holds %v", t.name, t.data[j])
			}
		}
		at += 8 * n
	}
	if at != int64(len(data)) {
		return corrupt("tensors describe %d data bytes but the file holds %d", at, len(data))
	}
	return nil
}

// check validates the metadata's consistency: layer shapes chain from Dim to the
// outputs the classes and output kind need.
func (m *fileMeta) check() error {
	k := len(m.Classes)
	switch {
	case m.Kind != LogReg && m.Kind != MLP:
		return fmt.Errorf("kind %v unknown", m.Kind)
	case k < 1:
		return errors.New("no classes")
	case m.Dim < 1:
		return fmt.Errorf("dimension %d", m.Dim)
	case len(m.Layers) == 0:
		return errors.New("no layers")
	}
	seen := make(map[string]bool, k)
	for _, c := range m.Classes {
		if seen[c] {
			return fmt.Errorf("class %q listed twice", c)
		}
		seen[c] = true
	}
	in := m.Dim
	for i, l := range m.Layers {
		if l.In != in || l.Out < 1 {
			return fmt.Errorf("layer %d is %d -> %d; want %d inputs", i, l.In, l.Out, in)
		}
		if l.Activation != Identity && l.Activation != GELU {
			return fmt.Errorf("layer %d: activation %v unknown", i, l.Activation)
		}
		in = l.Out
	}
	want := k
	switch m.Output {
	case Binary:
		want = 1
		if k != 2 {
			return fmt.Errorf("binary output with %d classes", k)
		}
	case Softmax, Sigmoid:
	default:
		return fmt.Errorf("output %v unknown", m.Output)
	}
	if in != want {
		return fmt.Errorf("last layer has %d outputs; %s output with %d classes needs %s", in, m.Output, k, strconv.Itoa(want))
	}
	return nil
}

// topValues counts the float32 values of top's blocks.
func topValues(t *Top) int64 {
	var n int64
	for _, x := range t.tensors() {
		n += int64(len(x.data))
	}
	return n
}
