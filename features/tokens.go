package features

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/safetensors"
)

// An activation cache holds, for every row of a dataset, the hidden states of its real
// tokens (no padding) entering encoder block CutBlock = NumBlocks − CutTop: what the
// frozen part of the backbone computes, so that the top CutTop blocks can be trained
// many epochs without running it again (pipeline extract --cut-top, package lora). It
// is a safetensors file:
//
//	{"__metadata__":{"headstart_tokens":"<TokenManifest as JSON>","headstart_sha256":"<hex SHA-256>"},
//	 "labels":  {"dtype":"I64","shape":[rows]},
//	 "row_ids": {"dtype":"I64","shape":[rows]},
//	 "offsets": {"dtype":"I64","shape":[rows+1]},
//	 "input_ids": {"dtype":"I64","shape":[tokens]},      (when the manifest's ids is set)
//	 "hidden":  {"dtype":"F32" or "F16","shape":[tokens,hidden]}}
//
// with the data in that order. input_ids are the tokenizer's ids of the cached tokens,
// which training the embeddings needs (pipeline fit-head --embeddings); their token type
// ids are all 0 (one text per row). Row i's tokens are hidden[offsets[i]:offsets[i+1]], in
// sequence order ([CLS] first, [SEP] last); offsets[0] = 0 and offsets[rows] = tokens.
// labels and row_ids are as in a feature store, and so is the checksum (SHA256Key),
// which OpenTokens verifies.

// TokensMetadataKey is the __metadata__ key holding an activation cache's manifest.
const TokensMetadataKey = "headstart_tokens"

// TokenManifest describes an activation cache: the fields of a feature store's Manifest
// (Layers holds the one hidden-state index cached, CutBlock; Pooling is "none") and the
// cut.
type TokenManifest struct {
	Manifest
	// CutTop is the number of top blocks left to train; CutBlock = NumBlocks − CutTop
	// is the 0-based index of the first of them, whose input the cache holds.
	CutTop    int `json:"cut_top"`
	CutBlock  int `json:"cut_block"`
	NumBlocks int `json:"num_blocks"`
	// Hidden is the width of a hidden state; Tokens the number of cached tokens.
	Hidden int   `json:"hidden"`
	Tokens int64 `json:"tokens"`
	// IDs says that the cache holds the tokens' input ids (tensor input_ids).
	IDs bool `json:"ids,omitempty"`
}

// TokenCache is an activation cache read into memory.
type TokenCache struct {
	Manifest TokenManifest
	N        int       // rows
	Hidden   []float32 // (Tokens, Manifest.Hidden) row-major; F16 caches are converted
	Offsets  []int64   // (N+1)
	Labels   []int64   // (N): index into Manifest.LabelNames, -1 for unlabelled
	RowIDs   []int64   // (N)
	IDs      []int64   // (Tokens): the tokens' input ids; nil unless Manifest.IDs
	// SHA256 is the cache's checksum (see SHA256Key), verified when it was opened; ""
	// for a cache written before caches had one.
	SHA256 string
}

// Row returns row i's token states, (len, hidden) row-major, sharing the cache's memory.
func (c *TokenCache) Row(i int) []float32 {
	h := c.Manifest.Hidden
	return c.Hidden[c.Offsets[i]*int64(h) : c.Offsets[i+1]*int64(h)]
}

// Len returns row i's number of tokens.
func (c *TokenCache) Len(i int) int { return int(c.Offsets[i+1] - c.Offsets[i]) }

// tokenLayout is where the four tensors of a cache lie in the file.
type tokenLayout struct {
	meta                            sumHeader
	header                          []byte // with the checksum's placeholder
	labels, rowIDs, offsets, hidden int64  // file offsets
	ids                             int64  // file offset of input_ids; 0: none
	size                            int64
}

