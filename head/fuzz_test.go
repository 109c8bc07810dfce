package head

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"strconv"
	"testing"

	"github.com/headstart-ml/headstart/lora"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// decodeAllocSlack bounds what Decode may allocate beyond allocPerByte bytes per input
// byte: the JSON decoder's buffers and the SHA-256 state, and the heap counter's steps
// (it counts whole spans of 8 KiB and more); the seeds measure 0 to 40 KiB. A header
// describing a million-column layer that Decode trusted would allocate 8 MB.
const (
	decodeAllocSlack = 256 << 10
	allocPerByte     = 64 // JSON numbers widen to int64 (8 bytes for "1,"), slices double, the metadata is decoded twice
)

// FuzzDecodeHead: any bytes decode to a head or fail with ErrCorruptHead or ErrVersion;
// nothing panics and the allocation is bounded by the input's size. A decoded head
// encodes again, the encoding decodes to the same head and encodes to the same bytes,
// its data section is the input's byte for byte, and it predicts without panicking.
// With resign set the input's checksum is recomputed first (when its header parses),
// so that mutations of the metadata and tensor table get past the checksum.
func FuzzDecodeHead(f *testing.F) {
	sample := make([]metrics.Sample, 1)
	sample[0].Name = "/gc/heap/allocs:bytes"
	f.Fuzz(func(t *testing.T, data []byte, resign bool) {
		if resign {
			data = resignHead(data)
		}
		// The heap counter is the process's: the fuzzing machinery allocates now and
		// then too, so only an allocation seen in each of three decodes fails.
		var h *Head
		var err error
		alloc := uint64(math.MaxUint64)
		for range 3 {
			metrics.Read(sample)
			before := sample[0].Value.Uint64()
			h, err = Decode(data)
			metrics.Read(sample)
			if alloc = min(alloc, sample[0].Value.Uint64()-before); alloc <= uint64(allocPerByte*len(data)+decodeAllocSlack) {
				break
			}
		}
		if alloc > uint64(allocPerByte*len(data)+decodeAllocSlack) {
			t.Fatalf("Decode of %d bytes allocated %d bytes", len(data), alloc)
		}
		if err != nil {
			if !errors.Is(err, ErrCorruptHead) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if h != nil {
				t.Fatal("head returned with an error")
			}
			return
		}
		b2, err := h.Encode()
		if err != nil {
			t.Fatalf("decoded head does not encode: %v", err)
		}
		h2, err := Decode(b2)
		if err != nil {
			t.Fatalf("re-encoded head does not decode: %v", err)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("re-encoded head decodes differently:\n got %+v\nwant %+v", h2, h)
		}
		if b3, err := h2.Encode(); err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable (err %v)", err)
		}
		if !bytes.Equal(dataSection(data), dataSection(b2)) {
			t.Fatal("re-encoded tensor data differs from the input's")
		}
		labels := make([]int, 1)
		h.PredictLabels(labels, make([]float32, h.Dim), 1)
		if labels[0] < 0 || labels[0] >= len(h.Classes) {
			t.Fatalf("predicted class %d of %d", labels[0], len(h.Classes))
		}
	})
}

// dataSection returns the bytes after a safetensors header (b is a decodable file).
func dataSection(b []byte) []byte { return b[8+binary.LittleEndian.Uint64(b):] }

// resignHead returns b with the checksum in its metadata recomputed, or b itself when
// its header does not parse that far. The header is re-marshalled (keys sorted, no
// padding), which Decode accepts as well.
func resignHead(b []byte) []byte {
	if len(b) < 8 {
		return b
	}
	hlen := binary.LittleEndian.Uint64(b)
	if hlen > uint64(len(b)-8) {
		return b
	}
	hdr, data := b[8:8+hlen], b[8+hlen:]
	var entries map[string]json.RawMessage
	if json.Unmarshal(hdr, &entries) != nil {
		return b
	}
	var md map[string]string
	if json.Unmarshal(entries["__metadata__"], &md) != nil || md == nil {
		return b
	}
	mj, ok := md[MetaKey]
	if !ok {
		return b
	}
	sum := sha256.New()
	sum.Write([]byte(mj))
	sum.Write(data)
	md[MetaHashKey] = hex.EncodeToString(sum.Sum(nil))
	entries["__metadata__"], _ = json.Marshal(md)
	nh, err := json.Marshal(entries)
	if err != nil {
		return b
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(nh)))
	return append(append(out, nh...), data...)
}

