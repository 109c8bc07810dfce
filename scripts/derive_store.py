#!/usr/bin/env python3
"""Derive a feature store from another for scripts/bench_heads.sh: a subset of its rows, or
its labels turned into a binary problem. The features are copied as they are; the manifest
(the "headstart" metadata) keeps everything but label_names and dataset.rows, and gains
dataset.derived saying how the store was made. The store's checksum (headstart_sha256:
sha256 of the manifest's JSON followed by the data section, as features/sum.go computes
it) is recomputed for the new contents.

Usage:
  derive_store.py SRC OUT [--rows N] [--one-vs-rest LABEL] [--halves]

  --rows N             keep the first N rows
  --one-vs-rest LABEL  two classes: LABEL and "rest" (every other label)
  --halves             two classes: "first_half" (label index < K/2) and "second_half"
Unlabelled rows (label -1) stay unlabelled.
"""
import argparse
import hashlib
import json

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--rows", type=int)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--one-vs-rest")
    g.add_argument("--halves", action="store_true")
    a = ap.parse_args()

    t = load_file(a.src)
    with safe_open(a.src, framework="np") as f:
        meta = f.metadata()
    man = json.loads(meta["headstart"])
    if a.rows is not None:
        if a.rows > len(t["labels"]):
            ap.error(f"{a.src} has {len(t['labels'])} rows; asked for {a.rows}")
        t = {k: v[: a.rows] for k, v in t.items()}
    names = man["label_names"]
    y = t["labels"].copy()
    how = []
    if a.rows is not None:
        how.append(f"first {a.rows} rows")
    if a.one_vs_rest is not None:
        if a.one_vs_rest not in names:
            ap.error(f"label {a.one_vs_rest!r} not in {a.src}; labels: {names}")
        pos = names.index(a.one_vs_rest)
        y = np.where(y < 0, -1, np.where(y == pos, 0, 1)).astype(np.int64)
        man["label_names"] = [a.one_vs_rest, "rest"]
        how.append(f"{a.one_vs_rest} vs rest")
    if a.halves:
        half = len(names) // 2
        y = np.where(y < 0, -1, np.where(y < half, 0, 1)).astype(np.int64)
        man["label_names"] = ["first_half", "second_half"]
        how.append(f"label index < {half} vs the rest")
    t["labels"] = y
    man["dataset"]["rows"] = int(len(y))
    man["dataset"]["derived"] = f"{a.src}: " + ", ".join(how)
    meta["headstart"] = json.dumps(man)
    meta.pop("headstart_sha256", None)
    arrays = {k: np.ascontiguousarray(v) for k, v in t.items()}
    save_file(arrays, a.out, metadata=meta)
    # The data section does not move with the header's length: hash it, then write the
    # same arrays again with the sum in the header.
    with open(a.out, "rb") as f:
        b = f.read()
    data = b[8 + int.from_bytes(b[:8], "little"):]
    meta["headstart_sha256"] = hashlib.sha256(meta["headstart"].encode() + data).hexdigest()
    save_file(arrays, a.out, metadata=meta)


if __name__ == "__main__":
    main()
