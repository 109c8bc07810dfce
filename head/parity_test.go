package head_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"gonum.org/v1/gonum/floats/scalar"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/cache"
	"github.com/headstart-ml/headstart/models"
)

// Parity with scikit-learn 1.9.1 (scripts/ref_logreg.py) on real features: the shipped
// Banking77 sample (data/banking77-sample: 20 rows per intent to train, 10 to test)
// embedded with the default model, mean pooling.

const (
	// accTol: the bound on |test accuracy − scikit-learn's|, 0.3 points.
	accTol = 0.003
	// coefTightTol bounds ‖[W b] − [W b]_sklearn‖_F / ‖[W b]_sklearn‖_F when scikit-learn
	// computes in float64 (features cast): the solvers take the same path and differ
	// by rounding only (the issue asks for 1e-3 at a tight tolerance; measured ~1e-7).
	coefTightTol = 1e-3
	// coef32Tol and iter32Tol bound the float32 objective (the default Precision)
	// against scikit-learn's on the float32 store: both compute in float32, but with
	// other summation orders (OpenBLAS's sgemm against this package's kernel) and
	// scikit-learn sums the loss in float32, so the paths part by float32 rounding
	// amplified by the solver. Measured: the same iterations, 6e-6 relative on the
	// sample (2e-5 on all of Banking77 train, as far as scikit-learn's own float32
	// and float64 fits are apart); the 1e-3 holds with room.
	coef32Tol = 1e-3
	iter32Tol = 2
	// probTol bounds |p_go − p_numpy| for a head file read by numpy: Predict rounds
	// probabilities to float32 (ε = 6e-8); the float64 computations agree to ~1e-15.
	probTol = 1e-6
	// metricTol bounds |metric_go − metric_sklearn| on the same predictions; sklearn's
	// log_loss sums float32 terms (relative error ~1e-7 over 770 rows).
	metricTol = 1e-5
)

var sample struct {
	once        sync.Once
	dir         string
	train, test string
	err         error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sample.dir != "" {
		os.RemoveAll(sample.dir)
	}
	os.Exit(code)
}

