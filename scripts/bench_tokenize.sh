#!/usr/bin/env bash
# Tokenizer throughput, headstart (tokenize.BenchmarkFixtures) against HuggingFace tokenizers
# from Python (scripts/bench_tokenize.py) on the same tokenizer.json files and texts, run
# alternately ROUNDS times (default 2) so that both sides see the same machine load.
#
#   scripts/bench_tokenize.sh            # prints both sides' lines per round
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
PY=${PY:-$HOME/.cache/headstart/venv-test/bin/python}
MINILM=${MINILM:-$HOME/.cache/headstart/models/all-minilm-l6-v2/tokenizer.json}
go test -c -o /tmp/tokenize-bench.test ./tokenize/
T=tokenize/testdata
for r in $(seq "$ROUNDS"); do
	echo "## round $r: headstart"
	(cd tokenize && /tmp/tokenize-bench.test -test.run '^$' -test.bench '^BenchmarkFixtures$' -test.benchtime 1s) |
		awk '/texts\/s/ { n=$1; sub(/^BenchmarkFixtures\//, "", n); sub(/-[0-9]+$/, "", n); for (i=1;i<=NF;i++) if ($(i+1)=="texts/s") print n, $i, "texts/s" }'
	echo "## round $r: tokenizers"
	"$PY" scripts/bench_tokenize.py "minilm-wordpiece=$MINILM" "bpe-roberta=$T/roberta-bpe.json" \
		"bpe-suffix-bert=$T/wordpiece-bpe-suffix.json" "unigram-xlmr-precompiled=$T/xlmr-unigram.json" \
		"unigram-bytefallback=$T/llama-unigram-bytefallback.json" "wordpiece-mpnet=$T/mpnet.json"
done
