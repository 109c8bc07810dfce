#!/usr/bin/env python3
"""Reference logistic regression for headstart's head/ parity tests and benchmarks.

Fits scikit-learn's LogisticRegression (solver lbfgs, L2) on a headstart feature store
(safetensors: features F32 [N, D], labels I64 [N]) and, optionally, scores a test store.
Writes one JSON object:

  {"versions": {...}, "settings": {...}, "classes": [label indices],
   "coef": [[...], ...], "intercept": [...], "n_iter": int, "fit_seconds": float,
   "train_accuracy": float, "test_accuracy": float, "test_pred": [...],
   "test_proba": [[...], ...]}

coef has scikit-learn's shape: (1, D) for two classes, (K, D) otherwise. Test labels are
mapped to training classes by name (the manifests' label_names). Floats are written with
repr precision (exact float64 round trip).

Usage:
  ref_logreg.py --train TRAIN.safetensors [--test TEST.safetensors] --out OUT.json
                [--C 1.0] [--tol 1e-4] [--max-iter 100] [--class-weight balanced]
                [--threads N] [--no-proba]
"""
import argparse
import json
import platform
import sys
import time
import warnings

import numpy as np
import safetensors
import scipy
import sklearn
from safetensors import safe_open
from safetensors.numpy import load_file
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def load(path):
    t = load_file(path)
    with safe_open(path, framework="np") as f:
        manifest = json.loads(f.metadata()["headstart"])
    return t["features"], t["labels"], manifest["label_names"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--class-weight", choices=["none", "balanced"], default="none")
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0: library default)")
    ap.add_argument("--no-proba", action="store_true", help="omit test_proba")
    a = ap.parse_args()

    limits = None
    if a.threads > 0:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=a.threads)

    X, y, names = load(a.train)
    if (y < 0).any():
        sys.exit(f"{a.train}: unlabelled rows")
    clf = LogisticRegression(
        C=a.C, tol=a.tol, max_iter=a.max_iter,
        class_weight=None if a.class_weight == "none" else "balanced",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(X, y)
        fit_seconds = time.perf_counter() - t0

    out = {
        "versions": {
            "python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__,
            "safetensors": safetensors.__version__,
        },
        "settings": {"C": a.C, "tol": a.tol, "max_iter": a.max_iter,
                     "class_weight": a.class_weight, "threads": a.threads},
        "train": a.train,
        "classes": [int(c) for c in clf.classes_],
        "coef": clf.coef_.tolist(),
        "intercept": clf.intercept_.tolist(),
        "n_iter": int(clf.n_iter_[0]),
        "fit_seconds": fit_seconds,
        "train_accuracy": float(clf.score(X, y)),
    }
    if a.test:
        Xt, yt, tnames = load(a.test)
        index = {n: i for i, n in enumerate(names)}
        missing = sorted({tnames[l] for l in yt if tnames[l] not in index})
        if missing:
            sys.exit(f"{a.test}: labels not in training: {missing}")
        yt = np.array([index[tnames[l]] for l in yt])
        pred = clf.predict(Xt)
        out["test"] = a.test
        out["test_accuracy"] = float((pred == yt).mean())
        out["test_pred"] = [int(p) for p in pred]
        if not a.no_proba:
            out["test_proba"] = clf.predict_proba(Xt).tolist()
    with open(a.out, "w") as f:
        json.dump(out, f)
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
