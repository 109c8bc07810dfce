#!/usr/bin/env bash
# bench_extract_ab.sh: `pipeline extract` against the Python reference (onnxruntime +
# tokenizers, length-sorted batches, numpy mean pooling), whole processes interleaved
# A/B/A/B in one run, same data, model, threads, batch size and max length; medians.
# Reports wall time, tokens/s, achieved GFLOP/s (2 x the model's MatMul weights per
# padded token position) against the machine's float32 matrix-multiply peak (numpy,
# same threads, measured in the same run), and each process's peak RSS
# (/usr/bin/time -v). With BENCH_MODELS, headstart also runs each of those model
# directories (an int8 copy from `pipeline models quantize`, or scripts/quantize_ref.py's),
# interleaved with the rest, and its speed is given against the fp32 model's.
#
#   BENCH_ROWS=5000    first N SST-2 train sentences
#   BENCH_PAIRS=3      repetitions of the A/B pair
#   BENCH_THREADS=2    intra-op threads on both sides
#   BENCH_BATCH=32
#   BENCH_MODELS=""    extra model directories for headstart (space-separated)
#   BENCH_VARIANTS=""  extra headstart runs, each one flag=value (space-separated), e.g.
#                      --runs=1 (one batch at a time on all threads: the least memory; the
#                      default is two runs of BENCH_THREADS/2 threads), --chunk-rows=2048
#   BENCH_RSS_FULL=0   1: also both sides' peak RSS on all 67,349 rows (one run each)
#
# Usage: scripts/bench_extract_ab.sh   (needs `make build` and the test venv)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
py=$cache/venv-test/bin/python
model=$cache/models/all-minilm-l6-v2
N=${BENCH_ROWS:-5000}
PAIRS=${BENCH_PAIRS:-3}
TH=${BENCH_THREADS:-2}
BS=${BENCH_BATCH:-32}
MODELS=${BENCH_MODELS:-}
VARIANTS=${BENCH_VARIANTS:-}
out=out/bench
mkdir -p "$out"
head -n $((N + 1)) data/sst2/train.csv > "$out/sst2-$N.csv"
jsonl=$out/extract_ab.jsonl
: > "$jsonl"

# record IMPL MODEL ROWS TIMEFILE JSONFILE: one line of jsonl from /usr/bin/time and the
# program's own JSON.
record() {
  python3 - "$@" >> "$jsonl" <<'PY'
import json, re, sys
impl, model, rows, tf, jf = sys.argv[1:6]
t = open(tf).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", t)
wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
d = [json.loads(l) for l in open(jf) if l.startswith("{")][-1]
padded = d.get("padded") or (d["tokens"] / d["padding_efficiency"] if d.get("padding_efficiency") else None)
print(json.dumps({"impl": impl, "model": model, "rows": int(rows), "wall_s": wall, "max_rss_kb": rss,
                  "tokens": d["tokens"], "padded": padded, "inner_s": d["seconds"]}))
PY
}

hs() { # hs IMPL MODELDIR DATA ROWS [FLAG...]
  local tf=$out/time.txt jf=$out/run.json
  rm -f "$out/ab.safetensors"
  /usr/bin/time -v bin/pipeline extract --model "$2" --data "$3" --out "$out/ab.safetensors" \
    --batch-size "$BS" --threads "$TH" --max-len 128 --json "${@:5}" 2> "$tf" > "$jf" || { cat "$tf"; exit 1; }
  record "$1" "$2" "$4" "$tf" "$jf"
}
ref() { # ref DATA ROWS
  local tf=$out/time.txt jf=$out/run.json
  /usr/bin/time -v "$py" scripts/bench_extract.py --data "$1" --limit "$2" --model "$model/model.onnx" \
    --tokenizer "$model/tokenizer.json" --batch-size "$BS" --threads "$TH" --max-len 128 --only ort-sorted \
    2> "$tf" > "$jf" || { cat "$tf"; exit 1; }
  record python-onnxruntime "$model" "$2" "$tf" "$jf"
}