func makeTokenLayout(m *TokenManifest, n int, dtype Dtype) (tokenLayout, error) {
	mj, err := json.Marshal(m)
	if err != nil {
		return tokenLayout{}, fmt.Errorf("encoding the manifest: %w", err)
	}
	name, es := dtype.safetensors()
	N, T, C := int64(n), m.Tokens, int64(m.Hidden)
	var tensors []safetensors.Tensor
	at := int64(0)
	add := func(tname, dt string, shape []int64, nbytes int64) int64 {
		tensors = append(tensors, safetensors.Tensor{Name: tname, Dtype: dt, Shape: shape, Begin: at, End: at + nbytes})
		at += nbytes
		return at - nbytes
	}
	lab := add("labels", "I64", []int64{N}, 8*N)
	rid := add("row_ids", "I64", []int64{N}, 8*N)
	off := add("offsets", "I64", []int64{N + 1}, 8*(N+1))
	ids := int64(-1)
	if m.IDs {
		ids = add("input_ids", "I64", []int64{T}, 8*T)
	}
	hid := add("hidden", name, []int64{T, C}, T*C*int64(es))
	sh := sumHeader{key: TokensMetadataKey, manifest: mj, tensors: tensors}
	hdr, err := sh.encode(noSum)
	if err != nil {
		return tokenLayout{}, err
	}
	base := int64(len(hdr))
	lay := tokenLayout{meta: sh, header: hdr, labels: base + lab, rowIDs: base + rid, offsets: base + off, hidden: base + hid, size: base + at}
	if ids >= 0 {
		lay.ids = base + ids
	}
	return lay, nil
}

// TokenWriter writes an activation cache of known row lengths, resumably. It writes
// straight into <path>.partial, laid out as the final file; Commit records on disk how
// many rows are safely written (<path>.partial.json, replaced atomically after the data
// is synced), so that a later TokenWriter made with Resume continues there; Close renames
// the finished file into place. A killed run therefore loses at most the rows after the
// last Commit, and the destination never holds a partial cache.
type TokenWriter struct {
	path, data, meta string
	m                TokenManifest
	lay              tokenLayout
	dtype            Dtype
	offsets          []int64
	key              string
	f                *os.File
	rows, committed  int
	sums             [3]hash.Hash // SHA-256 of the rows' labels, row ids and hidden states written so far
	buf, hbuf        []byte
	err              error
}

// tokenCheckpoint is the sidecar of a TokenWriter's partial file.
type tokenCheckpoint struct {
	Version int    `json:"version"`
	Key     string `json:"key"`
	Rows    int    `json:"rows"`
	Size    int64  `json:"size"`
	// SHA256 holds the hex SHA-256 of the first Rows rows' labels, row ids and hidden
	// states as they lie in the partial file, checked on resume. Absent in checkpoints
	// of earlier versions, which are resumed unchecked.
	SHA256 []string `json:"sha256,omitempty"`
}

