package head

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/headstart-ml/headstart/features"
)

// Dataset is a labelled set of feature rows held in memory: what Fit trains on and
// Evaluate scores. Single-label data sets Labels; multi-label data sets Y instead.
type Dataset struct {
	N, D int
	X    []float32 // (N,D) row-major; not modified by this package
	// Labels holds each row's class, an index into Classes (single-label data).
	Labels []int
	// Y holds multi-label targets, (N,K) row-major with K = len(Classes): Y[i*K+k] is 1
	// when row i carries label k, else 0. When Y is not nil the data is multi-label and
	// Labels is ignored.
	Y []float32
	// Classes names the K classes (labels), in the order of the head's outputs.
	Classes []string
	// Fingerprint describes the features (from the store's manifest); Fit records it
	// in the head. Zero when the data did not come from a store.
	Fingerprint Fingerprint
	// Name identifies the data in error messages (the store's path); may be empty.
	Name string
	// RowIDs, when not nil, are the dataset row of each feature row (the store's
	// row_ids), used in error messages.
	RowIDs []int64
}

// MultiLabel reports whether the data holds multi-label targets.
func (d *Dataset) MultiLabel() bool { return d.Y != nil }

// FromStore makes a Dataset of a feature store: single-label, or multi-label (Y set)
// for a multi-label store (features.Manifest.MultiLabel). The classes are the labels
// that occur in the store, in the manifest's order (so a store's labels keep their
// relative order, as scikit-learn's sorted classes_ do for sorted names). It fails on
// an empty store (ErrEmpty), a row without a label (ErrUnlabelled; for a multi-label
// store, a row whose label set is empty) or a feature that is NaN or infinite
// (ErrNonFinite), naming the row. The features are shared with the store, not copied.
// name is used in errors (the store's path).
func FromStore(s *features.Store, name string) (Dataset, error) {
	if s.N == 0 {
		return Dataset{}, errorf(ErrEmpty, "head: features %s: no rows", name)
	}
	if err := checkFinite(s.Features, s.N, s.D, name, s.RowIDs); err != nil {
		return Dataset{}, err
	}
	if s.Manifest.MultiLabel {
		return fromMultiLabelStore(s, name)
	}
	used := make([]int, len(s.Manifest.LabelNames))
	for i := range used {
		used[i] = -1
	}
	for i, l := range s.Labels {
		if l < 0 && len(s.Manifest.LabelNames) == 0 {
			return Dataset{}, errorf(ErrUnlabelled, "head: features %s have no labels: the data was extracted without a label column (its column %q was absent or empty); extract again naming it with --label-col",
				name, s.Manifest.Dataset.LabelCol)
		}
		if l < 0 {
			return Dataset{}, errorf(ErrUnlabelled, "head: features %s: %s has no label; fitting and evaluation need a label on every row",
				name, rowName(i, s.RowIDs))
		}
		used[l] = 0
	}
	var classes []string
	for l, u := range used {
		if u == 0 {
			used[l] = len(classes)
			classes = append(classes, s.Manifest.LabelNames[l])
		}
	}
	labels := make([]int, s.N)
	for i, l := range s.Labels {
		labels[i] = used[l]
	}
	return Dataset{
		N: s.N, D: s.D, X: s.Features, Labels: labels, Classes: classes,
		Fingerprint: FingerprintOf(s.Manifest, s.D), Name: name, RowIDs: s.RowIDs,
	}, nil
}

// fromMultiLabelStore is FromStore for a multi-label store: Y holds the rows' sets
// over the labels that occur in the store.
func fromMultiLabelStore(s *features.Store, name string) (Dataset, error) {
	names := s.Manifest.LabelNames
	used := make([]int, len(names))
	for i := range s.N {
		n := 0
		for l, v := range s.LabelSet(i) {
			if v == 1 {
				used[l], n = 1, n+1
			}
		}
		if n == 0 {
			return Dataset{}, errorf(ErrUnlabelled, "head: features %s: %s has an empty label set; fitting and evaluation need at least one label on every row",
				name, rowName(i, s.RowIDs))
		}
	}
	var classes []string
	for l, u := range used {
		used[l] = -1
		if u == 1 {
			used[l] = len(classes)
			classes = append(classes, names[l])
		}
	}
	k := len(classes)
	y := make([]float32, s.N*k)
	for i := range s.N {
		for l, v := range s.LabelSet(i) {
			if v == 1 {
				y[i*k+used[l]] = 1
			}
		}
	}
	return Dataset{
		N: s.N, D: s.D, X: s.Features, Y: y, Classes: classes,
		Fingerprint: FingerprintOf(s.Manifest, s.D), Name: name, RowIDs: s.RowIDs,
	}, nil
}