// sampleStores extracts the Banking77 sample once per test binary. It fails (never
// skips) when the model is missing, unless -short.
func sampleStores(t *testing.T) (train, test string) {
	t.Helper()
	if testing.Short() {
		t.Skip("parity with scikit-learn extracts features with the default model; skipped with -short")
	}
	sample.once.Do(func() {
		if _, err := models.Resolve(models.Default); err != nil {
			sample.err = fmt.Errorf("default model missing (run `make setup` or scripts/setup.sh): %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "headstart-head-test-")
		if err != nil {
			sample.err = err
			return
		}
		sample.dir = dir
		for _, name := range []string{"train", "test"} {
			out := filepath.Join(dir, name+".safetensors")
			_, err := headstart.Extract(context.Background(), headstart.ExtractOptions{
				Data: filepath.Join("..", "data", "banking77-sample", name+".csv"), Out: out,
			})
			if err != nil {
				sample.err = fmt.Errorf("extracting the Banking77 sample (run `make setup` if the runtime or model is missing): %w", err)
				return
			}
		}
		sample.train, sample.test = filepath.Join(dir, "train.safetensors"), filepath.Join(dir, "test.safetensors")
	})
	if sample.err != nil {
		t.Fatal(sample.err)
	}
	return sample.train, sample.test
}

// refResult is scripts/ref_logreg.py's output.
type refResult struct {
	Versions     map[string]string `json:"versions"`
	Classes      []int             `json:"classes"`
	Coef         [][]float64       `json:"coef"`
	Intercept    []float64         `json:"intercept"`
	NIter        int               `json:"n_iter"`
	FitSeconds   float64           `json:"fit_seconds"`
	TestAccuracy float64           `json:"test_accuracy"`
	TestTrue     []int             `json:"test_true"`
	TestPred     []int             `json:"test_pred"`
	TestProba    [][]float64       `json:"test_proba"`
	HeadProba    [][]float64       `json:"head_proba"`
	Metrics      struct {
		Accuracy   float64   `json:"accuracy"`
		MacroF1    float64   `json:"macro_f1"`
		WeightedF1 float64   `json:"weighted_f1"`
		LogLoss    float64   `json:"log_loss"`
		Precision  []float64 `json:"precision"`
		Recall     []float64 `json:"recall"`
		F1         []float64 `json:"f1"`
		Support    []int     `json:"support"`
		Confusion  [][]int   `json:"confusion"`
	} `json:"metrics"`
}

// runRef runs scripts/ref_logreg.py with the reference venv.
func runRef(t *testing.T, args ...string) refResult {
	t.Helper()
	py := cache.VenvPython()
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("reference venv missing (run `make setup` or scripts/setup.sh venv): %v", err)
	}
	out := filepath.Join(t.TempDir(), "ref.json")
	cmd := exec.Command(py, append([]string{filepath.Join("..", "scripts", "ref_logreg.py"), "--out", out, "--threads", "1"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/ref_logreg.py %v: %v (a missing module means the venv predates scikit-learn in scripts/requirements-test.txt: run scripts/setup.sh venv)\n%s", args, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r refResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeSubset writes the rows of src whose label passes keep (up to perLabel[label]
// rows of it when set) to a new store.
func writeSubset(t *testing.T, src *features.Store, path string, keep func(l int64) bool, perLabel map[int64]int) {
	t.Helper()
	seen := map[int64]int{}
	var rows []int
	for i, l := range src.Labels {
		if !keep(l) {
			continue
		}
		if lim, ok := perLabel[l]; ok && seen[l] >= lim {
			continue
		}
		seen[l]++
		rows = append(rows, i)
	}
	w, err := features.NewWriter(path, src.Manifest, len(rows), src.D, features.Float32)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range rows {
		if err := w.WriteRows(src.Row(i), src.Labels[i:i+1], src.RowIDs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func openData(t *testing.T, path string) head.Dataset {
	t.Helper()
	s, err := features.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := head.FromStore(s, path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// coefRelDiff is ‖[W b] − [C I]‖_F / ‖[C I]‖_F.
func coefRelDiff(h *head.Head, coef [][]float64, intercept []float64) float64 {
	l := h.Layers[0]
	var num, den float64
	for c := range coef {
		for j, v := range append(append([]float64(nil), coef[c]...), intercept[c]) {
			g := l.B[c]
			if j < l.In {
				g = l.W[c*l.In+j]
			}
			num += (g - v) * (g - v)
			den += v * v
		}
	}
	return math.Sqrt(num / den)
}

func TestParityLogReg(t *testing.T) {
	trainPath, testPath := sampleStores(t)
	dir := t.TempDir()
	full, err := features.OpenStore(trainPath)
	if err != nil {
		t.Fatal(err)
	}
	fullTest, err := features.OpenStore(testPath)
	if err != nil {
		t.Fatal(err)
	}
	// A binary subset (the first two intents) and an imbalanced three-class one.
	binTrain, binTest := filepath.Join(dir, "bin-train.safetensors"), filepath.Join(dir, "bin-test.safetensors")
	two := func(l int64) bool { return l < 2 }
	writeSubset(t, full, binTrain, two, nil)
	writeSubset(t, fullTest, binTest, two, nil)
	imbTrain, imbTest := filepath.Join(dir, "imb-train.safetensors"), filepath.Join(dir, "imb-test.safetensors")
	three := func(l int64) bool { return l >= 10 && l < 13 }
	writeSubset(t, full, imbTrain, three, map[int64]int{10: 20, 11: 8, 12: 3})
	writeSubset(t, fullTest, imbTest, three, nil)

	tight := []string{"--tol", "1e-8", "--max-iter", "10000", "--dtype", "float64", "--no-proba"}
	f64 := head.Float64
	for _, tc := range []struct {
		name        string
		train, test string
		s           head.LogRegSettings
		args        []string
		coefTol     float64
		iterTol     int // |iterations − scikit-learn's| allowed
	}{
		// What users run: scikit-learn's defaults on the float32 store, where scipy and
		// scikit-learn evaluate the objective in float32, as the default Precision does.
		{"77 classes default float32", trainPath, testPath, head.LogRegSettings{}, nil, coef32Tol, iter32Tol},
		{"binary default float32", binTrain, binTest, head.LogRegSettings{}, []string{"--no-proba"}, coef32Tol, iter32Tol},
		// The same objective computed in float64 on both sides: the same path.
		{"77 classes default float64", trainPath, testPath, head.LogRegSettings{Precision: f64}, []string{"--dtype", "float64", "--no-proba"}, coefTightTol, 1},
		{"77 classes tight", trainPath, testPath, head.LogRegSettings{Tol: 1e-8, MaxIter: 10000, Precision: f64}, tight, coefTightTol, 1},
		{"binary tight C=0.5", binTrain, binTest, head.LogRegSettings{C: 0.5, Tol: 1e-8, MaxIter: 10000, Precision: f64},
			append([]string{"--C", "0.5"}, tight...), coefTightTol, 1},
		{"imbalanced balanced tight C=10", imbTrain, imbTest, head.LogRegSettings{C: 10, Tol: 1e-8, MaxIter: 10000, ClassWeight: head.Balanced, Precision: f64},
			append([]string{"--C", "10", "--class-weight", "balanced"}, tight...), coefTightTol, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			train, test := openData(t, tc.train), openData(t, tc.test)
			h, err := head.FitLogReg(train, tc.s)
			if err != nil {
				t.Fatal(err)
			}
			headPath := filepath.Join(t.TempDir(), "head.safetensors")
			if err := h.Save(headPath); err != nil {
				t.Fatal(err)
			}
			ref := runRef(t, append([]string{"--train", tc.train, "--test", tc.test, "--head", headPath}, tc.args...)...)
			r, err := h.Evaluate(&test)
			if err != nil {
				t.Fatal(err)
			}
			rel := coefRelDiff(h, ref.Coef, ref.Intercept)
			t.Logf("scikit-learn %s: accuracy %.4f, %d iterations; headstart: accuracy %.4f, %d iterations (%s); coefficients differ by %.2g relative (Frobenius, intercepts included)",
				ref.Versions["scikit-learn"], ref.TestAccuracy, ref.NIter, r.Accuracy, h.Summary.Iterations, h.Summary.Stop, rel)
			if !scalar.EqualWithinAbs(r.Accuracy, ref.TestAccuracy, accTol) {
				t.Errorf("test accuracy %.4f, scikit-learn %.4f: more than %.1f points apart", r.Accuracy, ref.TestAccuracy, 100*accTol)
			}
			if !(rel <= tc.coefTol) {
				t.Errorf("coefficients differ by %.3g relative > %g", rel, tc.coefTol)
			}
			// Rounding differences (summation order) may shift one line search by the end.
			if d := h.Summary.Iterations - ref.NIter; d < -tc.iterTol || d > tc.iterTol {
				t.Errorf("%d iterations, scikit-learn %d: more than %d apart", h.Summary.Iterations, ref.NIter, tc.iterTol)
			}
			if len(ref.Coef) != h.Layers[0].Out {
				t.Errorf("scikit-learn has %d coefficient rows, the head %d", len(ref.Coef), h.Layers[0].Out)
			}
			// The head file, read by numpy alone, gives the head's probabilities.
			k := len(h.Classes)
			p := make([]float32, test.N*k)
			h.Predict(p, test.X, test.N)
			var worst float64
			for i, row := range ref.HeadProba {
				for c, v := range row {
					worst = max(worst, math.Abs(float64(p[i*k+c])-v))
				}
			}
			if len(ref.HeadProba) != test.N || !(worst <= probTol) {
				t.Errorf("numpy reading the head file: %d rows, max |Δp| = %.3g > %g", len(ref.HeadProba), worst, probTol)
			}
			if tc.name == "77 classes default float32" {
				checkMetrics(t, h.Classes, ref)
			}
		})
	}
}

// checkMetrics scores scikit-learn's own test predictions with NewReport and compares
// with scikit-learn's metrics.
func checkMetrics(t *testing.T, classes []string, ref refResult) {
	t.Helper()
	pos := map[int]int{}
	for i, c := range ref.Classes {
		pos[c] = i
	}
	k := len(classes)
	n := len(ref.TestTrue)
	truth, pred := make([]int, n), make([]int, n)
	probs := make([]float32, n*k)
	for i := range n {
		truth[i], pred[i] = pos[ref.TestTrue[i]], pos[ref.TestPred[i]]
		for c, v := range ref.TestProba[i] {
			probs[i*k+c] = float32(v)
		}
	}
	r := head.NewReport(classes, truth, pred, probs)
	m := ref.Metrics
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"accuracy", r.Accuracy, m.Accuracy}, {"macro F1", r.MacroF1, m.MacroF1},
		{"weighted F1", r.WeightedF1, m.WeightedF1}, {"log-loss", r.LogLoss, m.LogLoss},
	} {
		if !scalar.EqualWithinAbsOrRel(c.got, c.want, metricTol, metricTol) {
			t.Errorf("%s: %v, scikit-learn %v", c.name, c.got, c.want)
		}
	}
	for c := range k {
		s := r.PerClass[c]
		if s.Support != m.Support[c] || !scalar.EqualWithinAbs(s.Precision, m.Precision[c], 1e-12) ||
			!scalar.EqualWithinAbs(s.Recall, m.Recall[c], 1e-12) || !scalar.EqualWithinAbs(s.F1, m.F1[c], 1e-12) {
			t.Errorf("class %s: %+v; scikit-learn P %v R %v F1 %v support %d", classes[c], s, m.Precision[c], m.Recall[c], m.F1[c], m.Support[c])
		}
		for q := range k {
			if r.Confusion[c][q] != m.Confusion[c][q] {
				t.Fatalf("confusion[%d][%d] = %d, scikit-learn %d", c, q, r.Confusion[c][q], m.Confusion[c][q])
			}
		}
	}
}

// TestParityHeadFileMLP: numpy computes an MLP head's probabilities from the file
// (standardisation, two GELU layers) as Predict does.
func TestParityHeadFileMLP(t *testing.T) {
	trainPath, testPath := sampleStores(t)
	train, test := openData(t, trainPath), openData(t, testPath)
	h, err := head.FitMLP(train, &test, head.MLPSettings{Hidden: []int{64, 32}, Standardize: true, MaxEpochs: 5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mlp.safetensors")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	ref := runRef(t, "--train", trainPath, "--test", testPath, "--head", path, "--max-iter", "1", "--no-proba")
	k := len(h.Classes)
	p := make([]float32, test.N*k)
	h.Predict(p, test.X, test.N)
	var worst float64
	for i, row := range ref.HeadProba {
		for c, v := range row {
			worst = max(worst, math.Abs(float64(p[i*k+c])-v))
		}
	}
	if len(ref.HeadProba) != test.N || !(worst <= probTol) {
		t.Errorf("numpy reading the MLP head file: %d rows, max |Δp| = %.3g > %g", len(ref.HeadProba), worst, probTol)
	}
}
