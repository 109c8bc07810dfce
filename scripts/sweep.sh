#!/usr/bin/env bash
# The unfreezing sweeps behind RESULTS.md ("How much should I unfreeze?"): pipeline experiment
# --unfreeze on all-MiniLM-L6-v2 (6 blocks) and e5-small-v2 (12 blocks), on SST-2, Banking77 and
# the UCI sentiment sentences. Usage: scripts/sweep.sh minilm|e5 [PIPELINE] (one lane per model;
# run them side by side). Every experiment resumes from its cells, so a stopped lane loses
# nothing: run it again. Outputs under out/sweep/MODEL-DATA/.
#
# To fit two shared cores, the training rows are drawn from smaller pools than the full splits
# (the draws are 8 or 32 rows per class, so a pool of a few thousand rows changes nothing but
# the extraction time): SST-2's train split is sampled to 2,000 rows (seeded, below), Banking77
# is the shipped banking77-sample (20 train / 10 test per intent); SST-2 is scored on the
# whole dev split, the UCI sentences on their whole test split.
set -euo pipefail
lane=${1:?usage: sweep.sh minilm|e5 [PIPELINE]}
bin=${2:-pipeline}
out=out/sweep
mkdir -p "$out"
if [ ! -f "$out/sst2-train-2000.csv" ]; then
	python3 - "$out/sst2-train-2000.csv" <<'PY'
import csv, random, sys
rows = list(csv.reader(open("data/sst2/train.csv", newline="")))
body = rows[1:]
random.Random(0).shuffle(body)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(rows[0])
    w.writerows(body[:2000])
PY
fi
# sha256 92438bbf102d301a9c130558a94132f4a1bb9de46437b7322e7a527e60e08a27 (1,095 positive, 905 negative)

run() { # NAME MODEL UNFREEZE SHOTS TRAIN TEST
	echo "== $(date -u +%T) $1 --unfreeze $3 --shots $4"
	nice -n 10 "$bin" experiment --model "$2" --train "$5" --test "$6" --unfreeze "$3" --shots "$4" --seeds 3 \
		--out "$out/$1" || echo "== $1 stopped ($?)"
}
sst2() { run "$1-sst2" "$2" "$3" "$4" "$out/sst2-train-2000.csv" data/sst2/dev.csv; }
uci() { run "$1-uci" "$2" "$3" "$4" data/uci-sentiment/train.csv data/uci-sentiment/test.csv; }
b77() { run "$1-banking77" "$2" "$3" "$4" data/banking77-sample/train.csv data/banking77-sample/test.csv; }

case $lane in
minilm)
	# Every dataset at 8 per class first (SST-2 with the embeddings and SetFit too), then 32 per
	# class where time allows.
	sst2 minilm all-minilm-l6-v2 0,1,2,3,6 8
	uci minilm all-minilm-l6-v2 0,1,2,3,6 8
	sst2 minilm all-minilm-l6-v2 0,1,2,3,6,full-all+emb,setfit-all 8
	b77 minilm all-minilm-l6-v2 0,1,2,3,6 8
	sst2 minilm all-minilm-l6-v2 0,1,2,3,6 8,32
	uci minilm all-minilm-l6-v2 0,1,2,3,6 8,32
	;;
e5)
	sst2 e5 e5-small-v2 0,1,2,3,6,12 8
	uci e5 e5-small-v2 0,1,2,3,6,12 8
	b77 e5 e5-small-v2 0,1,2,3,6,12 8
	;;
*)
	echo "sweep.sh: lane $lane unknown; want minilm or e5" >&2
	exit 2
	;;
esac
