#!/usr/bin/env python3
"""Reference outputs of an ONNX encoder, from Python onnxruntime, for the Go tests of onnx/.

Runs the model on one sequence of token ids (attention mask all ones, token type ids all zeros,
batch of one) and writes every graph output to a JSON file. With --expose, it runs a second
session on a copy of the model in which the named intermediate tensors were added as graph
outputs with the `onnx` Python package (an implementation independent of the Go graph editing
in onnx/graph.go), and writes that session's outputs too.

    ref_onnx.py --model model.onnx --ids 101,7592,2088,102 \
        [--expose /encoder/layer.2/output/LayerNorm/Add_1_output_0 ...] --out ref.json

Output: {"header": {tool versions, model path and sha256, ids, exposed names},
         "outputs": [{"name", "shape", "data" (flattened, row-major)}, ...],
         "exposed_outputs": [...]}   (the edited model's outputs; only with --expose)
in graph-output order. The session uses onnxruntime's defaults (CPU, ORT_ENABLE_ALL).
Run with the venv that scripts/setup.sh venv creates.
"""
import argparse
import hashlib
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def run(model: bytes, feeds: dict) -> list:
    """Runs the model on the feeds it declares; returns its outputs as JSON-ready dicts."""
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    missing = [i.name for i in sess.get_inputs() if i.name not in feeds]
    if missing:
        raise SystemExit(f"ref_onnx.py: model wants inputs {missing} this script does not make")
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})
    return [
        {"name": n, "shape": list(o.shape), "data": [float(x) for x in np.asarray(o, dtype=np.float32).ravel()]}
        for n, o in zip(names, outs)
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--expose", action="append", default=[], help="tensor to add as a graph output")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    ids = np.array([[int(x) for x in args.ids.split(",")]], dtype=np.int64)
    with open(args.model, "rb") as f:
        data = f.read()
    sha = hashlib.sha256(data).hexdigest()

    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    outputs = run(data, feeds)
    exposed = None
    if args.expose:
        model = onnx.load_from_string(data)
        have = {o.name for o in model.graph.output}
        for name in args.expose:
            if name not in have:
                model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        exposed = run(model.SerializeToString(), feeds)

    doc = {
        "header": {
            "script": "scripts/ref_onnx.py",
            "python": sys.version.split()[0],
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "numpy": np.__version__,
            "model": args.model,
            "model_sha256": sha,
            "ids": ids[0].tolist(),
            "exposed": args.expose,
        },
        "outputs": outputs,
    }
    if exposed is not None:
        doc["exposed_outputs"] = exposed
    with open(args.out, "w") as f:
        json.dump(doc, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
