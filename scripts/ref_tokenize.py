#!/usr/bin/env python3
"""Reference token ids for headstart's tokenize parity test: HuggingFace `tokenizers` (Rust).

Reads a corpus, encodes every text with Tokenizer.from_file (the file's own padding disabled,
truncation LongestFirst/right at each --max-len, and once untruncated for the token count) and
writes JSON lines:

  line 1: {"format": "headstart-ref-tokenize/1", "tokenizers": "<version>",
           "tokenizer": "<path>", "tokenizer_sha256": "<hex>", "max_lengths": [128, 512],
           "count": N}
  then one line per text, in corpus order:
          {"n": <tokens without truncation, specials included>,
           "ids":  {"128": [...], "512": [...]},
           "mask": {"128": [...], "512": [...]},
           "type": {"128": [...], "512": [...]}}
  with --offsets, each line also has, at the largest max length,
          "off": [[start, end], ...]  byte offsets of each token in its own sequence's UTF-8 text
          "seq": [0, 0, 1, -1, ...]    sequence of each token (-1: special token)
          "tok": ["<s>", ...]          token strings

The corpus is JSON lines with a "text" field and optionally a "pair" field (encoded as a
sentence pair) (.jsonl), or plain text, one text per line.

Usage: ref_tokenize.py --tokenizer tokenizer.json --input corpus.jsonl --out ref.jsonl
       [--max-len 128 --max-len 512]
"""
import argparse, hashlib, json, sys

import tokenizers
from tokenizers import Tokenizer


def read_corpus(path):
    texts = []
    # newline="" keeps \r and U+2028 inside texts; JSON lines escape them anyway.
    with open(path, encoding="utf-8", newline="") as f:
        if path.endswith(".jsonl"):
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    texts.append((rec["text"], rec["pair"]) if "pair" in rec else rec["text"])
        else:
            texts = [line.rstrip("\n") for line in f]
    return texts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-len", type=int, action="append")
    ap.add_argument("--offsets", action="store_true", help="also write byte offsets, sequence ids and tokens")
    args = ap.parse_args()
    max_lens = args.max_len or [128, 512]

    with open(args.tokenizer, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    texts = read_corpus(args.input)

    tok.no_truncation()
    full = [len(e.ids) for e in tok.encode_batch(texts)]
    by_len = {}
    for m in max_lens:
        tok.enable_truncation(m, strategy="longest_first", direction="right", stride=0)
        by_len[m] = tok.encode_batch(texts)

    with open(args.out, "w", encoding="utf-8") as out:
        out.write(json.dumps({
            "format": "headstart-ref-tokenize/1",
            "tokenizers": tokenizers.__version__,
            "tokenizer": args.tokenizer,
            "tokenizer_sha256": sha,
            "max_lengths": max_lens,
            "count": len(texts),
        }) + "\n")
        for i in range(len(texts)):
            rec = {"n": full[i], "ids": {}, "mask": {}, "type": {}}
            for m in max_lens:
                e = by_len[m][i]
                rec["ids"][str(m)] = e.ids
                rec["mask"][str(m)] = e.attention_mask
                rec["type"][str(m)] = e.type_ids
            if args.offsets:
                e = by_len[max(max_lens)][i]
                seqs = texts[i] if isinstance(texts[i], tuple) else (texts[i],)
                starts = []  # byte offset of each character, and of the end, per sequence
                for t in seqs:
                    b, acc = 0, []
                    for ch in t:
                        acc.append(b)
                        b += len(ch.encode("utf-8"))
                    acc.append(b)
                    starts.append(acc)
                off, seq = [], []
                for (a, z), sid in zip(e.offsets, e.sequence_ids):
                    if sid is None:
                        off.append([0, 0])
                        seq.append(-1)
                    else:
                        off.append([starts[sid][a], starts[sid][z]])
                        seq.append(sid)
                rec["off"], rec["seq"], rec["tok"] = off, seq, e.tokens
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
