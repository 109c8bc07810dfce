#!/usr/bin/env python3
"""Reference for `pipeline models quantize`: onnxruntime's Python quantizer on the same model.

Writes OUTDIR/model.onnx = onnxruntime.quantization.quantize_dynamic(MODEL, weight_type=QInt8,
per_channel=PER_CHANNEL, op_types_to_quantize=["MatMul", "Gemm"]) (the products headstart
quantises; the embeddings stay float32 on both sides) and copies tokenizer.json and
manifest.json (dtype int8) next to it, so that the directory can be given as --model.

Usage: quantize_ref.py MODEL_DIR OUTDIR [--per-tensor]
"""
import json
import shutil
import sys
from pathlib import Path

import onnxruntime
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    per_channel = "--per-tensor" not in sys.argv[3:]
    out.mkdir(parents=True, exist_ok=False)
    quantize_dynamic(str(src / "model.onnx"), str(out / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=per_channel, op_types_to_quantize=["MatMul", "Gemm"])
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    man = json.loads((src / "manifest.json").read_text()) if (src / "manifest.json").exists() else {}
    man.update({"name": out.name, "dtype": "int8", "source": {"kind": "local"}, "files": {},
                "description": f"{src.name}, onnxruntime {onnxruntime.__version__} quantize_dynamic "
                               f"(QInt8, per_channel={per_channel}, MatMul and Gemm)"})
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")


if __name__ == "__main__":
    main()
