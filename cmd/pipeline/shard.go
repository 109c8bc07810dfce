package main

import (
	"os"
	"strconv"
	"strings"

	"github.com/headstart-ml/headstart/features"
)

// parseShard parses --shard: "" (no sharding), "I/N", "auto" or "auto/N". With auto the
// index comes from the scheduler's environment: JOB_COMPLETION_INDEX (Kubernetes Indexed
// Job) or SLURM_ARRAY_TASK_ID minus SLURM_ARRAY_TASK_MIN (Slurm job array); the count
// from N, else SLURM_ARRAY_TASK_COUNT, else HEADSTART_SHARD_COUNT.
func parseShard(s string, getenv func(string) string) (features.Shard, error) {
	if s == "" {
		return features.Shard{}, nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	idx, cnt, hasCount := strings.Cut(s, "/")
	var sh features.Shard
	var err error
	if idx == "auto" {
		switch {
		case getenv("JOB_COMPLETION_INDEX") != "":
			if sh.Index, err = strconv.Atoi(getenv("JOB_COMPLETION_INDEX")); err != nil {
				return sh, usagef("--shard auto: JOB_COMPLETION_INDEX=%q is not an integer", getenv("JOB_COMPLETION_INDEX"))
			}
		case getenv("SLURM_ARRAY_TASK_ID") != "":
			id, err := strconv.Atoi(getenv("SLURM_ARRAY_TASK_ID"))
			if err != nil {
				return sh, usagef("--shard auto: SLURM_ARRAY_TASK_ID=%q is not an integer", getenv("SLURM_ARRAY_TASK_ID"))
			}
			lo := 0
			if v := getenv("SLURM_ARRAY_TASK_MIN"); v != "" {
				if lo, err = strconv.Atoi(v); err != nil {
					return sh, usagef("--shard auto: SLURM_ARRAY_TASK_MIN=%q is not an integer", v)
				}
			}
			sh.Index = id - lo
		default:
			return sh, usagef("--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes) nor SLURM_ARRAY_TASK_ID (Slurm) is set; give --shard I/N")
		}
		if !hasCount {
			cnt = getenv("SLURM_ARRAY_TASK_COUNT")
			if cnt == "" {
				cnt = getenv("HEADSTART_SHARD_COUNT")
			}
			if cnt == "" {
				return sh, usagef("--shard auto: the shard count is unknown; give --shard auto/N or set HEADSTART_SHARD_COUNT")
			}
		}
	} else {
		if !hasCount {
			return sh, usagef("--shard %q: want I/N (0-based index I of N shards), auto or auto/N", s)
		}
		if sh.Index, err = strconv.Atoi(idx); err != nil {
			return sh, usagef("--shard %q: index %q is not an integer", s, idx)
		}
	}
	if sh.Count, err = strconv.Atoi(cnt); err != nil || sh.Count < 1 {
		return sh, usagef("--shard %q: count %q must be a positive integer", s, cnt)
	}
	if sh.Index < 0 || sh.Index >= sh.Count {
		return sh, usagef("--shard %d/%d: index must be in 0..%d", sh.Index, sh.Count, sh.Count-1)
	}
	return sh, nil
}
