package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file checks that a file or buffer is an ONNX model and reads its
// declared inputs and outputs, walking the protobuf wire format without
// decoding the weights. A 90 MB model costs a few kilobytes of reads: the
// large fields (initialisers) are skipped by their length prefix.

// Field numbers from onnx.proto.
const (
	modelIRVersion  = 1 // ModelProto.ir_version
	modelGraph      = 7 // ModelProto.graph
	graphNode       = 1 // GraphProto.node
	graphInit       = 5 // GraphProto.initializer
	graphInput      = 11
	graphOutput     = 12
	graphSparseInit = 15 // GraphProto.sparse_initializer
	tensorName      = 8  // TensorProto.name
	sparseValues    = 1  // SparseTensorProto.values
)

// source gives random access to the encoded model.
type source interface {
	// at returns up to n bytes at off; fewer only at the end of the data.
	// The slice is valid until the next call.
	at(off int64, n int) ([]byte, error)
}

type bytesSource []byte

func (b bytesSource) at(off int64, n int) ([]byte, error) {
	if off >= int64(len(b)) {
		return nil, nil
	}
	return b[off:min(off+int64(n), int64(len(b)))], nil
}

// fileSource reads through a window so that the many small reads of a scan
// do not each cost a system call.
type fileSource struct {
	r    io.ReaderAt
	size int64
	win  []byte
	off  int64 // file offset of win[0]
	buf  []byte
}

const windowSize = 64 << 10

func (f *fileSource) at(off int64, n int) ([]byte, error) {
	if off >= f.size {
		return nil, nil
	}
	end := min(off+int64(n), f.size)
	if off >= f.off && end <= f.off+int64(len(f.win)) {
		return f.win[off-f.off : end-f.off], nil
	}
	if n > windowSize {
		// A large read (a ValueInfoProto): read it directly.
		b := make([]byte, end-off)
		if _, err := f.r.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, err
		}
		return b, nil
	}
	if f.buf == nil {
		f.buf = make([]byte, windowSize)
	}
	m, err := f.r.ReadAt(f.buf[:min(int64(windowSize), f.size-off)], off)
	if err != nil && !(err == io.EOF && int64(m) >= end-off) {
		return nil, err
	}
	f.win, f.off = f.buf[:m], off
	return f.win[:end-off], nil
}

// errMalformed is the reason a scan gives up; callers wrap it into
// ErrNotONNX with the file name.
type errMalformed struct{ msg string }

func (e *errMalformed) Error() string { return e.msg }

func malformed(format string, args ...any) error {
	return &errMalformed{fmt.Sprintf(format, args...)}
}

// wireField is one field of an encoded message. For the bytes wire type,
// off and len locate the payload; for varints, val holds the value.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	val uint64
	off int64
	len int64
	// start and end locate the whole field, tag included.
	start, end int64
}