// NewTokenWriter starts (or, with resume, continues) the cache at path for rows of the
// given token counts, each lens[i] ≥ 1, described by m (m.Tokens, m.Dtype and, when zero,
// m.FormatVersion are set here). key identifies everything that determines the output
// (see CheckpointKey): a partial file made with another key is refused with
// ErrCheckpointMismatch when resuming and replaced otherwise. Rows reports how many rows
// are already written; the caller continues with the next one.
func NewTokenWriter(path string, m TokenManifest, lens []int, dtype Dtype, key string, resume bool) (*TokenWriter, error) {
	if dtype != Float32 && dtype != Float16 {
		return nil, errorf(ErrUnknownDtype, "cache %s: dtype %v unknown; want one of f32, f16", path, dtype)
	}
	if m.Hidden < 1 {
		return nil, fmt.Errorf("cache %s: hidden size %d; want >= 1", path, m.Hidden)
	}
	w := &TokenWriter{path: path, data: path + ".partial", meta: path + ".partial.json", dtype: dtype, key: key}
	w.offsets = make([]int64, len(lens)+1)
	for i, l := range lens {
		if l < 1 {
			return nil, fmt.Errorf("cache %s: row %d has %d tokens; want >= 1", path, i, l)
		}
		w.offsets[i+1] = w.offsets[i] + int64(l)
	}
	if m.FormatVersion == 0 {
		m.FormatVersion = FormatVersion
	}
	m.Dtype = dtype.String()
	m.Tokens = w.offsets[len(lens)]
	w.m = m
	var err error
	if w.lay, err = makeTokenLayout(&m, len(lens), dtype); err != nil {
		return nil, err
	}
	if resume {
		b, err := os.ReadFile(w.meta)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading checkpoint %s: %w", w.meta, err)
		default:
			var ck tokenCheckpoint
			if err := json.Unmarshal(b, &ck); err != nil || ck.Version != 1 {
				return nil, errorf(ErrCorruptCheckpoint, "%s: not a cache checkpoint (version 1); delete it and %s to start afresh", w.meta, w.data)
			}
			if ck.Key != key || ck.Size != w.lay.size {
				return nil, errorf(ErrCheckpointMismatch, "%s: made with other data, model or options; rerun with the same ones, or without --resume to start afresh", w.meta)
			}
			if ck.Rows < 0 || ck.Rows > len(lens) {
				return nil, errorf(ErrCorruptCheckpoint, "%s: %d rows done of %d", w.meta, ck.Rows, len(lens))
			}
			f, err := os.OpenFile(w.data, os.O_RDWR, 0)
			if err != nil {
				return nil, errorf(ErrCorruptCheckpoint, "%s: the checkpoint's data file: %w", w.meta, err)
			}
			if st, err := f.Stat(); err != nil || st.Size() != w.lay.size {
				f.Close()
				return nil, errorf(ErrCorruptCheckpoint, "%s: size differs from the checkpoint's", w.data)
			}
			w.f, w.rows, w.committed = f, ck.Rows, ck.Rows
			if err := w.verifyCommitted(ck.SHA256); err != nil {
				return nil, errors.Join(err, w.Release())
			}
			return w, nil
		}
	}
	os.Remove(w.meta)
	f, err := os.OpenFile(w.data, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("creating cache %s: %w", path, err)
	}
	w.f = f
	for i := range w.sums {
		w.sums[i] = sha256.New()
	}
	if err := f.Truncate(w.lay.size); err != nil {
		return nil, errors.Join(fmt.Errorf("creating cache %s: %w", path, err), w.Abort())
	}
	if err := w.writeAt(w.lay.header, 0); err != nil {
		return nil, errors.Join(err, w.Abort())
	}
	if err := w.writeAt(putInt64s(make([]byte, 8*len(w.offsets)), w.offsets), w.lay.offsets); err != nil {
		return nil, errors.Join(err, w.Abort())
	}
	return w, nil
}

// WriteIDs writes the input ids of every token of the cache, (Tokens) in row order: a
// cache whose manifest has IDs set needs them before Close. It may be called again after a
// resume (the same ids give the same bytes). WriteIDs panics if the cache holds no ids or
// the count differs.
func (w *TokenWriter) WriteIDs(ids []int64) error {
	if w.lay.ids == 0 || int64(len(ids)) != w.m.Tokens {
		panic("features: TokenWriter.WriteIDs: the cache holds no ids, or not this many tokens")
	}
	if w.err != nil {
		return w.err
	}
	return w.writeAt(putInt64s(make([]byte, 8*len(ids)), ids), w.lay.ids)
}

// Rows returns the number of rows written so far.
func (w *TokenWriter) Rows() int { return w.rows }

