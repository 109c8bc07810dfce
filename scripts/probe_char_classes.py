#!/usr/bin/env python3
"""Print the code points HuggingFace tokenizers puts in the classes the general pipeline's
pre-tokenizers test, one line per class: NAME CODEPOINT... (decimal). tokenize's
TestCharClasses compares them with its own tests, code point by code point.

  numeric    Digits splits on it (Rust char::is_numeric)
  word       Whitespace keeps it inside a \\w+ run (the Rust regex crate's \\w)
  space      Whitespace drops it (the Rust regex crate's \\s)
  onigword   Split(\\w+) matches it (Oniguruma \\w, what Split and Replace regexes use)
  onigspace  Split(\\s+) matches it (Oniguruma \\s, also ByteLevel's split)
  letter     Split(\\p{L}+) matches it (Oniguruma \\p{L})
  number     Split(\\p{N}+) matches it (Oniguruma \\p{N})
"""
from tokenizers import Regex, pre_tokenizers

digits = pre_tokenizers.Digits(individual_digits=True)
ws = pre_tokenizers.Whitespace()
letter = pre_tokenizers.Split(Regex(r"\p{L}+"), behavior="isolated")
number = pre_tokenizers.Split(Regex(r"\p{N}+"), behavior="isolated")
oword = pre_tokenizers.Split(Regex(r"\w+"), behavior="isolated")
ospace = pre_tokenizers.Split(Regex(r"\s+"), behavior="isolated")
out = {k: [] for k in ("numeric", "word", "space", "onigword", "onigspace", "letter", "number")}
for c in range(0x110000):
    if 0xD800 <= c <= 0xDFFF:
        continue
    ch = chr(c)
    s = "#" + ch + "#"
    if len(digits.pre_tokenize_str(s)) == 3:
        out["numeric"].append(c)
    w = [p for p, _ in ws.pre_tokenize_str("a" + ch + "a")]
    if w == ["a" + ch + "a"]:
        out["word"].append(c)
    elif w == ["a", "a"]:
        out["space"].append(c)
    if [p for p, _ in letter.pre_tokenize_str(s)] == ["#", ch, "#"]:
        out["letter"].append(c)
    if [p for p, _ in number.pre_tokenize_str(s)] == ["#", ch, "#"]:
        out["number"].append(c)
    if [p for p, _ in oword.pre_tokenize_str(s)] == ["#", ch, "#"]:
        out["onigword"].append(c)
    if [p for p, _ in ospace.pre_tokenize_str(s)] == ["#", ch, "#"]:
        out["onigspace"].append(c)
for k, v in out.items():
    print(k, " ".join(map(str, v)))