// editHead decodes the JSON of a head file's metadata and tensor table, lets edit
// change them, and returns the file with the edited header and the old checksum (the
// fuzz target's resign recomputes it).
func editHead(t *testing.T, b []byte, edit func(meta, tensors map[string]any)) []byte {
	t.Helper()
	hlen := binary.LittleEndian.Uint64(b)
	var entries map[string]any
	if err := json.Unmarshal(b[8:8+hlen], &entries); err != nil {
		t.Fatal(err)
	}
	md := entries["__metadata__"].(map[string]any)
	var meta map[string]any
	if err := json.Unmarshal([]byte(md[MetaKey].(string)), &meta); err != nil {
		t.Fatal(err)
	}
	delete(entries, "__metadata__")
	edit(meta, entries)
	mj, _ := json.Marshal(meta)
	md[MetaKey] = string(mj)
	entries["__metadata__"] = md
	nh, _ := json.Marshal(entries)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(nh)))
	return append(append(out, nh...), b[8+hlen:]...)
}

// seedHeads are small heads built by hand (not fitted, so that their bytes do not
// depend on the machine's floating point): a standardised softmax logistic
// regression, a binary one and a two-layer MLP.
func seedHeads() map[string]*Head {
	fp := testFingerprint
	fp.Dim = 4
	w := func(n int, scale float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = scale * float64((i*7)%11-5)
		}
		return v
	}
	return map[string]*Head{
		"logreg": {
			Kind: LogReg, Output: Softmax, Classes: []string{"negative", "neutral", "positive"}, Dim: 4, Fingerprint: fp,
			Mean: []float64{0.1, -0.2, 0.3, 0}, Std: []float64{1, 0.5, 2, 0.25},
			Layers:         []Dense{{Out: 3, In: 4, Act: Identity, W: w(12, 0.125), B: w(3, 0.5)}},
			LogRegSettings: &LogRegSettings{C: 1, Tol: 1e-4, MaxIter: 100, Standardize: true, Precision: Float32},
			Summary:        Summary{Rows: 30, Classes: 3, C: 1, Iterations: 12, Evaluations: 14, Converged: true, Stop: "gradient below tol", Loss: 0.42, GradMax: 5e-5},
		},
		"binary": {
			Kind: LogReg, Output: Binary, Classes: []string{"0", "1"}, Dim: 4,
			Layers:         []Dense{{Out: 1, In: 4, Act: Identity, W: w(4, 0.25), B: []float64{-0.5}}},
			LogRegSettings: &LogRegSettings{C: 0.5, Tol: 1e-4, MaxIter: 100, Precision: Float64},
			Summary:        Summary{Rows: 20, Classes: 2, C: 0.5, Iterations: 7, Evaluations: 8, Converged: true, Loss: 0.3},
		},
		"top": {
			Kind: LogReg, Output: Softmax, Classes: []string{"x", "y"}, Dim: 4, Fingerprint: fp,
			Layers:         []Dense{{Out: 2, In: 4, Act: Identity, W: w(8, 0.5), B: w(2, 0.1)}},
			LogRegSettings: &LogRegSettings{C: 1, Tol: 1e-4, MaxIter: 100, Precision: Float32},
			Summary:        Summary{Rows: 12, Classes: 2, C: 1, Iterations: 5, Evaluations: 6, Converged: true, Loss: 0.2},
			Top: &Top{CutBlock: 5, NumBlocks: 6, Heads: 2, Blocks: []lora.Weights[float32]{topBlock(4, 8)},
				Training: TopTraining{Mode: "lora", Rank: 2, Alpha: 4, Targets: "query,value", Epochs: 3, BatchSize: 8, LR: 1e-4,
					WeightDecay: 0.01, Warmup: 0.1, Seed: 1, Trainable: 48, BestEpoch: 3, Stop: "max epochs reached"}},
		},
		"top-relbias": { // an MPNet top: two blocks sharing one frozen relative position bias
			Kind: LogReg, Output: Softmax, Classes: []string{"x", "y"}, Dim: 4, Fingerprint: fp,
			Layers:         []Dense{{Out: 2, In: 4, Act: Identity, W: w(8, 0.5), B: w(2, 0.1)}},
			LogRegSettings: &LogRegSettings{C: 1, Tol: 1e-4, MaxIter: 100, Precision: Float32},
			Summary:        Summary{Rows: 12, Classes: 2, C: 1, Iterations: 5, Evaluations: 6, Converged: true, Loss: 0.2},
			Top: func() *Top {
				rb := &lora.RelativeBias[float32]{Table: []float32{1, -2, 0.5, 0.25, -1, 3, 2, -0.5}, Buckets: 4, MaxDistance: 8}
				a, b := topBlock(4, 8), topBlock(4, 8)
				a.RelativeBias, b.RelativeBias = rb, rb
				return &Top{CutBlock: 4, NumBlocks: 6, Heads: 2, Blocks: []lora.Weights[float32]{a, b},
					Training: TopTraining{Mode: "full", Epochs: 1, BatchSize: 8, LR: 1e-4, Seed: 1, Trainable: 400, BestEpoch: 1, Stop: "max epochs reached"}}
			}(),
		},
		"mlp": {
			Kind: MLP, Output: Softmax, Classes: []string{"a", "b", "c"}, Dim: 4, Fingerprint: fp,
			Layers: []Dense{
				{Out: 5, In: 4, Act: GELU, W: w(20, 0.1), B: w(5, 0.01)},
				{Out: 3, In: 5, Act: Identity, W: w(15, 0.2), B: w(3, 0.02)},
			},
			MLPSettings: &MLPSettings{Hidden: []int{5}, LearningRate: 1e-3, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999,
				Epsilon: 1e-8, BatchSize: 64, MaxEpochs: 100, Patience: 10, ValidFraction: 0.1},
			Summary: Summary{Rows: 27, Classes: 3, Converged: true, Stop: "max epochs reached", Loss: 0.5, Epochs: 100, BestEpoch: 97, ValidRows: 3, ValidAccuracy: 1, TrainLoss: 0.45},
		},
	}
}

