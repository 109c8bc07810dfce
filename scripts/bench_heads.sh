#!/usr/bin/env bash
# bench_heads.sh: fit time of `pipeline fit-head` vs scikit-learn LogisticRegression on the
# full Banking77 train features (10,003 x 384, 77 classes, default model, mean pooling),
# same C, tol, max_iter and thread count, alternating runs in one session; both test
# accuracies on Banking77 test. headstart runs in each of BENCH_PRECISIONS (default
# "float32 float64"; float32 is fit-head's default and what scikit-learn computes in on
# float32 features). Prints a markdown table for BENCHMARKS.md, with the load average
# before and after (a shared box is noisy).
# Usage: scripts/bench_heads.sh   (via `make bench-heads`; BENCH_REPS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
data=data/banking77
py=$cache/venv-test/bin/python
out=out/bench
REPS=${BENCH_REPS:-3}
PRECISIONS=${BENCH_PRECISIONS:-float32 float64}
mkdir -p "$out"
for split in train test; do
  [ -f "$out/b77-$split.safetensors" ] || bin/pipeline extract --data "$data/$split.csv" --out "$out/b77-$split.safetensors" --threads 2
done
: > "$out/heads.jsonl"
load_before=$(uptime)
for threads in 1 2; do
  for rep in $(seq "$REPS"); do
    for prec in $PRECISIONS; do
      s=$(date +%s.%N)
      bin/pipeline fit-head --train "$out/b77-train.safetensors" --out "$out/b77-head.safetensors" --C 1 --tol 1e-4 --max-iter 100 --threads "$threads" --precision "$prec" --json 2>/dev/null > "$out/fit.json"
      e=$(date +%s.%N)
      acc=$(bin/pipeline eval --features "$out/b77-test.safetensors" --head "$out/b77-head.safetensors" | head -n 1 | awk '{print $2}')
      python3 - "$out/fit.json" "$threads" "$acc" "$s" "$e" "$prec" >> "$out/heads.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({"impl": "headstart", "precision": sys.argv[6], "threads": int(sys.argv[2]), "fit_seconds": d["seconds"],
                  "process_seconds": float(sys.argv[5]) - float(sys.argv[4]),
                  "n_iter": d["summary"]["iterations"], "test_accuracy": float(sys.argv[3])}))
PY
    done
    OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$py" scripts/ref_logreg.py --train "$out/b77-train.safetensors" \
      --test "$out/b77-test.safetensors" --out "$out/sk.json" --C 1 --tol 1e-4 --max-iter 100 --threads "$threads" --no-proba
    python3 - "$out/sk.json" "$threads" >> "$out/heads.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(json.dumps({"impl": "scikit-learn", "threads": int(sys.argv[2]), "fit_seconds": d["fit_seconds"],
                  "n_iter": d["n_iter"], "test_accuracy": d["test_accuracy"],
                  "sklearn": d["versions"].get("scikit-learn")}))
PY
  done
done
load_after=$(uptime)
python3 - "$out/heads.jsonl" "$REPS" "$load_before" "$load_after" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
sk_version = next((r["sklearn"] for r in rows if r["impl"] == "scikit-learn"), "?")
print(f"\nBanking77 train (10,003 x 384, 77 classes) -> test (3,080); C=1, tol=1e-4, max_iter=100; "
      f"scikit-learn {sk_version} on the float32 features; median of {sys.argv[2]} runs each, alternating\n")
print("| threads | headstart precision | headstart fit (s) | scikit-learn fit (s) | headstart / scikit-learn time | iterations (hs / sk) | test accuracy (hs / sk) |")
print("|---|---|---|---|---|---|---|")
for t in sorted({r["threads"] for r in rows}):
    sk = [r for r in rows if r["threads"] == t and r["impl"] == "scikit-learn"]
    s = st.median(r["fit_seconds"] for r in sk)
    for p in dict.fromkeys(r["precision"] for r in rows if r["impl"] == "headstart"):
        hs = [r for r in rows if r["threads"] == t and r["impl"] == "headstart" and r["precision"] == p]
        h = st.median(r["fit_seconds"] for r in hs)
        print(f'| {t} | {p} | {h:.2f} | {s:.2f} | {h/s:.2f}x | {hs[0]["n_iter"]} / {sk[0]["n_iter"]} | {hs[0]["test_accuracy"]:.4f} / {sk[0]["test_accuracy"]:.4f} |')
print(f"\nload before: {sys.argv[3].strip()}\nload after:  {sys.argv[4].strip()}")
PY
