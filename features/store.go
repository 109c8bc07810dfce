package features

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/safetensors"
)

// A feature store is a safetensors file (https://github.com/huggingface/safetensors):
//
//	8 bytes     N, little-endian uint64: the header's length
//	N bytes     JSON header, padded with spaces so that 8+N is a multiple of 8:
//	            {"__metadata__":{"headstart":"<Manifest as JSON>",
//	                             "headstart_sha256":"<hex SHA-256>"},
//	             "features":{"dtype":"F32","shape":[rows,dim],"data_offsets":[b,e]},
//	             "labels":  {"dtype":"I64","shape":[rows],"data_offsets":[b,e]},
//	             "row_ids": {"dtype":"I64","shape":[rows],"data_offsets":[b,e]}}
//	data        labels, row_ids, then features, little-endian, with no gaps
//
// The header is written by the one safetensors codec (internal/safetensors). The
// checksum (SHA256Key) covers the manifest's JSON and every data byte; OpenStore verifies
// it. Offsets count from the first data byte. The int64 tensors come first so that every
// tensor starts 8-byte aligned in the file (mmap-friendly for any reader).
// labels[i] is an index into Manifest.LabelNames, or -1 for an unlabelled row; row_ids[i]
// is the row's 0-based index in the dataset (Row.Index). The file is read back by
// safetensors.numpy.load_file and safe_open(...).metadata() in Python.
//
// A multi-label store (Manifest.MultiLabel, written by extract --label-sep; format
// version 2) has a fourth tensor after the features,
//
//	"label_sets":{"dtype":"U8","shape":[rows,K],"data_offsets":[b,e]}
//
// with K = len(Manifest.LabelNames): label_sets[i][k] is 1 when row i carries label k,
// else 0 (multi-hot); a row whose set is empty is unlabelled. Its labels tensor is -1 on
// every row, so that a reader that knows only labels sees unlabelled rows rather than
// one label silently picked from each set. Single-label stores are unchanged (version 1,
// three tensors, no multi_label or label_sep in the manifest).

// FormatVersion is the version of the store layout and manifest written by this package
// for single-label stores. OpenStore refuses stores with a version newer than
// MultiLabelFormatVersion.
const FormatVersion = 1

// MultiLabelFormatVersion is the version of multi-label stores (Manifest.MultiLabel):
// version 1 plus the label_sets tensor and the manifest's multi_label and label_sep. A
// program that reads only version 1 refuses them instead of taking their labels tensor
// (all -1) for unlabelled rows.
const MultiLabelFormatVersion = 2

// MetadataKey is the __metadata__ key holding the manifest.
const MetadataKey = "headstart"

// Dtype is the element type of the stored features. The zero value is Float32.
type Dtype int

const (
	// Float32 stores features as IEEE float32 (safetensors F32): exact.
	Float32 Dtype = iota
	// Float16 stores features as IEEE float16 (safetensors F16), rounded to nearest even
	// (as numpy's astype(float16)): half the size, about 3 significant digits; values
	// beyond ±65504 become ±Inf. OpenStore converts them back to float32.
	Float16
)

// String returns the dtype's name: f32 or f16 (what ParseDtype accepts and the manifest
// records).
func (d Dtype) String() string {
	switch d {
	case Float32:
		return "f32"
	case Float16:
		return "f16"
	}
	return fmt.Sprintf("Dtype(%d)", int(d))
}

// safetensors returns the dtype's safetensors name and size in bytes.
func (d Dtype) safetensors() (string, int) {
	if d == Float16 {
		return "F16", 2
	}
	return "F32", 4
}

// ParseDtype parses a dtype name: f32 (float32) or f16 (float16, half), any case.
func ParseDtype(s string) (Dtype, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "f32", "float32":
		return Float32, nil
	case "f16", "float16", "half":
		return Float16, nil
	}
	return Float32, errorf(ErrUnknownDtype, "dtype %q unknown; want one of f32, f16", s)
}