// rowName names feature row i, with its dataset row when known.
func rowName(i int, rowIDs []int64) string {
	if rowIDs != nil && i < len(rowIDs) && rowIDs[i] != int64(i) {
		return fmt.Sprintf("row %d (dataset row %d)", i, rowIDs[i])
	}
	return fmt.Sprintf("row %d", i)
}

// checkFinite returns an ErrNonFinite error naming the first row holding a NaN or an
// infinity.
func checkFinite(x []float32, n, d int, name string, rowIDs []int64) error {
	if allFinite(x[:n*d]) {
		return nil
	}
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return errorf(ErrNonFinite, "head: features %s: %s, column %d is %v; features must be finite",
					name, rowName(i, rowIDs), j, v)
			}
		}
	}
	return nil
}

// allFinite reports whether no value of x is NaN or ±Inf. Those are the values whose
// exponent bits are all ones: with the sign cleared their bits are at least
// 0x7f800000, so adding 0x00800000 sets bit 31 for them and for no finite value.
func allFinite(x []float32) bool {
	var a0, a1, a2, a3 uint32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a0 |= math.Float32bits(x[i])&0x7fffffff + 0x00800000
		a1 |= math.Float32bits(x[i+1])&0x7fffffff + 0x00800000
		a2 |= math.Float32bits(x[i+2])&0x7fffffff + 0x00800000
		a3 |= math.Float32bits(x[i+3])&0x7fffffff + 0x00800000
	}
	for ; i < len(x); i++ {
		a0 |= math.Float32bits(x[i])&0x7fffffff + 0x00800000
	}
	return (a0|a1|a2|a3)&0x80000000 == 0
}

// validate checks the shapes (panicking on a programmer error), the values and the
// classes of a training set.
func (d *Dataset) validate() error {
	k := len(d.Classes)
	if d.N == 0 {
		return errorf(ErrEmpty, "head: training data %s: no rows", d.Name)
	}
	if d.D < 1 || len(d.X) != d.N*d.D {
		panic("head: Dataset: len(X) != N*D or D < 1")
	}
	if err := checkFinite(d.X, d.N, d.D, d.Name, d.RowIDs); err != nil {
		return err
	}
	if d.Y != nil {
		if len(d.Y) != d.N*k {
			panic("head: Dataset: len(Y) != N*len(Classes)")
		}
		if k < 1 {
			return errorf(ErrSingleClass, "head: training data %s: no labels", d.Name)
		}
		for c := range k {
			pos := 0
			for i := range d.N {
				switch d.Y[i*k+c] {
				case 1:
					pos++
				case 0:
				default:
					return errorf(ErrBadSetting, "head: training data %s: %s, label %q: target %v; want 0 or 1",
						d.Name, rowName(i, d.RowIDs), d.Classes[c], d.Y[i*k+c])
				}
			}
			if pos == 0 || pos == d.N {
				where := "no row"
				if pos == d.N {
					where = "every row"
				}
				return errorf(ErrSingleClass, "head: training data %s: label %q is on %s; one-vs-rest needs rows with and without each label",
					d.Name, d.Classes[c], where)
			}
		}
		return nil
	}
	if len(d.Labels) != d.N {
		panic("head: Dataset: len(Labels) != N")
	}
	counts := make([]int, k)
	for i, l := range d.Labels {
		if l < 0 || l >= k {
			return errorf(ErrUnlabelled, "head: training data %s: %s has label %d; want a class in [0, %d)", d.Name, rowName(i, d.RowIDs), l, k)
		}
		counts[l]++
	}
	var empty []string
	for c, n := range counts {
		if n == 0 {
			empty = append(empty, fmt.Sprintf("%q", d.Classes[c]))
		}
	}
	if len(empty) > 0 {
		return errorf(ErrEmptyClass, "head: training data %s: no rows of class %s", d.Name, strings.Join(empty, ", "))
	}
	if k < 2 {
		name := "(none)"
		if k == 1 {
			name = fmt.Sprintf("%q", d.Classes[0])
		}
		return errorf(ErrSingleClass, "head: training data %s: all %d rows have the label %s; a classifier needs at least two classes", d.Name, d.N, name)
	}
	return nil
}

