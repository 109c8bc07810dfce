package headstart

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/experiment"
	"github.com/headstart-ml/headstart/internal/testutil"
)

// TestRunExperimentOptions checks that RunExperiment refuses invalid options with an
// error wrapping ErrBadOption that names the option, before it writes anything; a
// problem with the data is another error. (The whole run is tested through pipeline
// experiment, cmd/pipeline/experiment_test.go.)
func TestRunExperimentOptions(t *testing.T) {
	defaultModel(t)
	train := testutil.Data(t, "banking77-sample/train.csv")
	test := testutil.Data(t, "banking77-sample/test.csv")
	logreg, err := experiment.ParseStrategies("logreg")
	if err != nil {
		t.Fatal(err)
	}
	deep, err := experiment.UnfreezeStrategies([]int{0, 7})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := experiment.ParseUnfreeze("0,full-top3+emb")
	if err != nil {
		t.Fatal(err)
	}
	setfit, err := experiment.ParseUnfreeze("0,setfit-all")
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	cases := []struct {
		name string
		edit func(o *ExperimentOptions)
		bad  bool   // wraps ErrBadOption
		msg  string // in the message
	}{
		{"unknown protocol", func(o *ExperimentOptions) { o.Protocol = "helm" }, true, `--protocol "helm" unknown; want one of grid, mteb`},
		{"negative threads", func(o *ExperimentOptions) { o.Threads = -1 }, true, "--threads -1"},
		{"no shots", func(o *ExperimentOptions) { o.Grid.Shots = nil }, true, "strategies and shots"},
		{"negative seeds", func(o *ExperimentOptions) { o.Grid.Seeds = -2 }, true, "--seeds -2"},
		{"standard input", func(o *ExperimentOptions) { o.Test = "-" }, true, "--test -: experiment reads its data several times"},
		{"unknown pooling", func(o *ExperimentOptions) { o.Spec.Pooling = "avg" }, true, "avg"},
		{"max-len 0", func(o *ExperimentOptions) { o.Spec.MaxLen = &zero }, true, "--max-len 0"},
		{"deeper than the model", func(o *ExperimentOptions) { o.Grid.Strategies = deep }, true, "all-minilm-l6-v2 (6 blocks): experiment: invalid grid: strategy full-top7 trains the top 7 blocks; the model has 6"},
		{"embeddings without every block", func(o *ExperimentOptions) { o.Grid.Strategies = emb }, true, "must train all 6 blocks"},
		{"setfit on one row per class", func(o *ExperimentOptions) { o.Grid.Strategies, o.Grid.Shots = setfit, []int{1} }, false, "at least 2 training rows per class"},
		{"shots above the smallest class", func(o *ExperimentOptions) { o.Grid.Shots = []int{25} }, false, "has only 20 training rows"},
		{"missing file", func(o *ExperimentOptions) { o.Train = filepath.Join(t.TempDir(), "none.csv") }, false, "none.csv"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "exp")
			o := ExperimentOptions{Train: train, Test: test, Out: out,
				Grid: experiment.Grid{Strategies: logreg, Shots: []int{2}}}
			c.edit(&o)
			_, err := RunExperiment(context.Background(), o)
			if err == nil || errors.Is(err, ErrBadOption) != c.bad || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v; want one with %q (ErrBadOption: %v)", err, c.msg, c.bad)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a refused run wrote output")
			}
		})
	}
}
