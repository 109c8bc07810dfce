package experiment

import (
	"context"
	"errors"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/lora"
)

// TestStrategyNamesWithDepth: the strategy names of an unfreezing sweep, with K, all
// and +emb, parse to the recipe and depth they name; the others are refused with the
// forms listed.
func TestStrategyNamesWithDepth(t *testing.T) {
	cases := []struct {
		name   string
		family string
		topK   int
		emb    bool
	}{
		{"full-top3", "full", 3, false},
		{"lora-top6", "lora", 6, false},
		{"reinit-top2", "reinit", 2, false},
		{"full-all", "full", AllBlocks, false},
		{"setfit-all", "setfit", AllBlocks, false},
		{"setfit-top2", "setfit", 2, false},
		{"full-all+emb", "full", AllBlocks, true},
		{"setfit-all+emb", "setfit", AllBlocks, true},
		{"logreg", "frozen", 0, false},
	}
	for _, c := range cases {
		s, err := ParseStrategies(c.name)
		if err != nil || len(s) != 1 {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		st := s[0]
		emb := st.Top != nil && st.Top.Embeddings
		if st.Name != c.name || st.Family() != c.family || st.Unfrozen() != c.topK || emb != c.emb {
			t.Errorf("%s: name %s family %s unfrozen %d embeddings %v; want %s %d %v", c.name, st.Name, st.Family(), st.Unfrozen(), emb, c.family, c.topK, c.emb)
		}
		if c.family == "setfit" && (st.Top.SetFit == nil || st.Top.SetFit.Iterations != 20 || st.Top.SetFit.LR != 2e-5) {
			t.Errorf("%s: SetFit recipe %+v; want setfit's defaults", c.name, st.Top.SetFit)
		}
	}
	for _, bad := range []string{"lora-all+emb", "reinit-top6+emb", "full-all+embeddings", "setfit-top0", "full-every", "setfit"} {
		if _, err := ParseStrategies(bad); !errors.Is(err, ErrUnknownStrategy) || !strings.Contains(err.Error(), "full-all+emb") {
			t.Errorf("%s: %v; want ErrUnknownStrategy listing the forms", bad, err)
		}
	}
	// The recipes of full-topK did not change with the new names: cells computed before
	// are reused (their key hashes the strategy).
	s, _ := ParseStrategies("full-top3")
	if !strings.HasPrefix(s[0].About, "every weight of the top 3 blocks and a linear head,") || s[0].Top.Embeddings || s[0].Top.SetFit != nil {
		t.Errorf("full-top3: %+v", s[0])
	}
}

// TestParseUnfreeze: --unfreeze takes block counts, "all" and strategy names.
func TestParseUnfreeze(t *testing.T) {
	s, err := ParseUnfreeze("0, 1,2,3,all,full-all+emb,setfit-all")
	var names []string
	for _, x := range s {
		names = append(names, x.Name)
	}
	if want := []string{"logreg", "full-top1", "full-top2", "full-top3", "full-all", "full-all+emb", "setfit-all"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("ParseUnfreeze = %v, %v; want %v", names, err, want)
	}
	for _, c := range []struct{ in, msg string }{{"0,-1", "0 or more"}, {"0,x", `--unfreeze "logreg,x": "x" unknown`}, {",", "--unfreeze"}} {
		if _, err := ParseUnfreeze(c.in); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseUnfreeze(%q) = %v; want an error mentioning %q", c.in, err, c.msg)
		}
	}
}

// TestResolveBlocks: MODE-all becomes the model's depth; too deep a strategy, the
// embeddings without every block, or MODE-all with an unknown depth are refused.
func TestResolveBlocks(t *testing.T) {
	s, _ := ParseStrategies("logreg,full-top2,full-all,setfit-all+emb")
	r, err := ResolveBlocks(s, 6)
	if err != nil || r[2].Top.TopK != 6 || r[3].Top.TopK != 6 || r[1].Top.TopK != 2 || TopK(r) != 6 {
		t.Fatalf("ResolveBlocks: %v, %v", r, err)
	}
	if s[2].Top.TopK != AllBlocks {
		t.Errorf("ResolveBlocks modified its argument: %+v", s[2].Top)
	}
	for _, c := range []struct {
		names  string
		blocks int
		msg    string
	}{
		{"full-top7", 6, "trains the top 7 blocks; the model has 6"},
		{"lora-top13", 12, "the model has 12"},
		{"full-top3+emb", 6, "must train all 6 blocks"},
		{"full-all", 0, "number of blocks is unknown"},
	} {
		s, err := ParseStrategies(c.names)
		if err == nil {
			_, err = ResolveBlocks(s, c.blocks)
		}
		if c.names == "full-top3+emb" && err != nil && errors.Is(err, ErrUnknownStrategy) {
			t.Errorf("%s: %v: the name parses; ResolveBlocks refuses it", c.names, err)
			continue
		}
		if !errors.Is(err, ErrBadGrid) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s on %d blocks: %v; want ErrBadGrid mentioning %q", c.names, c.blocks, err, c.msg)
		}
	}
}

