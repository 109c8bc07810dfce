#!/usr/bin/env bash
# demo.sh: the main job on the embedded default. Extracts mean-pooled all-MiniLM-L6-v2
# features of the shipped Banking77 sample (data/banking77-sample, CC BY 4.0).
# Run through `make demo`, which fetches everything first.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
for split in train test; do
  bin/pipeline extract --model all-minilm-l6-v2 --data data/banking77-sample/$split.csv \
    --text-col text --label-col label --out "$out/$split.safetensors"
done
echo "demo: features in $out/train.safetensors and $out/test.safetensors"
