package onnx

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/headstart-ml/headstart/onnx/onnxpb"
)

// This file reads a model's graph without its weights. An encoder's structure (nodes,
// inputs, outputs, shapes, small constants) is a few hundred kilobytes; its weights are
// the rest of the file. OpenModel decodes the structure and leaves each large
// initialiser as a stub that remembers where its values are in the file; the values
// are read back only when a method needs them (BlockWeights, SetBlockWeights) or when
// the model is written out (Marshal, WriteFile), which copies them from the file.

// stubMin is the encoded size from which OpenModel leaves an initialiser's values in
// the file: weight matrices and embedding tables are far above it, the shape and
// scalar constants that graph edits read far below.
const stubMin = 4 << 10

// Fields of TensorProto that hold values (onnx.proto): float_data, int32_data,
// string_data, int64_data, raw_data, double_data, uint64_data.
var tensorValueFields = map[protowire.Number]bool{4: true, 5: true, 6: true, 7: true, 9: true, 10: true, 11: true}

// lazyData is where the stubs of an OpenModel model are in its file.
type lazyData struct {
	path    string
	size    int64
	modTime time.Time
	// stubs maps each stub to its TensorProto's encoding in the file (the
	// initializer field's payload).
	stubs map[*onnxpb.TensorProto]span
}

type span struct{ off, len int64 }

// OpenModel decodes the ONNX model at path without the values of its large
// initialisers (weights): they stay in the file, and the Model holds a stub for each
// (name, data type and dims, no values). Inspection and graph edits (HiddenStates,
// ExposeOutputs, KeepOutputs, EnablePacking, AppendHead) work as on a LoadModel
// model; BlockWeights and SetBlockWeights load every stub's values first, RelativeBias
// the table it reads; Marshal and
// WriteFile copy the values from the file. The file must not change while the Model
// is in use: reading a stub from a file whose size or modification time changed is an
// error. Code that reads Proto's initialisers itself should use LoadModel.
//
// A file that is not an ONNX model gives an error wrapping ErrNotONNX that names path.
func OpenModel(path string) (*Model, error) {
	f, st, err := openModelFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := &fileSource{r: f, size: st.Size()}
	if _, err := summarize(src, st.Size()); err != nil {
		return nil, notONNX(path, err)
	}
	skel, stubs, err := skeleton(src, st.Size())
	if err != nil {
		return nil, notONNX(path, err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(skel, &mp); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotONNX, path, err)
	}
	m := &Model{Proto: &mp}
	if len(stubs) > 0 {
		m.lazy = &lazyData{path: path, size: st.Size(), modTime: st.ModTime(), stubs: make(map[*onnxpb.TensorProto]span, len(stubs))}
		inits := mp.GetGraph().GetInitializer()
		for i, sp := range stubs {
			m.lazy.stubs[inits[i]] = sp
		}
	}
	return m, nil
}

// skeleton re-encodes the model in src with the value fields of large initialisers
// dropped. stubs maps the index of each such initialiser (in graph order) to its
// encoding in src.
func skeleton(src source, size int64) ([]byte, map[int]span, error) {
	var out []byte
	stubs := make(map[int]span)
	raw := func(f wireField) error {
		b, err := src.at(f.start, int(f.end-f.start))
		if err != nil {
			return err
		}
		out = append(out, b...)
		return nil
	}
	err := scanFields(src, 0, size, func(f wireField) error {
		if f.num != modelGraph || f.typ != protowire.BytesType {
			return raw(f)
		}
		var graph []byte
		ninit := 0
		err := scanFields(src, f.off, f.off+f.len, func(g wireField) error {
			if g.num != graphInit || g.typ != protowire.BytesType {
				b, err := src.at(g.start, int(g.end-g.start))
				graph = append(graph, b...)
				return err
			}
			i := ninit
			ninit++
			if g.end-g.start < stubMin {
				b, err := src.at(g.start, int(g.end-g.start))
				graph = append(graph, b...)
				return err
			}
			var t []byte
			err := scanFields(src, g.off, g.off+g.len, func(h wireField) error {
				if tensorValueFields[h.num] {
					return nil
				}
				b, err := src.at(h.start, int(h.end-h.start))
				t = append(t, b...)
				return err
			})
			if err != nil {
				return err
			}
			stubs[i] = span{g.off, g.len}
			graph = protowire.AppendTag(graph, graphInit, protowire.BytesType)
			graph = protowire.AppendBytes(graph, t)
			return nil
		})
		if err != nil {
			return err
		}
		out = protowire.AppendTag(out, modelGraph, protowire.BytesType)
		out = protowire.AppendBytes(out, graph)
		return nil
	})
	return out, stubs, err
}

