#!/usr/bin/env python3
"""Reference logistic regression for headstart's head/ parity tests and benchmarks.

Fits scikit-learn's LogisticRegression (solver lbfgs, L2) on a headstart feature store
(safetensors: features F32 [N, D], labels I64 [N]) and, optionally, scores a test store.
With float32 features (the default, as stored) scipy's L-BFGS-B evaluates the objective
at float32 parameters and scikit-learn computes it in float32 (as headstart's default
Precision float32 does); --dtype float64 casts the features so that the same objective is
computed in float64 (headstart's Precision float64, the same path iteration for iteration).
Writes one JSON object:

  {"versions": {...}, "settings": {...}, "classes": [label indices],
   "coef": [[...], ...], "intercept": [...], "n_iter": int, "fit_seconds": float,
   "fit_cpu_seconds": float (process CPU time of the fit),
   "train_accuracy": float, "test_accuracy": float, "test_true": [...], "test_pred": [...],
   "test_proba": [[...], ...], "metrics": {...}, "head_proba": [[...], ...]}

coef has scikit-learn's shape: (1, D) for two classes, (K, D) otherwise. Test labels are
mapped to training classes by name (the manifests' label_names); test_true and test_pred
hold label indices of the training store. "metrics" are scikit-learn's scores of the
test predictions: accuracy, macro and weighted F1, per-class precision/recall/F1/support
(zero_division=0, labels = classes), log_loss of the probabilities cast to float32, and
the confusion matrix. Floats are written with repr precision (exact float64 round trip).

With --head FILE (a headstart head file, safetensors), the head's probabilities on the
test features are computed here with numpy from the file alone (standardisation,
layers, GELU, softmax / binary / sigmoid output), as an independent reader of the format.

Usage:
  ref_logreg.py --train TRAIN.safetensors [--test TEST.safetensors] --out OUT.json
                [--C 1.0] [--tol 1e-4] [--max-iter 100] [--class-weight balanced]
                [--threads N] [--no-proba] [--head HEAD.safetensors]
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
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, log_loss,
                             precision_recall_fscore_support)
from scipy.special import erf, expit, softmax


def load(path):
    t = load_file(path)
    with safe_open(path, framework="np") as f:
        manifest = json.loads(f.metadata()["headstart"])
    return t["features"], t["labels"], manifest["label_names"]


def head_proba(path, X):
    """Probabilities of a headstart head file on X, from the file alone."""
    t = load_file(path)
    with safe_open(path, framework="np") as f:
        meta = json.loads(f.metadata()["headstart_head"])
    h = X.astype(np.float64)
    if meta["standardize"]:
        h = (h - t["mean"]) / t["std"]
    for i, layer in enumerate(meta["layers"]):
        h = h @ t[f"layers.{i}.weight"].T + t[f"layers.{i}.bias"]
        if layer["activation"] == "gelu":
            h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    if meta["output"] == "softmax":
        return softmax(h, axis=1)
    if meta["output"] == "binary":
        p = expit(h[:, 0])
        return np.stack([1 - p, p], axis=1)
    return expit(h)


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
    ap.add_argument("--head", help="a headstart head file to evaluate on --test with numpy")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="features' dtype for scikit-learn (float32: as stored, and scikit-learn "
                         "then evaluates the objective in float32)")
    a = ap.parse_args()

    limits = None
    if a.threads > 0:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=a.threads)

    X, y, names = load(a.train)
    X = X.astype(a.dtype)
    if (y < 0).any():
        sys.exit(f"{a.train}: unlabelled rows")
    clf = LogisticRegression(
        C=a.C, tol=a.tol, max_iter=a.max_iter,
        class_weight=None if a.class_weight == "none" else "balanced",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0, c0 = time.perf_counter(), time.process_time()
        clf.fit(X, y)
        fit_seconds = time.perf_counter() - t0
        fit_cpu_seconds = time.process_time() - c0

    out = {
        "versions": {
            "python": platform.python_version(), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__,
            "safetensors": safetensors.__version__,
        },
        "settings": {"C": a.C, "tol": a.tol, "max_iter": a.max_iter, "dtype": a.dtype,
                     "class_weight": a.class_weight, "threads": a.threads},
        "train": a.train,
        "classes": [int(c) for c in clf.classes_],
        "coef": clf.coef_.tolist(),
        "intercept": clf.intercept_.tolist(),
        "n_iter": int(clf.n_iter_[0]),
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": fit_cpu_seconds,
        "train_accuracy": float(clf.score(X, y)),
    }
    if a.test:
        Xt, yt, tnames = load(a.test)
        Xt = Xt.astype(a.dtype)
        index = {n: i for i, n in enumerate(names)}
        missing = sorted({tnames[l] for l in yt if tnames[l] not in index})
        if missing:
            sys.exit(f"{a.test}: labels not in training: {missing}")
        yt = np.array([index[tnames[l]] for l in yt])
        pred = clf.predict(Xt)
        proba = clf.predict_proba(Xt)
        out["test"] = a.test
        out["test_accuracy"] = float((pred == yt).mean())
        out["test_true"] = [int(y) for y in yt]
        out["test_pred"] = [int(p) for p in pred]
        labels = clf.classes_
        prec, rec, f1, sup = precision_recall_fscore_support(yt, pred, labels=labels, zero_division=0)
        out["metrics"] = {
            "accuracy": float(accuracy_score(yt, pred)),
            "macro_f1": float(f1_score(yt, pred, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(yt, pred, average="weighted", zero_division=0)),
            "log_loss": float(log_loss(yt, proba.astype(np.float32), labels=labels)),
            "precision": prec.tolist(), "recall": rec.tolist(), "f1": f1.tolist(),
            "support": [int(v) for v in sup],
            "confusion": confusion_matrix(yt, pred, labels=labels).tolist(),
        }
        if not a.no_proba:
            out["test_proba"] = proba.tolist()
        if a.head:
            out["head_proba"] = head_proba(a.head, Xt).tolist()
    with open(a.out, "w") as f:
        json.dump(out, f)
    if limits is not None:
        limits.restore_original_limits()


if __name__ == "__main__":
    main()
