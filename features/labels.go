package features

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// decimal is a label that is a plain decimal number: digits, an optional fraction and
// exponent, an optional sign (no hex, no underscores, no inf or nan).
var decimal = regexp.MustCompile(`^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$`)

// parseNumber returns the value of a label that is a plain finite decimal number.
func parseNumber(label string) (float64, bool) {
	if !decimal.MatchString(label) {
		return 0, false
	}
	v, err := strconv.ParseFloat(label, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// canonicalNumber names a number as a label: an integer without a fraction ("2" for
// 2.0, "0" for -0), anything else in the shortest form that reads back the same
// ("0.5", "1e-07").
func canonicalNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// CanonicalLabels maps each label to its class name. When every label is a number
// (JSONL 2.0 and 2, or CSV "1" and "1.0": pandas writes a label column as floats as
// soon as one value is missing) labels are compared as numbers and named canonically
// (canonicalNumber: 2.0 -> "2"); otherwise each label names itself. Labels are taken
// as the Reader gives them (trimmed).
func CanonicalLabels(labels []string) map[string]string {
	m := make(map[string]string, len(labels))
	numeric := len(labels) > 0
	for _, l := range labels {
		v, ok := parseNumber(l)
		if !ok {
			numeric = false
			break
		}
		m[l] = canonicalNumber(v)
	}
	if !numeric {
		clear(m)
		for _, l := range labels {
			m[l] = l
		}
	}
	return m
}

// caseVariants returns the groups of labels (sorted) that differ only in case, each
// group in the labels' order; nil when there are none.
func caseVariants(labels []string) [][]string {
	groups := map[string][]string{}
	var keys []string
	for _, l := range labels {
		k := strings.ToLower(l)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], l)
	}
	var out [][]string
	for _, k := range keys {
		if len(groups[k]) > 1 {
			out = append(out, groups[k])
		}
	}
	return out
}

// SortLabels sorts label names in place the way Scan does: numerically when all are
// numbers (ties, such as "2" and "2.0", by bytes), otherwise by bytes.
func SortLabels(labels []string) {
	vals := make(map[string]float64, len(labels))
	for _, l := range labels {
		v, ok := parseNumber(l)
		if !ok {
			slices.Sort(labels)
			return
		}
		vals[l] = v
	}
	slices.SortFunc(labels, func(a, b string) int {
		switch x, y := vals[a], vals[b]; {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return strings.Compare(a, b)
	})
}
