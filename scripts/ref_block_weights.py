#!/usr/bin/env python3
"""Reference weights of one BERT encoder block of an ONNX model, for the Go tests of onnx/block.go.

Reads the model with the `onnx` Python package (numpy_helper decodes the initialisers: an
implementation independent of the Go protobuf decoding) and finds the block's tensors by the node
names torch.onnx gives HuggingFace modules:

    /encoder/layer.{i}/attention/self/{query,key,value}/MatMul    weight [in, out], then Add of the bias
    /encoder/layer.{i}/attention/output/dense/MatMul, intermediate/dense/MatMul, output/dense/MatMul
    /encoder/layer.{i}/{attention/output,output}/LayerNorm/{Mul,Add_1,Add}   gamma, beta, epsilon
    /encoder/layer.{i}/attention/self/Constant_2, Constant_3                 heads, head size

Weights are reported in torch.nn.Linear's layout, (out, in) row-major, as checksums (float64 sum,
a position-weighted sum that changes under transposition) and values at a few flat indices:

    ref_block_weights.py --model model.onnx --layer 5 --out ref.json

Output: {"header": {tool versions, model path and sha256, layer},
         "heads", "head_size",
         "linear": {"query": {"in", "out", "weight_name", "bias_name", "w_sum", "w_wsum",
                              "w_samples": [[index, value], ...], "b_sum", "b_samples"}, ...},
         "norm": {"attention": {"gamma_name", "beta_name", "eps", "gamma_sum", "beta_sum"}, "output": ...}}
Run with the venv that scripts/setup.sh venv creates.
"""
import argparse
import hashlib
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper

LINEAR = {
    "query": "attention/self/query",
    "key": "attention/self/key",
    "value": "attention/self/value",
    "attention_output": "attention/output/dense",
    "intermediate": "intermediate/dense",
    "output": "output/dense",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--layer", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.model, "rb") as f:
        data = f.read()
    model = onnx.load_from_string(data)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    nodes = {n.name: n for n in g.node}

    def const(name):
        if name in inits:
            return inits[name]
        if name in consts:
            return consts[name]
        raise SystemExit(f"ref_block_weights.py: {name} is not a constant")

    p = f"/encoder/layer.{args.layer}/"
    out = {
        "header": {
            "script": "scripts/ref_block_weights.py",
            "python": sys.version.split()[0],
            "onnx": onnx.__version__,
            "numpy": np.__version__,
            "model": args.model,
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "layer": args.layer,
        },
        "linear": {},
        "norm": {},
    }
    for key, scope in LINEAR.items():
        mm = nodes[p + scope + "/MatMul"]
        w_name = mm.input[1]
        w = const(w_name).astype(np.float32).T  # [in, out] -> (out, in)
        add = nodes[p + scope + "/Add"]
        b_name = [x for x in add.input if x != mm.output[0]][0]
        b = const(b_name).astype(np.float32)
        flat = w.ravel().astype(np.float64)
        k = np.arange(flat.size)
        idx = sorted({0, 1, w.shape[1], flat.size // 3 + 7, flat.size // 2 + 11, flat.size - 1})
        out["linear"][key] = {
            "in": int(w.shape[1]),
            "out": int(w.shape[0]),
            "weight_name": w_name,
            "bias_name": b_name,
            "w_sum": float(flat.sum()),
            "w_wsum": float((flat * ((k % 7) - 3)).sum()),
            "w_samples": [[int(i), float(flat[i])] for i in idx],
            "b_sum": float(b.astype(np.float64).sum()),
            "b_samples": [[int(i), float(b[i])] for i in (0, b.size // 2, b.size - 1)],
        }
    for key, scope in {"attention": "attention/output/LayerNorm", "output": "output/LayerNorm"}.items():
        mul, add1, add = nodes[p + scope + "/Mul"], nodes[p + scope + "/Add_1"], nodes[p + scope + "/Add"]
        gamma_name = [x for x in mul.input if x in inits][0]
        beta_name = [x for x in add1.input if x in inits][0]
        eps = [const(x) for x in add.input if x in inits or x in consts][0]
        out["norm"][key] = {
            "gamma_name": gamma_name,
            "beta_name": beta_name,
            "eps": float(np.float32(eps)),
            "gamma_sum": float(inits[gamma_name].astype(np.float64).sum()),
            "beta_sum": float(inits[beta_name].astype(np.float64).sum()),
        }
    out["heads"] = int(const(nodes[p + "attention/self/Constant_2"].output[0]).ravel()[0])
    out["head_size"] = int(const(nodes[p + "attention/self/Constant_3"].output[0]).ravel()[0])

    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