// Manifest records how a feature store was made: enough to check that features and a
// head belong to the same backbone and settings, and to reproduce the file. It has no
// timestamp, so re-running the same extraction gives a byte-identical file. Fields are
// written in this order.
type Manifest struct {
	// FormatVersion is set by NewWriter to FormatVersion when zero.
	FormatVersion int      `json:"format_version"`
	Tool          string   `json:"tool"` // name and version of the program, e.g. "headstart 0.1.0"
	Backbone      Backbone `json:"backbone"`
	// Spec is how the rows were made from the texts (its fields are written at this
	// level: pooling, layers, normalize, max_len, prefix). Layers are resolved
	// (HuggingFace output_hidden_states indices: 0 = embeddings output, i = output of
	// encoder block i-1), concatenated in this order; empty means the model's output.
	Spec
	Dtype   string  `json:"dtype"` // set by NewWriter: Dtype.String()
	Dataset Dataset `json:"dataset"`
	// LabelNames maps the stored label indices to names (Summary.Labels); for a
	// multi-label store, the columns of label_sets (the sorted union of the rows' sets).
	LabelNames []string `json:"label_names"`
	// MultiLabel marks a multi-label store (ReaderOptions.LabelSep): each row's label
	// set is in Store.LabelSets and Store.Labels is -1 on every row. Omitted when false.
	MultiLabel bool `json:"multi_label,omitempty"`
	// LabelSep is the separator the label column was split on (multi-label stores).
	LabelSep string `json:"label_sep,omitempty"`
	// Shard is set when the store holds one shard of a dataset.
	Shard *Shard `json:"shard,omitempty"`
	// Extra holds further settings as strings (written sorted by key).
	Extra map[string]string `json:"extra,omitempty"`
}

// Backbone identifies the frozen encoder.
type Backbone struct {
	Name            string `json:"name"`
	SHA256          string `json:"sha256"`           // hex SHA-256 of the model file
	TokenizerSHA256 string `json:"tokenizer_sha256"` // hex SHA-256 of tokenizer.json
	// Dir is the absolute directory of a model given as a directory (--model DIR), so
	// that it can be found again (models.Find); empty for a registry model.
	Dir string `json:"dir,omitempty"`
}

// Dataset identifies the data the features were extracted from.
type Dataset struct {
	Path     string `json:"path"`
	SHA256   string `json:"sha256"` // Summary.SHA256
	Rows     int64  `json:"rows"`   // rows in the dataset (after a limit), Summary.Rows
	Format   string `json:"format,omitempty"`
	TextCol  string `json:"text_col"`
	LabelCol string `json:"label_col"`
	Limit    int    `json:"limit,omitempty"`
}

// Shard says which part of a dataset a store holds.
type Shard struct {
	Index int `json:"index"` // 0-based
	Count int `json:"count"`
}

// layout is where the tensors of an (n,d) store lie.
type layout struct {
	meta                          sumHeader
	header                        []byte // length prefix + padded JSON header, checksum placeholder
	labels, rowIDs, feature, sets int64  // file offsets of each tensor's first byte (sets: multi-label only)
	size                          int64  // file size
}

func makeLayout(m *Manifest, n, d int, dtype Dtype) (layout, error) {
	mj, err := json.Marshal(m)
	if err != nil {
		return layout{}, fmt.Errorf("encoding the manifest: %w", err)
	}
	name, es := dtype.safetensors()
	N, D := int64(n), int64(d)
	fea := safetensors.Tensor{Name: "features", Dtype: name, Shape: []int64{N, D}, Begin: 16 * N, End: 16*N + N*D*int64(es)}
	tensors := []safetensors.Tensor{
		fea,
		{Name: "labels", Dtype: "I64", Shape: []int64{N}, Begin: 0, End: 8 * N},
		{Name: "row_ids", Dtype: "I64", Shape: []int64{N}, Begin: 8 * N, End: 16 * N},
	}
	end := fea.End
	if m.MultiLabel {
		K := int64(len(m.LabelNames))
		tensors = append(tensors, safetensors.Tensor{Name: "label_sets", Dtype: "U8", Shape: []int64{N, K}, Begin: end, End: end + N*K})
		end += N * K
	}
	sh := sumHeader{key: MetadataKey, manifest: mj, tensors: tensors}
	hdr, err := sh.encode(noSum)
	if err != nil {
		return layout{}, err
	}
	base := int64(len(hdr))
	return layout{meta: sh, header: hdr, labels: base, rowIDs: base + 8*N, feature: base + 16*N, sets: base + fea.End, size: base + end}, nil
}

