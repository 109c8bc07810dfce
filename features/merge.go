package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/headstart-ml/headstart/internal/fileio"
)

// ErrShards reports shard stores that cannot be merged.
var ErrShards = errors.New("features: shards do not merge")

// Merge joins the shard stores at paths (written by `pipeline extract --shard I/N`) into
// one store at out. The shards must agree on everything but the shard (backbone,
// tokenizer, pooling, layers, normalisation, max_len, dtype, dataset sha256 and rows,
// label names), be the N distinct shards of one count N, and together hold every row of
// the dataset exactly once. Rows are written in row order and the manifest drops the
// shard, so the result equals, byte for byte, the store of a single unsharded run (the
// dataset path is taken from the first shard). The write is atomic.
//
// Multi-label shards carry their label sets over unchanged. No label remapping is
// needed: extract scans the whole dataset before it runs a shard, so every shard's
// label_names is the label set of the whole dataset (not of its own rows), and shards
// with different label_names, or a multi-label shard and a single-label one, are
// refused as made with other settings.
//
// Merge holds all shards in memory at once. It checks out (not a directory, not one of
// the shards, even through a link) and locks it before reading anything.
func Merge(out string, paths []string) (err error) {
	if len(paths) == 0 {
		return fmt.Errorf("%w: no shard files given", ErrShards)
	}
	lock, err := fileio.Claim(out, paths...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, lock.Release()) }()
	stores := make([]*Store, len(paths))
	for i, p := range paths {
		s, err := OpenStore(p)
		if err != nil {
			return err
		}
		if s.Manifest.Shard == nil {
			return fmt.Errorf("%w: %s is not a shard (no shard in its manifest)", ErrShards, p)
		}
		stores[i] = s
	}
	first := stores[0].Manifest
	count := first.Shard.Count
	key := func(m Manifest) string {
		m.Shard = nil
		m.Dataset.Path = ""
		b, _ := json.Marshal(m)
		return string(b)
	}
	want := key(first)
	seen := make([]string, count)
	total := 0
	for i, s := range stores {
		m := s.Manifest
		if m.Shard.Count != count {
			return fmt.Errorf("%w: %s is shard %d/%d but %s is of %d shards", ErrShards, paths[i], m.Shard.Index, m.Shard.Count, paths[0], count)
		}
		if key(m) != want {
			return fmt.Errorf("%w: %s was made with other settings or data than %s: %s", ErrShards, paths[i], paths[0], manifestDiff(first, m))
		}
		if prev := seen[m.Shard.Index]; prev != "" {
			return fmt.Errorf("%w: shard %d/%d given twice: %s and %s", ErrShards, m.Shard.Index, count, prev, paths[i])
		}
		seen[m.Shard.Index] = paths[i]
		total += s.N
	}
	var missing []int
	for i, p := range seen {
		if p == "" {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: shards %v of %d missing", ErrShards, missing, count)
	}
	if int64(total) != first.Dataset.Rows {
		return fmt.Errorf("%w: shards hold %d rows; the dataset has %d", ErrShards, total, first.Dataset.Rows)
	}
	// where[r] = (store, row) holding dataset row r.
	type loc struct{ s, i int }
	where := make([]loc, total)
	filled := make([]bool, total)
	for si, s := range stores {
		for i, r := range s.RowIDs {
			if r < 0 || r >= int64(total) || filled[r] {
				return fmt.Errorf("%w: %s: row %d duplicated or out of range", ErrShards, paths[si], r)
			}
			if int(r%int64(count)) != s.Manifest.Shard.Index {
				return fmt.Errorf("%w: %s: row %d does not belong to shard %d/%d", ErrShards, paths[si], r, s.Manifest.Shard.Index, count)
			}
			where[r], filled[r] = loc{si, i}, true
		}
	}
	m := first
	m.Shard = nil
	dtype, err := ParseDtype(first.Dtype)
	if err != nil {
		return err
	}
	d := stores[0].D
	w, err := NewWriter(out, m, total, d, dtype)
	if err != nil {
		return err
	}
	const block = 1024
	feats := make([]float32, 0, block*d)
	labels := make([]int64, 0, block)
	ids := make([]int64, 0, block)
	var sets []uint8
	for r := 0; r < total; r++ {
		l := where[r]
		s := stores[l.s]
		feats = append(feats, s.Row(l.i)...)
		labels = append(labels, s.Labels[l.i])
		ids = append(ids, s.RowIDs[l.i])
		sets = append(sets, s.LabelSet(l.i)...)
		if len(ids) == block || r == total-1 {
			var err error
			if m.MultiLabel {
				err = w.WriteRowSets(feats, sets, ids)
			} else {
				err = w.WriteRows(feats, labels, ids)
			}
			if err != nil {
				return errors.Join(err, w.Abort())
			}
			feats, labels, ids, sets = feats[:0], labels[:0], ids[:0], sets[:0]
		}
	}
	return w.Close()
}

// manifestDiff names the first top-level manifest field where a and b differ.
func manifestDiff(a, b Manifest) string {
	var ma, mb map[string]json.RawMessage
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	keys := make([]string, 0, len(ma)+len(mb))
	for k := range ma {
		keys = append(keys, k)
	}
	for k := range mb { // fields written only when set (prefix) may be in one only
		keys = append(keys, k)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, k := range keys {
		if k == "shard" {
			continue
		}
		if string(ma[k]) != string(mb[k]) {
			return fmt.Sprintf("%s %s vs %s", k, ma[k], mb[k])
		}
	}
	return "unknown difference"
}