// TestCheckSetFit: SetFit needs two training rows of every class in every draw, and
// like every strategy two classes; both are refused before any compute.
func TestCheckSetFit(t *testing.T) {
	setfit, _ := ParseStrategies("logreg,setfit-top1")
	cases := []struct {
		name    string
		classes []string
		counts  []int
		shots   []int
		cap     bool
		msg     string
	}{
		{"fits", []string{"a", "b"}, []int{5, 5}, []int{2, 4, All}, false, ""},
		{"one shot", []string{"a", "b"}, []int{5, 5}, []int{2, 1}, false, `leaves 1 of class "a"`},
		{"a class of one row", []string{"a", "lonely"}, []int{5, 1}, []int{4}, true, `leaves 1 of class "lonely"`},
		{"one class", []string{"a"}, []int{5}, []int{2}, false, "at least two"},
	}
	for _, c := range cases {
		g := Grid{Strategies: setfit, Shots: c.shots, CapShots: c.cap}
		err := g.Check(c.classes, c.counts, false)
		if c.msg == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadGrid) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v; want ErrBadGrid mentioning %q", c.name, err, c.msg)
		}
	}
}

// toyTokens returns data of 2 classes whose activation caches enter a toy stack of
// `blocks` blocks (width 8, 2 heads) with embedding tables for the input ids: the rows
// of class 1 have larger ids, so the classes can be told apart.
func toyTokens(blocks int) *Data {
	rng := rand.New(rand.NewPCG(5, 6))
	const c = 8
	split := func(name string, n int, seed uint64) (*lora.Examples, []int) {
		ds := synthetic(name, []int{n, n}, 2, 1, 4, seed)
		ex := &lora.Examples{Offsets: []int64{0}, Labels: ds.Labels}
		for _, l := range ds.Labels {
			k := 2 + rng.IntN(3)
			for range k {
				ex.IDs = append(ex.IDs, int64(1+10*l+rng.IntN(10)))
				for range c {
					ex.Hidden = append(ex.Hidden, float32(rng.NormFloat64())+float32(l))
				}
			}
			ex.Offsets = append(ex.Offsets, ex.Offsets[len(ex.Offsets)-1]+int64(k))
		}
		return ex, ds.Labels
	}
	d := &Data{Layers: []int{-1}, Train: synthetic("train", []int{6, 6}, 2, 1, 4, 20), Test: synthetic("test", []int{5, 5}, 2, 1, 4, 21)}
	tr, _ := split("train", 6, 20)
	te, _ := split("test", 5, 21)
	var ws []lora.Weights[float32]
	for range blocks {
		ws = append(ws, toyWeights(rng, c, 16))
	}
	table := func(rows int) []float32 {
		x := make([]float32, rows*c)
		for i := range x {
			x[i] = float32(0.5 * rng.NormFloat64())
		}
		return x
	}
	emb := &lora.EmbeddingWeights[float32]{Word: table(21), Position: table(8), TokenType: table(2),
		Norm: lora.LayerNorm[float32]{Gamma: slices.Repeat([]float32{1}, c), Beta: make([]float32, c), Eps: 1e-12}}
	d.Tokens = &TokenData{Blocks: ws, Heads: 2, Train: tr, Test: te, Embeddings: emb, Normalize: true}
	return d
}