// Writer streams a feature store of a known size to disk. It writes into a temporary
// file next to the destination and renames it into place on Close, so a failed or
// abandoned write never leaves a partial store at the destination. Rows go straight to
// the file: memory does not grow with the number of rows.
type Writer struct {
	path     string
	f        *fileio.File // the temporary file Close renames to path
	lay      layout
	n, d     int
	dtype    Dtype
	labels   int  // len(Manifest.LabelNames)
	multi    bool // Manifest.MultiLabel: rows come through WriteRowSets
	rows     int  // rows written so far
	buf      []byte
	noLabels []int64 // -1s for the labels tensor of a multi-label store
	err      error   // sticky
	done     bool
}

// NewWriter starts a store at path that will hold n rows of d features of the given
// dtype, described by m (m.FormatVersion is set when zero, to MultiLabelFormatVersion
// when m.MultiLabel, and m.Dtype is set to dtype). The header is written at once; the
// rows follow through WriteRows (WriteRowSets for a multi-label store); Close finishes
// it.
func NewWriter(path string, m Manifest, n, d int, dtype Dtype) (*Writer, error) {
	if n < 0 || d < 1 {
		return nil, fmt.Errorf("store %s: %d rows of %d features; want rows >= 0, features >= 1", path, n, d)
	}
	if dtype != Float32 && dtype != Float16 {
		return nil, errorf(ErrUnknownDtype, "store %s: dtype %v unknown; want one of f32, f16", path, dtype)
	}
	if m.FormatVersion == 0 {
		m.FormatVersion = FormatVersion
	}
	if m.MultiLabel {
		m.FormatVersion = max(m.FormatVersion, MultiLabelFormatVersion)
	}
	m.Dtype = dtype.String()
	lay, err := makeLayout(&m, n, d, dtype)
	if err != nil {
		return nil, err
	}
	f, err := fileio.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating store %s: %w", path, err)
	}
	w := &Writer{path: path, f: f, lay: lay, n: n, d: d, dtype: dtype, labels: len(m.LabelNames), multi: m.MultiLabel}
	if _, err := f.WriteAt(lay.header, 0); err != nil {
		return nil, errors.Join(fmt.Errorf("writing store %s: %w", path, err), w.Abort())
	}
	return w, nil
}

// WriteRows appends k rows: features is (k,d) row-major, labels and rowIDs have k
// entries. Each label is -1 (unlabelled) or an index into the manifest's LabelNames.
// The slices are not modified or kept. After an error every later call fails; Close
// then removes the temporary file. WriteRows panics if the slice lengths disagree or
// the store is multi-label (use WriteRowSets).
func (w *Writer) WriteRows(features []float32, labels, rowIDs []int64) error {
	k := len(labels)
	if len(rowIDs) != k || len(features) != k*w.d {
		panic("features: Writer.WriteRows: features, labels and rowIDs lengths disagree")
	}
	if w.multi {
		panic("features: Writer.WriteRows on a multi-label store; use WriteRowSets")
	}
	return w.write(features, labels, nil, rowIDs)
}

// WriteRowSets appends k rows to a multi-label store: features is (k,d) row-major,
// sets (k,K) row-major multi-hot with K = len(LabelNames) (sets[i*K+c] is 1 when row i
// carries label c, else 0), rowIDs has k entries; the labels tensor gets -1 for these
// rows. A set value other than 0 or 1 is an error wrapping ErrBadLabel. The slices are
// not modified or kept. It panics if the lengths disagree or the store is single-label.
func (w *Writer) WriteRowSets(features []float32, sets []uint8, rowIDs []int64) error {
	k := len(rowIDs)
	if len(features) != k*w.d || len(sets) != k*w.labels {
		panic("features: Writer.WriteRowSets: features, sets and rowIDs lengths disagree")
	}
	if !w.multi {
		panic("features: Writer.WriteRowSets on a single-label store; use WriteRows")
	}
	for len(w.noLabels) < k {
		w.noLabels = append(w.noLabels, -1)
	}
	return w.write(features, w.noLabels[:k], sets, rowIDs)
}

