#!/usr/bin/env python3
"""Reference draws of numpy's legacy RandomState for headstart's experiment/ parity tests.

Writes one JSON object to --out:

  {"versions": {"python": ..., "numpy": ...},
   "raw": {"SEED": [first 3000 uint32 outputs of RandomState(SEED)], ...},
   "shuffle": {"N": RandomState(42).shuffle(np.arange(N)) as a list, ...},
   "shuffle_repeat": [three successive shuffles of np.arange(100) by one RandomState(7)],
   "mteb": [{"labels": [...], "samples_per_label": k, "experiments": e,
             "selected": [[row indices kept by experiment 1, in order], ...]}, ...]}

"mteb" replays MTEB 1.x's classification sampling literally: AbsTask.__init__ calls
np.random.seed(42); each experiment runs AbsTaskClassification._undersample_data (shuffle
the carried-over index array with the global generator, keep the first
samples_per_label rows of each label in that order), then constructs the evaluator,
whose Evaluator.__init__ calls np.random.seed(42) again.

Usage: ref_mteb_sampling.py --out OUT.json
"""
import argparse
import json
import platform
from collections import defaultdict

import numpy as np


def undersample_data(y, samples_per_label, idxs=None):
    # mteb/abstasks/AbsTaskClassification.py (mteb 1.x), with the texts left out.
    selected = []
    if idxs is None:
        idxs = np.arange(len(y))
    np.random.shuffle(idxs)
    label_counter = defaultdict(int)
    for i in idxs:
        if label_counter[y[i]] < samples_per_label:
            selected.append(int(i))
            label_counter[y[i]] += 1
    return selected, idxs


def mteb_case(labels, samples_per_label, experiments):
    np.random.seed(42)  # AbsTask.__init__
    idxs = None
    out = []
    for _ in range(experiments):
        selected, idxs = undersample_data(labels, samples_per_label, idxs)
        np.random.seed(42)  # Evaluator.__init__ of logRegClassificationEvaluator
        out.append(selected)
    return {"labels": list(map(int, labels)), "samples_per_label": samples_per_label,
            "experiments": experiments, "selected": out}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    raw = {}
    for seed in (0, 1, 42, 5489, 2**32 - 1):
        rs = np.random.RandomState(seed)
        raw[str(seed)] = [int(v) for v in rs._bit_generator.random_raw(3000)]

    shuffle = {}
    for n in (0, 1, 2, 3, 10, 100, 1000, 10003, 70000):
        x = np.arange(n)
        np.random.RandomState(42).shuffle(x)
        shuffle[str(n)] = x.tolist()

    rs = np.random.RandomState(7)
    x = np.arange(100)
    repeat = []
    for _ in range(3):
        rs.shuffle(x)
        repeat.append(x.tolist())

    gen = np.random.RandomState(123)
    balanced = [i % 13 for i in range(500)]
    skewed = [int(v) for v in np.minimum(gen.geometric(0.3, size=800) - 1, 9)]
    banking_like = [int(v) for v in gen.randint(0, 77, size=10003)]
    cases = [mteb_case(balanced, 8, 4), mteb_case(skewed, 5, 3), mteb_case(banking_like, 8, 10)]

    json.dump({"versions": {"python": platform.python_version(), "numpy": np.__version__},
               "raw": raw, "shuffle": shuffle, "shuffle_repeat": repeat, "mteb": cases},
              open(args.out, "w"))


if __name__ == "__main__":
    main()
