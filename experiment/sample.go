package experiment

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// All is the shot count that means every training row.
const All = 0

// ParseShots parses a comma-separated list of shot counts (rows per class): positive
// integers or "all". Repeats are dropped; the order is kept.
func ParseShots(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n := All
		if !strings.EqualFold(f, "all") {
			v, err := strconv.Atoi(f)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("%w: --shots %q: %q is not a positive integer or all", ErrBadGrid, list, f)
			}
			n = v
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --shots %q names no shot count; want e.g. 8,16,64,all", ErrBadGrid, list)
	}
	return out, nil
}

// ShotsName is the shot count as written in reports: the number, or "all".
func ShotsName(n int) string {
	if n == All {
		return "all"
	}
	return strconv.Itoa(n)
}

// sampleStream separates the sampling generator from the heads' (which use the seed
// directly).
const sampleStream = 0x5eed5a3b1e

// Sample returns the training rows of a cell with shots rows per class and seed seed,
// sorted: for every class, its rows in order of labels are shuffled with a PCG
// generator seeded by (seed, class index) and the first min(shots, class size) are
// kept; shots All keeps every row. Capping is the caller's choice (see Grid.Check):
// Sample itself takes all rows of a class smaller than shots. Draws are nested: for
// the same seed, the rows of a smaller shot count are among those of a larger one.
// labels hold class indices in [0, classes).
func Sample(labels []int, classes, shots int, seed uint64) []int {
	if shots == All {
		rows := make([]int, len(labels))
		for i := range rows {
			rows[i] = i
		}
		return rows
	}
	byClass := make([][]int, classes)
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	var rows []int
	for c, r := range byClass {
		rng := rand.New(rand.NewPCG(seed, sampleStream+uint64(c)))
		rng.Shuffle(len(r), func(i, j int) { r[i], r[j] = r[j], r[i] })
		rows = append(rows, r[:min(shots, len(r))]...)
	}
	slices.Sort(rows)
	return rows
}

// MTEBUndersample returns the training rows of each of experiments experiments as the
// MTEB 1.x classification protocol selects them (see the package documentation): the
// index array, 0…N−1 at first and carried over between experiments, is shuffled in
// place by a fresh RandomState(seed) in every experiment, and the first
// samplesPerLabel rows of each label in the shuffled order are kept, in that order.
// labels hold one class per row (any integers).
func MTEBUndersample(labels []int, samplesPerLabel, experiments int, seed uint32) [][]int {
	idxs := make([]int, len(labels))
	for i := range idxs {
		idxs[i] = i
	}
	out := make([][]int, experiments)
	for e := range out {
		NewRandomState(seed).Shuffle(idxs)
		counter := map[int]int{}
		for _, i := range idxs {
			if counter[labels[i]] < samplesPerLabel {
				out[e] = append(out[e], i)
				counter[labels[i]]++
			}
		}
	}
	return out
}