// write appends rows; sets is nil for a single-label store.
func (w *Writer) write(features []float32, labels []int64, sets []uint8, rowIDs []int64) error {
	k := len(labels)
	if w.err != nil {
		return w.err
	}
	if w.done {
		return fmt.Errorf("store %s: WriteRows after Close", w.path)
	}
	if w.rows+k > w.n {
		w.err = errorf(ErrRowCount, "store %s: %d rows written, more than the %d it was created for", w.path, w.rows+k, w.n)
		return w.err
	}
	for i, l := range labels {
		if l < -1 || l >= int64(w.labels) {
			w.err = errorf(ErrBadLabel, "store %s: row %d: label %d out of range [-1, %d)", w.path, w.rows+i, l, w.labels)
			return w.err
		}
	}
	for i, v := range sets {
		if v > 1 {
			w.err = errorf(ErrBadLabel, "store %s: row %d: label set value %d at label %d; want 0 or 1", w.path, w.rows+i/w.labels, v, i%w.labels)
			return w.err
		}
	}
	_, es := w.dtype.safetensors()
	r := int64(w.rows)
	if err := writeRowData(&w.buf, w.writeAt, w.dtype, labels, rowIDs, features, w.lay.labels+8*r, w.lay.rowIDs+8*r, w.lay.feature+r*int64(w.d*es)); err != nil {
		return err
	}
	if w.multi && len(sets) > 0 {
		if err := w.writeAt(sets, w.lay.sets+r*int64(w.labels)); err != nil {
			return err
		}
	}
	w.rows += k
	return nil
}

func (w *Writer) writeAt(b []byte, off int64) error {
	if _, err := w.f.WriteAt(b, off); err != nil {
		w.err = fmt.Errorf("writing store %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// Rows returns the number of rows written so far.
func (w *Writer) Rows() int { return w.rows }

// Close checks that all n rows were written, flushes the file to disk and renames it to
// the destination, replacing any file there. On any error the temporary file is removed
// and the destination is left as it was.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	if w.err == nil && w.rows != w.n {
		w.err = errorf(ErrRowCount, "store %s: %d rows written, want %d", w.path, w.rows, w.n)
	}
	if w.err != nil {
		return errors.Join(w.err, w.Abort())
	}
	if err := w.lay.meta.seal(w.f.File, w.lay.header); err != nil {
		w.err = fmt.Errorf("finishing store %s: %w", w.path, err)
		return errors.Join(w.err, w.Abort())
	}
	w.done = true
	f := w.f
	w.f = nil
	if err := f.Commit(); err != nil {
		return fmt.Errorf("finishing store %s: %w", w.path, err)
	}
	return nil
}

// Abort abandons the store: it closes and removes the temporary file. It is safe to call
// after Close (it does nothing then) and more than once.
func (w *Writer) Abort() error {
	if w.done && w.f == nil {
		return nil
	}
	w.done = true
	var err error
	if w.f != nil {
		err = w.f.Abort()
		w.f = nil
	}
	if err != nil {
		return fmt.Errorf("abandoning store %s: %w", w.path, err)
	}
	return nil
}

// syncDir flushes a directory entry (a rename) to disk, where the platform allows it.
func syncDir(dir string) { fileio.SyncDir(dir) }

func putInt64s(dst []byte, v []int64) []byte {
	dst = dst[:8*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint64(dst[8*i:], uint64(x))
	}
	return dst
}

func putFloat32s(dst []byte, v []float32) []byte {
	dst = dst[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
	}
	return dst
}

func putFloat16s(dst []byte, v []float32) []byte {
	dst = dst[:2*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint16(dst[2*i:], float32ToFloat16(x))
	}
	return dst
}

// float32ToFloat16 converts with rounding to nearest, ties to even, overflow to ±Inf,
// and NaN kept NaN, bit for bit as numpy's npy_floatbits_to_halfbits.
func float32ToFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00 // ±Inf
		}
		h := uint16(0x7c00 + mant>>13)
		if h == 0x7c00 {
			h++ // keep it a NaN
		}
		return sign | h
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00 // overflow
	}
	if e <= 0 {
		// Half subnormal (or zero): value = k·2^-24 with k = (mant|1<<23) >> (14-e).
		shift := uint(14 - e)
		if shift >= 32 {
			return sign
		}
		m := mant | 0x800000
		k := m >> shift
		rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > half || (rem == half && k&1 == 1) {
			k++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(k)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, up to Inf, which is correct
	}
	return sign | uint16(h)
}

