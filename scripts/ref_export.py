#!/usr/bin/env python3
"""Runs classifiers exported by onnx.Model.AppendHead in Python onnxruntime, for the Go tests of onnx/.

For each exported model it checks the file with the `onnx` package's checker (full_check: strict
shape inference against the declared opset), runs it with onnxruntime on a batch of token ids, and
writes its outputs and custom metadata. With --backbone and --spec, it also computes the same
classifier independently in numpy: it runs the original encoder with its hidden states added as
graph outputs (with the `onnx` package, as scripts/ref_onnx.py does), pools them as
sentence_transformers.models.Pooling does, and applies the head described in the spec.

    ref_export.py --feeds feeds.json --out out.json EXPORTED.onnx [EXPORTED2.onnx ...]
        [--backbone model.onnx --spec spec1.json [--spec spec2.json ...]]   (one spec per model)

feeds.json: {"input_ids": {"shape": [B, T], "data": [...]}, "attention_mask": ..., "token_type_ids": ...}
spec.json:  {"pooling": "mean|cls|max|last", "hidden": [tensor names to pool, in order],
             "normalize": bool, "mean": [...] | null, "std": [...] | null,
             "dense": [{"w": [...] (out x in, row-major), "b": [...], "activation": "identity|gelu"}],
             "output": "softmax|sigmoid|binary"}
Output: {"header": {tool versions}, "models": [{"path", "sha256", "opset", "checker": "ok",
         "metadata": {...}, "outputs": [{"name", "shape", "data"}], "numpy": {"probabilities": [...],
         "logits": [...]} (with --spec)}]}
Run with the venv that scripts/setup.sh venv creates. Exits non-zero when a check fails.
"""
import argparse
import hashlib
import json
import math
import sys

import numpy as np
import onnx
import onnxruntime as ort


def load_feeds(path):
    with open(path) as f:
        raw = json.load(f)
    return {k: np.array(v["data"], dtype=np.int64).reshape(v["shape"]) for k, v in raw.items()}


def run(model, feeds, outputs=None):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in sess.get_outputs()]
    res = sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})
    return sess, names, res


def pool(h, mask, how):
    """sentence_transformers.models.Pooling (v3) on float32 arrays; mask any nonzero = 1."""
    m = (mask != 0).astype(np.float32)[:, :, None]
    if how == "mean":
        return (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    if how == "cls":
        return h[:, 0]
    if how == "max":
        return np.where(m > 0, h, np.float32(-1e9)).max(1)
    if how == "last":
        out = np.empty((h.shape[0], h.shape[2]), dtype=h.dtype)
        for b in range(h.shape[0]):
            nz = np.nonzero(mask[b])[0]
            out[b] = h[b, nz[-1] if len(nz) else 0]
        return out
    raise SystemExit(f"ref_export.py: pooling {how!r} unknown")


def numpy_head(backbone, feeds, spec):
    model = onnx.load_from_string(backbone)
    have = {o.name for o in model.graph.output}
    for name in spec["hidden"]:
        if name not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    _, _, hs = run(model.SerializeToString(), feeds, spec["hidden"])
    x = np.concatenate([pool(h, feeds["attention_mask"], spec["pooling"]) for h in hs], axis=1)
    if spec["normalize"]:  # torch.nn.functional.normalize(p=2, eps=1e-12)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    x = x.astype(np.float64)
    if spec.get("mean") is not None:
        x = (x - np.array(spec["mean"], dtype=np.float32)) / np.array(spec["std"], dtype=np.float32)
    erf = np.vectorize(math.erf)
    for d in spec["dense"]:
        b = np.array(d["b"], dtype=np.float32).astype(np.float64)
        w = np.array(d["w"], dtype=np.float32).astype(np.float64).reshape(len(b), -1)
        x = x @ w.T + b
        if d["activation"] == "gelu":
            x = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    z = x
    if spec["output"] == "softmax":
        e = np.exp(z - z.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
    elif spec["output"] == "sigmoid":
        p = 1 / (1 + np.exp(-z))
    else:
        q = 1 / (1 + np.exp(-z))
        p = np.concatenate([1 - q, q], axis=1)
    return {"probabilities": p.ravel().tolist(), "logits": z.ravel().tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--feeds", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backbone")
    ap.add_argument("--spec", action="append", default=[])
    args = ap.parse_args()
    if args.spec and (len(args.spec) != len(args.models) or not args.backbone):
        raise SystemExit("ref_export.py: --spec needs --backbone and one spec per model")

    feeds = load_feeds(args.feeds)
    backbone = None
    if args.backbone:
        with open(args.backbone, "rb") as f:
            backbone = f.read()
    results = []
    for i, path in enumerate(args.models):
        with open(path, "rb") as f:
            data = f.read()
        onnx.checker.check_model(path, full_check=True)  # raises on an invalid model
        model = onnx.load_from_string(data)
        sess, names, outs = run(data, feeds)
        r = {
            "path": path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "opset": [{"domain": o.domain, "version": o.version} for o in model.opset_import],
            "checker": "ok",
            "inputs": [i.name for i in sess.get_inputs()],
            "metadata": dict(sess.get_modelmeta().custom_metadata_map),
            "outputs": [
                {"name": n, "shape": list(o.shape), "data": [float(v) for v in np.asarray(o, dtype=np.float32).ravel()]}
                for n, o in zip(names, outs)
            ],
        }
        if args.spec:
            with open(args.spec[i]) as f:
                r["numpy"] = numpy_head(backbone, feeds, json.load(f))
        results.append(r)

    doc = {
        "header": {
            "script": "scripts/ref_export.py",
            "python": sys.version.split()[0],
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
        },
        "models": results,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
