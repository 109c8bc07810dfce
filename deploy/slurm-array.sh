#!/usr/bin/env bash
# Sharded extraction as a Slurm job array: task i runs shard i of 8.
#   sbatch deploy/slurm-array.sh /data/corpus.csv /data/features
# `--shard auto` reads SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and
# SLURM_ARRAY_TASK_COUNT. A requeued task resumes its shard (--resume). When all tasks are
# done, join the shards:
#   pipeline features merge --out /data/features.safetensors /data/features/shard-*.safetensors
# (or submit that with --dependency=afterok:<array job id>).
#SBATCH --job-name=headstart-extract
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --requeue
set -euo pipefail
data=${1:?usage: sbatch slurm-array.sh DATA.csv OUTDIR}
outdir=${2:?usage: sbatch slurm-array.sh DATA.csv OUTDIR}
mkdir -p "$outdir"
exec pipeline extract --model all-minilm-l6-v2 --data "$data" \
  --shard auto --resume --threads "${SLURM_CPUS_PER_TASK:-4}" \
  --out "$outdir/shard-${SLURM_ARRAY_TASK_ID}.safetensors"
