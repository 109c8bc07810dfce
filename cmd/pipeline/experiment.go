package main

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
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/headstart-ml/headstart"
	"github.com/headstart-ml/headstart/experiment"
	"github.com/headstart-ml/headstart/features"
	"github.com/headstart-ml/headstart/head"
	"github.com/headstart-ml/headstart/internal/fileio"
	"github.com/headstart-ml/headstart/models"
	"github.com/headstart-ml/headstart/onnx"
)

type experimentOptions struct {
	Model                string
	Train, Test, Valid   string
	TextCol, LabelCol    string
	Out                  string
	Strategies, Shots    string
	Unfreeze             string // block counts of an unfreezing sweep; replaces Strategies
	Seeds                int
	ShotsCap             bool
	Protocol             string
	SamplesPerLabel      int
	Experiments          int
	Spec                 specFlags
	BatchSize, Threads   int
	Provider, RuntimeLib string
	Precision            string
	Command              string // the command line, recorded in the results
	// gridOnlyFlags lists the grid flags given on the command line, refused under
	// --protocol mteb.
	gridOnlyFlags []string
}

func newExperimentCommand() *cli.Command {
	var valid []string
	for _, s := range experiment.Strategies() {
		valid = append(valid, fmt.Sprintf("  %-15s %s", s.Name, s.About))
	}
	return &cli.Command{
		Name:  "experiment",
		Usage: "compare strategies over training-set sizes and seeds on one frozen forward pass, or run the MTEB protocol",
		Description: "Extracts the features every strategy needs once per split (cached in OUT/features and reused\n" +
			"on a rerun; the top-block strategies add a second pass, the states entering the top block),\n" +
			"then for each strategy × shots (rows per class, stratified, seeded) × seed trains and scores\n" +
			"on --test. Finished cells are kept in OUT/cells, so an interrupted run\n" +
			"continues where it stopped. Writes OUT/results.{csv,json,md}, OUT/accuracy_vs_size.png and\n" +
			"OUT/accuracy_vs_params.png. Strategies:\n" + strings.Join(valid, "\n") + "\n" +
			"\n" +
			"--protocol mteb runs MTEB's classification protocol instead: per experiment, the training\n" +
			"rows are shuffled by a fresh numpy RandomState(42) (reproduced bit for bit; MTEB 1.x reseeds\n" +
			"it in every experiment, and the shuffled order carries over from one experiment to the next)\n" +
			"and the first --samples-per-label rows of each label kept; a logistic\n" +
			"regression (C=1, max_iter=100) is fitted and scored by test accuracy; the mean of\n" +
			"--experiments experiments is reported.\n" +
			"\n" +
			"Both protocols extract features the way the model card says (pipeline models list: pooling,\n" +
			"normalisation, max length, text prefix; all-MiniLM-L6-v2: mean pooling, L2-normalised, 256\n" +
			"tokens); --pooling, --normalize, --max-len and --prefix override single conventions.",
		Flags: append(specFlagList(),
			&cli.StringFlag{Name: "model", Value: models.Default, Usage: "registry `NAME` or a DIR holding model.onnx and tokenizer.json"},
			&cli.StringFlag{Name: "train", Required: true, Usage: "labelled training `FILE` (.csv, .tsv, .jsonl)"},
			&cli.StringFlag{Name: "test", Required: true, Usage: "labelled test `FILE`"},
			&cli.StringFlag{Name: "valid", Usage: "labelled validation `FILE` for the MLP's early stopping (default: 10% of each class held out of the training draw)"},
			&cli.StringFlag{Name: "text-col", Value: "text", Usage: "column (or JSON key) holding the text"},
			&cli.StringFlag{Name: "label-col", Value: "label", Usage: "column holding the label"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output `DIR` (features cache, cells, results, plots)"},
			&cli.StringFlag{Name: "strategies", Value: "logreg,mlp,concat4-logreg", Usage: "comma-separated strategies (see above; lora-topK, full-topK and reinit-topK for any K)"},
			&cli.StringFlag{Name: "unfreeze", Usage: "an unfreezing sweep instead of --strategies: comma-separated block counts `K,...`, 0 = logreg on the frozen features, K = full-topK (every weight of the top K blocks); one cache cut at the largest K feeds every depth"},
			&cli.StringFlag{Name: "shots", Value: "8,16,64,all", Usage: "training rows per class, comma-separated; all = every row"},
			&cli.IntFlag{Name: "seeds", Value: 3, Usage: "seeds per cell (training-row draws and head initialisation)"},
			&cli.BoolFlag{Name: "shots-cap", Usage: "take every row of a class smaller than the shot count instead of failing"},
			&cli.StringFlag{Name: "protocol", Value: "grid", Usage: "grid | mteb"},
			&cli.IntFlag{Name: "samples-per-label", Value: 8, Usage: "mteb: training rows kept per label"},
			&cli.IntFlag{Name: "experiments", Value: 10, Usage: "mteb: experiments averaged"},
			&cli.StringFlag{Name: "precision", Value: "float32", Usage: "logistic regressions compute their objective in float32 (as scikit-learn on float32 embeddings) or float64"},
			&cli.IntFlag{Name: "batch-size", Value: 32, Usage: "texts per forward pass"},
			&cli.IntFlag{Name: "threads", Usage: "onnxruntime and head threads (0 = one per core); results do not depend on it"},
			&cli.StringFlag{Name: "provider", Value: "cpu", Usage: "cpu | cuda[:DEVICE] | auto"},
			&cli.StringFlag{Name: "ort-lib", EnvVars: []string{"HEADSTART_ORT_LIB"}, Usage: "onnxruntime shared library (default: the setup cache)"},
		),
		Action: func(c *cli.Context) error {
			o := experimentOptions{
				Model: c.String("model"), Train: c.String("train"), Test: c.String("test"), Valid: c.String("valid"),
				TextCol: c.String("text-col"), LabelCol: c.String("label-col"), Out: c.String("out"),
				Strategies: c.String("strategies"), Unfreeze: c.String("unfreeze"), Shots: c.String("shots"), Seeds: c.Int("seeds"), ShotsCap: c.Bool("shots-cap"),
				Protocol: c.String("protocol"), SamplesPerLabel: c.Int("samples-per-label"), Experiments: c.Int("experiments"),
				Spec:      readSpecFlags(c),
				BatchSize: c.Int("batch-size"), Threads: c.Int("threads"), Provider: c.String("provider"), RuntimeLib: c.String("ort-lib"),
				Precision: c.String("precision"),
				Command:   commandLine(os.Args),
			}
			if c.IsSet("strategies") && c.IsSet("unfreeze") {
				return usagef("--unfreeze and --strategies both name the strategies; give one")
			}
			for _, f := range []string{"strategies", "unfreeze", "shots", "seeds", "shots-cap", "valid"} {
				if c.IsSet(f) {
					o.gridOnlyFlags = append(o.gridOnlyFlags, "--"+f)
				}
			}
			return runExperiment(c.Context, o, c.App.Writer, c.App.ErrWriter)
		},
	}
}

// commandLine quotes args for a shell where needed.
func commandLine(args []string) string {
	if len(args) == 0 {
		return ""
	}
	out := []string{"pipeline"}
	safe := regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
	for _, a := range args[1:] {
		if !safe.MatchString(a) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// featureConfig is one extraction setting of the backbone.
type featureConfig struct {
	paths models.Paths
	// spec is the model card's conventions with the flags over them; spec.Layers are
	// negative, from the last block.
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
	counts = merged
	var classes []string
	for l := range counts {
		classes = append(classes, l)
	}
	features.SortLabels(classes)
	n := make([]int, len(classes))
	for i, c := range classes {
		n[i] = counts[c]
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
// sha256 sha with the experiment's settings.
func cacheCurrent(path, sha string, k int, o *experimentOptions, cfg featureConfig) (*features.TokenCache, bool) {
	tc, err := features.OpenTokens(path)
	if err != nil {
		return nil, false
	}
	m := tc.Manifest
	return tc, m.Dataset.SHA256 == sha && m.CutTop == k && m.MaxLen == cfg.spec.MaxLen && m.Prefix == cfg.spec.Prefix && m.Backbone.Name == cfg.paths.Name &&
		m.Dataset.TextCol == o.TextCol && m.Dataset.LabelCol == o.LabelCol
}

// ensureStore extracts data into the cached store of cfg unless a store made from the
// same file with the same settings is there already. With k > 0 (top-block strategies)
// an extraction also writes the activation cache for the top k blocks from the same
// forward, unless a current one is there.
func ensureStore(ctx context.Context, o *experimentOptions, cfg featureConfig, k int, sf *splitFeatures, stderr io.Writer) error {
	ro := features.ReaderOptions{TextCol: o.TextCol, LabelCol: o.LabelCol, RequireLabel: true}
	sha, err := fileio.SHA256(sf.data)
	if err != nil {
		return err
	}
	if st, err := features.OpenStore(sf.store); err == nil {
		m := st.Manifest
		pinned := cfg.paths.Manifest.Files["model"].SHA256
		if m.Dataset.SHA256 == sha && m.Dataset.TextCol == o.TextCol && m.Dataset.LabelCol == o.LabelCol &&
			m.Backbone.Name == cfg.paths.Name && (pinned == "" || pinned == m.Backbone.SHA256) &&
			m.Pooling == cfg.spec.Pooling && m.Normalize == cfg.spec.Normalize && m.MaxLen == cfg.spec.MaxLen &&
			m.Prefix == cfg.spec.Prefix && len(m.Layers) == len(cfg.spec.Layers) && m.Shard == nil {
			sf.reused = true
			// The extraction time of the run that made it, when recorded.
			if b, err := os.ReadFile(sf.store + ".seconds"); err == nil {
				sf.seconds, _ = strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
			}
			fmt.Fprintf(stderr, "experiment: %s features: reusing %s\n", sf.name, sf.store)
			return nil
		}
	}
	lo := headstart.ExtractOptions{
		Model: o.Model, Data: sf.data, Reader: ro, Out: sf.store,
		Spec: cfg.spec.Clone(), Exact: true,
		BatchSize: o.BatchSize, Resume: true, RuntimeLib: o.RuntimeLib,
	}
	lo.Session.IntraOpThreads = o.Threads
	var perr error
	if lo.Session.Provider, perr = onnx.ParseProvider(o.Provider); perr != nil {
		return usageError{perr}
	}
	if k > 0 {
		if _, ok := cacheCurrent(sf.cachePath(k), sha, k, o, cfg); !ok {
			lo.CutTop, lo.CacheOut = k, sf.cachePath(k)
		}
	}
	sum, err := extractResuming(ctx, lo, "extract "+sf.name, stderr)
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
	fmt.Fprintf(stderr, "experiment: %s features: %d rows (%d resumed) -> %s [%d dims, %s]%s in %.1fs\n",
		sf.name, sum.Rows, sum.Resumed, sf.store, sum.Dim, sum.Provider, also, sum.Elapsed.Seconds())
	return nil
}

// extractResuming runs Extract with a progress bar, continuing a checkpoint of the same
// run; a checkpoint of an earlier version of the file or settings is discarded.
func extractResuming(ctx context.Context, lo headstart.ExtractOptions, desc string, stderr io.Writer) (headstart.ExtractSummary, error) {
	p := newProgress(stderr, desc, "rows")
	defer p.Finish()
	lo.Progress, lo.Resume = p, true
	sum, err := headstart.Extract(ctx, lo)
	if errors.Is(err, features.ErrCheckpointMismatch) {
		// A checkpoint of other data or settings: start afresh (the experiment's
		// directory is locked, so no other run is using it).
		for _, out := range []string{lo.Out, lo.CacheOut} {
			if out != "" {
				os.Remove(out + ".partial.json")
				os.Remove(out + ".partial")
			}
		}
		sum, err = headstart.Extract(ctx, lo)
	}
	return sum, err
}

// topData extracts (or reuses) the activation cache of every split, cut below the top k
// blocks, and reads the pretrained weights of those blocks.
func topData(ctx context.Context, o *experimentOptions, cfg featureConfig, k int, splits []*splitFeatures, classes []string, stderr io.Writer) (*experiment.TokenData, error) {
	td := &experiment.TokenData{}
	var manifest features.TokenManifest
	for _, sf := range splits {
		path := sf.cachePath(k)
		sha, err := fileio.SHA256(sf.data)
		if err != nil {
			return nil, err
		}
		tc, ok := cacheCurrent(path, sha, k, o, cfg)
		if !ok {
			lo := headstart.ExtractOptions{
				Model: o.Model, Data: sf.data, Reader: features.ReaderOptions{TextCol: o.TextCol, LabelCol: o.LabelCol, RequireLabel: true},
				Out: path, Spec: features.Spec{MaxLen: cfg.spec.MaxLen, Prefix: cfg.spec.Prefix}, Exact: true, BatchSize: o.BatchSize, Resume: true, RuntimeLib: o.RuntimeLib, CutTop: k,
			}
			lo.Session.IntraOpThreads = o.Threads
			lo.Session.Provider, _ = onnx.ParseProvider(o.Provider)
			sum, err := extractResuming(ctx, lo, "cache "+sf.name, stderr)
			if err != nil {
				return nil, fmt.Errorf("caching the activations of --%s %s: %w", sf.name, sf.data, err)
			}
			fmt.Fprintf(stderr, "experiment: %s activation cache: %d rows -> %s in %.1fs\n", sf.name, sum.Rows, path, sum.Elapsed.Seconds())
			if tc, err = features.OpenTokens(path); err != nil {
				return nil, err
			}
		} else {
			if !sf.withCache {
				fmt.Fprintf(stderr, "experiment: %s activation cache: reusing %s\n", sf.name, path)
			}
		}
		ex, err := headstart.CacheExamples(tc, path, classes)
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
	model, err := onnx.LoadModel(cfg.paths.Model)
	if err != nil {
		return nil, err
	}
	if td.Blocks, td.Heads, err = headstart.TopBlocks(model, manifest.CutBlock); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.paths.Model, err)
	}
	return td, nil
}

// loadSplit opens a split's store as a data set.
func loadSplit(sf *splitFeatures) (head.Dataset, error) {
	st, err := features.OpenStore(sf.store)
	if err != nil {
		return head.Dataset{}, err
	}
	return head.FromStore(st, sf.store)
}

func runExperiment(ctx context.Context, o experimentOptions, stdout, stderr io.Writer) (err error) {
	start := time.Now()
	switch {
	case o.Protocol != "grid" && o.Protocol != "mteb":
		return usagef("--protocol %q unknown; want one of grid, mteb", o.Protocol)
	case o.Threads < 0:
		return usagef("--threads %d: want 0 (one per core) or more", o.Threads)
	case o.BatchSize < 1:
		return usagef("--batch-size %d: want at least 1", o.BatchSize)
	}
	for _, f := range [][2]string{{"--train", o.Train}, {"--test", o.Test}, {"--valid", o.Valid}} {
		if f[1] != "" && features.SinglePass(f[1]) {
			return usagef("%s %s: experiment reads its data several times; standard input, a pipe or a device can be read only once: save it to a file", f[0], f[1])
		}
	}
	if _, err := features.ParsePooling(o.Spec.Pooling); err != nil {
		return usageError{err}
	}
	if _, err := onnx.ParseProvider(o.Provider); err != nil {
		return usageError{err}
	}
	precision, err := head.ParsePrecision(o.Precision)
	if err != nil {
		return usageError{err}
	}
	paths, err := models.Resolve(o.Model)
	if err != nil {
		return err
	}
	ro := features.ReaderOptions{TextCol: o.TextCol, LabelCol: o.LabelCol}

	// Validate everything that can be validated before any compute is spent.
	var grid experiment.Grid
	// The model card's conventions, with the flags given over them (both protocols).
	spec, err := o.Spec.spec(paths, []int{-1})
	if err != nil {
		return err
	}
	cfg := featureConfig{paths: paths, spec: spec}
	if err := headstart.CheckMaxLen(paths, cfg.spec.MaxLen); err != nil {
		return usageError{err}
	}
	mteb := experiment.MTEBSettings{SamplesPerLabel: o.SamplesPerLabel, Experiments: o.Experiments, Precision: precision, Threads: o.Threads}
	if o.Protocol == "mteb" {
		if len(o.gridOnlyFlags) > 0 {
			return usagef("%s: not used by --protocol mteb (it fits one logistic regression per experiment on the undersampled training split)", strings.Join(o.gridOnlyFlags, ", "))
		}
		if o.SamplesPerLabel < 1 || o.Experiments < 1 {
			return usagef("--samples-per-label %d, --experiments %d: want at least 1 each", o.SamplesPerLabel, o.Experiments)
		}
	} else {
		strategies, err := experiment.ParseStrategies(o.Strategies)
		if o.Unfreeze != "" {
			var ks []int
			if ks, err = parseLayers(o.Unfreeze); err != nil {
				return usagef("--unfreeze %q: want comma-separated block counts such as 0,1,2,3,6", o.Unfreeze)
			}
			strategies, err = experiment.UnfreezeStrategies(ks)
		}
		if err != nil {
			return usageError{err}
		}
		if man, lerr := models.Lookup(paths.Name); lerr == nil && man.Layers > 0 && experiment.TopK(strategies) > man.Layers {
			return usagef("the strategies train the top %d blocks; %s has %d", experiment.TopK(strategies), paths.Name, man.Layers)
		}
		shots, err := experiment.ParseShots(o.Shots)
		if err != nil {
			return usageError{err}
		}
		if o.Seeds < 1 {
			return usagef("--seeds %d: want at least 1", o.Seeds)
		}
		for i := range strategies {
			if strategies[i].Head.Kind == head.LogReg {
				strategies[i].Head.LogReg.Precision = precision
			}
		}
		grid = experiment.Grid{Strategies: strategies, Shots: shots, Seeds: o.Seeds, CapShots: o.ShotsCap,
			Dir: filepath.Join(o.Out, "cells"), Threads: o.Threads}
		cfg.spec.Layers = experiment.Layers(strategies)
	}
	classes, counts, err := labelCounts(o.Train, ro)
	if err != nil {
		return err
	}
	splits := []*splitFeatures{{name: "train", data: o.Train}, {name: "test", data: o.Test}}
	if o.Valid != "" {
		splits = append(splits, &splitFeatures{name: "valid", data: o.Valid})
	}
	for _, sf := range splits[1:] {
		have, _, err := labelCounts(sf.data, ro)
		if err != nil {
			return err
		}
		if err := experiment.UnseenLabels(classes, have, "--"+sf.name+" "+sf.data, o.Train); err != nil {
			return err
		}
	}
	if o.Protocol == "grid" {
		if err := grid.Check(classes, counts, o.Valid != ""); err != nil {
			return err
		}
	}

	// Extract (or reuse) the features of every split. One run at a time writes the
	// experiment's directory.
	if err := os.MkdirAll(filepath.Join(o.Out, "features"), 0o777); err != nil {
		return err
	}
	lock, err := fileio.Lock(filepath.Join(o.Out, "experiment"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	topK := experiment.TopK(grid.Strategies)
	for _, sf := range splits {
		sf.store = filepath.Join(o.Out, "features", sf.name+"_"+cfg.tag()+".safetensors")
		if err := ensureStore(ctx, &o, cfg, topK, sf, stderr); err != nil {
			return err
		}
	}
	var sets []head.Dataset
	for _, sf := range splits {
		d, err := loadSplit(sf)
		if err != nil {
			return err
		}
		sets = append(sets, d)
	}
	extracted := time.Now()

	settings := map[string]string{
		"model":      fmt.Sprintf("%s (sha256 %s)", paths.Name, sets[0].Fingerprint.BackboneSHA256),
		"features":   fmt.Sprintf("%s (layers resolved %v)", cfg.spec, sets[0].Fingerprint.Layers),
		"machine":    machine(),
		"go":         runtime.Version(),
		"train":      fmt.Sprintf("%s (%d rows, %d classes)", o.Train, sets[0].N, len(sets[0].Classes)),
		"test":       fmt.Sprintf("%s (%d rows)", o.Test, sets[1].N),
		"extraction": extractionNote(splits, extracted.Sub(start)),
	}
	if o.Valid != "" {
		settings["valid"] = fmt.Sprintf("%s (%d rows; the MLP stops early on it)", o.Valid, sets[2].N)
	}

	if o.Protocol == "mteb" {
		return runMTEB(ctx, o, mteb, sets, settings, start, stdout, stderr)
	}

	keyParts := []string{cfg.tag()}
	for _, d := range sets {
		keyParts = append(keyParts, d.Fingerprint.BackboneSHA256, d.Fingerprint.TokenizerSHA256)
	}
	for _, sf := range splits {
		st, err := features.OpenStore(sf.store)
		if err != nil {
			return err
		}
		keyParts = append(keyParts, sf.name+"="+st.Manifest.Dataset.SHA256)
	}
	grid.Key = strings.Join(keyParts, "|")
	data := &experiment.Data{Layers: cfg.spec.Layers, Train: sets[0], Test: sets[1]}
	if o.Valid != "" {
		data.Valid = &sets[2]
	}
	if k := topK; k > 0 {
		t0 := time.Now()
		if data.Tokens, err = topData(ctx, &o, cfg, k, splits, sets[0].Classes, stderr); err != nil {
			return err
		}
		settings["activation caches"] = cacheNote(splits, k, time.Since(t0))
	}
	reused := 0
	grid.Progress = gridProgress(stderr, &reused)
	cells, err := experiment.Run(ctx, grid, data)
	if err != nil {
		return err
	}
	res := experiment.Results{Command: o.Command, Settings: settings, Strategies: grid.Strategies,
		Summary: experiment.Summarize(cells), Cells: cells}
	var fit float64
	for _, c := range cells {
		fit += c.TrainSeconds
	}
	settings["grid"] = fmt.Sprintf("%d cells (%d reused from %s), seeds %d, shots-cap %v", len(cells), reused, grid.Dir, grid.Seeds, grid.CapShots)
	if capped := cappedNote(grid, counts); capped != "" {
		settings["capped"] = capped
	}
	settings["wall time"] = fmt.Sprintf("%.1fs in this run (extraction %.1fs, grid %.1fs); fits of all cells %.1fs",
		time.Since(start).Seconds(), extracted.Sub(start).Seconds(), time.Since(extracted).Seconds(), fit)
	if err := writeGrid(o, res, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "experiment: %d cells (%d reused) -> %s\n", len(cells), reused, filepath.Join(o.Out, "results.md"))
	return nil
}

// writeGrid writes the grid's results (results.md and its data), its plots, and the
// summary table on stdout.
func writeGrid(o experimentOptions, res experiment.Results, stdout io.Writer) error {
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
	if o.Unfreeze != "" {
		if err := experiment.PlotUnfreeze(filepath.Join(o.Out, "accuracy_vs_unfrozen.png"), "Accuracy vs unfrozen blocks: "+name, res.Summary); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%-16s %6s %10s %18s %18s %10s\n", "strategy", "shots", "rows", "accuracy", "macro-F1", "params")
	for _, s := range res.Summary {
		fmt.Fprintf(stdout, "%-16s %6s %10.0f %9.4f ± %.4f %9.4f ± %.4f %10d\n", s.Strategy, experiment.ShotsName(s.Shots), s.TrainRows,
			s.AccuracyMean, s.AccuracyStd, s.MacroF1Mean, s.MacroF1Std, s.Params)
	}
	return nil
}

// runMTEB runs the MTEB classification protocol on the extracted train and test sets
// and writes its results; settings are the run's, recorded with them.
func runMTEB(ctx context.Context, o experimentOptions, mteb experiment.MTEBSettings, sets []head.Dataset, settings map[string]string, start time.Time, stdout, stderr io.Writer) error {
	mteb.Progress = func(x experiment.MTEBExperiment) {
		fmt.Fprintf(stderr, "experiment: mteb [%d/%d] %d rows: accuracy %.4f (%d iterations, %.2fs)\n",
			x.Index, mteb.Experiments, x.TrainRows, x.Accuracy, x.Iterations, x.TrainSeconds)
	}
	r, err := experiment.RunMTEB(ctx, sets[0], sets[1], mteb)
	if err != nil {
		return err
	}
	settings["protocol"] = fmt.Sprintf("MTEB classification: %d experiments, %d samples per label, numpy RandomState(%d) reseeded per experiment, LogisticRegression(C=1, max_iter=100) in %s",
		r.Settings.Experiments, r.Settings.SamplesPerLabel, r.Settings.Seed, r.Settings.Precision)
	settings["wall time"] = fmt.Sprintf("%.1fs (fits %.1fs)", time.Since(start).Seconds(), r.TrainSeconds)
	if err := r.WriteFiles(o.Out, "MTEB classification protocol: "+dataName(o.Train), o.Command, settings); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mteb: accuracy %.2f (mean of %d experiments, std %.2f), macro-F1 %.2f; %s\n",
		100*r.Accuracy, len(r.Experiments), 100*r.AccuracyStd, 100*r.MacroF1, filepath.Join(o.Out, "results.md"))
	return nil
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

// gridProgress prints a line per cell and counts the cells done by an earlier run in
// reused.
func gridProgress(stderr io.Writer, reused *int) func(experiment.Event) {
	return func(e experiment.Event) {
		c := e.Cell
		pos := fmt.Sprintf("experiment: [%d/%d] %s shots=%s seed=%d:", e.Index, e.Total, c.Strategy, experiment.ShotsName(c.Shots), c.Seed)
		if e.Reused {
			(*reused)++
			fmt.Fprintf(stderr, "%s done earlier (accuracy %.4f)\n", pos, c.Accuracy)
			return
		}
		if c.Copied {
			fmt.Fprintf(stderr, "%s accuracy %.4f, seed 0's result (every row and a deterministic head: the seed changes nothing)\n", pos, c.Accuracy)
			return
		}
		eta := "done"
		if e.Index < e.Total {
			eta = "ETA " + e.ETA.Round(time.Second).String()
		}
		fmt.Fprintf(stderr, "%s accuracy %.4f macro-F1 %.4f (%d rows, %d params, %.2fs); %s\n",
			pos, c.Accuracy, c.MacroF1, c.TrainRows, c.Params, c.TrainSeconds, eta)
	}
}

// cappedNote says, under --shots-cap, which shot counts took some classes whole (those
// with fewer rows; counts are the rows per class); "" when none did.
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
