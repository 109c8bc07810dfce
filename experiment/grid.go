package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/lora"

	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/internal/memstat"
)

// cellVersion is the version of the cell files; cells of another version are
// recomputed.
const cellVersion = 1

// Grid configures Run. The zero value is not usable: Strategies and Shots are needed.
type Grid struct {
	// Strategies to compare (ParseStrategies).
	Strategies []Strategy
	// Shots are the training-set sizes in rows per class (All for every row).
	Shots []int
	// Seeds is the number of seeds per cell, 0, 1, …, Seeds−1: they draw the training
	// rows (Sample) and seed the heads. Default 1.
	Seeds int
	// CapShots takes every row of a class smaller than the shot count instead of
	// failing with ErrShotsTooLarge.
	CapShots bool
	// Dir, when set, is the directory of the cell files (one JSON file per finished
	// cell, written atomically): Run skips the cells found there with the same Key and
	// recomputes the others.
	Dir string
	// Key identifies the data (the stores' datasets and extraction settings); cells
	// computed with another key are recomputed, not reused.
	Key string
	// Threads bounds the goroutines of each fit. Default runtime.GOMAXPROCS(0). Results
	// do not depend on it.
	Threads int
	// Progress, when set, is told about each cell as it is skipped or finished.
	Progress func(Event)
	// MeasureMemory records each computed cell's peak memory during its fit
	// (Cell.PeakMiB; package internal/memstat: the process's peak RSS on Linux, else the
	// Go heap's high-water mark). It collects the garbage before every fit.
	MeasureMemory bool
}

// Event reports one cell of the grid.
type Event struct {
	Index, Total int  // the cell's position in the grid, from 1
	Cell         Cell // the cell's result
	Reused       bool // found in Dir, not recomputed
	// ETA estimates the time left for the cells still to compute, from the wall time
	// of the cells computed so far, scaled by each cell's work (see etaModel); 0 when
	// unknown or none is left.
	ETA time.Duration
}

// Cell is the result of one strategy fitted on one draw of training rows.
type Cell struct {
	Version  int    `json:"version"`
	Key      string `json:"key"` // Grid.Key, the strategy's settings, shots and seed, hashed
	Strategy string `json:"strategy"`
	Shots    int    `json:"shots"` // rows per class; 0 (All) for every row
	Seed     int    `json:"seed"`
	// TrainRows is the number of training rows drawn (with the MLP's held-out rows).
	TrainRows int     `json:"train_rows"`
	TestRows  int     `json:"test_rows"`
	Accuracy  float64 `json:"accuracy"`
	MacroF1   float64 `json:"macro_f1"`
	// Params is the number of trainable parameters of the head (weights and biases).
	Params int `json:"params"`
	// TrainSeconds is the wall time of the fit (not of the evaluation).
	TrainSeconds float64 `json:"train_seconds"`
	// Iterations and Converged describe a logistic regression's solver; Epochs and
	// BestEpoch an MLP's training.
	Iterations int  `json:"iterations,omitempty"`
	Converged  bool `json:"converged"`
	Epochs     int  `json:"epochs,omitempty"`
	BestEpoch  int  `json:"best_epoch,omitempty"`
	// PeakMiB is the peak memory during the fit and StartMiB the memory when it began,
	// in MiB, of the kind MemKind ("rss": the process's resident set; "go-heap": the
	// Go heap); 0 and "" when not measured (Grid.MeasureMemory).
	PeakMiB  float64 `json:"peak_mib,omitempty"`
	StartMiB float64 `json:"start_mib,omitempty"`
	MemKind  string  `json:"mem_kind,omitempty"`
	// Copied marks a cell whose result cannot depend on its seed (every training row,
	// and a head whose fit draws no random numbers: a logistic regression with a fixed
	// C): it holds seed 0's result, scores and fit time, instead of an identical refit.
	Copied bool `json:"copied,omitempty"`
}

// cellSpec is a cell to compute.
type cellSpec struct {
	strategy Strategy
	shots    int
	seed     int
	rows     int // training rows the draw will hold
}