// subset returns the rows idx of d (copied).
func (d *Dataset) subset(idx []int) Dataset {
	s := Dataset{N: len(idx), D: d.D, Classes: d.Classes, Fingerprint: d.Fingerprint, Name: d.Name}
	s.X = make([]float32, len(idx)*d.D)
	for r, i := range idx {
		copy(s.X[r*d.D:(r+1)*d.D], d.X[i*d.D:(i+1)*d.D])
	}
	if d.RowIDs != nil {
		s.RowIDs = make([]int64, len(idx))
		for r, i := range idx {
			s.RowIDs[r] = d.RowIDs[i]
		}
	}
	if d.Y != nil {
		k := len(d.Classes)
		s.Y = make([]float32, len(idx)*k)
		for r, i := range idx {
			copy(s.Y[r*k:(r+1)*k], d.Y[i*k:(i+1)*k])
		}
	} else {
		s.Labels = make([]int, len(idx))
		for r, i := range idx {
			s.Labels[r] = d.Labels[i]
		}
	}
	return s
}

// strata returns a stratum per row for stratified splits: the class for single-label
// data, the row's first label (or K when it has none) for multi-label data.
func (d *Dataset) strata() ([]int, int) {
	if d.Y == nil {
		return d.Labels, len(d.Classes)
	}
	k := len(d.Classes)
	s := make([]int, d.N)
	for i := range d.N {
		s[i] = k
		for c := range k {
			if d.Y[i*k+c] == 1 {
				s[i] = c
				break
			}
		}
	}
	return s, k + 1
}

// stratifiedFolds assigns every row to one of k folds so that each stratum is spread
// evenly: the rows of each stratum are shuffled (seeded) and dealt round-robin, the
// dealing continuing from stratum to stratum so that fold sizes differ by at most one.
func stratifiedFolds(strata []int, nStrata, k int, rng *rand.Rand) []int {
	byStratum := make([][]int, nStrata)
	for i, s := range strata {
		byStratum[s] = append(byStratum[s], i)
	}
	fold := make([]int, len(strata))
	next := 0
	for _, rows := range byStratum {
		rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
		for _, i := range rows {
			fold[i] = next
			next = (next + 1) % k
		}
	}
	return fold
}

// splitFold returns the rows outside and inside fold f.
func splitFold(fold []int, f int) (train, test []int) {
	for i, g := range fold {
		if g == f {
			test = append(test, i)
		} else {
			train = append(train, i)
		}
	}
	return train, test
}

// stratifiedHoldout splits rows into a training part and a held-out part of about
// frac of each stratum (at least one row of every stratum with two rows or more).
func stratifiedHoldout(strata []int, nStrata int, frac float64, rng *rand.Rand) (train, held []int) {
	byStratum := make([][]int, nStrata)
	for i, s := range strata {
		byStratum[s] = append(byStratum[s], i)
	}
	for _, rows := range byStratum {
		rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
		h := int(math.Round(frac * float64(len(rows))))
		if h == 0 && len(rows) >= 2 {
			h = 1
		}
		h = min(h, max(len(rows)-1, 0))
		held = append(held, rows[:h]...)
		train = append(train, rows[h:]...)
	}
	slices.Sort(train)
	slices.Sort(held)
	return train, held
}

// standardizer computes per-column mean and population standard deviation (ddof=0, as
// scikit-learn's StandardScaler), with a zero deviation replaced by 1.
func standardizer(x []float32, n, d int) (mean, std []float64) {
	mean = make([]float64, d)
	std = make([]float64, d)
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			dv := float64(v) - mean[j]
			std[j] += dv * dv
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / float64(n))
		if std[j] == 0 {
			std[j] = 1
		}
	}
	return mean, std
}

// newRNG returns the package's seeded generator.
func newRNG(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}
