#!/usr/bin/env python3
"""Print what HuggingFace tokenizers' NFD, NFKD, NFC and NFKC normalizers make of every code point
that they change, one line each: FORM CODEPOINT OUT-CODEPOINTS... (decimal). tokenize's
TestNormalFormsSingle compares them with its own normal forms, code point by code point."""
from tokenizers import normalizers

forms = {"NFD": normalizers.NFD(), "NFKD": normalizers.NFKD(), "NFC": normalizers.NFC(), "NFKC": normalizers.NFKC()}
for c in range(0x110000):
    if 0xD800 <= c <= 0xDFFF:
        continue  # surrogates cannot occur in valid UTF-8
    ch = chr(c)
    for name, n in forms.items():
        r = n.normalize_str(ch)
        if r != ch:
            print(name, c, " ".join(str(ord(x)) for x in r))
