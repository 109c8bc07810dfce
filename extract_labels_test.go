package headstart

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/onnx"
)

// TestExtractLabels: the store's classes are the normalised labels (trimmed; numbers
// compared as numbers), and the warnings a user needs come at extract time: labels
// differing only in case, rows without a label, no label column at all.
func TestExtractLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	dir := t.TempDir()
	for _, c := range []struct {
		name, file, data string
		classes          []string
		labels           []int64
		warn             []string // substrings of the warnings, in order; none when empty
	}{
		{"trimmed", "t.csv", "text,label\nwhere is it,HUM \nwho is he,HUM\nwhen, LOC\n",
			[]string{"HUM", "LOC"}, []int64{0, 0, 1}, nil},
		{"numbers", "n.jsonl", `{"text":"a","label":2.0}` + "\n" + `{"text":"b","label":2}` + "\n" + `{"text":"c","label":10}` + "\n",
			[]string{"2", "10"}, []int64{0, 0, 1}, nil},
		{"case variants", "c.csv", "text,label\na,Card\nb,card\nc,other\n",
			[]string{"Card", "card", "other"}, []int64{0, 1, 2}, []string{`differ only in case: "Card", "card"`}},
		{"some unlabelled", "u.csv", "text,label\na,x\nb,\nc,\" \"\nd,y\n",
			[]string{"x", "y"}, []int64{0, -1, -1, 1}, []string{"2 of 4 rows", "no label"}},
		{"no label column", "none.csv", "text,target\na,x\nb,y\n",
			nil, []int64{-1, -1}, []string{`no column "label"`, "target", "--label-col"}},
		{"empty label column", "empty.csv", "text,label\na,\nb,\n",
			nil, []int64{-1, -1}, []string{`column "label"`, "empty in every row"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(dir, c.file)
			os.WriteFile(data, []byte(c.data), 0o644)
			out := filepath.Join(dir, c.name+".safetensors")
			var warnings []string
			_, err := Extract(context.Background(), ExtractOptions{Model: model.Dir, Data: data, Out: out,
				Session: onnx.SessionOptions{IntraOpThreads: 1}, Warn: func(m string) { warnings = append(warnings, m) }})
			if err != nil {
				t.Fatal(err)
			}
			st, err := features.OpenStore(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st.Manifest.LabelNames, c.classes) || !reflect.DeepEqual(st.Labels, c.labels) {
				t.Fatalf("classes %q, labels %v; want %q, %v", st.Manifest.LabelNames, st.Labels, c.classes, c.labels)
			}
			all := strings.Join(warnings, "\n")
			if len(c.warn) == 0 && len(warnings) > 0 {
				t.Fatalf("warnings %q; want none", warnings)
			}
			for _, w := range c.warn {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q; want one mentioning %q", warnings, w)
				}
			}
		})
	}
}