// float16ToFloat32 converts exactly.
func float16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal: normalise.
		shift := uint32(bits.LeadingZeros32(mant) - 21) // bring the top bit to position 10
		mant = (mant << shift) & 0x3ff
		return math.Float32frombits(sign | (127-15+1-shift)<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Store is a feature store read into memory.
type Store struct {
	Manifest Manifest
	N, D     int
	Features []float32 // (N,D) row-major; Float16 stores are converted to float32
	Labels   []int64   // (N): index into Manifest.LabelNames, -1 for unlabelled (every row of a multi-label store)
	RowIDs   []int64   // (N): 0-based dataset row of each feature row
	// LabelSets is (N,K) row-major multi-hot, K = len(Manifest.LabelNames), for a
	// multi-label store (Manifest.MultiLabel): LabelSets[i*K+k] is 1 when row i carries
	// label k, else 0. Nil for a single-label store.
	LabelSets []uint8
	// SHA256 is the store's checksum (see SHA256Key), verified when it was opened; ""
	// for a store written before stores had one, which could not be verified.
	SHA256 string
}

// Row returns row i's features, sharing the Store's memory.
func (s *Store) Row(i int) []float32 { return s.Features[i*s.D : (i+1)*s.D] }

// LabelSet returns row i's multi-hot label set (K entries), sharing the Store's memory;
// nil for a single-label store.
func (s *Store) LabelSet(i int) []uint8 {
	if s.LabelSets == nil {
		return nil
	}
	k := len(s.Manifest.LabelNames)
	return s.LabelSets[i*k : (i+1)*k]
}

// OpenStore reads and validates the feature store at path: the header's length, JSON and
// manifest, the tensors' dtypes and shapes (label_sets too for a multi-label store, whose
// values must be 0 or 1), and that their data exactly fills the rest of the file. A truncated, corrupt or foreign file gives an error wrapping
// ErrCorruptStore that names the file and what is wrong.
func OpenStore(path string) (s *Store, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", path, cerr)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return decodeStore(f, st.Size(), path)
}

// decodeStore reads a store of size bytes from r; name is used in errors.
func decodeStore(r io.ReaderAt, size int64, name string) (*Store, error) {
	bad := func(format string, args ...any) error {
		return errorf(ErrCorruptStore, "%s: "+format, append([]any{name}, args...)...)
	}
	sf, err := parseHeader(r, size, name)
	if err != nil {
		return nil, err
	}
	meta, tensors := sf.Meta, sf.Tensors
	if _, ok := meta[TokensMetadataKey]; ok {
		return nil, bad("an activation cache (pipeline extract --cut-top), not pooled features; fit-head --mode lora|full|reinit trains on it")
	}
	mj, ok := meta[MetadataKey]
	if !ok {
		return nil, bad("no %q manifest in __metadata__: not a headstart feature store", MetadataKey)
	}
	var m Manifest
	if err := json.Unmarshal([]byte(mj), &m); err != nil {
		return nil, bad("manifest is not valid JSON: %v", err)
	}
	if m.FormatVersion < 1 || m.FormatVersion > MultiLabelFormatVersion {
		return nil, bad("format version %d; this program reads versions 1 to %d", m.FormatVersion, MultiLabelFormatVersion)
	}
	if m.MultiLabel != (m.FormatVersion >= MultiLabelFormatVersion) {
		return nil, bad("format version %d with multi_label %v; want version %d exactly for multi-label stores", m.FormatVersion, m.MultiLabel, MultiLabelFormatVersion)
	}

	fea, ok1 := tensors["features"]
	lab, ok2 := tensors["labels"]
	rid, ok3 := tensors["row_ids"]
	if !ok1 || !ok2 || !ok3 {
		return nil, bad("want tensors features, labels and row_ids; have %s", strings.Join(sf.Names(), ", "))
	}
	sum, err := verifySum(r, size, sf, mj, name)
	if err != nil {
		return nil, err
	}
	if len(fea.Shape) != 2 || (fea.Dtype != "F32" && fea.Dtype != "F16") {
		return nil, bad("tensor \"features\": want a 2-D F32 or F16 tensor, have %s %v", fea.Dtype, fea.Shape)
	}
	n, d := fea.Shape[0], fea.Shape[1]
	for _, t := range []safetensors.Tensor{lab, rid} {
		if t.Dtype != "I64" || len(t.Shape) != 1 || t.Shape[0] != n {
			return nil, bad("%s: want I64 [%d], have %s %v", t.Name, n, t.Dtype, t.Shape)
		}
	}
	dtype := Float32
	if fea.Dtype == "F16" {
		dtype = Float16
	}
	if m.Dtype != dtype.String() {
		return nil, bad("manifest dtype %q but features are %s", m.Dtype, fea.Dtype)
	}
	if n > 0 && d == 0 {
		return nil, bad("tensor \"features\": shape %v has no columns", fea.Shape)
	}
	sets, hasSets := tensors["label_sets"]
	k := int64(len(m.LabelNames))
	switch {
	case m.MultiLabel && !hasSets:
		return nil, bad("multi-label manifest but no label_sets tensor")
	case !m.MultiLabel && hasSets:
		return nil, bad("a label_sets tensor but the manifest is not multi_label")
	case hasSets && (sets.Dtype != "U8" || len(sets.Shape) != 2 || sets.Shape[0] != n || sets.Shape[1] != k):
		return nil, bad("label_sets: want U8 [%d %d] (rows, label names), have %s %v", n, k, sets.Dtype, sets.Shape)
	}

	s := &Store{Manifest: m, N: int(n), D: int(d), SHA256: sum}
	base := sf.Base
	if s.Labels, err = readInt64s(r, base+lab.Begin, int(n), name); err != nil {
		return nil, err
	}
	if s.RowIDs, err = readInt64s(r, base+rid.Begin, int(n), name); err != nil {
		return nil, err
	}
	for i, l := range s.Labels {
		if l < -1 || l >= k || (m.MultiLabel && l != -1) {
			if m.MultiLabel {
				return nil, bad("row %d: label %d in a multi-label store; want -1 (the sets are in label_sets)", i, l)
			}
			return nil, bad("row %d: label %d out of range [-1, %d) of the manifest's label names", i, l, len(m.LabelNames))
		}
	}
	if hasSets {
		s.LabelSets = make([]uint8, n*k)
		if len(s.LabelSets) > 0 {
			if _, err := r.ReadAt(s.LabelSets, base+sets.Begin); err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
		}
		for i, v := range s.LabelSets {
			if v > 1 {
				return nil, bad("row %d: label_sets value %d at label %d; want 0 or 1", int64(i)/k, v, int64(i)%k)
			}
		}
	}
	if s.Features, err = readFloats(r, base+fea.Begin, int(n*d), dtype, name); err != nil {
		return nil, err
	}
	return s, nil
}

// readChunk is the number of bytes read at a time when decoding tensors.
const readChunk = 1 << 20

func readInt64s(r io.ReaderAt, off int64, n int, name string) ([]int64, error) {
	out := make([]int64, n)
	buf := make([]byte, min(8*n, readChunk))
	for i := 0; i < n; {
		k := min(n-i, len(buf)/8)
		b := buf[:8*k]
		if _, err := r.ReadAt(b, off+8*int64(i)); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		for j := range k {
			out[i+j] = int64(binary.LittleEndian.Uint64(b[8*j:]))
		}
		i += k
	}
	return out, nil
}

func readFloats(r io.ReaderAt, off int64, n int, dtype Dtype, name string) ([]float32, error) {
	_, es := dtype.safetensors()
	out := make([]float32, n)
	buf := make([]byte, min(es*n, readChunk))
	for i := 0; i < n; {
		k := min(n-i, len(buf)/es)
		b := buf[:es*k]
		if _, err := r.ReadAt(b, off+int64(es)*int64(i)); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if dtype == Float16 {
			for j := range k {
				out[i+j] = float16ToFloat32(binary.LittleEndian.Uint16(b[2*j:]))
			}
		} else {
			for j := range k {
				out[i+j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
		}
		i += k
	}
	return out, nil
}

// writeRowData writes k rows' labels, row ids and float values (in dtype) at the three
// file offsets through writeAt, encoding them in *buf (grown as needed).
func writeRowData(buf *[]byte, writeAt func([]byte, int64) error, dtype Dtype, labels, rowIDs []int64, values []float32, labOff, ridOff, valOff int64) error {
	_, es := dtype.safetensors()
	*buf = resize(*buf, max(8*len(labels), len(values)*es))
	if err := writeAt(putInt64s(*buf, labels), labOff); err != nil {
		return err
	}
	if err := writeAt(putInt64s(*buf, rowIDs), ridOff); err != nil {
		return err
	}
	var data []byte
	if dtype == Float16 {
		data = putFloat16s(*buf, values)
	} else {
		data = putFloat32s(*buf, values)
	}
	return writeAt(data, valOff)
}
