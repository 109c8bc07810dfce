package experiment

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/headstart-ml/headstart/internal/cache"
)

// numpyRef is scripts/ref_mteb_sampling.py's output.
type numpyRef struct {
	Versions      map[string]string   `json:"versions"`
	Raw           map[string][]uint32 `json:"raw"`
	Shuffle       map[string][]int    `json:"shuffle"`
	ShuffleRepeat [][]int             `json:"shuffle_repeat"`
	MTEB          []struct {
		Labels          []int   `json:"labels"`
		SamplesPerLabel int     `json:"samples_per_label"`
		Experiments     int     `json:"experiments"`
		Selected        [][]int `json:"selected"`
	} `json:"mteb"`
}

var ref struct {
	once sync.Once
	r    numpyRef
	err  error
	out  string
}

// loadNumpyRef runs scripts/ref_mteb_sampling.py with the reference venv once per test
// binary. It fails (never skips) when the venv is missing, unless -short.
func loadNumpyRef(t *testing.T) *numpyRef {
	t.Helper()
	if testing.Short() {
		t.Skip("parity with numpy runs the reference venv; skipped with -short")
	}
	ref.once.Do(func() {
		py := cache.VenvPython()
		if _, err := os.Stat(py); err != nil {
			ref.err = err
			return
		}
		dir, err := os.MkdirTemp("", "headstart-experiment-ref-")
		if err != nil {
			ref.err = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "ref.json")
		cmd := exec.Command(py, filepath.Join("..", "scripts", "ref_mteb_sampling.py"), "--out", out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			ref.err, ref.out = err, stderr.String()
			return
		}
		b, err := os.ReadFile(out)
		if err != nil {
			ref.err = err
			return
		}
		ref.err = json.Unmarshal(b, &ref.r)
	})
	if ref.err != nil {
		t.Fatalf("scripts/ref_mteb_sampling.py with the reference venv %s (run `make setup` or scripts/setup.sh venv): %v\n%s", cache.VenvPython(), ref.err, ref.out)
	}
	return &ref.r
}

// TestRandomStateMatchesNumpy checks the MT19937 outputs of legacy-seeded generators and
// RandomState.shuffle against numpy, element for element.
func TestRandomStateMatchesNumpy(t *testing.T) {
	r := loadNumpyRef(t)
	t.Logf("reference: %v", r.Versions)
	if len(r.Raw) == 0 || len(r.Shuffle) == 0 {
		t.Fatal("empty reference")
	}
	for seed, want := range r.Raw {
		s, _ := strconv.ParseUint(seed, 10, 32)
		rs := NewRandomState(uint32(s))
		for i, w := range want {
			if got := rs.Uint32(); got != w {
				t.Fatalf("RandomState(%s): output %d = %d; numpy %d", seed, i, got, w)
			}
		}
	}
	for n, want := range r.Shuffle {
		k, _ := strconv.Atoi(n)
		x := make([]int, k)
		for i := range x {
			x[i] = i
		}
		NewRandomState(42).Shuffle(x)
		if !slices.Equal(x, want) {
			t.Fatalf("RandomState(42).shuffle(arange(%d)) differs from numpy at %d", k, firstDiff(x, want))
		}
	}
	rs := NewRandomState(7)
	x := make([]int, 100)
	for i := range x {
		x[i] = i
	}
	for i, want := range r.ShuffleRepeat {
		rs.Shuffle(x)
		if !slices.Equal(x, want) {
			t.Fatalf("shuffle %d of one RandomState(7) differs from numpy at %d", i+1, firstDiff(x, want))
		}
	}
}

// TestMTEBUndersampleMatchesMTEB replays MTEB 1.x's sampling (global generator seeded by
// the task, reseeded by every evaluator) in Python and compares the selected rows.
func TestMTEBUndersampleMatchesMTEB(t *testing.T) {
	r := loadNumpyRef(t)
	if len(r.MTEB) == 0 {
		t.Fatal("empty reference")
	}
	for c, want := range r.MTEB {
		got := MTEBUndersample(want.Labels, want.SamplesPerLabel, want.Experiments, 42)
		if len(got) != len(want.Selected) {
			t.Fatalf("case %d: %d experiments; want %d", c, len(got), len(want.Selected))
		}
		for e := range got {
			if !slices.Equal(got[e], want.Selected[e]) {
				t.Fatalf("case %d, experiment %d: selection differs from MTEB's at position %d", c, e+1, firstDiff(got[e], want.Selected[e]))
			}
		}
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRandomStateReference checks the first output of the reference MT19937 seeded
// with 5489 (Matsumoto and Nishimura's mt19937ar.c default seed) without numpy.
func TestRandomStateReference(t *testing.T) {
	if got := NewRandomState(5489).Uint32(); got != 3499211612 {
		t.Fatalf("first output for seed 5489 = %d; want 3499211612", got)
	}
	rs := NewRandomState(1)
	for range 1000 {
		if v := rs.Interval(6); v > 6 {
			t.Fatalf("Interval(6) = %d", v)
		}
	}
	if v := rs.Interval(0); v != 0 {
		t.Fatalf("Interval(0) = %d", v)
	}
	big := uint64(1) << 40
	for range 100 {
		if v := rs.Interval(big); v > big {
			t.Fatalf("Interval(2^40) = %d", v)
		}
	}
}
