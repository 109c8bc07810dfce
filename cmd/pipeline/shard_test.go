package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/headstart-ml/headstart/internal/testutil"
	"github.com/headstart-ml/headstart/models"
)

func TestParseShard(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		in       string
		env      func(string) string
		idx, cnt int
		err      string
	}{
		{"", env(), 0, 0, ""},
		{"2/4", env(), 2, 4, ""},
		{"0/1", env(), 0, 1, ""},
		{"4/4", env(), 0, 0, "index must be in 0..3"},
		{"-1/4", env(), 0, 0, "index must be in"},
		{"1/0", env(), 0, 0, "positive integer"},
		{"x/4", env(), 0, 0, "not an integer"},
		{"3", env(), 0, 0, "want I/N"},
		{"auto/8", env("JOB_COMPLETION_INDEX", "5"), 5, 8, ""},
		{"auto", env("JOB_COMPLETION_INDEX", "5", "HEADSTART_SHARD_COUNT", "6"), 5, 6, ""},
		{"auto", env("JOB_COMPLETION_INDEX", "5"), 0, 0, "count is unknown"},
		{"auto", env("SLURM_ARRAY_TASK_ID", "3", "SLURM_ARRAY_TASK_COUNT", "4"), 3, 4, ""},
		{"auto", env("SLURM_ARRAY_TASK_ID", "4", "SLURM_ARRAY_TASK_MIN", "1", "SLURM_ARRAY_TASK_COUNT", "4"), 3, 4, ""},
		{"auto", env(), 0, 0, "neither JOB_COMPLETION_INDEX"},
		{"auto/2", env("JOB_COMPLETION_INDEX", "2"), 0, 0, "index must be in 0..1"},
	}
	for _, c := range cases {
		sh, err := parseShard(c.in, c.env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseShard(%q) err = %v; want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || sh.Index != c.idx || sh.Count != c.cnt {
			t.Errorf("parseShard(%q) = %+v, %v; want %d/%d", c.in, sh, err, c.idx, c.cnt)
		}
	}
}

// extractShards runs the extract command common (without --out) once whole and as n
// shards, into dir, and returns the whole store and the shards.
func extractShards(t *testing.T, common []string, dir string, n int) (single string, shards []string) {
	t.Helper()
	single = filepath.Join(dir, "single.safetensors")
	if code, _, stderr := run(t, append(common, "--out", single)...); code != 0 {
		t.Fatalf("single run: %d\n%s", code, stderr)
	}
	for i := range n {
		out := filepath.Join(dir, fmt.Sprintf("shard-%d.safetensors", i))
		shards = append(shards, out)
		if code, _, stderr := run(t, append(common, "--out", out, "--shard", fmt.Sprintf("%d/%d", i, n))...); code != 0 {
			t.Fatalf("shard %d: %d\n%s", i, code, stderr)
		}
	}
	return single, shards
}

// TestShardedExtractMerge runs 4 shards as a scheduler would, merges them, and checks the
// result equals a single run byte for byte; then checks bad merges are refused.
func TestShardedExtractMerge(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the model")
	}
	testutil.Model(t, models.Default)
	data := testutil.Data(t, "sst2/dev.csv")
	dir := t.TempDir()
	common := []string{"extract", "--data", data, "--limit", "203", "--chunk-rows", "32", "--batch-size", "8", "--threads", "1"}
	single, shards := extractShards(t, common, dir, 4)
	merged := filepath.Join(dir, "merged.safetensors")
	// Shards given in any order.
	if code, _, stderr := run(t, "features", "merge", "--out", merged, shards[2], shards[0], shards[3], shards[1]); code != 0 {
		t.Fatalf("merge: %d\n%s", code, stderr)
	}
	a, _ := os.ReadFile(single)
	b, _ := os.ReadFile(merged)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("merged store differs from the single run (%d vs %d bytes)", len(b), len(a))
	}

	other := filepath.Join(dir, "other.safetensors")
	// The card normalises: this shard does not.
	if code, _, stderr := run(t, append(common, "--out", other, "--shard", "1/4", "--normalize=false")...); code != 0 {
		t.Fatalf("other shard: %d\n%s", code, stderr)
	}
	bad := filepath.Join(dir, "bad.safetensors")
	for _, c := range []struct {
		name  string
		files []string
		msg   string
	}{
		{"missing shard", shards[:3], "shards [3] of 4 missing"},
		{"duplicate shard", []string{shards[0], shards[1], shards[2], shards[3], shards[1]}, "given twice"},
		{"other settings", []string{shards[0], other, shards[2], shards[3]}, "normalize"},
		{"not a shard", []string{single}, "not a shard"},
	} {
		code, _, stderr := run(t, append([]string{"features", "merge", "--out", bad}, c.files...)...)
		if code != 1 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%s: exit %d, %q; want exit 1 mentioning %q", c.name, code, stderr, c.msg)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("%s: output written", c.name)
		}
	}
}