// WriteRows writes the next k rows: hidden holds their tokens back to back, (tokens,
// hidden) row-major with as many tokens as the rows' lengths add up to; labels and rowIDs
// have k entries. WriteRows panics if the lengths disagree.
func (w *TokenWriter) WriteRows(hidden []float32, labels, rowIDs []int64) error {
	k := len(labels)
	if len(rowIDs) != k || w.rows+k > len(w.offsets)-1 {
		panic("features: TokenWriter.WriteRows: labels and rowIDs disagree, or too many rows")
	}
	lo, hi := w.offsets[w.rows], w.offsets[w.rows+k]
	c := int64(w.m.Hidden)
	if int64(len(hidden)) != (hi-lo)*c {
		panic("features: TokenWriter.WriteRows: hidden does not hold the rows' tokens")
	}
	if w.err != nil {
		return w.err
	}
	for i, l := range labels {
		if l < -1 || l >= int64(len(w.m.LabelNames)) {
			w.err = errorf(ErrBadLabel, "cache %s: row %d: label %d out of range [-1, %d)", w.path, w.rows+i, l, len(w.m.LabelNames))
			return w.err
		}
	}
	_, es := w.dtype.safetensors()
	r := int64(w.rows)
	if err := writeRowData(&w.buf, w.writeAt, w.dtype, labels, rowIDs, hidden, w.lay.labels+8*r, w.lay.rowIDs+8*r, w.lay.hidden+lo*c*int64(es)); err != nil {
		return err
	}
	w.hashRows(hidden, labels, rowIDs)
	w.rows += k
	return nil
}

// hashRows adds rows to the running checksums of the three regions.
func (w *TokenWriter) hashRows(hidden []float32, labels, rowIDs []int64) {
	_, es := w.dtype.safetensors()
	w.hbuf = resize(w.hbuf, max(8*len(labels), es*len(hidden)))
	w.sums[0].Write(putInt64s(w.hbuf, labels))
	w.sums[1].Write(putInt64s(w.hbuf, rowIDs))
	if w.dtype == Float16 {
		w.sums[2].Write(putFloat16s(w.hbuf, hidden))
	} else {
		w.sums[2].Write(putFloat32s(w.hbuf, hidden))
	}
}

