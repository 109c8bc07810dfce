#!/usr/bin/env python3
"""Reads a headstart feature store with the safetensors library, for features/store_test.go
(safetensors 0.8.0, numpy 2.4.6).

Usage: ref_store.py STORE OUTDIR [F32SRC]

Loads STORE with safetensors.numpy.load_file and safe_open, and writes to OUTDIR:
  info.json          {"tensors": {name: {"dtype": numpy dtype, "shape": [...]}}, "metadata": {...},
                      "sha256": hashlib's SHA-256 of the manifest's JSON then the data bytes}
  <name>.bin         each tensor's bytes as loaded (little-endian)
With F32SRC (raw little-endian float32), also writes f16.bin: numpy's astype(float16) of it,
the reference for the Go float32 -> float16 conversion.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

store, out = sys.argv[1], Path(sys.argv[2])
tensors = load_file(store)
with safe_open(store, framework="numpy") as f:
    metadata = f.metadata()
    keys = sorted(f.keys())
assert keys == sorted(tensors), (keys, sorted(tensors))
# The checksum headstart records under "headstart_sha256", computed independently.
raw = Path(store).read_bytes()
n = int.from_bytes(raw[:8], "little")
manifest = metadata["headstart"].encode()
info = {"tensors": {}, "metadata": metadata, "sha256": hashlib.sha256(manifest + raw[8 + n:]).hexdigest()}
for name, a in tensors.items():
    info["tensors"][name] = {"dtype": str(a.dtype), "shape": list(a.shape)}
    np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tofile(out / f"{name}.bin")
(out / "info.json").write_text(json.dumps(info, sort_keys=True))
if len(sys.argv) > 3:
    src = np.fromfile(sys.argv[3], dtype="<f4")
    src.astype("<f2").tofile(out / "f16.bin")
