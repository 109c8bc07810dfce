#!/usr/bin/env python3
"""Reference embeddings for headstart's parity tests: HF tokenizers + Python onnxruntime + numpy.

Independent of the Go code: tokenizes with the Rust `tokenizers` package, exposes the encoder's
hidden states with the `onnx` package, runs Python onnxruntime, pools with numpy the way
sentence-transformers does, and writes one safetensors file with a tensor per configuration:

  <pooling>_L<layers joined by '_'>[_norm]   float32 (N, D * len(layers))

Layer indices follow HuggingFace `output_hidden_states`: 0 is the embeddings output, i the output
of encoder block i-1; negative indices count from the end (-1 is the last block).

Usage: ref_embed.py --model model.onnx --tokenizer tokenizer.json --data dev.csv --out ref.safetensors
       [--max-len 128] [--batch-size 32] [--config mean:-1 --config mean:-4,-3,-2,-1 --config cls:-1:norm ...]
"""
import argparse, csv, hashlib, json, re, sys

import numpy as np
import onnx
import onnxruntime as ort
import tokenizers
from safetensors.numpy import save_file


def hidden_state_names(model):
    names = {}
    for node in model.graph.node:
        m = re.match(r"^/encoder/layer\.(\d+)/output/LayerNorm/", node.name)
        if m:
            names[int(m.group(1)) + 1] = node.output[0]  # last node in the prefix wins
        elif node.name.startswith("/embeddings/LayerNorm/"):
            names[0] = node.output[0]
    return [names[i] for i in range(len(names))]


def pool(h, mask, how):
    m = mask[:, :, None].astype(np.float32)
    if how == "mean":
        return (h * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    if how == "cls":
        return h[:, 0, :]
    if how == "max":
        return np.where(m > 0, h, np.float32(-1e9)).max(axis=1)
    if how == "last":
        idx = mask.sum(axis=1) - 1
        return h[np.arange(h.shape[0]), idx, :]
    raise ValueError(how)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--text-col", default="text")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--config", action="append", default=[])
    a = ap.parse_args()
    configs = a.config or ["mean:-1"]

    with open(a.data, newline="", encoding="utf-8") as f:
        texts = [r[a.text_col] for r in csv.DictReader(f)]
    if a.limit:
        texts = texts[: a.limit]

    tok = tokenizers.Tokenizer.from_file(a.tokenizer)
    tok.no_padding()
    tok.enable_truncation(max_length=a.max_len)

    model = onnx.load(a.model)
    hs = hidden_state_names(model)
    outputs = {o.name for o in model.graph.output}
    for name in hs:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    in_names = [i.name for i in sess.get_inputs()]

    parsed = []
    for c in configs:
        parts = c.split(":")
        layers = [int(x) for x in parts[1].split(",")]
        layers = [l if l >= 0 else len(hs) + l for l in layers]
        parsed.append((c, parts[0], layers, len(parts) > 2 and parts[2] == "norm"))
    results = {c: [] for c, *_ in parsed}

    for start in range(0, len(texts), a.batch_size):
        encs = tok.encode_batch(texts[start : start + a.batch_size])
        T = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), T), np.int64)
        mask = np.zeros((len(encs), T), np.int64)
        types = np.zeros((len(encs), T), np.int64)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        outs = sess.run(hs, {k: v for k, v in feed.items() if k in in_names})
        for c, how, layers, norm in parsed:
            v = np.concatenate([pool(outs[l], mask, how) for l in layers], axis=1)
            if norm:
                v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            results[c].append(v.astype(np.float32))

    tensors = {}
    for c, how, layers, norm in parsed:
        key = how + "_L" + "_".join(str(l) for l in layers) + ("_norm" if norm else "")
        tensors[key] = np.ascontiguousarray(np.concatenate(results[c], axis=0))
    meta = {
        "onnxruntime": ort.__version__, "tokenizers": tokenizers.__version__, "numpy": np.__version__,
        "onnx": onnx.__version__, "model_sha256": hashlib.sha256(open(a.model, "rb").read()).hexdigest(),
        "max_len": str(a.max_len), "batch_size": str(a.batch_size), "rows": str(len(texts)),
    }
    save_file(tensors, a.out, metadata=meta)
    print(json.dumps({"out": a.out, "tensors": sorted(tensors)}), file=sys.stderr)


if __name__ == "__main__":
    main()