load_before=$(uptime)
peak=$(OPENBLAS_NUM_THREADS=$TH OMP_NUM_THREADS=$TH MKL_NUM_THREADS=$TH "$py" - <<'PY'
import time, numpy as np
a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
b = a.T.copy(); a @ b
best = 0
for _ in range(5):
    t = time.perf_counter(); a @ b; best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
print(f"{best:.1f}")
PY
)
for p in $(seq "$PAIRS"); do
  echo "bench: pair $p/$PAIRS" >&2
  hs headstart "$model" "$out/sst2-$N.csv" "$N"
  ref "$out/sst2-$N.csv" "$N"
  for m in $MODELS; do hs "headstart $(basename "$m")" "$m" "$out/sst2-$N.csv" "$N"; done
  for v in $VARIANTS; do hs "headstart $v" "$model" "$out/sst2-$N.csv" "$N" "$v"; done
done
if [ "${BENCH_RSS_FULL:-0}" = 1 ]; then
  echo "bench: peak RSS on all rows" >&2
  all=$(($(wc -l < data/sst2/train.csv) - 1))
  hs headstart-all "$model" data/sst2/train.csv "$all"
  hs headstart-runs1-all "$model" data/sst2/train.csv "$all" --runs=1
  ref data/sst2/train.csv "$all"
  sed -i '$ s/"impl": "python-onnxruntime"/"impl": "python-onnxruntime-all"/' "$jsonl"
fi
load_after=$(uptime)

"$py" - "$jsonl" "$model/model.onnx" "$peak" "$N" "$TH" "$BS" "$PAIRS" "$load_before" "$load_after" <<'PY'
import json, statistics as st, sys
import onnx
from onnx import numpy_helper
rows = [json.loads(l) for l in open(sys.argv[1])]
m = onnx.load(sys.argv[2])
inits = {t.name: t for t in m.graph.initializer}
macs = sum(int(numpy_helper.to_array(inits[n.input[1]]).size) for n in m.graph.node
           if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in inits)
flop_tok = 2 * macs
peak, N, TH, BS, PAIRS = float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
print(f"\n{N} SST-2 train sentences, all-MiniLM-L6-v2, mean pooling, batch {BS}, {TH} threads, max_len 128; "
      f"whole processes, {PAIRS} interleaved pairs, medians. MatMul work {flop_tok/1e6:.1f} MFLOP per token position; "
      f"machine's float32 matmul peak (numpy 2048^3, {TH} threads, same run): {peak:.0f} GFLOP/s\n")
print("| implementation | wall (s) | tokens/s | padded positions | GFLOP/s (% of peak) | peak RSS | time / headstart's |")
print("|---|---|---|---|---|---|---|")
impls = list(dict.fromkeys(r["impl"] for r in rows if not r["impl"].endswith("-all")))
med = {}
for i in impls:
    g = [r for r in rows if r["impl"] == i]
    w = st.median(r["wall_s"] for r in g)
    med[i] = w
    gf = flop_tok * g[0]["padded"] / w / 1e9
    print(f'| {i} | {w:.2f} | {g[0]["tokens"]/w:,.0f} | {g[0]["padded"]:,.0f} | {gf:.0f} ({100*gf/peak:.0f}%) | '
          f'{max(r["max_rss_kb"] for r in g)/1024:.0f} MiB | {w/med["headstart"]:.2f}x |')
ref = med.get("python-onnxruntime")
if ref:
    print(f'\nheadstart / Python reference speed: {ref/med["headstart"]:.2f}x (wall time ratio, medians)')
full = {r["impl"]: r for r in rows if r["impl"].endswith("-all")}
if full:
    for k, r in full.items():
        print(f'peak RSS {k} on {r["rows"]:,} rows: {r["max_rss_kb"]/1024:.0f} MiB')
print(f"\nmachine shared; load before: {sys.argv[8].strip()}\nload after:  {sys.argv[9].strip()}")
PY
