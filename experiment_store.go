package headstart

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"regexp"
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

// loadSplit opens a split's store as a data set.
func loadSplit(sf *splitFeatures) (head.Dataset, error) {
	st, err := features.OpenStore(sf.store)
	if err != nil {
		return head.Dataset{}, err
	}
	return head.FromStore(st, sf.store)
}

// cacheCurrent reports whether the activation cache at path was made from the file with
// sha256 sha with the run's settings.
func (r *experimentRun) cacheCurrent(path, sha string, k int) (*features.TokenCache, bool) {
	tc, err := features.OpenTokens(path)
	if err != nil {
		return nil, false
	}
	m, spec := tc.Manifest, r.cfg.spec
	return tc, m.Dataset.SHA256 == sha && m.CutTop == k && m.MaxLen == spec.MaxLen && m.Prefix == spec.Prefix && m.Backbone.Name == r.cfg.paths.Name &&
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
	lo.Session.IntraOpThreads, lo.Session.Provider = r.o.Threads, r.o.Provider
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
		if _, ok := r.cacheCurrent(sf.cachePath(k), sha, k); !ok {
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
	td := &experiment.TokenData{}
	var manifest features.TokenManifest
	for _, sf := range r.splits {
		path := sf.cachePath(k)
		sha, err := fileio.SHA256(sf.data)
		if err != nil {
			return nil, err
		}
		tc, ok := r.cacheCurrent(path, sha, k)
		if !ok {
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
