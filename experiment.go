package headstart

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/headstart-ml/headstart/experiment"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

// Experiment protocols (ExperimentOptions.Protocol).
const (
	ProtocolGrid = "grid"
	ProtocolMTEB = "mteb"
)

// ExperimentOptions configure RunExperiment, the whole of `pipeline experiment`. The
// zero value needs Train, Test and Out, and for the grid protocol Grid.Strategies and
// Grid.Shots.
//
// Error messages name the options by their pipeline flags (--seeds, --train); an
// invalid option is an error wrapping ErrBadOption.
type ExperimentOptions struct {
	// Model is a registry name (see models.List) or a directory holding model.onnx and
	// tokenizer.json. Default models.Default.
	Model string
	// Train and Test are labelled data files (.csv, .tsv, .jsonl); Valid, optional, is
	// the MLP's early-stopping set (default: 10% of each class held out of the training
	// draw). Each is read several times, so none may be standard input or a pipe.
	Train, Test, Valid string
	// TextCol and LabelCol name the columns (or JSON keys). Default "text", "label".
	TextCol, LabelCol string
	// Out is the experiment's directory: features/ (the cached stores, reused by a rerun
	// with the same data and settings), cells/ (finished cells), results.{csv,json,md}
	// and the plots. One run at a time may use it.
	Out string

	// Protocol is ProtocolGrid (default: every strategy × shots × seed of Grid) or
	// ProtocolMTEB (MTEB's classification protocol with MTEB's settings).
	Protocol string
	// Grid is the grid protocol's strategies, shots, seeds and shot capping (Seeds:
	// default 1). RunExperiment sets its Dir (Out/cells), Key and Threads; Progress,
	// when nil, writes a line per cell to Log.
	Grid experiment.Grid
	// Unfreeze says the strategies are an unfreezing sweep (experiment.ParseUnfreeze):
	// the results add accuracy_vs_unfrozen.png, time_vs_unfrozen.png and, with
	// Grid.MeasureMemory, memory_vs_unfrozen.png.
	Unfreeze bool
	// MTEB is the MTEB protocol's settings (defaults in experiment.MTEBSettings).
	// RunExperiment sets its Precision and Threads; Progress, when nil, writes a line
	// per experiment to Log.
	MTEB experiment.MTEBSettings
	// Precision of every logistic regression's objective (both protocols). Default
	// head.Float32, as scikit-learn on float32 embeddings.
	Precision head.Precision

	// Spec is laid over the model card's conventions (pooling, normalisation, max
	// length, text prefix); its zero value is the card's spec. The layers pooled are
	// the strategies' (the last block's for MTEB).
	Spec SpecOverride
	// BatchSize is the number of texts per forward pass. Default 32.
	BatchSize int
	// Threads bounds onnxruntime's threads and each fit's goroutines. 0 (default): one
	// per core. Results do not depend on it.
	Threads int
	// Provider is onnxruntime's execution provider. Default CPU.
	Provider onnx.Provider
	// RuntimeLib is the onnxruntime shared library (default: see onnx.FindLibrary).
	RuntimeLib string

	// Command is the command line recorded in the results.
	Command string
	// Log, when set, is told what the run does, a line at a time: features extracted or
	// reused, each cell or experiment, where the results went.
	Log io.Writer
	// NewProgress, when set, makes the progress of each extraction; desc names it
	// ("extract train", "cache test"). When the Progress has a Finish() method, it is
	// called when that extraction ends.
	NewProgress func(desc string) Progress
}

// ExperimentSummary reports what RunExperiment did: Grid's results or MTEB's.
type ExperimentSummary struct {
	Grid   *experiment.Results    // grid protocol: settings, summary rows and cells
	MTEB   *experiment.MTEBResult // MTEB protocol
	Reused int                    // grid cells found in Out/cells from an earlier run
	// Results is the results file written (Out/results.md).
	Results string
}