// hasStubs reports whether some initialiser of the graph is still a stub.
func (m *Model) hasStubs() bool {
	if m.lazy == nil {
		return false
	}
	for _, t := range m.Proto.GetGraph().GetInitializer() {
		if _, ok := m.lazy.stubs[t]; ok {
			return true
		}
	}
	return false
}

// open opens the model's file, checking that it has not changed since OpenModel.
func (l *lazyData) open() (*os.File, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("onnx: reading weights: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("onnx: reading weights: %w", err)
	}
	if st.Size() != l.size || !st.ModTime().Equal(l.modTime) {
		f.Close()
		return nil, fmt.Errorf("onnx: %s changed since it was opened (size %d, was %d); open it again", l.path, st.Size(), l.size)
	}
	return f, nil
}

// loadStubs reads the values of every stub of the graph from the file: afterwards the
// model is whole, as from LoadModel.
func (m *Model) loadStubs() error {
	if !m.hasStubs() {
		return nil
	}
	f, err := m.lazy.open()
	if err != nil {
		return err
	}
	defer f.Close()
	for _, t := range m.Proto.GetGraph().GetInitializer() {
		if err := m.lazy.fill(f, t); err != nil {
			return err
		}
	}
	return nil
}

// loadStub reads the values of t from the file if t is a stub, and leaves the
// model's other stubs in the file.
func (m *Model) loadStub(t *onnxpb.TensorProto) error {
	if m.lazy == nil {
		return nil
	}
	if _, ok := m.lazy.stubs[t]; !ok {
		return nil
	}
	f, err := m.lazy.open()
	if err != nil {
		return err
	}
	defer f.Close()
	return m.lazy.fill(f, t)
}

// fill reads the values of t, if it is a stub, from f (the file, from open): t
// becomes the whole initialiser and is no longer a stub.
func (l *lazyData) fill(f *os.File, t *onnxpb.TensorProto) error {
	sp, ok := l.stubs[t]
	if !ok {
		return nil
	}
	b := make([]byte, sp.len)
	if _, err := f.ReadAt(b, sp.off); err != nil {
		return fmt.Errorf("onnx: reading weights of %q from %s: %w", t.GetName(), l.path, err)
	}
	proto.Reset(t)
	if err := proto.Unmarshal(b, t); err != nil {
		return fmt.Errorf("%w: %s: initializer at byte %d: %v", ErrNotONNX, l.path, sp.off, err)
	}
	delete(l.stubs, t)
	return nil
}

// WriteFile writes the model to path (created or truncated, mode 0o644). The values
// of an OpenModel model's stubs are copied from its file, so the model's weights are
// never all in memory.
func (m *Model) WriteFile(path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("onnx: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if m.hasStubs() {
		err = m.writeLazy(w)
	} else {
		var b []byte
		if b, err = m.Marshal(); err == nil {
			_, err = w.Write(b)
		}
	}
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	return nil
}

// writeLazy encodes a model with stubs to w: the model without them, then a second
// graph field that holds only their initialisers, copied from the file. A protobuf
// parser merges the two graph fields into one (embedded messages given twice are
// merged, repeated fields concatenated), which onnxruntime's and Go's parsers do.
func (m *Model) writeLazy(w io.Writer) error {
	g := m.Proto.GetGraph()
	all := g.Initializer
	var kept []*onnxpb.TensorProto
	var stubs []span
	for _, t := range all {
		if sp, ok := m.lazy.stubs[t]; ok {
			stubs = append(stubs, sp)
		} else {
			kept = append(kept, t)
		}
	}
	g.Initializer = kept
	b, err := proto.Marshal(m.Proto)
	g.Initializer = all
	if err != nil {
		return fmt.Errorf("onnx: encoding model: %w", err)
	}
	f, err := m.lazy.open()
	if err != nil {
		return err
	}
	defer f.Close()
	var graphLen int64
	for _, sp := range stubs {
		graphLen += int64(protowire.SizeTag(graphInit)) + int64(protowire.SizeBytes(int(sp.len)))
	}
	b = protowire.AppendTag(b, modelGraph, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(graphLen))
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("onnx: writing model: %w", err)
	}
	var hdr []byte
	for _, sp := range stubs {
		hdr = protowire.AppendTag(hdr[:0], graphInit, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(sp.len))
		if _, err := w.Write(hdr); err != nil {
			return fmt.Errorf("onnx: writing model: %w", err)
		}
		if _, err := io.Copy(w, io.NewSectionReader(f, sp.off, sp.len)); err != nil {
			return fmt.Errorf("onnx: copying weights from %s: %w", m.lazy.path, err)
		}
	}
	return nil
}
