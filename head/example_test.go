package head_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/headstart-ml/headstart/head"
)

// Fit a logistic regression on three clusters of two-dimensional features, score it,
// and classify new rows. With feature stores, make the data sets with head.FromStore.
func ExampleFit() {
	rng := rand.New(rand.NewPCG(1, 2))
	centres := [][2]float64{{0, 0}, {3, 0}, {0, 3}}
	train := head.Dataset{D: 2, Classes: []string{"origin", "east", "north"}}
	for i := range 300 {
		c := i % 3
		train.X = append(train.X, float32(centres[c][0]+rng.NormFloat64()), float32(centres[c][1]+rng.NormFloat64()))
		train.Labels = append(train.Labels, c)
		train.N++
	}
	h, err := head.Fit(train, nil, head.Options{Kind: head.LogReg})
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := h.Evaluate(&train)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("converged: %v, training accuracy %.2f\n", h.Summary.Converged, r.Accuracy)

	rows := []float32{3.2, -0.1, 0.1, 2.9}
	labels := make([]int, 2)
	h.PredictLabels(labels, rows, 2)
	for _, l := range labels {
		fmt.Println(h.Classes[l])
	}
	// Output:
	// converged: true, training accuracy 0.90
	// east
	// north
}
