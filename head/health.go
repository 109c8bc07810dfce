package head

import (
	"fmt"
	"math"
)

// ExtremeFeature is the magnitude beyond which a feature value is suspect: pooled
// transformer states are of order 1 (a few tens at most), and a value this large makes
// the solver's first step overflow the loss (one value of 3e38 stops L-BFGS after one
// iteration with a failed line search). Such a value is usually corruption, or features
// that need --standardize.
const ExtremeFeature = 1e6

// Extreme describes the feature of largest magnitude of a dataset.
type Extreme struct {
	Row, Col int     // its row and column
	Value    float32 // its value
	Name     string  // the row named as errors name it: "row 5 (dataset row 15)"
}

func (e Extreme) String() string {
	return fmt.Sprintf("%s, column %d is %g", e.Name, e.Col, e.Value)
}

// LargestFeature returns the feature of d with the largest magnitude (a NaN or an
// infinity first), and whether its magnitude exceeds ExtremeFeature (or it is not
// finite).
func LargestFeature(d Dataset) (e Extreme, extreme bool) {
	best := -1.0
	for i := range d.N {
		for j, v := range d.X[i*d.D : (i+1)*d.D] {
			a := math.Abs(float64(v))
			if math.IsNaN(a) {
				a = math.Inf(1)
			}
			if a > best {
				best, e.Row, e.Col, e.Value = a, i, j, v
			}
		}
	}
	e.Name = rowName(e.Row, d.RowIDs)
	return e, best > ExtremeFeature
}

// SolverFailed reports whether a logistic-regression fit stopped because its solver
// could not go on (a failed line search, a loss or gradient that is not finite) rather
// than by converging or reaching max_iter: the weights are then where the solver gave
// up, usually after one step, and the head is not a fit of the data.
func (s Summary) SolverFailed() bool {
	return s.Stop == stopLineSearch.String() || math.IsNaN(s.Loss) || math.IsInf(s.Loss, 0) ||
		math.IsNaN(s.GradMax) || math.IsInf(s.GradMax, 0)
}

// CheckFinite returns an ErrNonFinite error naming the first weight, bias or
// standardisation value of h that is NaN or infinite.
func (h *Head) CheckFinite() error {
	bad := func(what string, v []float64) error {
		for i, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return errorf(ErrNonFinite, "head: %s[%d] is %v", what, i, x)
			}
		}
		return nil
	}
	if err := bad("mean", h.Mean); err != nil {
		return err
	}
	if err := bad("std", h.Std); err != nil {
		return err
	}
	for l, d := range h.Layers {
		if err := bad(fmt.Sprintf("layer %d weights", l), d.W); err != nil {
			return err
		}
		if err := bad(fmt.Sprintf("layer %d biases", l), d.B); err != nil {
			return err
		}
	}
	return nil
}