// TestRunSweepStrategies runs every kind of sweep strategy on a toy stack of 2 blocks:
// each cell is scored, trains the parameters it names and records its memory; the
// summary knows each strategy's family and depth, and the three sweep plots are drawn.
func TestRunSweepStrategies(t *testing.T) {
	data := toyTokens(2)
	s, err := ParseUnfreeze("0,1,all,full-all+emb,setfit-all,setfit-all+emb")
	if err == nil {
		s, err = ResolveBlocks(s, 2)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range s { // a short recipe: the toy needs no more
		if s[i].Top != nil {
			s[i].Top.MinSteps, s[i].Top.MaxEpochs = 2, 2
			if s[i].Top.SetFit != nil {
				s[i].Top.SetFit.Iterations = 2
			}
		}
	}
	cells, err := Run(context.Background(), Grid{Strategies: s, Shots: []int{2, 4}, Seeds: 2, MeasureMemory: true}, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2*len(s)*2 {
		t.Fatalf("%d cells", len(cells))
	}
	perBlock := 4*(8*8+8) + 8*16 + 16 + 16*8 + 8 + 4*8
	embParams := (21+8+2)*8 + 2*8
	params := map[string]int{
		"logreg": 4 + 1, "full-top1": perBlock + 2*8 + 2, "full-all": 2*perBlock + 2*8 + 2, "full-all+emb": 2*perBlock + 2*8 + 2 + embParams,
		"setfit-all": 2*perBlock + 8 + 1, "setfit-all+emb": 2*perBlock + embParams + 8 + 1,
	}
	for _, c := range cells {
		if !(c.Accuracy >= 0 && c.Accuracy <= 1) || c.TestRows != 10 || c.MemKind == "" || !(c.PeakMiB >= c.StartMiB) || c.Params != params[c.Strategy] {
			t.Errorf("cell %+v; want %d params, a test accuracy and memory", c, params[c.Strategy])
		}
	}
	sum := Summarize(cells, s...)
	for _, x := range sum {
		want := map[string]int{"logreg": 0, "full-top1": 1}[x.Strategy]
		if x.Family != "frozen" && x.Strategy != "full-top1" {
			want = 2
		}
		if x.Unfrozen != want || x.Embeddings != strings.HasSuffix(x.Strategy, "+emb") || x.MemSeeds != 2 || x.Seeds != 2 {
			t.Errorf("summary %+v; want %d blocks", x, want)
		}
	}
	dir := t.TempDir()
	for name, plot := range map[string]func(string, string, []Summary) error{
		"accuracy.png": PlotUnfreeze, "time.png": PlotUnfreezeTime, "memory.png": PlotUnfreezeMemory,
	} {
		path := filepath.Join(dir, name)
		if err := plot(path, "t", sum); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 300 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	lines, maxBlocks := unfreezeLines(sum)
	if maxBlocks != 2 || len(lines) != 4 { // full and setfit at 2 sizes
		t.Errorf("%d lines up to %d blocks; want 4 up to 2", len(lines), maxBlocks)
	}
	for _, l := range lines {
		if l.pts[0].Strategy != "logreg" {
			t.Errorf("line %s/%d starts at %s; want logreg (0 blocks)", l.family, l.shots, l.pts[0].Strategy)
		}
	}
}

// TestRunRefusesShallowCaches: a strategy deeper than the activation caches, or one
// that trains the embeddings without them, fails before any cell is computed.
func TestRunRefusesShallowCaches(t *testing.T) {
	for _, c := range []struct {
		names string
		edit  func(*Data)
		msg   string
	}{
		{"logreg,full-top3", func(*Data) {}, "cut below the top 2"},
		{"full-top2+emb", func(d *Data) { d.Tokens.Embeddings = nil }, "must hold the input ids"},
		{"full-top1", func(d *Data) { d.Tokens = nil }, "needs the activation caches"},
	} {
		data := toyTokens(2)
		c.edit(data)
		s, err := ParseStrategies(c.names)
		if err != nil {
			t.Fatal(err)
		}
		computed := 0
		_, err = Run(context.Background(), Grid{Strategies: s, Shots: []int{2}, Progress: func(Event) { computed++ }}, data)
		if !errors.Is(err, ErrData) || !strings.Contains(err.Error(), c.msg) || computed != 0 {
			t.Errorf("%s: %v after %d cells; want ErrData mentioning %q before any cell", c.names, err, computed, c.msg)
		}
	}
}
