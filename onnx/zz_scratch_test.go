package onnx

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestScratchProbe(t *testing.T) {
	ps := strings.Split(os.Getenv("SCRATCH_MODELS"), ",")
	for _, p := range ps {
		if p == "" {
			continue
		}
		t0 := time.Now()
		in, out, err := Describe(p)
		t.Logf("%s describe %v: %v %v %v", p, time.Since(t0), in, out, err)
		t0 = time.Now()
		m, err := LoadModel(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load %v", time.Since(t0))
		t0 = time.Now()
		hs, err := m.HiddenStates()
		n, _ := m.NumLayers()
		h, _ := m.HiddenSize()
		t.Logf("hs %v %v: %q n=%d h=%d", time.Since(t0), err, hs, n, h)
	}
}
