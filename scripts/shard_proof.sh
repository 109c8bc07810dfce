#!/usr/bin/env bash
# shard_proof.sh: run N=4 shard processes of `pipeline extract` at once, as a scheduler
# would, merge them, and compare with a single run (cmp: identical bytes). Then kill one
# shard midway (SIGKILL), rerun it with --resume, merge again, compare again.
# Usage: scripts/shard_proof.sh [DATA.csv] [ROWS]   (default: SST-2 dev, all 872 rows)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data/sst2/dev.csv}
rows=${2:-0}
out=out/shard-proof
rm -rf "$out"; mkdir -p "$out"
common=(--data "$data" --limit "$rows" --chunk-rows 64 --threads 1)
bin/pipeline extract "${common[@]}" --out "$out/single.safetensors"
for i in 0 1 2 3; do
  bin/pipeline extract "${common[@]}" --shard "$i/4" --out "$out/shard-$i.safetensors" &
done
wait
bin/pipeline features merge --out "$out/merged.safetensors" "$out"/shard-?.safetensors
cmp "$out/single.safetensors" "$out/merged.safetensors"
echo "shard-proof: 4 concurrent shards merged == single run ($(stat -c %s "$out/merged.safetensors") bytes, identical)"

rm "$out/shard-2.safetensors" "$out/merged.safetensors"
bin/pipeline extract "${common[@]}" --shard 2/4 --out "$out/shard-2.safetensors" &
pid=$!
until [ -f "$out/shard-2.safetensors.partial.json" ] && ! grep -q '"rows":0' "$out/shard-2.safetensors.partial.json"; do sleep 0.05; done
kill -9 $pid; wait $pid 2>/dev/null || true
echo "shard-proof: killed shard 2 after $(grep -o '"rows":[0-9]*' "$out/shard-2.safetensors.partial.json") rows"
bin/pipeline extract "${common[@]}" --shard 2/4 --resume --out "$out/shard-2.safetensors"
bin/pipeline features merge --out "$out/merged.safetensors" "$out"/shard-?.safetensors
cmp "$out/single.safetensors" "$out/merged.safetensors"
echo "shard-proof: after kill -9 and --resume, merged == single run (identical)"
