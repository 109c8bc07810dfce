#!/usr/bin/env bash
# demo.sh: the main job on the embedded default, run by `make demo` after setup.
# Extracts mean-pooled all-MiniLM-L6-v2 features of the shipped Banking77 sample
# (data/banking77-sample, CC BY 4.0: 20 queries per intent to train on, 10 to test),
# fits an L2 logistic regression head, evaluates it, and plots the confusion matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
for split in train test; do
  bin/pipeline extract --model all-minilm-l6-v2 --data data/banking77-sample/$split.csv \
    --text-col text --label-col label --out "$out/$split.safetensors"
done
bin/pipeline fit-head --train "$out/train.safetensors" --out "$out/head.safetensors" --head logreg --C 1.0 >/dev/null 2>"$out/fit.log"
tail -n 1 "$out/fit.log"
bin/pipeline eval --features "$out/test.safetensors" --head "$out/head.safetensors" --plot "$out/confusion.png" > "$out/eval.txt"
echo "demo: Banking77 sample (770 test queries, 77 intents): $(head -n 1 "$out/eval.txt")"
echo "demo: per-class table: $out/eval.txt; confusion matrix plot: $out/confusion.png"
