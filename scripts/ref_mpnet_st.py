#!/usr/bin/env python3
"""Compare a headstart feature store of all-mpnet-base-v2 with sentence-transformers on the same rows.

    ref_mpnet_st.py --checkpoint DIR --data FILE.csv --store FEATURES.safetensors [--batch-size 32]

DIR is the sentence-transformers snapshot that scripts/setup.sh mpnet unpacks
($HEADSTART_CACHE/downloads/mpnet/all-mpnet-base-v2); the store comes from
`pipeline extract --model $HEADSTART_CACHE/mpnet/all-mpnet-base-v2 --data FILE.csv` (the card's mean
pooling, normalised, max_len 384). The rows are matched by the store's row_ids (0-based data rows).
SentenceTransformer.encode runs on the CPU in float32 (PyTorch, not onnxruntime): an independent
reference for tokenizer, graph and pooling together. Prints the versions, the max abs difference over all
values, the least cosine similarity, and exits 1 when the max abs difference exceeds --tol.

Run with the bench venv (scripts/requirements-bench.txt: torch, sentence-transformers).
"""
import argparse
import csv
import sys

import numpy as np
import sentence_transformers
import torch
import transformers
from safetensors import safe_open
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--text-col", default="text")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    with open(a.data, newline="") as f:
        texts = [r[a.text_col] for r in csv.DictReader(f)]
    with safe_open(a.store, "np") as f:
        got = f.get_tensor("features")
        rows = f.get_tensor("row_ids")
    texts = [texts[int(i)] for i in rows]
    torch.set_num_threads(2)
    st = SentenceTransformer(a.checkpoint, device="cpu")
    want = st.encode(texts, batch_size=a.batch_size, convert_to_numpy=True, show_progress_bar=False)
    diff = float(np.abs(got - want).max())
    cos = float((got * want).sum(axis=1).min() / 1)  # both L2-normalised
    print(f"sentence-transformers {sentence_transformers.__version__}, transformers {transformers.__version__}, "
          f"torch {torch.__version__}; max_seq_length {st.max_seq_length}")
    print(f"{len(texts)} rows x {got.shape[1]} dims: max abs diff {diff:.3g}, least cosine {cos:.9f} (tolerance {a.tol:g})")
    if not diff <= a.tol:
        sys.exit(1)


if __name__ == "__main__":
    main()
