#!/usr/bin/env bash
# bench_heads.sh: fit time of `pipeline fit-head` (logistic regression) vs scikit-learn's
# LogisticRegression on binary and multi-class sets of real features (default model, mean
# pooling), same C, tol, max_iter and thread count, runs interleaved (headstart, then
# scikit-learn, per repetition and precision), medians. Both test accuracies and both
# iteration counts. Prints a markdown table for BENCHMARKS.md with the load average before
# and after (a shared box is noisy: the ratio comes from runs side by side, not from the
# absolute times). Each side also reports its process CPU time for the fit (fit-head --json
# cpu_seconds, time.process_time in scripts/ref_logreg.py); on one thread it is the fit's
# own work and less disturbed by other jobs than the wall time: the CPU time ratio column.
#
# Sets (BENCH_SETS, default all):
#   b77          Banking77 train -> test, 77 classes (10,003 rows)
#   b77-halves   Banking77, binary: label index < 38 vs the rest
#   b77-ovr      Banking77, binary: card_arrival vs the rest (1.6% positives)
#   sst2-5k      SST-2, binary: the first 5,000 train rows -> dev
#   sst2-20k     SST-2, binary: the first 20,000 train rows -> dev
#   sst2         SST-2, binary: all 67,349 train rows -> dev
# Precisions (BENCH_PRECISIONS, default "float32 float64"): headstart's --precision, and
# scikit-learn on the features as stored (float32) or cast to float64, the objective each
# computes in; float64 is the pair that follows the same path iteration for iteration.
# Threads (BENCH_THREADS, default 1), repetitions (BENCH_REPS, default 3).
# Features are extracted once into $BENCH_FEATURES (default out/bench); SST-2 train (67k
# rows) takes a few minutes on a quiet 2-core machine.
#
# Usage: scripts/bench_heads.sh   (via `make bench-heads`)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
data=data
py=$cache/venv-test/bin/python
out=out/bench
feat=${BENCH_FEATURES:-$out}
REPS=${BENCH_REPS:-3}
PRECISIONS=${BENCH_PRECISIONS:-float32 float64}
THREADS=${BENCH_THREADS:-1}
SETS=${BENCH_SETS:-b77 b77-halves b77-ovr sst2-5k sst2-20k sst2}
mkdir -p "$out" "$feat"

extract() { # extract CSV STORE
  [ -f "$2" ] || bin/pipeline extract --data "$1" --out "$2" --threads 2 >&2
}
# set_files SET: prints "TRAIN TEST", deriving the stores when missing.
set_files() {
  case $1 in
    b77*) extract "$data/banking77/train.csv" "$feat/b77-train.safetensors"
          extract "$data/banking77/test.csv" "$feat/b77-test.safetensors" ;;
    sst2*) extract "$data/sst2/train.csv" "$feat/sst2-train.safetensors"
           extract "$data/sst2/dev.csv" "$feat/sst2-dev.safetensors" ;;
  esac
  local derive=()
  case $1 in
    b77|sst2) ;;
    b77-halves) derive=(--halves) ;;
    b77-ovr) derive=(--one-vs-rest card_arrival) ;;
    sst2-5k) derive=(--rows 5000) ;;
    sst2-20k) derive=(--rows 20000) ;;
    *) echo "bench_heads: unknown set $1; want one of b77 b77-halves b77-ovr sst2-5k sst2-20k sst2" >&2; exit 2 ;;
  esac
  local base=${1%%-*}
  local train=$feat/$base-train.safetensors test=$feat/$base-test.safetensors
  [ "$base" = sst2 ] && test=$feat/sst2-dev.safetensors
  if [ ${#derive[@]} -gt 0 ]; then
    local dtest=$test
    [ "${derive[0]}" = --rows ] || { dtest=$out/$1-test.safetensors; [ -f "$dtest" ] || "$py" scripts/derive_store.py "$test" "$dtest" "${derive[@]}"; }
    [ -f "$out/$1-train.safetensors" ] || "$py" scripts/derive_store.py "$train" "$out/$1-train.safetensors" "${derive[@]}"
    train=$out/$1-train.safetensors test=$dtest
  fi
  echo "$train $test"
}

: > "$out/heads.jsonl"
load_before=$(uptime)
for set in $SETS; do
  read -r train test < <(set_files "$set")
  for threads in $THREADS; do
    for rep in $(seq "$REPS"); do
      for prec in $PRECISIONS; do
        bin/pipeline fit-head --train "$train" --out "$out/head.safetensors" --C 1 --tol 1e-4 --max-iter 100 --threads "$threads" --precision "$prec" --json 2> "$out/fit.err" > "$out/fit.json" || { tail -n 3 "$out/fit.err" >&2; exit 1; }
        acc=$(bin/pipeline eval --features "$test" --head "$out/head.safetensors" | head -n 1 | awk '{print $2}')
        OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$py" scripts/ref_logreg.py --train "$train" \
          --test "$test" --out "$out/sk.json" --C 1 --tol 1e-4 --max-iter 100 --threads "$threads" --no-proba --dtype "$prec"
        python3 - "$out/fit.json" "$out/sk.json" "$set" "$threads" "$prec" "$acc" >> "$out/heads.jsonl" <<'PY'
import json, sys
h, s = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({"set": sys.argv[3], "threads": int(sys.argv[4]), "precision": sys.argv[5],
                  "rows": h["summary"]["rows"], "classes": h["classes"],
                  "hs_seconds": h["seconds"], "hs_cpu": h.get("cpu_seconds"), "sk_cpu": s.get("fit_cpu_seconds"), "hs_iter": h["summary"]["iterations"], "hs_accuracy": float(sys.argv[6]),
                  "sk_seconds": s["fit_seconds"], "sk_iter": s["n_iter"], "sk_accuracy": s["test_accuracy"],
                  "sklearn": s["versions"]["scikit-learn"]}))
PY
      done
    done
  done
done
load_after=$(uptime)
python3 - "$out/heads.jsonl" "$REPS" "$load_before" "$load_after" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\nC=1, tol=1e-4, max_iter=100; scikit-learn {rows[0]['sklearn']}; median of {sys.argv[2]} runs each, "
      "headstart and scikit-learn interleaved\n")
print("| set | rows x classes | threads | precision | headstart fit (s) | scikit-learn fit (s) | headstart / scikit-learn time | CPU time ratio | iterations (hs / sk) | test accuracy (hs / sk) |")
print("|---|---|---|---|---|---|---|---|---|---|")
keys = list(dict.fromkeys((r["set"], r["threads"], r["precision"]) for r in rows))
for k in keys:
    g = [r for r in rows if (r["set"], r["threads"], r["precision"]) == k]
    h, s = st.median(r["hs_seconds"] for r in g), st.median(r["sk_seconds"] for r in g)
    r = g[0]
    cpu = "-"
    if all(x.get("hs_cpu") and x.get("sk_cpu") for x in g):
        cpu = f'{st.median(x["hs_cpu"] for x in g) / st.median(x["sk_cpu"] for x in g):.2f}x'
    print(f'| {k[0]} | {r["rows"]:,} x {r["classes"]} | {k[1]} | {k[2]} | {h:.3f} | {s:.3f} | {h/s:.2f}x | {cpu} | '
          f'{r["hs_iter"]} / {r["sk_iter"]} | {r["hs_accuracy"]:.4f} / {r["sk_accuracy"]:.4f} |')
print(f"\nload before: {sys.argv[3].strip()}\nload after:  {sys.argv[4].strip()}")
PY