// seedFree reports whether the cell's result cannot depend on its seed (see
// Cell.Copied).
func (sp cellSpec) seedFree() bool {
	return sp.strategy.Top == nil && sp.shots == All && sp.strategy.Head.Kind == head.LogReg && !sp.strategy.Head.LogReg.AutoC
}

func (g *Grid) setDefaults() error {
	if g.Seeds == 0 {
		g.Seeds = 1
	}
	switch {
	case len(g.Strategies) == 0:
		return fmt.Errorf("%w: no strategy", ErrBadGrid)
	case len(g.Shots) == 0:
		return fmt.Errorf("%w: no shot count", ErrBadGrid)
	case g.Seeds < 1:
		return fmt.Errorf("%w: --seeds %d; want at least 1", ErrBadGrid, g.Seeds)
	}
	for _, n := range g.Shots {
		if n < 0 {
			return fmt.Errorf("%w: --shots %d; want a positive number or all", ErrBadGrid, n)
		}
	}
	return nil
}

// Check validates the grid against the training classes and their row counts, and
// whether validation data is given, before any compute is spent: a shot count above
// the smallest class (ErrShotsTooLarge, naming the class, unless CapShots), and an MLP
// whose draws leave fewer than two rows of some class to split for early stopping
// without validation data (ErrTooFewForValidation).
func (g *Grid) Check(classes []string, counts []int, haveValid bool) error {
	if err := g.setDefaults(); err != nil {
		return err
	}
	if len(classes) < 2 {
		return fmt.Errorf("%w: the training data has %d class(es); a classifier needs at least two", ErrBadGrid, len(classes))
	}
	small := 0 // the smallest class
	for c, n := range counts {
		if n < counts[small] {
			small = c
		}
	}
	for _, n := range g.Shots {
		if n == All || n <= counts[small] {
			continue
		}
		if !g.CapShots {
			var fewer []string
			for c, m := range counts {
				if m < n {
					fewer = append(fewer, fmt.Sprintf("%q (%d)", classes[c], m))
				}
			}
			return fmt.Errorf("%w: --shots %d: class %q has only %d training rows (the smallest class; %d of %d classes have fewer than %d: %s); pass --shots-cap to use every row of the smaller classes, or lower --shots",
				ErrShotsTooLarge, n, classes[small], counts[small], len(fewer), len(classes), n, clip(fewer, 10))
		}
	}
	for _, s := range g.Strategies {
		if s.Top == nil || s.Top.SetFit == nil {
			continue
		}
		if n, per, under := shotUnderTwo(g.Shots, counts[small]); under {
			return fmt.Errorf("%w: strategy %s trains on pairs of examples of the same class, which needs at least 2 training rows per class; --shots %s leaves %d of class %q",
				ErrBadGrid, s.Name, ShotsName(n), per, classes[small])
		}
	}
	if haveValid {
		return nil
	}
	for _, s := range g.Strategies {
		if !s.NeedsHoldout() {
			continue
		}
		if n, per, under := shotUnderTwo(g.Shots, counts[small]); under {
			return fmt.Errorf("%w: strategy %s stops early on a held-out part (10%%) of each class, which needs at least 2 training rows per class; --shots %s leaves %d of class %q; pass --valid FILE, or use more shots",
				ErrTooFewForValidation, s.Name, ShotsName(n), per, classes[small])
		}
	}
	return nil
}

// shotUnderTwo returns the first training-set size of shots that leaves the smallest class
// (smallest rows) with fewer than 2 training rows, and how many it leaves; under is false when
// every size leaves at least 2.
func shotUnderTwo(shots []int, smallest int) (n, per int, under bool) {
	for _, n := range shots {
		per := smallest
		if n != All {
			per = min(n, per)
		}
		if per < 2 {
			return n, per, true
		}
	}
	return 0, 0, false
}

// clip joins at most n items, saying how many more there are.
func clip(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(", … (%d more)", len(items)-n)
}