// headSeed is one input of FuzzDecodeHead and whether Decode accepts it.
type headSeed struct {
	data          []byte
	resign, valid bool
}

// headFuzzSeeds returns the seed inputs of FuzzDecodeHead: valid heads, truncations,
// flipped bits, and re-signed files whose metadata lies (a dimension larger than the
// data, sizes whose product overflows, shifted offsets, a NaN weight, a newer version).
func headFuzzSeeds(t *testing.T) []headSeed {
	hs := seedHeads()
	enc := func(name string) []byte {
		b, err := hs[name].Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	lr, bin, mlp, top := enc("logreg"), enc("binary"), enc("mlp"), enc("top")
	flip := func(b []byte, i int, bit byte) []byte {
		c := bytes.Clone(b)
		c[i] ^= bit
		return c
	}
	hlen := int(binary.LittleEndian.Uint64(lr))
	nan := bytes.Clone(bin)
	binary.LittleEndian.PutUint64(nan[len(nan)-8:], math.Float64bits(math.NaN()))
	inf32 := bytes.Clone(top)
	binary.LittleEndian.PutUint32(inf32[len(inf32)-4:], math.Float32bits(float32(math.Inf(-1))))
	lie := func(b []byte, edit func(meta, tensors map[string]any)) headSeed {
		return headSeed{editHead(t, b, edit), true, false}
	}
	return []headSeed{
		{lr, false, true}, {bin, false, true}, {mlp, false, true}, {top, false, true}, {mlp, true, true},
		{lr[:len(lr)-1], false, false}, {lr[:len(lr)/2], false, false}, {lr[:8], false, false}, {lr[:7], false, false},
		{[]byte{}, false, false}, {top[:len(top)-4], true, false},
		{flip(lr, len(lr)-3, 0x10), false, false},     // a weight bit: checksum mismatch
		{flip(lr, len(lr)-3, 0x10), true, true},       // the same, re-signed: a valid head with another weight
		{flip(lr, 1, 0x01), false, false},             // header length 256 larger
		{flip(lr, 8, 0x04), false, false},             // '{' becomes '\x7f': not JSON
		{flip(lr, 8+hlen-1, 0x01), false, false},      // last header byte changed
		{flip(mlp, len(mlp)-1, 0x80), true, true},     // sign bit of the last bias, re-signed
		{flip(top, len(top)-1, 0x7f), true, true},     // the last top value's exponent bits
		{inf32, true, false},                          // the last top value becomes -Inf
		{append(bytes.Clone(bin), 0), true, false},    // a byte past the tensors
		{bytes.Repeat([]byte{0xff}, 16), true, false}, // header length 2^64-1
		{nan, true, false},
		// The dimension and the first weight matrix grow to a million columns; the
		// data does not: Decode must refuse it without allocating 8 MB.
		lie(bin, func(meta, ts map[string]any) {
			meta["dim"] = 1_000_000
			meta["layers"].([]any)[0].(map[string]any)["in"] = 1_000_000
			ts["layers.0.weight"] = map[string]any{"dtype": "F64", "shape": []int{1, 1_000_000}, "data_offsets": []int{0, 8_000_000}}
			ts["layers.0.bias"] = map[string]any{"dtype": "F64", "shape": []int{1}, "data_offsets": []int{8_000_000, 8_000_008}}
		}),
		// A product of sizes that overflows int64.
		lie(bin, func(meta, ts map[string]any) {
			meta["dim"] = 1 << 62
			meta["layers"].([]any)[0].(map[string]any)["in"] = 1 << 62
			meta["layers"].([]any)[0].(map[string]any)["out"] = 4
			meta["classes"] = []string{"0", "1", "2", "3"}
			meta["output"] = "softmax"
			ts["layers.0.weight"] = map[string]any{"dtype": "F64", "shape": []int64{4, 1 << 62}, "data_offsets": []int64{0, 0}}
			ts["layers.0.bias"] = map[string]any{"dtype": "F64", "shape": []int{4}, "data_offsets": []int{0, 32}}
		}),
		// Top blocks of a larger hidden size than the data holds.
		lie(top, func(meta, ts map[string]any) { meta["top"].(map[string]any)["intermediate"] = 1 << 40 }),
		lie(top, func(meta, ts map[string]any) { meta["top"].(map[string]any)["num_blocks"] = 1 << 20 }),
		lie(lr, func(meta, ts map[string]any) { ts["std"].(map[string]any)["data_offsets"] = []int{8, 40} }),
		lie(lr, func(meta, ts map[string]any) { meta["format_version"] = 99 }),
		lie(lr, func(meta, ts map[string]any) { meta["classes"] = []string{"a", "a", "b"} }),
		lie(mlp, func(meta, ts map[string]any) { meta["standardize"] = true }),
	}
}

// TestDecodeLyingHeader: the seeds decode or fail as expected: re-signed files whose
// metadata describes more data than they hold (or sizes whose product overflows) are
// refused as corrupt, not trusted; a real head re-saved gives the same bytes.
func TestDecodeLyingHeader(t *testing.T) {
	for i, s := range headFuzzSeeds(t) {
		b := s.data
		if s.resign {
			b = resignHead(b)
		}
		h, err := Decode(b)
		if s.valid != (err == nil) {
			t.Errorf("seed %d: Decode = %v, %v; want valid=%v", i, h != nil, err, s.valid)
		}
		if err != nil && !errors.Is(err, ErrCorruptHead) && !errors.Is(err, ErrVersion) {
			t.Errorf("seed %d: %v wraps no sentinel", i, err)
		}
	}
	for name, h := range seedHeads() {
		b, err := h.Encode()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(g, h) {
			t.Errorf("%s: decoded head differs:\n got %+v\nwant %+v", name, g, h)
		}
		if b2, err := g.Encode(); err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%s: re-saved head differs (err %v)", name, err)
		}
	}
}

