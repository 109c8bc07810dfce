#!/usr/bin/env bash
# mpnet_e2e.sh: all-mpnet-base-v2 (real weights) end to end on an SST-2 slice, each step against its
# reference, outside CI (needs `make setup-mpnet`, the test venv and the bench venv):
#
#   1. pipeline extract on dev (the card's mean pooling, normalised, max_len 384), compared with
#      sentence-transformers on the same rows (scripts/ref_mpnet_st.py, bound 1e-4)
#   2. pipeline extract --cut-top 1 on the first TRAIN_ROWS train rows and on dev
#   3. pipeline fit-head --mode lora --top-k 1 (EPOCHS epochs), the valid accuracy
#   4. pipeline export, then the exported graph in Python onnxruntime against pipeline predict
#      (scripts/ref_exported_probs.py, bound 1e-4)
#
# Environment: TRAIN_ROWS (default 2000), DEV_ROWS (default 0: all 872), EPOCHS (default 1),
# OUT (default out/mpnet-e2e), THREADS (default 2). Exits non-zero when a step or a check fails.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
model="$cache/mpnet/all-mpnet-base-v2"
ckpt="$cache/downloads/mpnet/all-mpnet-base-v2"
out=${OUT:-$here/out/mpnet-e2e}
train_rows=${TRAIN_ROWS:-2000} dev_rows=${DEV_ROWS:-0} epochs=${EPOCHS:-1} threads=${THREADS:-2}
[ -f "$model/model.onnx" ] || { echo "mpnet_e2e.sh: $model missing; run make setup-mpnet" >&2; exit 2; }
mkdir -p "$out"
cd "$here" && go build -o "$out/pipeline" ./cmd/pipeline
p="$out/pipeline"
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "slice of SST-2"
python3 - "$here/data/sst2" "$out" "$train_rows" "$dev_rows" <<'PY'
import sys
src, out, ntrain, ndev = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for name, n in (("train", ntrain), ("dev", ndev)):
    lines = open(f"{src}/{name}.csv").read().splitlines(keepends=True)
    open(f"{out}/{name}.csv", "w").writelines(lines[:1 + n] if n > 0 else lines)
PY

step "1. extract dev, compared with sentence-transformers"
"$p" extract --model "$model" --data "$out/dev.csv" --threads "$threads" --out "$out/dev.safetensors"
HF_HUB_OFFLINE=1 "$cache/venv-bench/bin/python" scripts/ref_mpnet_st.py --checkpoint "$ckpt" --data "$out/dev.csv" --store "$out/dev.safetensors"

step "2. extract --cut-top 1"
"$p" extract --model "$model" --data "$out/train.csv" --cut-top 1 --threads "$threads" --out "$out/train.cache"
"$p" extract --model "$model" --data "$out/dev.csv" --cut-top 1 --threads "$threads" --out "$out/dev.cache"

step "3. fit-head --mode lora --top-k 1"
"$p" fit-head --model "$model" --train "$out/train.cache" --valid "$out/dev.cache" --mode lora --top-k 1 \
  --epochs "$epochs" --threads "$threads" --seed 1 --out "$out/lora.head"

step "4. export, predict, the exported graph against predict"
"$p" export --model "$model" --head "$out/lora.head" --out "$out/lora.onnx"
"$p" predict --model "$model" --head "$out/lora.head" --data "$out/dev.csv" --threads "$threads" --out "$out/pred.jsonl"
"$cache/venv-test/bin/python" scripts/ref_exported_probs.py --onnx "$out/lora.onnx" --tokenizer "$out/lora.tokenizer.json" \
  --data "$out/dev.csv" --predict "$out/pred.jsonl"
step "done"