// Run fits and scores every cell of the grid on data, in the order shots, strategy,
// seed (small training sets first), and returns the cells in that order. With Dir set,
// each finished cell is saved there and cells already there (same Key) are reused, so
// a run cancelled through ctx (or killed) resumes where it stopped; the results do
// not depend on the interruption.
func Run(ctx context.Context, g Grid, data *Data) ([]Cell, error) {
	if err := data.check(); err != nil {
		return nil, err
	}
	if err := data.checkTop(g.Strategies); err != nil {
		return nil, err
	}
	counts := classCounts(data.Train.Labels, len(data.Train.Classes))
	if err := g.Check(data.Train.Classes, counts, data.Valid != nil); err != nil {
		return nil, err
	}
	if g.Dir != "" {
		if err := os.MkdirAll(g.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	var specs []cellSpec
	for _, n := range g.Shots {
		rows := data.Train.N
		if n != All {
			rows = 0
			for _, m := range counts {
				rows += min(n, m)
			}
		}
		for _, s := range g.Strategies {
			for seed := range g.Seeds {
				specs = append(specs, cellSpec{strategy: s, shots: n, seed: seed, rows: rows})
			}
		}
	}

	// Views of the splits per layer set, made when first needed.
	type views struct{ train, test, valid *head.Dataset }
	byLayers := map[string]*views{}
	viewFor := func(layers []int) (*views, error) {
		k := fmt.Sprint(layers)
		if v, ok := byLayers[k]; ok {
			return v, nil
		}
		tr, err := data.view(&data.Train, layers)
		if err != nil {
			return nil, err
		}
		te, err := data.view(&data.Test, layers)
		if err != nil {
			return nil, err
		}
		v := &views{train: &tr, test: &te}
		if data.Valid != nil {
			va, err := data.view(data.Valid, layers)
			if err != nil {
				return nil, err
			}
			v.valid = &va
		}
		byLayers[k] = v
		return v, nil
	}

	cells := make([]Cell, len(specs))
	done := make([]bool, len(specs))
	for i, sp := range specs {
		if c, ok := g.load(sp); ok {
			cells[i], done[i] = c, true
		}
	}
	// The time left is predicted from the cells computed in this run (etaModel).
	var model etaModel
	eta := func() time.Duration {
		left := 0.0
		for i, sp := range specs {
			if done[i] || (sp.seedFree() && sp.seed > 0) {
				continue
			}
			secs, ok := model.predict(sp)
			if !ok {
				return 0
			}
			left += secs
		}
		return time.Duration(left * float64(time.Second))
	}
	for i, sp := range specs {
		if done[i] {
			if g.Progress != nil {
				g.Progress(Event{Index: i + 1, Total: len(specs), Cell: cells[i], Reused: true})
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			if g.Dir == "" {
				return nil, fmt.Errorf("experiment interrupted before cell %d of %d: %w", i+1, len(specs), err)
			}
			return nil, fmt.Errorf("experiment interrupted before cell %d of %d (finished cells are kept in %s; rerun to continue): %w", i+1, len(specs), g.Dir, err)
		}
		var c Cell
		start := time.Now()
		if j := i - sp.seed; sp.seedFree() && sp.seed > 0 {
			// Seeds are innermost: cell j is this one's seed 0, done before it.
			c = cells[j]
			c.Seed, c.Key, c.Copied = sp.seed, g.key(sp), true
		} else {
			var err error
			if sp.strategy.Top != nil {
				c, err = g.fitTop(ctx, sp, data)
			} else {
				var v *views
				if v, err = viewFor(sp.strategy.Layers); err != nil {
					return nil, err
				}
				c, err = g.fit(sp, v.train, v.test, v.valid)
			}
			if err != nil {
				return nil, fmt.Errorf("cell %s shots=%s seed=%d: %w", sp.strategy.Name, ShotsName(sp.shots), sp.seed, err)
			}
			model.add(sp, time.Since(start).Seconds())
		}
		if err := g.save(c); err != nil {
			return nil, err
		}
		cells[i], done[i] = c, true
		if g.Progress != nil {
			g.Progress(Event{Index: i + 1, Total: len(specs), Cell: c, ETA: eta()})
		}
	}
	return cells, nil
}

// key hashes what determines a cell's result.
func (g *Grid) key(sp cellSpec) string {
	settings, _ := json.Marshal(sp.strategy)
	h := sha256.New()
	fmt.Fprintf(h, "v%d\x00%s\x00%s\x00shots=%d\x00seed=%d\x00cap=%v", cellVersion, g.Key, settings, sp.shots, sp.seed, g.CapShots)
	return hex.EncodeToString(h.Sum(nil))
}

// cellPath is the file of a cell in Dir.
func (g *Grid) cellPath(strategy string, shots, seed int) string {
	return filepath.Join(g.Dir, fmt.Sprintf("%s_shots-%s_seed-%d.json", strategy, ShotsName(shots), seed))
}

// load returns the saved cell of sp when Dir holds one with the same key.
func (g *Grid) load(sp cellSpec) (Cell, bool) {
	if g.Dir == "" {
		return Cell{}, false
	}
	b, err := os.ReadFile(g.cellPath(sp.strategy.Name, sp.shots, sp.seed))
	if err != nil {
		return Cell{}, false
	}
	var c Cell
	if json.Unmarshal(b, &c) != nil || c.Version != cellVersion || c.Key != g.key(sp) {
		return Cell{}, false
	}
	return c, true
}

// save writes a cell to Dir atomically.
func (g *Grid) save(c Cell) error {
	if g.Dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return fileio.WriteFile(g.cellPath(c.Strategy, c.Shots, c.Seed), append(b, '\n'))
}

// fit trains and scores one cell.
func (g *Grid) fit(sp cellSpec, train, test, valid *head.Dataset) (Cell, error) {
	rows := Sample(train.Labels, len(train.Classes), sp.shots, uint64(sp.seed))
	tr := *train
	if sp.shots != All {
		tr = subset(train, rows)
	}
	o := sp.strategy.Head
	seed := uint64(sp.seed)
	switch o.Kind {
	case head.LogReg:
		o.LogReg.Seed, o.LogReg.Threads = seed, g.Threads
	case head.MLP:
		o.MLP.Seed, o.MLP.Threads = seed, g.Threads
	}
	probe := g.startProbe()
	start := time.Now()
	h, err := head.Fit(tr, valid, o)
	elapsed := time.Since(start)
	mem := probe.stop()
	if err != nil {
		return Cell{}, err
	}
	r, err := h.Evaluate(test)
	if err != nil {
		return Cell{}, err
	}
	c := Cell{
		Version: cellVersion, Key: g.key(sp), Strategy: sp.strategy.Name, Shots: sp.shots, Seed: sp.seed,
		TrainRows: tr.N, TestRows: r.N, Accuracy: r.Accuracy, MacroF1: r.MacroF1, Params: Params(h),
		TrainSeconds: elapsed.Seconds(), Converged: h.Summary.Converged,
	}
	mem.record(&c)
	if h.Kind == head.MLP {
		c.Epochs, c.BestEpoch = h.Summary.Epochs, h.Summary.BestEpoch
	} else {
		c.Iterations = h.Summary.Iterations
	}
	return c, nil
}

// fitTop trains and scores one cell of a top-block strategy.
func (g *Grid) fitTop(ctx context.Context, sp cellSpec, data *Data) (Cell, error) {
	t := data.Tokens
	ts := sp.strategy.Top
	if ts.TopK < len(t.Blocks) { // the deepest cut feeds the shallower strategies
		var err error
		if t, err = data.advanced(ts.TopK); err != nil {
			return Cell{}, err
		}
	}
	c := t.Blocks[0].Query.In
	rows := Sample(data.Train.Labels, len(data.Train.Classes), sp.shots, uint64(sp.seed))
	train := t.Train
	if sp.shots != All {
		train = subsetExamples(t.Train, rows, c)
	}
	if ts.SetFit != nil {
		return g.fitSetFit(ctx, sp, t, train, data.Train.Classes)
	}
	s := ts.Train
	s.Seed, s.Heads, s.Epochs = uint64(sp.seed), t.Heads, ts.epochs(train.Len())
	if ts.Embeddings {
		s.Embeddings = t.Embeddings
	}
	probe := g.startProbe()
	start := time.Now()
	if ts.HeadInit == "logreg" {
		var err error
		if s.HeadW, s.HeadB, err = head.LinearProbe(t.Blocks, t.Heads, train, data.Train.Classes, g.Threads); err != nil {
			return Cell{}, err
		}
		s.HeadInit = "logreg"
	}
	res, err := lora.Train(ctx, t.Blocks, len(data.Train.Classes), train, t.Valid, s)
	elapsed := time.Since(start)
	mem := probe.stop()
	if err != nil {
		return Cell{}, err
	}
	probs := make([]float32, t.Test.Len()*len(data.Train.Classes))
	if err := res.Stack.Probs(probs, t.Test, 64); err != nil {
		return Cell{}, err
	}
	k := len(data.Train.Classes)
	pred := make([]int, t.Test.Len())
	head.ArgmaxRows(pred, probs, k)
	r := head.NewReport(data.Train.Classes, t.Test.Labels, pred, probs)
	cell := Cell{
		Version: cellVersion, Key: g.key(sp), Strategy: sp.strategy.Name, Shots: sp.shots, Seed: sp.seed,
		TrainRows: train.Len(), TestRows: t.Test.Len(), Accuracy: r.Accuracy, MacroF1: r.MacroF1, Params: res.Trainable,
		TrainSeconds: elapsed.Seconds(), Converged: true, Epochs: len(res.History), BestEpoch: res.BestEpoch,
	}
	mem.record(&cell)
	return cell, nil
}

// fitSetFit trains and scores one cell of a setfit strategy: the blocks (and the
// embeddings with "+emb") fine-tuned contrastively on pairs of train (lora.SetFit), then
// a logistic regression (C=1) on the mean-pooled, fine-tuned embeddings (normalised as
// the model card says, t.Normalize), scored on the test split's embeddings. The fit
// time and memory cover both stages.
func (g *Grid) fitSetFit(ctx context.Context, sp cellSpec, t *TokenData, train *lora.Examples, classes []string) (Cell, error) {
	ts := sp.strategy.Top
	fs := lora.SetFitSettings{Iterations: ts.SetFit.Iterations, Epochs: ts.SetFit.Epochs, BatchSize: ts.SetFit.BatchSize,
		LR: ts.SetFit.LR, Warmup: ts.SetFit.Warmup, Heads: t.Heads, Seed: uint64(sp.seed)}
	if ts.Embeddings {
		fs.Embeddings = t.Embeddings
	}
	probe := g.startProbe()
	start := time.Now()
	res, err := lora.SetFit(ctx, t.Blocks, train, fs)
	if err != nil {
		probe.stop()
		return Cell{}, err
	}
	hid := res.Blocks[0].Query.In
	st, err := lora.NewStack(res.Blocks, t.Heads, make([]float32, 2*hid), make([]float32, 2))
	if err != nil {
		probe.stop()
		return Cell{}, err
	}
	if res.Embeddings != nil {
		if err := st.SetEmbeddings(*res.Embeddings); err != nil {
			probe.stop()
			return Cell{}, err
		}
	}
	st.Normalize = t.Normalize
	pooled := func(ex *lora.Examples) (head.Dataset, error) {
		x := make([]float32, ex.Len()*hid)
		err := st.Pooled(x, ex, 64)
		return head.Dataset{N: ex.Len(), D: hid, X: x, Labels: ex.Labels, Classes: classes, Name: "setfit embeddings"}, err
	}
	tr, err := pooled(train)
	if err != nil {
		probe.stop()
		return Cell{}, err
	}
	h, err := head.FitLogReg(tr, head.LogRegSettings{Threads: g.Threads})
	elapsed := time.Since(start)
	mem := probe.stop()
	if err != nil {
		return Cell{}, fmt.Errorf("setfit head: %w", err)
	}
	te, err := pooled(t.Test)
	if err != nil {
		return Cell{}, err
	}
	r, err := h.Evaluate(&te)
	if err != nil {
		return Cell{}, err
	}
	cell := Cell{
		Version: cellVersion, Key: g.key(sp), Strategy: sp.strategy.Name, Shots: sp.shots, Seed: sp.seed,
		TrainRows: train.Len(), TestRows: r.N, Accuracy: r.Accuracy, MacroF1: r.MacroF1, Params: res.Trainable + Params(h),
		TrainSeconds: elapsed.Seconds(), Converged: h.Summary.Converged, Epochs: len(res.History),
	}
	mem.record(&cell)
	return cell, nil
}

// memProbe measures a fit's memory when the grid asks for it (MeasureMemory).
type memProbe struct{ p *memstat.Probe }

// memResult is what a memProbe measured; the zero value records nothing.
type memResult struct {
	peak, start uint64
	kind        memstat.Kind
}

func (g *Grid) startProbe() memProbe {
	if !g.MeasureMemory {
		return memProbe{}
	}
	return memProbe{memstat.Start()}
}

func (m memProbe) stop() memResult {
	if m.p == nil {
		return memResult{}
	}
	peak, start, kind := m.p.Stop()
	return memResult{peak, start, kind}
}

func (m memResult) record(c *Cell) {
	if m.kind == "" {
		return
	}
	c.PeakMiB, c.StartMiB, c.MemKind = float64(m.peak)/(1<<20), float64(m.start)/(1<<20), string(m.kind)
}

// Params counts a head's trainable parameters: the weights and biases of its layers
// (a standardisation's mean and deviation are fitted statistics, not counted).
func Params(h *head.Head) int {
	n := 0
	for _, l := range h.Layers {
		n += len(l.W) + len(l.B)
	}
	return n
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// etaModel predicts how long the cells left will take from the wall time (training and
// scoring) of the cells computed so far. A cell's cost is taken as proportional to its
// work: training rows, times the epochs for the top-block strategies, whose small
// training sets run extra epochs (MinSteps); rows alone would make the first,
// smallest cells predict far too much for the large ones.
type etaModel struct {
	obs []etaObs
}

type etaObs struct {
	strategy   string
	shots      int
	work, secs float64
}

// cellWork is the unit a cell's time is taken as proportional to.
func cellWork(sp cellSpec) float64 {
	if t := sp.strategy.Top; t != nil && t.SetFit != nil { // pairs of rows
		return float64(sp.rows * 2 * max(t.SetFit.Iterations, 1) * max(t.SetFit.Epochs, 1))
	}
	if t := sp.strategy.Top; t != nil {
		return float64(sp.rows * t.epochs(sp.rows))
	}
	return float64(max(sp.rows, 1))
}

func (m *etaModel) add(sp cellSpec, secs float64) {
	m.obs = append(m.obs, etaObs{sp.strategy.Name, sp.shots, cellWork(sp), secs})
}

// predict returns the seconds sp should take: the mean of the same strategy's cells at
// the same shots (other seeds); else the same strategy's cell of the nearest work,
// scaled to sp's work; else the seconds per unit of work of every cell so far, scaled.
// ok is false before any cell is done.
func (m *etaModel) predict(sp cellSpec) (secs float64, ok bool) {
	if len(m.obs) == 0 {
		return 0, false
	}
	work := cellWork(sp)
	var same, n float64
	var nearest *etaObs
	var totalSecs, totalWork float64
	for i := range m.obs {
		o := &m.obs[i]
		totalSecs += o.secs
		totalWork += o.work
		if o.strategy != sp.strategy.Name {
			continue
		}
		if o.shots == sp.shots {
			same += o.secs
			n++
		}
		if nearest == nil || math.Abs(math.Log(o.work/work)) < math.Abs(math.Log(nearest.work/work)) {
			nearest = o
		}
	}
	switch {
	case n > 0:
		return same / n, true
	case nearest != nil:
		return nearest.secs * work / nearest.work, true
	default:
		return totalSecs * work / totalWork, true
	}
}