// topBlock returns an encoder block of hidden size c and intermediate size in with
// small fixed weights.
func topBlock(c, in int) lora.Weights[float32] {
	v := func(n int, scale float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = scale * float32((i*5)%7-3)
		}
		return x
	}
	lin := func(fin, fout int) lora.Linear[float32] {
		return lora.Linear[float32]{In: fin, Out: fout, W: v(fin*fout, 0.0625), B: v(fout, 0.125)}
	}
	norm := func() lora.LayerNorm[float32] {
		return lora.LayerNorm[float32]{Gamma: v(c, 0.5), Beta: v(c, 0.25), Eps: 1e-12}
	}
	return lora.Weights[float32]{Query: lin(c, c), Key: lin(c, c), Value: lin(c, c), AttentionOutput: lin(c, c),
		Intermediate: lin(c, in), Output: lin(in, c), AttentionNorm: norm(), OutputNorm: norm()}
}

// TestFuzzSeeds keeps testdata/fuzz/FuzzDecodeHead current: -update rewrites it from
// headFuzzSeeds.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeHead")
	for i, s := range headFuzzSeeds(t) {
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(s.data)))
		fmt.Fprintf(&b, "bool(%v)\n", s.resign)
		path := filepath.Join(dir, fmt.Sprintf("seed%02d", i))
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b.Bytes()) {
			t.Errorf("%s is missing or stale (go test -run TestFuzzSeeds -update rewrites it)", path)
		}
	}
}