// hexSums returns the running checksums.
func (w *TokenWriter) hexSums() []string {
	out := make([]string, len(w.sums))
	for i, h := range w.sums {
		out[i] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// verifyCommitted reads back the committed rows of a resumed partial file into the
// running checksums and compares them with the checkpoint's (want; nil for a checkpoint
// of an earlier version).
func (w *TokenWriter) verifyCommitted(want []string) error {
	_, es := w.dtype.safetensors()
	r, c := int64(w.rows), int64(w.m.Hidden)
	regions := [3][2]int64{{w.lay.labels, 8 * r}, {w.lay.rowIDs, 8 * r}, {w.lay.hidden, w.offsets[r] * c * int64(es)}}
	for i, reg := range regions {
		w.sums[i] = sha256.New()
		if _, err := io.Copy(w.sums[i], io.NewSectionReader(w.f, reg[0], reg[1])); err != nil {
			return fmt.Errorf("reading checkpoint %s: %w", w.data, err)
		}
	}
	if got := w.hexSums(); want != nil && !slices.Equal(got, want) {
		return errorf(ErrCorruptCheckpoint, "%s: checksum mismatch: the %d rows it records were corrupted or edited; remove it and %s to start afresh", w.data, w.rows, w.meta)
	}
	return nil
}

// Commit makes the rows written so far survive a crash: it syncs the data, then replaces
// the checkpoint sidecar atomically.
func (w *TokenWriter) Commit() error {
	if w.err != nil {
		return w.err
	}
	if w.rows == w.committed {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("writing cache %s: %w", w.path, err)
		return w.err
	}
	b, _ := json.Marshal(tokenCheckpoint{Version: 1, Key: w.key, Rows: w.rows, Size: w.lay.size, SHA256: w.hexSums()})
	if err := fileio.WriteFile(w.meta, b); err != nil {
		w.err = fmt.Errorf("writing checkpoint %s: %w", w.meta, err)
		return w.err
	}
	w.committed = w.rows
	return nil
}

// Close finishes the cache: every row must be written. It syncs the file, renames it to
// path and removes the checkpoint. After an error the partial files stay for a resume.
func (w *TokenWriter) Close() error {
	if w.f == nil {
		return w.err
	}
	if w.err == nil && w.rows != len(w.offsets)-1 {
		w.err = errorf(ErrRowCount, "cache %s: %d rows written, want %d", w.path, w.rows, len(w.offsets)-1)
	}
	if w.err != nil {
		return errors.Join(w.err, w.Release())
	}
	f := w.f
	w.f = nil
	err := w.lay.meta.seal(f, w.lay.header)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(w.data, w.path)
	}
	if err != nil {
		w.err = fmt.Errorf("finishing cache %s: %w", w.path, err)
		return w.err
	}
	os.Remove(w.meta)
	syncDir(filepath.Dir(w.path))
	return nil
}

// Release closes the partial file, keeping it and its checkpoint for a resume.
func (w *TokenWriter) Release() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Abort removes the partial file and its checkpoint.
func (w *TokenWriter) Abort() error {
	err := w.Release()
	for _, p := range []string{w.data, w.meta} {
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

func (w *TokenWriter) writeAt(b []byte, off int64) error {
	if _, err := w.f.WriteAt(b, off); err != nil {
		w.err = fmt.Errorf("writing cache %s: %w", w.path, err)
		return w.err
	}
	return nil
}

// OpenTokens reads and validates the activation cache at path. A truncated, corrupt or
// foreign file gives an error wrapping ErrCorruptStore that names the file and what is
// wrong; a pooled feature store says so.
func OpenTokens(path string) (*TokenCache, error) {
	return readFile(path, decodeTokens)
}

// ReadTokenManifest reads the manifest of the activation cache at path from its header
// alone: unlike OpenTokens it reads no data and does not verify the checksum, so a
// cache whose data was corrupted after it was written still gives its manifest. A
// file that is not an activation cache gives OpenTokens' error for its header.
func ReadTokenManifest(path string) (TokenManifest, error) {
	return readFile(path, func(r io.ReaderAt, size int64, name string) (TokenManifest, error) {
		_, m, _, err := tokenHeader(r, size, name)
		return m, err
	})
}

// readFile opens the file at path and returns what read makes of it (its contents, its
// size, and path to name it in errors); an error closing it is joined to read's.
func readFile[T any](path string, read func(r io.ReaderAt, size int64, name string) (T, error)) (v T, err error) {
	f, err := os.Open(path)
	if err != nil {
		return v, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	st, err := f.Stat()
	if err != nil {
		return v, err
	}
	return read(f, st.Size(), path)
}

// tokenHeader parses and checks the header of an activation cache: the safetensors
// header, the manifest (returned decoded and as its JSON) and the tensor names.
func tokenHeader(r io.ReaderAt, size int64, name string) (sf *safetensors.File, m TokenManifest, mj string, err error) {
	bad := func(format string, args ...any) error {
		return errorf(ErrCorruptStore, "%s: "+format, append([]any{name}, args...)...)
	}
	if sf, err = parseHeader(r, size, name); err != nil {
		return nil, m, "", err
	}
	mj, ok := sf.Meta[TokensMetadataKey]
	if !ok {
		if _, ok := sf.Meta[MetadataKey]; ok {
			return nil, m, "", bad("pooled features, not an activation cache; make one with pipeline extract --cut-top K")
		}
		return nil, m, "", bad("no %q manifest in __metadata__: not a headstart activation cache", TokensMetadataKey)
	}
	if err := json.Unmarshal([]byte(mj), &m); err != nil {
		return nil, m, "", bad("manifest is not valid JSON: %v", err)
	}
	if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
		return nil, m, "", bad("format version %d; this program reads versions 1 to %d", m.FormatVersion, FormatVersion)
	}
	want := []string{"hidden", "labels", "offsets", "row_ids"}
	if m.IDs {
		want = []string{"hidden", "input_ids", "labels", "offsets", "row_ids"}
	}
	if have := sf.Names(); !slices.Equal(have, want) {
		return nil, m, "", bad("want tensors %s; have %s", strings.Join(want, ", "), strings.Join(have, ", "))
	}
	return sf, m, mj, nil
}

func decodeTokens(r io.ReaderAt, size int64, name string) (*TokenCache, error) {
	bad := func(format string, args ...any) error {
		return errorf(ErrCorruptStore, "%s: "+format, append([]any{name}, args...)...)
	}
	sf, m, mj, err := tokenHeader(r, size, name)
	if err != nil {
		return nil, err
	}
	sum, err := verifySum(r, size, sf, mj, name)
	if err != nil {
		return nil, err
	}
	hid, off := sf.Tensors["hidden"], sf.Tensors["offsets"]
	if len(hid.Shape) != 2 || hid.Shape[1] != int64(m.Hidden) || hid.Shape[0] != m.Tokens || (hid.Dtype != "F32" && hid.Dtype != "F16") {
		return nil, bad("tensor \"hidden\": want F32 or F16 [%d %d], have %s %v", m.Tokens, m.Hidden, hid.Dtype, hid.Shape)
	}
	if off.Dtype != "I64" || len(off.Shape) != 1 || off.Shape[0] < 1 {
		return nil, bad("tensor \"offsets\": want I64 [rows+1], have %s %v", off.Dtype, off.Shape)
	}
	n := off.Shape[0] - 1
	for _, t := range []string{"labels", "row_ids"} {
		th := sf.Tensors[t]
		if th.Dtype != "I64" || len(th.Shape) != 1 || th.Shape[0] != n {
			return nil, bad("%s: want I64 [%d], have %s %v", t, n, th.Dtype, th.Shape)
		}
	}
	dtype := Float32
	if hid.Dtype == "F16" {
		dtype = Float16
	}
	if m.Dtype != dtype.String() {
		return nil, bad("manifest dtype %q but hidden is %s", m.Dtype, hid.Dtype)
	}
	c := &TokenCache{Manifest: m, N: int(n), SHA256: sum}
	if c.Offsets, err = readInt64s(r, sf.Base+off.Begin, int(n+1), name); err != nil {
		return nil, err
	}
	if c.Offsets[0] != 0 || c.Offsets[n] != m.Tokens {
		return nil, bad("offsets run from %d to %d; want 0 to %d", c.Offsets[0], c.Offsets[n], m.Tokens)
	}
	for i := range n {
		if c.Offsets[i+1] <= c.Offsets[i] {
			return nil, bad("row %d: offsets %d..%d are not increasing", i, c.Offsets[i], c.Offsets[i+1])
		}
	}
	if c.Labels, err = readInt64s(r, sf.Base+sf.Tensors["labels"].Begin, int(n), name); err != nil {
		return nil, err
	}
	for i, l := range c.Labels {
		if l < -1 || l >= int64(len(m.LabelNames)) {
			return nil, bad("row %d: label %d out of range [-1, %d) of the manifest's label names", i, l, len(m.LabelNames))
		}
	}
	if c.RowIDs, err = readInt64s(r, sf.Base+sf.Tensors["row_ids"].Begin, int(n), name); err != nil {
		return nil, err
	}
	if m.IDs {
		th := sf.Tensors["input_ids"]
		if th.Dtype != "I64" || len(th.Shape) != 1 || th.Shape[0] != m.Tokens {
			return nil, bad("input_ids: want I64 [%d], have %s %v", m.Tokens, th.Dtype, th.Shape)
		}
		if c.IDs, err = readInt64s(r, sf.Base+th.Begin, int(m.Tokens), name); err != nil {
			return nil, err
		}
		for i, id := range c.IDs {
			if id < 0 {
				return nil, bad("token %d: input id %d is negative", i, id)
			}
		}
	}
	if c.Hidden, err = readFloats(r, sf.Base+hid.Begin, int(m.Tokens)*m.Hidden, dtype, name); err != nil {
		return nil, err
	}
	return c, nil
}

// IsTokenCache reports whether the safetensors file at path is an activation cache (its
// metadata has TokensMetadataKey), reading only its header. A file that is not
// safetensors gives an error wrapping ErrCorruptStore.
func IsTokenCache(path string) (bool, error) {
	return readFile(path, func(r io.ReaderAt, size int64, name string) (bool, error) {
		sf, err := parseHeader(r, size, name)
		if err != nil {
			return false, err
		}
		_, ok := sf.Meta[TokensMetadataKey]
		return ok, nil
	})
}
