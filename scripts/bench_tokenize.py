#!/usr/bin/env python3
"""Reference side of headstart's tokenizer benchmark: HuggingFace tokenizers (Rust, from Python).

Encodes the texts of tokenize.BenchmarkFixtures (SST-2 dev, tokenize/testdata/multilingual.txt)
with each tokenizer.json at max_len 512 (no padding): one text at a time (encode in a loop,
"seq") and the whole list at once (encode_batch, Rust threads on every core, "all"). Prints one
line per case: NAME/SET/MODE texts/s, the best of --repeat runs of at least --min-time seconds.

Usage: bench_tokenize.py --data data NAME=tokenizer.json ...
"""
import argparse, csv, os, time

import tokenizers
from tokenizers import Tokenizer


def rate(fn, n, min_time):
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += n
        el = time.perf_counter() - start
        if el >= min_time:
            return done / el


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("tokenizers", nargs="+", metavar="NAME=PATH")
    args = ap.parse_args()
    with open(os.path.join(args.data, "sst2", "dev.csv"), encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r)
        sst2 = [row[0] for row in r]
    with open(os.path.join(here, "..", "tokenize", "testdata", "multilingual.txt"), encoding="utf-8") as f:
        ml = f.read().strip().split("\n")
    sets = {"sst2": sst2, "multilingual": ml}
    print(f"# tokenizers {tokenizers.__version__}, RAYON threads {os.environ.get('RAYON_NUM_THREADS', 'default')}")
    for spec in args.tokenizers:
        name, path = spec.split("=", 1)
        tok = Tokenizer.from_file(path)
        tok.no_padding()
        tok.enable_truncation(512)
        for set_name, texts in sets.items():
            def seq():
                for t in texts:
                    tok.encode(t)
            def batch():
                tok.encode_batch(texts)
            for mode, fn in (("seq", seq), ("all", batch)):
                best = max(rate(fn, len(texts), args.min_time) for _ in range(args.repeat))
                print(f"{name}/{set_name}/{mode} {best:.0f} texts/s", flush=True)


if __name__ == "__main__":
    main()
