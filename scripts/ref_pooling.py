#!/usr/bin/env python3
"""Reference pooling for features/pool_test.go (numpy 2.4.6, float32).

Usage: ref_pooling.py DIR B T C

Reads DIR/hidden.f32 ((B,T,C) little-endian float32) and DIR/mask.i64 ((B,T) int64) and
writes DIR/{mean,cls,max,last,mean_norm}.f32, each (B,C) float32, computed the way
sentence_transformers.models.Pooling (v3) and Normalize compute them, in numpy:

  mean = (h*m).sum(1) / clip(m.sum(1), 1e-9)      m = mask expanded to (B,T,C) as float32
  cls  = h[:, 0]
  max  = max over t of (h where m else -1e9)
  last = h[b, last t with mask 1]  (token 0 when the mask is all zeros: flip + argmax)
  mean_norm = mean / max(||mean||_2, 1e-12)
"""
import sys
from pathlib import Path

import numpy as np

d = Path(sys.argv[1])
B, T, C = (int(x) for x in sys.argv[2:5])
h = np.fromfile(d / "hidden.f32", dtype="<f4").reshape(B, T, C)
mask = np.fromfile(d / "mask.i64", dtype="<i8").reshape(B, T)
m = np.broadcast_to(mask[:, :, None], h.shape).astype(np.float32)

mean = (h * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
cls = h[:, 0]
hm = h.copy()
hm[m == 0] = -1e9
mx = hm.max(1)
flipped = mask[:, ::-1]
values, indices = flipped.max(1), flipped.argmax(1)
indices = np.where(values == 0, T - 1, indices)
last = h[np.arange(B), T - indices - 1]
norm = np.linalg.norm(mean, axis=1, keepdims=True).astype(np.float32)
mean_norm = mean / np.maximum(norm, np.float32(1e-12))

for name, a in [("mean", mean), ("cls", cls), ("max", mx), ("last", last), ("mean_norm", mean_norm)]:
    assert a.dtype == np.float32 and a.shape == (B, C), (name, a.dtype, a.shape)
    np.ascontiguousarray(a).astype("<f4").tofile(d / f"{name}.f32")
