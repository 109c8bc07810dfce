package features

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sst2Lengths returns approximate token lengths of SST-2 dev: word count + 2 ([CLS], [SEP]).
func sst2Lengths(t *testing.T) []int {
	t.Helper()
	f, err := os.Open("testdata/sst2_dev_wordcounts.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lengths []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatal(err)
		}
		lengths = append(lengths, n+2)
	}
	if len(lengths) != 872 {
		t.Fatalf("%d lengths; want 872", len(lengths))
	}
	return lengths
}

// checkBuckets checks that batches are a permutation of the window, at most size rows
// each, sorted by length (longest first) with ties in window order.
func checkBuckets(t *testing.T, lengths []int, batches [][]int, size int) {
	t.Helper()
	var order []int
	for _, b := range batches {
		if len(b) == 0 || len(b) > size {
			t.Fatalf("batch of %d rows; want 1..%d", len(b), size)
		}
		order = append(order, b...)
	}
	seen := make([]bool, len(lengths))
	for _, i := range order {
		if i < 0 || i >= len(lengths) || seen[i] {
			t.Fatalf("batches are not a permutation: index %d", i)
		}
		seen[i] = true
	}
	if len(order) != len(lengths) {
		t.Fatalf("batches hold %d rows; want %d", len(order), len(lengths))
	}
	for k := 1; k < len(order); k++ {
		a, b := order[k-1], order[k]
		if lengths[a] < lengths[b] || (lengths[a] == lengths[b] && a > b) {
			t.Fatalf("rows %d (len %d) and %d (len %d) out of order", a, lengths[a], b, lengths[b])
		}
	}
}

func TestBuckets(t *testing.T) {
	for _, tc := range []struct {
		lengths []int
		size    int
		want    [][]int
	}{
		{nil, 4, [][]int{}},
		{[]int{5}, 4, [][]int{{0}}},
		{[]int{3, 9, 3, 1, 9}, 2, [][]int{{1, 4}, {0, 2}, {3}}},
		{[]int{1, 2, 3}, 8, [][]int{{2, 1, 0}}},
	} {
		got := Buckets(tc.lengths, tc.size)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Buckets(%v, %d) = %v; want %v", tc.lengths, tc.size, got, tc.want)
		}
	}
}

// TestBucketsRestoreOrder runs a fake model (output = function of the row) through
// bucketed batches and scatters the outputs back: they must land in window order.
func TestBucketsRestoreOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int{1, 7, 32, 1000} {
		lengths := make([]int, 500)
		for i := range lengths {
			lengths[i] = 1 + rng.IntN(40)
		}
		batches := Buckets(lengths, size)
		checkBuckets(t, lengths, batches, size)
		if !slices.Equal(Buckets(lengths, size)[0], batches[0]) {
			t.Fatal("Buckets is not deterministic")
		}
		const D = 3
		out := make([]float32, len(lengths)*D)
		for _, b := range batches {
			pooled := make([]float32, len(b)*D) // the "model": row i -> (i, len, -i)
			for j, i := range b {
				copy(pooled[j*D:], []float32{float32(i), float32(lengths[i]), -float32(i)})
			}
			for j, i := range b {
				copy(out[i*D:(i+1)*D], pooled[j*D:(j+1)*D])
			}
		}
		for i := range lengths {
			if want := []float32{float32(i), float32(lengths[i]), -float32(i)}; !slices.Equal(out[i*D:(i+1)*D], want) {
				t.Fatalf("size %d: row %d restored as %v; want %v", size, i, out[i*D:(i+1)*D], want)
			}
		}
	}
}

// minSST2Efficiency: with the whole dev split as one window, 32-row batches of sorted
// lengths waste almost nothing (neighbours differ by a token or two); unsorted batches
// of the same size compute about twice the tokens.
const minSST2Efficiency = 0.95

func TestBucketsSST2Efficiency(t *testing.T) {
	lengths := sst2Lengths(t)
	batches := Buckets(lengths, 32)
	checkBuckets(t, lengths, batches, 32)
	eff := PaddingEfficiency(lengths, batches)
	var plain [][]int
	for i := 0; i < len(lengths); i += 32 {
		var b []int
		for j := i; j < min(i+32, len(lengths)); j++ {
			b = append(b, j)
		}
		plain = append(plain, b)
	}
	base := PaddingEfficiency(lengths, plain)
	t.Logf("SST-2 dev, batch 32: padding efficiency %.3f bucketed, %.3f in file order", eff, base)
	if !(eff >= minSST2Efficiency) {
		t.Errorf("padding efficiency %.3f < %.2f", eff, minSST2Efficiency)
	}
	if !(eff > base) {
		t.Errorf("bucketing (%.3f) no better than file order (%.3f)", eff, base)
	}
}

func TestPaddingEfficiency(t *testing.T) {
	if e := PaddingEfficiency(nil, nil); e != 1 {
		t.Errorf("empty: %v", e)
	}
	if e := PaddingEfficiency([]int{2, 4, 4}, [][]int{{0, 1}, {2}}); e != 10.0/12 {
		t.Errorf("got %v; want 10/12", e)
	}
}

func TestPad(t *testing.T) {
	var b Batch
	ids := [][]int{{101, 7, 8, 102}, {101, 102}, {101, 9, 102}}
	types := [][]int{{0, 0, 1, 1}, {0, 0}, {0, 1, 1}}
	Pad(&b, ids, types, 0)
	want := Batch{
		B: 3, T: 4,
		InputIDs:      []int64{101, 7, 8, 102, 101, 102, 0, 0, 101, 9, 102, 0},
		AttentionMask: []int64{1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0},
		TokenTypeIDs:  []int64{0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0},
	}
	if fmt.Sprint(b) != fmt.Sprint(want) {
		t.Errorf("Pad\n got %+v\nwant %+v", b, want)
	}
	// A smaller batch reuses the buffers and leaves no stale values; nil types are zeros.
	Pad(&b, [][]int32{{5, 6}, {7}}, nil, -1)
	want = Batch{B: 2, T: 2, InputIDs: []int64{5, 6, 7, -1}, AttentionMask: []int64{1, 1, 1, 0}, TokenTypeIDs: []int64{0, 0, 0, 0}}
	if fmt.Sprint(b) != fmt.Sprint(want) {
		t.Errorf("Pad (reuse)\n got %+v\nwant %+v", b, want)
	}
	big := [][]int64{make([]int64, 30), make([]int64, 12)}
	Pad(&b, big, nil, 0)
	if allocs := testing.AllocsPerRun(10, func() { Pad(&b, big, nil, 0) }); allocs != 0 {
		t.Errorf("Pad allocates %v times per call with buffers in place; want 0", allocs)
	}
}

func ExampleBuckets() {
	lengths := []int{5, 12, 3, 12, 7} // tokens per row of a window
	for _, batch := range Buckets(lengths, 2) {
		fmt.Println(batch)
	}
	// Output:
	// [1 3]
	// [4 0]
	// [2]
}
