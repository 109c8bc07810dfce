// Package safetensors is the one encoder and parser of safetensors headers
// (https://github.com/huggingface/safetensors) in headstart: feature stores, activation
// caches and head files all use it.
//
//	8 bytes   N, little-endian uint64: the header's length
//	N bytes   JSON header, padded with spaces so that 8+N is a multiple of 8:
//	          {"__metadata__":{"key":"value",...},
//	           "<tensor>":{"dtype":"F32","shape":[...],"data_offsets":[b,e]}, ...}
//	data      the tensors' bytes; offsets count from the first data byte
//
// The parser checks what every reader needs before it allocates anything for a tensor:
// the header's length against the file's size, the JSON, the metadata (a map of
// strings), every tensor's dtype, shape and extent, and that the tensors tile the data
// exactly (no gap, no overlap, nothing after the last).
package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// ErrInvalid marks a header that is not valid safetensors; callers tag it with their own
// kind of corruption (a store, a head).
var ErrInvalid = errors.New("safetensors: invalid file")

// MaxHeader bounds the header length Parse accepts (the safetensors library's limit).
const MaxHeader = 100_000_000

// MetadataKey is the header key of the metadata map.
const MetadataKey = "__metadata__"

// Tensor is one tensor's header entry: its dtype, its shape and its data offsets
// [Begin, End) from the first data byte.
type Tensor struct {
	Name  string
	Dtype string
	Shape []int64
	Begin int64
	End   int64
}

// entry is a tensor's JSON in the header (fields in the order written).
type entry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// DtypeSizes are the safetensors dtypes and their element sizes in bytes.
var DtypeSizes = map[string]int64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
	"U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}

// Encode returns the length prefix and the padded JSON header for the metadata (written
// with sorted keys; nil writes an empty map) and the tensors, in the order given. The
// data follows it in the file. The same arguments always give the same bytes.
func Encode(meta map[string]string, tensors []Tensor) ([]byte, error) {
	if meta == nil {
		meta = map[string]string{}
	}
	md, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("safetensors: encoding the metadata: %w", err)
	}
	var h bytes.Buffer
	h.WriteString(`{"` + MetadataKey + `":`)
	h.Write(md)
	for _, t := range tensors {
		e, err := json.Marshal(entry{t.Dtype, t.Shape, [2]int64{t.Begin, t.End}})
		if err != nil {
			return nil, fmt.Errorf("safetensors: encoding tensor %q: %w", t.Name, err)
		}
		name, _ := json.Marshal(t.Name)
		h.WriteByte(',')
		h.Write(name)
		h.WriteByte(':')
		h.Write(e)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+h.Len()), uint64(h.Len()))
	return append(out, h.Bytes()...), nil
}

// File is a parsed header.
type File struct {
	// Meta is the metadata map; nil when the header has none.
	Meta map[string]string
	// Tensors by name.
	Tensors map[string]Tensor
	// Base is the file offset of the first data byte (8 + the header's length); the
	// data runs from Base to the end of the file.
	Base int64
}

// Names returns the tensors' names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Parse reads and validates the header of the safetensors file of size bytes in r. An
// invalid header gives an error wrapping ErrInvalid whose message says what is wrong (it
// does not name the file: the caller does); a failed read is returned as it comes.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	if size < 8 {
		return nil, bad("%d bytes, too short for a safetensors file", size)
	}
	var pre [8]byte
	if _, err := r.ReadAt(pre[:], 0); err != nil {
		return nil, err
	}
	hlen := binary.LittleEndian.Uint64(pre[:])
	if hlen > MaxHeader || hlen > uint64(size-8) {
		return nil, bad("header length %d does not fit the file (%d bytes): truncated, or not a safetensors file", hlen, size)
	}
	if hlen == 0 {
		return nil, bad("header length 0: not a safetensors file")
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, err
	}
	if hdr[0] != '{' {
		return nil, bad("header does not start with '{': not a safetensors file")
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &entries); err != nil {
		return nil, bad("header is not valid JSON: %v", err)
	}
	f := &File{Tensors: map[string]Tensor{}, Base: 8 + int64(hlen)}
	if raw, ok := entries[MetadataKey]; ok {
		if err := json.Unmarshal(raw, &f.Meta); err != nil {
			return nil, bad("%s is not a map of strings: %v", MetadataKey, err)
		}
		delete(entries, MetadataKey)
	}
	dataLen := size - f.Base
	var extents []Tensor
	for name, raw := range entries {
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		es, ok := DtypeSizes[e.Dtype]
		if !ok {
			return nil, bad("tensor %q: dtype %q unknown", name, e.Dtype)
		}
		nbytes := es
		for _, dim := range e.Shape {
			if dim < 0 {
				ok = false
				break
			}
			hi, lo := bits.Mul64(uint64(nbytes), uint64(dim))
			if hi != 0 || lo > math.MaxInt64 {
				ok = false
				break
			}
			nbytes = int64(lo)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if !ok || b < 0 || end < b || end-b != nbytes {
			return nil, bad("tensor %q: shape %v of %s does not match data offsets [%d, %d]", name, e.Shape, e.Dtype, b, end)
		}
		t := Tensor{Name: name, Dtype: e.Dtype, Shape: e.Shape, Begin: b, End: end}
		f.Tensors[name] = t
		extents = append(extents, t)
	}
	slices.SortFunc(extents, func(a, b Tensor) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), strings.Compare(a.Name, b.Name))
	})
	var at int64
	for _, x := range extents {
		if x.Begin != at {
			return nil, bad("tensor %q starts at data offset %d, want %d (gap or overlap)", x.Name, x.Begin, at)
		}
		at = x.End
	}
	if at != dataLen {
		return nil, bad("tensors describe %d data bytes but the file holds %d: truncated or corrupt", at, dataLen)
	}
	return f, nil
}
