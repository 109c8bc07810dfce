#!/usr/bin/env python3
"""A small randomly initialised MPNet encoder, exported as headstart reads it, with a PyTorch reference.

    make_mpnet_fixture.py [--out testdata/layouts/mpnet]

What it writes (OUT, committed; the block math is what the tests check, the weights are random):
  model.onnx      torch.onnx.export(dynamo=False) of transformers 4.x MPNetModel (3 blocks, hidden 32,
                  4 heads, intermediate 64, 32 relative-position buckets, 130 positions), opset 17,
                  inputs input_ids / attention_mask, output last_hidden_state: the legacy form that
                  scripts/export_onnx.py writes for all-mpnet-base-v2
  tokenizer.json  a WordPiece vocabulary of about 250 words with MPNet's pipeline (BertNormalizer lowercase,
                  BertPreTokenizer, RobertaProcessing <s> A </s>, <pad> = 1, <mask> lstrip)
  manifest.json   as scripts/export_onnx.py writes it (mean pooling, normalised, max_len 128)
  reference.json  {"header": versions and seed, "texts", "ids" (per text, unpadded),
                  "hidden_states": [text][layer 0..L][token][feature] (PyTorch output_hidden_states, each
                  text alone: entering block l, and the last hidden state),
                  "relative_attention_bias": (32, 4) table, "buckets": {"from": -R, "values": [...]} of
                  MPNetEncoder.relative_position_bucket for relative positions -R..R,
                  "ort_last_hidden_state": Python onnxruntime on model.onnx, each text alone}
  SHA256SUMS

Seeded (torch.manual_seed); LayerNorm weights, biases and the relative bias table are redrawn larger than
transformers' initialisation, so that a weight read from the wrong place, or a bias added at the wrong
offset, shows. Texts include one over 40 tokens so that relative distances reach the logarithmic buckets.

Run with the export venv (scripts/requirements-export.txt); the script re-runs itself with the
transformers 4.x overlay of scripts/requirements-export-tf4.txt first on PYTHONPATH (installing it
when missing, as scripts/make_export_fixtures.py does).
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEED = 20261205
RANGE = 200  # relative positions -RANGE..RANGE in the bucket reference

TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog .",
    "a",
    "good music and a great film , but the book was bad and the food was not good at all",
    # Unknown words split into characters: a long sequence (relative distances past 16).
    "headstart reads mpnet graphs ; zyxwvut qrstuv and 0123456789 split into many many pieces !",
    "<mask> is a token too",
]

WORDS = (
    "the a an and or but not no of to in on at for with from by is was are were be been it this that these "
    "those i you he she we they my your his her our their what which who when where why how all any some "
    "one two three four five good great bad awful fine best worst love hate like film movie book music food "
    "day night time world hello quick brown fox jumps over lazy dog cat read reads model file files text "
    "word words get split head start new old big small long short very much more most less up down out "
    "make made go went see saw say said work play run happy sad funny boring nice poor rich light dark "
    "too token many pieces into"
).split()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-")
    vocab = specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [w for w in WORDS if w not in vocab]
    vocab += ["##s", "##ed", "##ing", "##ly", "##er"]
    vocab = list(dict.fromkeys(vocab)) + ["<mask>"]
    tok = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok, len(vocab)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "testdata" / "layouts" / "mpnet"))
    a = ap.parse_args()

    import transformers
    if not transformers.__version__.startswith("4."):
        sys.path.insert(0, str(HERE))
        from make_export_fixtures import tf4_overlay
        env = dict(os.environ, PYTHONPATH=str(tf4_overlay()) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        sys.exit(subprocess.run([sys.executable, __file__] + sys.argv[1:], env=env).returncode)

    import numpy as np
    import onnx
    import onnxruntime as ort
    import tokenizers
    import torch
    from transformers import MPNetConfig, MPNetModel

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tok, vocab_size = tokenizer()
    tok.save(str(out / "tokenizer.json"))

    torch.manual_seed(SEED)
    cfg = MPNetConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=130, relative_attention_num_buckets=32,
                      hidden_act="gelu", initializer_range=0.2, layer_norm_eps=1e-5, pad_token_id=1)
    model = MPNetModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(torch.randn_like(p))

    # The export: a batch of two padded texts, dynamic batch and sequence axes.
    class Keywords(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    encs = [tok.encode(t) for t in TEXTS]
    ids = [e.ids for e in encs]
    T = max(len(x) for x in ids[:2])
    xi = np.ones((2, T), dtype=np.int64)
    xm = np.zeros((2, T), dtype=np.int64)
    for i, x in enumerate(ids[:2]):
        xi[i, :len(x)], xm[i, :len(x)] = x, 1
    names = ["input_ids", "attention_mask"]
    dyn = {n: {0: "batch_size", 1: "sequence_length"} for n in names + ["last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(Keywords(model).eval(), (torch.from_numpy(xi), torch.from_numpy(xm)), str(out / "model.onnx"),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=dyn, opset_version=17, dynamo=False)
    model.eval()

    # References, each text alone.
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    hidden, ort_last = [], []
    worst = 0.0
    for x in ids:
        ti = torch.tensor([x])
        with torch.no_grad():
            hs = model(input_ids=ti, attention_mask=torch.ones_like(ti), output_hidden_states=True).hidden_states
        hidden.append([h[0].tolist() for h in hs])
        o = sess.run(["last_hidden_state"], {"input_ids": ti.numpy(), "attention_mask": np.ones_like(ti.numpy())})[0][0]
        ort_last.append(o.tolist())
        worst = max(worst, float(np.abs(o - hs[-1][0].numpy()).max()))
    if not worst <= 1e-4:
        sys.exit(f"make_mpnet_fixture.py: onnxruntime and PyTorch differ by {worst:.3g} > 1e-4")
    rel = torch.arange(-RANGE, RANGE + 1)
    buckets = model.encoder.relative_position_bucket(rel, num_buckets=cfg.relative_attention_num_buckets)

    header = {
        "script": "scripts/make_mpnet_fixture.py", "seed": SEED, "python": sys.version.split()[0],
        "torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "onnx": onnx.__version__, "onnxruntime": ort.__version__, "opset": 17, "exporter": "torch.onnx dynamo=False",
        "config": {k: getattr(cfg, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                  "intermediate_size", "max_position_embeddings",
                                                  "relative_attention_num_buckets", "layer_norm_eps", "pad_token_id")},
        "ort_vs_torch_max_abs_diff": worst,
    }
    ref = {
        "header": header, "texts": TEXTS, "ids": ids, "hidden_states": hidden,
        "relative_attention_bias": model.encoder.relative_attention_bias.weight.tolist(),
        "buckets": {"from": -RANGE, "values": buckets.tolist()},
        "ort_last_hidden_state": ort_last,
    }
    (out / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")

    manifest = {
        "name": "mpnet-tiny",
        "description": "randomly initialised MPNetModel (3 blocks, hidden 32), a test fixture written by scripts/make_mpnet_fixture.py",
        "license": "Apache-2.0",
        "source": {"kind": "local", "repo": "testdata/layouts/mpnet"},
        "files": {f: {"path": p, "sha256": sha256(out / p), "size": (out / p).stat().st_size}
                  for f, p in (("model", "model.onnx"), ("tokenizer", "tokenizer.json"))},
        "architecture": "mpnet", "dtype": "fp32", "hidden_size": 32, "layers": 3, "max_len": 128,
        "inputs": names, "output": "last_hidden_state", "pooling": "mean", "normalize": True,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sums = "".join(f"{sha256(out / f)}  {f}\n" for f in ("model.onnx", "tokenizer.json", "manifest.json", "reference.json"))
    (out / "SHA256SUMS").write_text(sums)
    print(f"wrote {out}/ ({sum((out / f).stat().st_size for f in ('model.onnx', 'tokenizer.json', 'reference.json')):,d} bytes); "
          f"onnxruntime vs PyTorch max abs diff {worst:.2g}")


if __name__ == "__main__":
    main()