// RunExperiment compares strategies over training-set sizes and seeds on one frozen
// forward pass of each split (the grid protocol), or runs MTEB's classification
// protocol, and writes the results and plots into o.Out. Every option and every label
// is checked before any compute is spent; the features (and, for top-block strategies,
// the activation caches) are extracted once and reused by a rerun, as are finished
// cells, so an interrupted run continues where it stopped.
func RunExperiment(ctx context.Context, o ExperimentOptions) (sum ExperimentSummary, err error) {
	start := time.Now()
	r, err := o.plan()
	if err != nil {
		return sum, err
	}
	if err := r.checkLabels(); err != nil {
		return sum, err
	}

	// Extract (or reuse) the features of every split. One run at a time writes the
	// experiment's directory.
	if err := os.MkdirAll(filepath.Join(o.Out, "features"), 0o777); err != nil {
		return sum, err
	}
	lock, err := fileio.Lock(filepath.Join(o.Out, "experiment"))
	if err != nil {
		return sum, err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	sets, err := r.extract(ctx)
	if err != nil {
		return sum, err
	}
	r.extracted = time.Now()
	r.settings = map[string]string{
		"model":      fmt.Sprintf("%s (sha256 %s)", r.cfg.paths.Name, sets[0].Fingerprint.BackboneSHA256),
		"features":   fmt.Sprintf("%s (layers resolved %v)", r.cfg.spec, sets[0].Fingerprint.Layers),
		"machine":    machine(),
		"go":         runtime.Version(),
		"train":      fmt.Sprintf("%s (%d rows, %d classes)", o.Train, sets[0].N, len(sets[0].Classes)),
		"test":       fmt.Sprintf("%s (%d rows)", o.Test, sets[1].N),
		"extraction": extractionNote(r.splits, r.extracted.Sub(start)),
	}
	if o.Valid != "" {
		r.settings["valid"] = fmt.Sprintf("%s (%d rows; the MLP stops early on it)", o.Valid, sets[2].N)
	}
	if o.Protocol == ProtocolMTEB {
		return r.runMTEB(ctx, sets, start)
	}
	return r.runGrid(ctx, sets, start)
}

// experimentRun is one RunExperiment: its options with the defaults filled in, and
// what it has found so far.
type experimentRun struct {
	o         ExperimentOptions
	cfg       featureConfig
	classes   []string // the training data's, sorted as extract sorts them
	counts    []int    // training rows per class
	splits    []*splitFeatures
	settings  map[string]string // recorded with the results
	extracted time.Time
}

// logf writes a line to o.Log.
func (o *ExperimentOptions) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// plan fills in the defaults and checks every option, before any data is read beyond
// the model's files.
func (o ExperimentOptions) plan() (*experimentRun, error) {
	if o.Model == "" {
		o.Model = models.Default
	}
	if o.TextCol == "" {
		o.TextCol = "text"
	}
	if o.LabelCol == "" {
		o.LabelCol = "label"
	}
	if o.Protocol == "" {
		o.Protocol = ProtocolGrid
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	switch {
	case o.Protocol != ProtocolGrid && o.Protocol != ProtocolMTEB:
		return nil, badOptionf("--protocol %q unknown; want one of grid, mteb", o.Protocol)
	case o.Threads < 0:
		return nil, badOptionf("--threads %d: want 0 (one per core) or more", o.Threads)
	case o.BatchSize < 1:
		return nil, badOptionf("--batch-size %d: want at least 1", o.BatchSize)
	case o.Train == "" || o.Test == "" || o.Out == "":
		return nil, badOptionf("--train, --test and --out are required")
	}
	for _, f := range [][2]string{{"--train", o.Train}, {"--test", o.Test}, {"--valid", o.Valid}} {
		if f[1] != "" && features.SinglePass(f[1]) {
			return nil, badOptionf("%s %s: experiment reads its data several times; standard input, a pipe or a device can be read only once: save it to a file", f[0], f[1])
		}
	}
	if _, err := features.ParsePooling(o.Spec.Pooling); err != nil {
		return nil, badOption(err)
	}
	paths, err := models.Resolve(o.Model)
	if err != nil {
		return nil, err
	}
	// The model card's conventions, with the overrides over them (both protocols).
	spec, err := o.Spec.Resolve(paths, []int{-1})
	if err != nil {
		return nil, err
	}
	r := &experimentRun{o: o, cfg: featureConfig{paths: paths, spec: spec}}
	if err := CheckMaxLen(paths, spec.MaxLen); err != nil {
		return nil, err
	}
	r.o.MTEB.Precision, r.o.MTEB.Threads = o.Precision, o.Threads
	if o.Protocol == ProtocolGrid {
		if err := r.planGrid(); err != nil {
			return nil, err
		}
	}
	r.splits = []*splitFeatures{{name: "train", data: o.Train}, {name: "test", data: o.Test}}
	if o.Valid != "" {
		r.splits = append(r.splits, &splitFeatures{name: "valid", data: o.Valid})
	}
	return r, nil
}

// planGrid checks the grid's strategies and seeds against the model, and sets the
// layers the strategies pool.
func (r *experimentRun) planGrid() error {
	g, name := &r.o.Grid, r.cfg.paths.Name
	if len(g.Strategies) == 0 || len(g.Shots) == 0 {
		return badOptionf("the grid needs strategies and shots")
	}
	// The model's depth resolves MODE-all and bounds every MODE-topK.
	blocks := r.cfg.paths.Manifest.Layers
	if man, err := models.Lookup(name); err == nil && blocks == 0 {
		blocks = man.Layers
	}
	resolved, err := experiment.ResolveBlocks(g.Strategies, blocks)
	if err != nil {
		return badOptionf("%s (%s): %w", name, blocksNote(blocks), err)
	}
	g.Strategies = resolved
	if g.Seeds == 0 {
		g.Seeds = 1
	}
	if g.Seeds < 1 {
		return badOptionf("--seeds %d: want at least 1", g.Seeds)
	}
	for i := range g.Strategies {
		if g.Strategies[i].Head.Kind == head.LogReg {
			g.Strategies[i].Head.LogReg.Precision = r.o.Precision
		}
	}
	g.Dir, g.Threads = filepath.Join(r.o.Out, "cells"), r.o.Threads
	r.cfg.spec.Layers = experiment.Layers(g.Strategies)
	return nil
}

// blocksNote says how many blocks a model has, for messages.
func blocksNote(blocks int) string {
	if blocks <= 0 {
		return "number of blocks unknown"
	}
	return fmt.Sprintf("%d blocks", blocks)
}

// checkLabels reads the labels of every split: each row must have one, the test and
// validation labels must all be training labels, and the grid must fit the classes.
func (r *experimentRun) checkLabels() error {
	o := &r.o
	ro := features.ReaderOptions{TextCol: o.TextCol, LabelCol: o.LabelCol}
	var err error
	if r.classes, r.counts, err = labelCounts(o.Train, ro); err != nil {
		return err
	}
	for _, sf := range r.splits[1:] {
		have, _, err := labelCounts(sf.data, ro)
		if err != nil {
			return err
		}
		if err := experiment.UnseenLabels(r.classes, have, "--"+sf.name+" "+sf.data, o.Train); err != nil {
			return err
		}
	}
	if o.Protocol == ProtocolGrid {
		return o.Grid.Check(r.classes, r.counts, o.Valid != "")
	}
	return nil
}

// extract extracts (or reuses) the features of every split and opens them.
func (r *experimentRun) extract(ctx context.Context) ([]head.Dataset, error) {
	topK := experiment.TopK(r.o.Grid.Strategies)
	if r.o.Protocol != ProtocolGrid {
		topK = 0
	}
	for _, sf := range r.splits {
		sf.store = filepath.Join(r.o.Out, "features", sf.name+"_"+r.cfg.tag()+".safetensors")
		if err := r.ensureStore(ctx, topK, sf); err != nil {
			return nil, err
		}
	}
	var sets []head.Dataset
	for _, sf := range r.splits {
		d, err := loadDataset(sf.store)
		if err != nil {
			return nil, err
		}
		sets = append(sets, d)
	}
	return sets, nil
}

// runGrid runs the grid on the extracted sets and writes its results.
func (r *experimentRun) runGrid(ctx context.Context, sets []head.Dataset, start time.Time) (ExperimentSummary, error) {
	o, grid := &r.o, r.o.Grid
	keyParts := []string{r.cfg.tag()}
	for _, d := range sets {
		keyParts = append(keyParts, d.Fingerprint.BackboneSHA256, d.Fingerprint.TokenizerSHA256)
	}
	for _, sf := range r.splits {
		st, err := features.OpenStore(sf.store)
		if err != nil {
			return ExperimentSummary{}, err
		}
		keyParts = append(keyParts, sf.name+"="+st.Manifest.Dataset.SHA256)
	}
	grid.Key = strings.Join(keyParts, "|")
	data := &experiment.Data{Layers: r.cfg.spec.Layers, Train: sets[0], Test: sets[1]}
	if o.Valid != "" {
		data.Valid = &sets[2]
	}
	if k := experiment.TopK(grid.Strategies); k > 0 {
		t0 := time.Now()
		var err error
		if data.Tokens, err = r.topData(ctx, k, sets[0].Classes); err != nil {
			return ExperimentSummary{}, err
		}
		r.settings["activation caches"] = cacheNote(r.splits, k, time.Since(t0))
	}
	reused := 0
	progress := grid.Progress
	grid.Progress = func(e experiment.Event) {
		if e.Reused {
			reused++
		}
		if progress != nil {
			progress(e)
		} else if o.Log != nil {
			logCell(o.Log, e)
		}
	}
	cells, err := experiment.Run(ctx, grid, data)
	if err != nil {
		return ExperimentSummary{}, err
	}
	settings := r.settings
	res := experiment.Results{Command: o.Command, Settings: settings, Strategies: grid.Strategies,
		Summary: experiment.Summarize(cells, grid.Strategies...), Cells: cells}
	var fit float64
	for _, c := range cells {
		fit += c.TrainSeconds
	}
	settings["grid"] = fmt.Sprintf("%d cells (%d reused from %s), seeds %d, shots-cap %v", len(cells), reused, grid.Dir, grid.Seeds, grid.CapShots)
	if capped := cappedNote(grid, r.counts); capped != "" {
		settings["capped"] = capped
	}
	settings["wall time"] = fmt.Sprintf("%.1fs in this run (extraction %.1fs, grid %.1fs); fits of all cells %.1fs",
		time.Since(start).Seconds(), r.extracted.Sub(start).Seconds(), time.Since(r.extracted).Seconds(), fit)
	if err := writeGrid(o, res); err != nil {
		return ExperimentSummary{}, err
	}
	sum := ExperimentSummary{Grid: &res, Reused: reused, Results: filepath.Join(o.Out, "results.md")}
	o.logf("experiment: %d cells (%d reused) -> %s", len(cells), reused, sum.Results)
	return sum, nil
}

// writeGrid writes the grid's results (results.md and its data) and its plots.
func writeGrid(o *ExperimentOptions, res experiment.Results) error {
	name := dataName(o.Train)
	if err := res.WriteFiles(o.Out, "Experiment: "+name); err != nil {
		return err
	}
	if err := experiment.PlotSize(filepath.Join(o.Out, "accuracy_vs_size.png"), "Accuracy vs training-set size: "+name, res.Summary); err != nil {
		return err
	}
	if err := experiment.PlotParams(filepath.Join(o.Out, "accuracy_vs_params.png"), "Accuracy vs trainable parameters: "+name, res.Summary); err != nil {
		return err
	}
	if !o.Unfreeze {
		return nil
	}
	name = filepath.Base(o.Model) + " on " + name
	if err := experiment.PlotUnfreeze(filepath.Join(o.Out, "accuracy_vs_unfrozen.png"), "Accuracy vs unfrozen blocks: "+name, res.Summary); err != nil {
		return err
	}
	if err := experiment.PlotUnfreezeTime(filepath.Join(o.Out, "time_vs_unfrozen.png"), "Fit time vs unfrozen blocks: "+name, res.Summary); err != nil {
		return err
	}
	if !slices.ContainsFunc(res.Summary, func(s experiment.Summary) bool { return s.MemSeeds > 0 }) {
		return nil // memory not measured (Grid.MeasureMemory)
	}
	return experiment.PlotUnfreezeMemory(filepath.Join(o.Out, "memory_vs_unfrozen.png"), "Peak memory vs unfrozen blocks: "+name, res.Summary)
}

// runMTEB runs the MTEB classification protocol on the extracted train and test sets
// and writes its results.
func (r *experimentRun) runMTEB(ctx context.Context, sets []head.Dataset, start time.Time) (ExperimentSummary, error) {
	o, mteb := &r.o, r.o.MTEB
	if mteb.Progress == nil && o.Log != nil {
		mteb.Progress = func(x experiment.MTEBExperiment) {
			o.logf("experiment: mteb [%d/%d] %d rows: accuracy %.4f (%d iterations, %.2fs)",
				x.Index, mteb.Experiments, x.TrainRows, x.Accuracy, x.Iterations, x.TrainSeconds)
		}
	}
	res, err := experiment.RunMTEB(ctx, sets[0], sets[1], mteb)
	if err != nil {
		return ExperimentSummary{}, err
	}
	settings := r.settings
	settings["protocol"] = fmt.Sprintf("MTEB classification: %d experiments, %d samples per label, numpy RandomState(%d) reseeded per experiment, LogisticRegression(C=1, max_iter=100) in %s",
		res.Settings.Experiments, res.Settings.SamplesPerLabel, res.Settings.Seed, res.Settings.Precision)
	settings["wall time"] = fmt.Sprintf("%.1fs (fits %.1fs)", time.Since(start).Seconds(), res.TrainSeconds)
	if err := res.WriteFiles(o.Out, "MTEB classification protocol: "+dataName(o.Train), o.Command, settings); err != nil {
		return ExperimentSummary{}, err
	}
	return ExperimentSummary{MTEB: &res, Results: filepath.Join(o.Out, "results.md")}, nil
}

// logCell writes a line about a cell of the grid.
func logCell(w io.Writer, e experiment.Event) {
	c := e.Cell
	pos := fmt.Sprintf("experiment: [%d/%d] %s shots=%s seed=%d:", e.Index, e.Total, c.Strategy, experiment.ShotsName(c.Shots), c.Seed)
	switch {
	case e.Reused:
		fmt.Fprintf(w, "%s done earlier (accuracy %.4f)\n", pos, c.Accuracy)
	case c.Copied:
		fmt.Fprintf(w, "%s accuracy %.4f, seed 0's result (every row and a deterministic head: the seed changes nothing)\n", pos, c.Accuracy)
	default:
		eta := "done"
		if e.Index < e.Total {
			eta = "ETA " + e.ETA.Round(time.Second).String()
		}
		mem := ""
		if c.MemKind != "" {
			mem = fmt.Sprintf(", peak %s %.0f MiB (%+.0f)", c.MemKind, c.PeakMiB, c.PeakMiB-c.StartMiB)
		}
		fmt.Fprintf(w, "%s accuracy %.4f macro-F1 %.4f (%d rows, %d params, %.2fs%s); %s\n",
			pos, c.Accuracy, c.MacroF1, c.TrainRows, c.Params, c.TrainSeconds, mem, eta)
	}
}

// cappedNote says, under grid.CapShots, which shot counts took some classes whole
// (those with fewer rows; counts are the rows per class); "" when none did.
func cappedNote(grid experiment.Grid, counts []int) string {
	if !grid.CapShots {
		return ""
	}
	var capped []string
	for _, n := range grid.Shots {
		k := 0
		for _, m := range counts {
			if n != experiment.All && m < n {
				k++
			}
		}
		if k > 0 {
			capped = append(capped, fmt.Sprintf("%d shots: %d of %d classes are smaller and were used whole", n, k, len(counts)))
		}
	}
	return strings.Join(capped, "; ")
}

// dataName names a data file for titles: its directory and name, e.g. banking77/train.csv.
func dataName(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	return filepath.Join(filepath.Base(filepath.Dir(abs)), filepath.Base(abs))
}

// machine describes the computer: CPU model, cores, OS.
func machine() string {
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// featureConfig is one extraction setting of the backbone.
type featureConfig struct {
	paths models.Paths
	// spec is the model card's conventions with the overrides over them; spec.Layers
	// are negative, from the last block.
	spec features.Spec
}

// tag names the config in cache file names.
func (f featureConfig) tag() string {
	var ls []string
	for _, l := range f.spec.Layers {
		ls = append(ls, strconv.Itoa(l))
	}
	name := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(f.paths.Name, "_")
	t := fmt.Sprintf("%s_%s_L%s_len%d", name, f.spec.Pooling, strings.Join(ls, ","), f.spec.MaxLen)
	if f.spec.Normalize {
		t += "_norm"
	}
	if f.spec.Prefix != "" {
		h := sha256.Sum256([]byte(f.spec.Prefix))
		t += fmt.Sprintf("_prefix%x", h[:4])
	}
	return t
}

// labelCounts reads the labels of a data file: the classes (sorted as extract sorts
// them) and each one's row count. Every row must have a label.
func labelCounts(path string, ro features.ReaderOptions) ([]string, []int, error) {
	ro.RequireLabel = true
	r, err := features.Open(path, ro)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	counts := map[string]int{}
	for r.Next() {
		row := r.Row()
		if !row.HasLabel {
			return nil, nil, fmt.Errorf("%s: row %d (0-based) has no label; every row of --train, --test and --valid needs one", path, row.Index)
		}
		counts[row.Label]++
	}
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	if len(counts) == 0 {
		return nil, nil, fmt.Errorf("%s has no data rows", path)
	}
	// Classes as extract names them (numbers compared as numbers: "2.0" is "2").
	var raw []string
	for l := range counts {
		raw = append(raw, l)
	}
	class := features.CanonicalLabels(raw)
	merged := map[string]int{}
	for l, n := range counts {
		merged[class[l]] += n
	}
	var classes []string
	for l := range merged {
		classes = append(classes, l)
	}
	features.SortLabels(classes)
	n := make([]int, len(classes))
	for i, c := range classes {
		n[i] = merged[c]
	}
	return classes, n, nil
}

// splitFeatures is the feature store of one split.
type splitFeatures struct {
	name, data, store string
	reused            bool
	seconds           float64
	withCache         bool // the activation cache was written in the features' pass
}

// cachePath is the split's activation cache for the top k blocks.
func (sf *splitFeatures) cachePath(k int) string {
	return strings.TrimSuffix(sf.store, ".safetensors") + fmt.Sprintf("_cut%d.cache", k)
}

// cacheCurrent reports whether the activation cache at path was made from the file with
// sha256 sha with the run's settings, from its manifest alone: whether its data is
// intact is for OpenTokens, when the cache is used, to say.
func (r *experimentRun) cacheCurrent(path, sha string, k int) bool {
	m, err := features.ReadTokenManifest(path)
	if err != nil {
		return false
	}
	spec := r.cfg.spec
	return m.Dataset.SHA256 == sha && m.CutTop == k && m.MaxLen == spec.MaxLen && m.Prefix == spec.Prefix && m.Backbone.Name == r.cfg.paths.Name &&
		m.Dataset.TextCol == r.o.TextCol && m.Dataset.LabelCol == r.o.LabelCol
}

// storeCurrent reports whether the store at sf.store was made from the file with
// sha256 sha with the run's settings.
func (r *experimentRun) storeCurrent(sf *splitFeatures, sha string) bool {
	st, err := features.OpenStore(sf.store)
	if err != nil {
		return false
	}
	m, cfg := st.Manifest, r.cfg
	pinned := cfg.paths.Manifest.Files["model"].SHA256
	return m.Dataset.SHA256 == sha && m.Dataset.TextCol == r.o.TextCol && m.Dataset.LabelCol == r.o.LabelCol &&
		m.Backbone.Name == cfg.paths.Name && (pinned == "" || pinned == m.Backbone.SHA256) &&
		m.Pooling == cfg.spec.Pooling && m.Normalize == cfg.spec.Normalize && m.MaxLen == cfg.spec.MaxLen &&
		m.Prefix == cfg.spec.Prefix && len(m.Layers) == len(cfg.spec.Layers) && m.Shard == nil
}

// extractOptions are the options of an extraction of sf's data into out.
func (r *experimentRun) extractOptions(sf *splitFeatures, out string, spec features.Spec) ExtractOptions {
	lo := ExtractOptions{
		Model: r.o.Model, Data: sf.data, Out: out,
		Reader: features.ReaderOptions{TextCol: r.o.TextCol, LabelCol: r.o.LabelCol, RequireLabel: true},
		Spec:   spec, Exact: true, BatchSize: r.o.BatchSize, Resume: true, RuntimeLib: r.o.RuntimeLib,
	}
	lo.Session.Provider = r.o.Provider
	lo.Runs, lo.Session.IntraOpThreads = SplitThreads(r.o.Threads, 0, r.o.Provider)
	return lo
}

// ensureStore extracts sf's data into its store unless a store made from the same file
// with the same settings is there already. With k > 0 (top-block strategies) an
// extraction also writes the activation cache for the top k blocks from the same
// forward, unless a current one is there.
func (r *experimentRun) ensureStore(ctx context.Context, k int, sf *splitFeatures) error {
	sha, err := fileio.SHA256(sf.data)
	if err != nil {
		return err
	}
	if r.storeCurrent(sf, sha) {
		sf.reused = true
		// The extraction time of the run that made it, when recorded.
		if b, err := os.ReadFile(sf.store + ".seconds"); err == nil {
			sf.seconds, _ = strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		}
		r.o.logf("experiment: %s features: reusing %s", sf.name, sf.store)
		return nil
	}
	lo := r.extractOptions(sf, sf.store, r.cfg.spec.Clone())
	if k > 0 {
		if !r.cacheCurrent(sf.cachePath(k), sha, k) {
			lo.CutTop, lo.CacheOut = k, sf.cachePath(k)
		}
	}
	sum, err := r.extractResuming(ctx, lo, "extract "+sf.name)
	if err != nil {
		return fmt.Errorf("extracting --%s %s: %w", sf.name, sf.data, err)
	}
	sf.withCache = sum.CacheOut != ""
	sf.seconds = sum.Elapsed.Seconds()
	if err := fileio.WriteFile(sf.store+".seconds", []byte(strconv.FormatFloat(sf.seconds, 'f', 1, 64)+"\n")); err != nil {
		return err
	}
	also := ""
	if sum.CacheOut != "" {
		also = " and its activation cache -> " + sum.CacheOut
	}
	r.o.logf("experiment: %s features: %d rows (%d resumed) -> %s [%d dims, %s]%s in %.1fs",
		sf.name, sum.Rows, sum.Resumed, sf.store, sum.Dim, sum.Provider, also, sum.Elapsed.Seconds())
	return nil
}

// extractResuming runs Extract with the run's progress, continuing a checkpoint of the
// same run; a checkpoint of an earlier version of the file or settings is discarded.
func (r *experimentRun) extractResuming(ctx context.Context, lo ExtractOptions, desc string) (ExtractSummary, error) {
	if r.o.NewProgress != nil {
		p := r.o.NewProgress(desc)
		if f, ok := p.(interface{ Finish() }); ok {
			defer f.Finish()
		}
		lo.Progress = p
	}
	lo.Resume = true
	sum, err := Extract(ctx, lo)
	if errors.Is(err, features.ErrCheckpointMismatch) {
		// A checkpoint of other data or settings: start afresh (the experiment's
		// directory is locked, so no other run is using it).
		for _, out := range []string{lo.Out, lo.CacheOut} {
			if out != "" {
				os.Remove(out + ".partial.json")
				os.Remove(out + ".partial")
			}
		}
		sum, err = Extract(ctx, lo)
	}
	return sum, err
}

// topData extracts (or reuses) the activation cache of every split, cut below the top k
// blocks, and reads the pretrained weights of those blocks.
func (r *experimentRun) topData(ctx context.Context, k int, classes []string) (*experiment.TokenData, error) {
	td := &experiment.TokenData{Normalize: r.cfg.spec.Normalize}
	var manifest features.TokenManifest
	for _, sf := range r.splits {
		path := sf.cachePath(k)
		sha, err := fileio.SHA256(sf.data)
		if err != nil {
			return nil, err
		}
		var tc *features.TokenCache
		if r.cacheCurrent(path, sha, k) {
			tc, _ = features.OpenTokens(path) // a cache that does not read back is made again
		}
		if tc == nil {
			lo := r.extractOptions(sf, path, features.Spec{MaxLen: r.cfg.spec.MaxLen, Prefix: r.cfg.spec.Prefix})
			lo.CutTop = k
			sum, err := r.extractResuming(ctx, lo, "cache "+sf.name)
			if err != nil {
				return nil, fmt.Errorf("caching the activations of --%s %s: %w", sf.name, sf.data, err)
			}
			r.o.logf("experiment: %s activation cache: %d rows -> %s in %.1fs", sf.name, sum.Rows, path, sum.Elapsed.Seconds())
			if tc, err = features.OpenTokens(path); err != nil {
				return nil, err
			}
		} else if !sf.withCache {
			r.o.logf("experiment: %s activation cache: reusing %s", sf.name, path)
		}
		ex, err := CacheExamples(tc, path, classes)
		if err != nil {
			return nil, err
		}
		switch sf.name {
		case "train":
			td.Train, manifest = ex, tc.Manifest
		case "test":
			td.Test = ex
		case "valid":
			td.Valid = ex
		}
	}
	model, err := onnx.LoadModel(r.cfg.paths.Model)
	if err != nil {
		return nil, err
	}
	if td.Blocks, td.Heads, err = TopBlocks(model, manifest.CutBlock); err != nil {
		return nil, fmt.Errorf("%s: %w", r.cfg.paths.Model, err)
	}
	if experiment.Embeddings(r.o.Grid.Strategies) {
		e, err := Embeddings(model)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.cfg.paths.Model, err)
		}
		td.Embeddings = &e
	}
	return td, nil
}

// cacheNote says, for the results, how the activation caches of the top k blocks were
// made: in the features' pass, or in a pass of their own that took took.
func cacheNote(splits []*splitFeatures, k int, took time.Duration) string {
	var with, second []string
	for _, sf := range splits {
		if sf.withCache {
			with = append(with, sf.name)
		} else {
			second = append(second, sf.name)
		}
	}
	how := "written with the features, from the same forward pass"
	switch {
	case len(with) == 0:
		how = fmt.Sprintf("read or written in %.1fs (the features were there already, so a pass of their own)", took.Seconds())
	case len(second) > 0:
		how = fmt.Sprintf("%s: with the features, from the same forward pass; %s: read or written in %.1fs", strings.Join(with, ", "), strings.Join(second, ", "), took.Seconds())
	}
	return fmt.Sprintf("the states entering the top %d block(s), %s", k, how)
}

// extractionNote says how each split's features were obtained.
func extractionNote(splits []*splitFeatures, total time.Duration) string {
	var parts []string
	for _, sf := range splits {
		switch {
		case sf.reused && sf.seconds > 0:
			parts = append(parts, fmt.Sprintf("%s reused (extracted earlier in %.1fs)", sf.name, sf.seconds))
		case sf.reused:
			parts = append(parts, sf.name+" reused")
		default:
			parts = append(parts, fmt.Sprintf("%s %.1fs", sf.name, sf.seconds))
		}
	}
	return strings.Join(parts, ", ") + fmt.Sprintf("; %.1fs with the label pre-pass", total.Seconds())
}
