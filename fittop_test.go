package headstart

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/lora"
	"github.com/headstart-ml/headstart/onnx"
)

// TestFitTop trains the top block on a small activation cache through the library
// call (one epoch of LoRA and one of SetFit) and checks the head files, then the errors
// for options the cache cannot serve, found before any training and writing nothing.
// (The trained heads are checked against their exported graphs through pipeline
// fit-head, cmd/pipeline/top_test.go.)
func TestFitTop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	model := defaultModel(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "train.cache")
	_, err := Extract(context.Background(), ExtractOptions{Model: model.Dir, Data: testutil.Data(t, "sst2/dev.csv"), Out: cache, CutTop: 1,
		Reader: features.ReaderOptions{Limit: 32}, Session: onnx.SessionOptions{IntraOpThreads: 2}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name string
		o    FitTopOptions
	}{
		{"lora", FitTopOptions{Settings: lora.TrainSettings{Mode: lora.ModeLoRA, Epochs: 1, BatchSize: 16}}},
		{"setfit", FitTopOptions{SetFit: &lora.SetFitSettings{Iterations: 1, Epochs: 1, BatchSize: 16, LR: 2e-5}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.Train, o.Out = cache, filepath.Join(dir, c.name+".safetensors")
			sum, err := FitTop(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if sum.TopK != 1 || sum.Rows != 32 || sum.Head.Top == nil || len(sum.Head.Top.Blocks) != 1 || sum.Head.Top.Training.Mode != c.name {
				t.Errorf("top %d, %d rows, head.Top %+v; want 1 trained block (%s) on 32 rows", sum.TopK, sum.Rows, sum.Head.Top, c.name)
			}
			if _, err := os.Stat(o.Out); err != nil {
				t.Error(err)
			}
			if _, err := os.Stat(o.Out + ".ckpt"); err == nil {
				t.Error("the checkpoint was left behind")
			}
		})
	}

	ckpt := filepath.Join(dir, "interrupted.safetensors")
	if err := os.WriteFile(ckpt+".ckpt", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		o    FitTopOptions
		is   error
		msg  string
	}{
		{"deeper than the cache", FitTopOptions{TopK: 2}, ErrBadOption, "too shallow for 2"},
		{"embeddings with lora", FitTopOptions{Embeddings: true, Settings: lora.TrainSettings{Mode: lora.ModeLoRA}}, ErrBadOption, "--embeddings trains with --mode full or setfit"},
		{"unknown head init", FitTopOptions{HeadInit: "zeros"}, ErrBadOption, `--head-init "zeros"`},
		{"no setfit pairs", FitTopOptions{SetFit: &lora.SetFitSettings{}}, ErrBadOption, "--iterations 0"},
		{"checkpoint left", FitTopOptions{Out: ckpt, HeadInit: "random"}, ErrCheckpointExists, "pass --resume"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.Train = cache
			if o.Out == "" {
				o.Out = filepath.Join(dir, "refused.safetensors")
			}
			if _, err := FitTop(ctx, o); !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v; want %v with %q", err, c.is, c.msg)
			}
			if _, err := os.Stat(o.Out); err == nil {
				t.Error("a refused run wrote the head")
			}
		})
	}
}
