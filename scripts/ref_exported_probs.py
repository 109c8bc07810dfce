#!/usr/bin/env python3
"""Run a model that `pipeline export` wrote in Python onnxruntime and compare with `pipeline predict`.

    ref_exported_probs.py --onnx EXPORTED.onnx --tokenizer tokenizer.json --data FILE.csv
        --predict PRED.jsonl [--head NAME] [--max-len 384] [--tol 1e-4]

The texts of FILE.csv (column text) are tokenized with the Rust `tokenizers` package (truncated to
--max-len, the max_len the head records), each run alone (batch of one, no padding) through the exported
graph, whose output `probabilities` is compared with the probabilities that predict wrote for the same
row (PRED.jsonl: one JSON object per row, {"row", "heads": {NAME: {"probs": {label: p}}}}; --head picks
NAME when there are several). predict computes them in Go: the
backbone in onnxruntime up to the cut, then the trained blocks and the head in Go; the exported graph has
the trained blocks merged into the backbone. Prints the versions, the max abs difference and the
agreement of the argmax, and exits 1 when the difference exceeds --tol.

Run with the test venv (scripts/requirements-test.txt: onnxruntime, tokenizers, numpy).
"""
import argparse
import csv
import json
import sys

import numpy as np
import onnxruntime as ort
import tokenizers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--predict", required=True)
    ap.add_argument("--head", default="", help="the head's name in PRED.jsonl (default: its only head)")
    ap.add_argument("--text-col", default="text")
    ap.add_argument("--max-len", type=int, default=384)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    with open(a.data, newline="") as f:
        texts = [r[a.text_col] for r in csv.DictReader(f)]
    pred = {}
    with open(a.predict) as f:
        for line in f:
            r = json.loads(line)
            heads = r["heads"]
            name = a.head or (next(iter(heads)) if len(heads) == 1 else sys.exit(f"{a.predict}: heads {list(heads)}; pick one with --head"))
            pred[int(r["row"])] = heads[name]["probs"]
    tok = tokenizers.Tokenizer.from_file(a.tokenizer)
    tok.no_padding()
    tok.enable_truncation(a.max_len)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in sess.get_inputs()]
    worst, agree = 0.0, 0
    for row, text in enumerate(texts):
        e = tok.encode(text)
        feed = {"input_ids": np.array([e.ids], dtype=np.int64), "attention_mask": np.array([e.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids], dtype=np.int64)}
        got = sess.run(["probabilities"], {k: feed[k] for k in inputs})[0][0]
        want = np.array(list(pred[row].values()), dtype=np.float64)  # label order: the head's, as exported
        worst = max(worst, float(np.abs(got - want).max()))
        agree += int(np.argmax(got) == np.argmax(want))
    print(f"onnxruntime {ort.__version__}, tokenizers {tokenizers.__version__}; inputs {inputs}")
    print(f"{len(texts)} rows: max abs diff of probabilities, exported graph vs predict {worst:.3g}; "
          f"argmax agrees on {agree}/{len(texts)} (tolerance {a.tol:g})")
    if not worst <= a.tol:
        sys.exit(1)


if __name__ == "__main__":
    main()
