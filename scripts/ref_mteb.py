#!/usr/bin/env python3
"""MTEB 1.x classification protocol on headstart feature stores, for cross-checking
`pipeline experiment --protocol mteb` (experiment.RunMTEB).

Replays mteb's AbsTaskClassification._evaluate_subset with logRegClassificationEvaluator
on embeddings read from two feature stores (safetensors: features F32 [N, D], labels I64
[N], manifest label_names), instead of embedding texts with a model:

  np.random.seed(42)                                  # AbsTask.__init__
  idxs = None
  for each of n_experiments:
      X, y, idxs = _undersample_data(X_train, y_train, samples_per_label, idxs)
      np.random.seed(42)                              # Evaluator.__init__
      clf = LogisticRegression(random_state=42, n_jobs=-1, max_iter=100).fit(X, y)
      accuracy_score(y_test, clf.predict(X_test)), f1_score(..., average="macro")
  mean over experiments

MTEB hands scikit-learn the model's float32 embeddings (the default --dtype float32);
--dtype float64 casts them, as headstart's solver computes in float64. Writes one JSON
object: {"versions": {...}, "dtype": ..., "accuracy": mean, "macro_f1": mean,
"experiments": [{"accuracy", "macro_f1", "n_iter", "train_rows", "selected"}, ...]}.

Usage: ref_mteb.py --train TRAIN.safetensors --test TEST.safetensors --out OUT.json
                   [--samples-per-label 8] [--experiments 10] [--dtype float32|float64]
"""
import argparse
import json
import platform
import warnings
from collections import defaultdict

import numpy as np
import safetensors
import sklearn
from safetensors import safe_open
from safetensors.numpy import load_file
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score


def load(path):
    t = load_file(path)
    with safe_open(path, framework="np") as f:
        names = json.loads(f.metadata()["headstart"])["label_names"]
    return t["features"], [names[i] for i in t["labels"]]


def undersample_data(X, y, samples_per_label, idxs=None):
    # mteb/abstasks/AbsTaskClassification.py (mteb 1.x)
    X_sampled, y_sampled, selected = [], [], []
    if idxs is None:
        idxs = np.arange(len(y))
    np.random.shuffle(idxs)
    label_counter = defaultdict(int)
    for i in idxs:
        if label_counter[y[i]] < samples_per_label:
            X_sampled.append(X[i])
            y_sampled.append(y[i])
            selected.append(int(i))
            label_counter[y[i]] += 1
    return X_sampled, y_sampled, idxs, selected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--samples-per-label", type=int, default=8)
    ap.add_argument("--experiments", type=int, default=10)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()

    X_train, y_train = load(args.train)
    X_test, y_test = load(args.test)
    X_train = X_train.astype(args.dtype)
    X_test = X_test.astype(args.dtype)

    np.random.seed(42)
    idxs = None
    experiments = []
    for _ in range(args.experiments):
        X, y, idxs, selected = undersample_data(X_train, y_train, args.samples_per_label, idxs)
        np.random.seed(42)
        clf = LogisticRegression(random_state=42, n_jobs=-1, max_iter=100)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", FutureWarning)  # n_jobs has no effect since scikit-learn 1.8
            clf.fit(np.asarray(X), y)
        pred = clf.predict(X_test)
        experiments.append({"accuracy": accuracy_score(y_test, pred), "macro_f1": f1_score(y_test, pred, average="macro"),
                            "n_iter": int(np.max(clf.n_iter_)), "train_rows": len(y), "selected": selected})

    json.dump({"versions": {"python": platform.python_version(), "numpy": np.__version__,
                            "scikit-learn": sklearn.__version__, "safetensors": safetensors.__version__},
               "dtype": args.dtype,
               "accuracy": float(np.mean([e["accuracy"] for e in experiments])),
               "macro_f1": float(np.mean([e["macro_f1"] for e in experiments])),
               "experiments": experiments}, open(args.out, "w"))


if __name__ == "__main__":
    main()