// scanFields calls fn for each field of the message encoded in [off, end).
func scanFields(src source, off, end int64, fn func(wireField) error) error {
	for off < end {
		b, err := src.at(off, int(min(end-off, binary10)))
		if err != nil {
			return err
		}
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("invalid protobuf field tag at byte %d", off)
		}
		f := wireField{num: num, typ: typ}
		tagOff := off
		off += int64(n)
		switch typ {
		case protowire.VarintType, protowire.BytesType:
			b, err := src.at(off, int(min(end-off, binary10)))
			if err != nil {
				return err
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("truncated or invalid varint at byte %d", off)
			}
			off += int64(n)
			f.val = v
			if typ == protowire.BytesType {
				if v > uint64(end-off) {
					return malformed("field %d at byte %d claims %d bytes but only %d remain (truncated file?)",
						num, tagOff, v, end-off)
				}
				f.off, f.len = off, int64(v)
				off += int64(v)
			}
		case protowire.Fixed32Type:
			off += 4
		case protowire.Fixed64Type:
			off += 8
		default:
			return malformed("unexpected protobuf wire type %d at byte %d", typ, tagOff)
		}
		if off > end {
			return malformed("field %d at byte %d runs past the end (truncated file?)", num, tagOff)
		}
		f.start, f.end = tagOff, off
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

const binary10 = 10 // protowire's longest varint

// modelSummary is what a scan learns about a model.
type modelSummary struct {
	irVersion int64
	nodes     int
	inputs    []TensorInfo // graph inputs that are not initialisers
	outputs   []TensorInfo
	inDims    [][]string // symbolic dimension names of inputs
	outDims   [][]string
}

// summarize checks that src (size bytes) holds an ONNX ModelProto with a
// graph that has nodes, and reads the graph's declared inputs and outputs.
// Malformed data gives an *errMalformed; I/O errors are returned as they
// are.
func summarize(src source, size int64) (*modelSummary, error) {
	if size == 0 {
		return nil, malformed("empty file")
	}
	var s modelSummary
	// A graph given in several fields is one graph (protobuf merges them; Model's
	// WriteFile writes the initialisers of an OpenModel model in a second one).
	var graphs []wireField
	err := scanFields(src, 0, size, func(f wireField) error {
		switch f.num {
		case modelIRVersion:
			if f.typ != protowire.VarintType {
				return malformed("ir_version has wire type %d, want varint", f.typ)
			}
			s.irVersion = int64(f.val)
		case modelGraph:
			if f.typ != protowire.BytesType {
				return malformed("graph has wire type %d, want a message", f.typ)
			}
			graphs = append(graphs, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.irVersion <= 0 {
		return nil, malformed("no ir_version")
	}
	if len(graphs) == 0 {
		return nil, malformed("no graph")
	}
	var inputs, outputs []wireField
	inits := make(map[string]bool)
	for _, graph := range graphs {
		err = scanFields(src, graph.off, graph.off+graph.len, func(f wireField) error {
			if f.typ != protowire.BytesType {
				// GraphProto has no scalar fields below 20 that we rely on;
				// tolerate any others.
				return nil
			}
			switch f.num {
			case graphNode:
				s.nodes++
			case graphInput:
				inputs = append(inputs, f)
			case graphOutput:
				outputs = append(outputs, f)
			case graphInit:
				name, err := tensorProtoName(src, f)
				if err != nil {
					return err
				}
				inits[name] = true
			case graphSparseInit:
				return scanFields(src, f.off, f.off+f.len, func(g wireField) error {
					if g.num == sparseValues && g.typ == protowire.BytesType {
						name, err := tensorProtoName(src, g)
						if err != nil {
							return err
						}
						inits[name] = true
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if s.nodes == 0 {
		return nil, malformed("graph has no nodes")
	}
	for _, f := range inputs {
		info, dims, err := decodeValueInfo(src, f)
		if err != nil {
			return nil, err
		}
		if inits[info.Name] {
			// An initialiser listed as input (IR < 4, or overridable):
			// onnxruntime does not ask for it, and neither do we.
			continue
		}
		s.inputs = append(s.inputs, info)
		s.inDims = append(s.inDims, dims)
	}
	for _, f := range outputs {
		info, dims, err := decodeValueInfo(src, f)
		if err != nil {
			return nil, err
		}
		s.outputs = append(s.outputs, info)
		s.outDims = append(s.outDims, dims)
	}
	return &s, nil
}

// tensorProtoName returns the name field of the TensorProto in f.
func tensorProtoName(src source, f wireField) (string, error) {
	var name string
	err := scanFields(src, f.off, f.off+f.len, func(g wireField) error {
		if g.num == tensorName && g.typ == protowire.BytesType {
			b, err := src.at(g.off, int(g.len))
			if err != nil {
				return err
			}
			name = string(b)
		}
		return nil
	})
	return name, err
}

func decodeValueInfo(src source, f wireField) (TensorInfo, []string, error) {
	b, err := src.at(f.off, int(f.len))
	if err != nil {
		return TensorInfo{}, nil, err
	}
	var vi onnxpb.ValueInfoProto
	if err := proto.Unmarshal(b, &vi); err != nil {
		return TensorInfo{}, nil, malformed("graph input or output at byte %d: %v", f.off, err)
	}
	info, dims := tensorInfo(&vi)
	return info, dims, nil
}

// notONNX wraps a scan error: malformed data becomes ErrNotONNX naming
// what, other errors are returned with what attached.
func notONNX(what string, err error) error {
	var m *errMalformed
	if errors.As(err, &m) {
		return fmt.Errorf("%w: %s: %s", ErrNotONNX, what, m.msg)
	}
	return fmt.Errorf("onnx: reading %s: %w", what, err)
}

// openModelFile opens the model file at path for reading and stats it; the caller
// closes the file. A directory is an error wrapping ErrNotONNX.
func openModelFile(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("onnx: %w", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is a directory", ErrNotONNX, path)
	}
	return f, st, nil
}

// summarizeFile scans the model file at path.
func summarizeFile(path string) (*modelSummary, error) {
	f, st, err := openModelFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := summarize(&fileSource{r: f, size: st.Size()}, st.Size())
	if err != nil {
		return nil, notONNX(path, err)
	}
	return s, nil
}

// summarizeBytes scans an in-memory model; what names it in errors.
func summarizeBytes(data []byte, what string) (*modelSummary, error) {
	s, err := summarize(bytesSource(data), int64(len(data)))
	if err != nil {
		return nil, notONNX(what, err)
	}
	return s, nil
}

// Describe returns the declared inputs and outputs of the ONNX model at
// path, in graph order, reading only the graph's signature (not the
// weights). It does not need the runtime. Inputs that are initialisers
// (weights a caller may override) are left out, as onnxruntime does. A file
// that is not an ONNX model gives an error wrapping ErrNotONNX.
func Describe(path string) (inputs, outputs []TensorInfo, err error) {
	s, err := summarizeFile(path)
	if err != nil {
		return nil, nil, err
	}
	return s.inputs, s.outputs, nil
}

// DescribeBytes is Describe for a model held in memory.
func DescribeBytes(data []byte) (inputs, outputs []TensorInfo, err error) {
	s, err := summarizeBytes(data, "model data")
	if err != nil {
		return nil, nil, err
	}
	return s.inputs, s.outputs, nil
}
