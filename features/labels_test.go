package features

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLabelNormalisation: single labels are trimmed (a blank one is no label); when
// every label is a number they are compared as numbers and named canonically; labels
// differing only in case are listed.
func TestLabelNormalisation(t *testing.T) {
	for _, c := range []struct {
		name, file, data string
		labels           []string         // Summary.Labels
		index            map[string]int64 // raw label -> index (a subset)
		labelled         int64            // Summary.Labelled
		variants         [][]string       // Summary.CaseVariants
	}{
		{
			name: "trimmed", file: "d.csv", data: "text,label\na,HUM \nb,HUM\nc, HUM\nd,\" \"\ne,LOC\n",
			labels: []string{"HUM", "LOC"}, index: map[string]int64{"HUM": 0, "LOC": 1}, labelled: 4,
		},
		{
			name: "tsv trimmed", file: "d.tsv", data: "text\tlabel\na\tx \nb\t x\nc\t \n",
			labels: []string{"x"}, labelled: 2,
		},
		{
			name: "jsonl numbers", file: "d.jsonl",
			data: `{"text":"a","label":2.0}` + "\n" + `{"text":"b","label":2}` + "\n" + `{"text":"c","label":"2"}` + "\n" +
				`{"text":"d","label":10}` + "\n" + `{"text":"e","label":" 1e1 "}` + "\n" + `{"text":"f","label":0.5}` + "\n",
			labels: []string{"0.5", "2", "10"}, index: map[string]int64{"2.0": 1, "2": 1, "10": 2, "1e1": 2, "0.5": 0}, labelled: 6,
		},
		{
			name: "csv numbers", file: "d.csv", data: "text,label\na,1\nb,1.0\nc,-0\nd,0\ne,+3\n",
			labels: []string{"0", "1", "3"}, index: map[string]int64{"1.0": 1, "-0": 0, "+3": 2}, labelled: 5,
		},
		{
			name: "not all numbers", file: "d.csv", data: "text,label\na,1.0\nb,1\nc,v1\n",
			labels: []string{"1", "1.0", "v1"}, labelled: 3,
		},
		{
			name: "nan and inf are not numbers", file: "d.csv", data: "text,label\na,1\nb,inf\nc,NaN\n",
			labels: []string{"1", "NaN", "inf"}, labelled: 3,
		},
		{
			name: "case variants", file: "d.csv", data: "text,label\na,Card\nb,card\nc,CARD\nd,x\ne,X\nf,y\n",
			labels: []string{"CARD", "Card", "X", "card", "x", "y"}, labelled: 6,
			variants: [][]string{{"CARD", "Card", "card"}, {"X", "x"}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.file)
			os.WriteFile(path, []byte(c.data), 0o644)
			s, err := Scan(path, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Labels, c.labels) || s.Labelled != c.labelled {
				t.Fatalf("labels %q (%d labelled); want %q (%d)", s.Labels, s.Labelled, c.labels, c.labelled)
			}
			idx := s.LabelIndex()
			for raw, want := range c.index {
				if got, ok := idx[raw]; !ok || got != want {
					t.Errorf("LabelIndex()[%q] = %d, %v; want %d", raw, got, ok, want)
				}
			}
			if !reflect.DeepEqual(s.CaseVariants, c.variants) {
				t.Errorf("case variants %q; want %q", s.CaseVariants, c.variants)
			}
		})
	}
	// The reader trims, and a blank label is no label.
	r, err := NewReader(strings.NewReader("text,label\na, HUM \nb,\"  \"\n"), "d.csv", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []Row
	for r.Next() {
		got = append(got, r.Row())
	}
	want := []Row{{Index: 0, Text: "a", Label: "HUM", HasLabel: true}, {Index: 1, Text: "b"}}
	if r.Err() != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %+v, %v; want %+v", got, r.Err(), want)
	}
}
