#!/usr/bin/env bash
# bench_extract.sh: `pipeline extract` vs the Python onnxruntime reference vs
# sentence-transformers, same data (first N SST-2 train sentences), model, batch size,
# max length and thread count, in one run on one machine. Also peak RSS at 10k vs all
# 67k rows, and the Go tokenizer benchmark. Prints a markdown table for BENCHMARKS.md and
# writes the raw numbers to out/bench/extract.jsonl.
#
# Usage: scripts/bench_extract.sh   (via `make bench-extract`; needs `scripts/setup.sh venv bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
data=data/sst2/train.csv
N=${BENCH_ROWS:-10000}
BS=${BENCH_BATCH:-32}
TH=${BENCH_THREADS:-2}
py=$cache/venv-bench/bin/python
model=$cache/models/all-minilm-l6-v2
out=out/bench
mkdir -p "$out"
: > "$out/extract.jsonl"
head -n $((N + 1)) "$data" > "$out/sst2-$N.csv"

rss() { grep "Maximum resident" "$1" | awk '{print $NF}'; }

echo "bench: pipeline extract on $N rows" >&2
/usr/bin/time -v bin/pipeline extract --data "$out/sst2-$N.csv" --out "$out/go-$N.safetensors" \
  --batch-size "$BS" --threads "$TH" --max-len 128 --json 2> "$out/time-$N.txt" \
  | python3 -c "import json,sys; d=json.load(sys.stdin); d['impl']='headstart'; d['max_rss_kb']=int(sys.argv[1]) if sys.argv[1] else None; print(json.dumps(d))" "$(rss "$out/time-$N.txt" 2>/dev/null || true)" >> "$out/extract.jsonl" || { cat "$out/time-$N.txt"; exit 1; }
# /usr/bin/time writes after the program: re-read RSS now that it is complete.
python3 - "$out/extract.jsonl" "$(rss "$out/time-$N.txt")" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows[-1]["max_rss_kb"] = int(sys.argv[2])
open(sys.argv[1], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY

echo "bench: Python references on $N rows" >&2
"$py" scripts/bench_extract.py --data "$out/sst2-$N.csv" --model "$model/model.onnx" --tokenizer "$model/tokenizer.json" \
  --batch-size "$BS" --threads "$TH" --max-len 128 >> "$out/extract.jsonl"

if [ "${BENCH_RSS_FULL:-1}" = 1 ]; then
  echo "bench: peak RSS on all rows" >&2
  /usr/bin/time -v bin/pipeline extract --data "$data" --out "$out/go-all.safetensors" \
    --batch-size "$BS" --threads "$TH" --json 2> "$out/time-all.txt" > "$out/go-all.json"
  python3 - "$out/extract.jsonl" "$out/go-all.json" "$(rss "$out/time-all.txt")" <<'PY'
import json, sys
d = json.load(open(sys.argv[2])); d["impl"] = "headstart-all-rows"; d["max_rss_kb"] = int(sys.argv[3])
open(sys.argv[1], "a").write(json.dumps(d) + "\n")
PY
fi

echo "bench: Go tokenizer benchmark" >&2
go test -run '^$' -bench 'BenchmarkEncode' -benchmem ./tokenize/ | tee "$out/tokenize-bench.txt" >&2

python3 - "$out/extract.jsonl" "$N" "$BS" "$TH" <<'PY'
import json, sys
rows = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
go = rows["headstart"]
print(f"\n{sys.argv[2]} SST-2 train sentences, batch {sys.argv[3]}, {sys.argv[4]} threads, max_len 128, all-MiniLM-L6-v2 fp32\n")
print("| implementation | sentences/s | headstart / this | time in Run | padding efficiency | peak RSS |")
print("|---|---|---|---|---|---|")
for name in ["headstart", "python-onnxruntime", "python-onnxruntime-sorted", "sentence-transformers"]:
    r = rows.get(name)
    if not r:
        continue
    ratio = go["rows_per_s"] / r["rows_per_s"]
    rf = f'{100*r["run_fraction"]:.1f}%' if "run_fraction" in r else "-"
    pe = f'{100*r["padding_efficiency"]:.1f}%' if "padding_efficiency" in r else "-"
    rss = f'{r["max_rss_kb"]/1024:.0f} MiB' if r.get("max_rss_kb") else "-"
    print(f'| {name} | {r["rows_per_s"]:.1f} | {ratio:.2f}x | {rf} | {pe} | {rss} |')
if "headstart-all-rows" in rows:
    a = rows["headstart-all-rows"]
    print(f'\nPeak RSS, pipeline extract: {go["max_rss_kb"]/1024:.0f} MiB at {go["rows"]} rows, {a["max_rss_kb"]/1024:.0f} MiB at {a["rows"]} rows ({a["rows_per_s"]:.1f} sentences/s).')
PY
