#!/usr/bin/env python3
"""Random-weight RoBERTa, XLM-R, DistilBERT and MPNet encoders exported to ONNX, with a PyTorch reference dump.

    make_layout_fixtures.py [--out DIR] [--families roberta,xlmr,distilbert,mpnet]

These are test fixtures for headstart's encoder layouts (onnx.Model.Layout, BlockWeights,
EmbeddingWeights; lora's block and embeddings math): small configurations (hidden 32, 2 blocks,
4 heads, intermediate 64) with seeded random weights, NOT trained models. Their outputs mean
nothing; what the Go tests check is that headstart computes the same block and embedding math as
PyTorch and onnxruntime on them.

Each family gets DIR/<family>-random/ (default DIR testdata/layouts) holding
  model.onnx      torch.onnx.export(dynamo=False) of transformers 4.x's AutoModel, inputs input_ids
                  and attention_mask (no token_type_ids: none of these families needs one), output
                  last_hidden_state, dynamic batch and sequence axes, opset 17: the legacy form most
                  published ONNX exports of these families have
  tokenizer.json  the tokenizer whose vocabulary the embedding table fits: tokenize/testdata's
                  roberta-bpe.json (byte-level BPE, RobertaProcessing), xlmr-unigram.json (Unigram,
                  Precompiled normaliser), the tiny BERT WordPiece of testdata/exportforms, and for
                  MPNet a WordPiece of about 250 words built here with MPNet's pipeline (BertNormalizer
                  lowercase, BertPreTokenizer, RobertaProcessing <s> A </s>, <pad> = 1, <mask> lstrip)
  config.json     the transformers config
and, for DistilBERT and MPNet, DIR/<family>-random-optimum/ (the same weights through `optimum-cli export
onnx --task feature-extraction`, optimum-onnx 0.1.0 under the transformers 4.x overlay) and
DIR/<family>-random-dynamo/ with the same weights exported by
torch.onnx.export(dynamo=True) under transformers 5.x (opset 18; node names after aten ops), and
DIR/reference.json, DIR/SHA256SUMS.

reference.json: {"header": versions, "families": {family: {"dir", "hidden", "layers", "heads",
"padding_idx" (RoBERTa/XLM-R/MPNet) or null, "texts", "ids", "position_ids" (what PyTorch's embeddings use),
"hidden_states": [per text: [per state l = 0..L: [per token: [C floats]]]], "ort_max_abs_diff"}}}.
hidden_states are PyTorch's output_hidden_states (state 0 = the embeddings output, state l + 1 =
block l's output) for the texts run as ONE right-padded batch with its attention mask, cut to each
text's own tokens; ort_max_abs_diff is the largest |Python onnxruntime − PyTorch| over every text's
last_hidden_state on that batch (dynamo_ort_max_abs_diff: the dynamo form against transformers 5's
PyTorch forward). One text holds a literal <pad> token mid-sentence (RoBERTa, XLM-R and MPNet), so that
RoBERTa's position ids skip a pad inside a sequence. MPNet's entry adds "relative_attention_bias" (the
(32, heads) table) and "buckets": {"from": -R, "values"} (PyTorch's MPNetEncoder.relative_position_bucket
of the relative positions -R..R, R = 200); one MPNet text is over 40 tokens, so that relative distances
reach the logarithmic buckets.

Run with the export venv (scripts/requirements-export.txt; scripts/setup.sh venv export); the export
and the reference run in a child process with the transformers 4.x overlay of
scripts/requirements-layout-fixtures.txt first on PYTHONPATH (scripts/make_export_fixtures.py installs
that overlay; so does this script when it is missing). The output is deterministic for a given set of
versions (seeded weights; CPU), except the dynamo export's bytes, which vary between runs (its values do not).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from make_export_fixtures import tf4_overlay  # noqa: E402  (the transformers 4.x overlay)

FAMILIES = {
    "roberta": {"tokenizer": REPO / "tokenize" / "testdata" / "roberta-bpe.json", "seed": 15001},
    "xlmr": {"tokenizer": REPO / "tokenize" / "testdata" / "xlmr-unigram.json", "seed": 15002},
    "distilbert": {"tokenizer": REPO / "testdata" / "exportforms" / "legacy" / "tokenizer.json", "seed": 15003},
    "mpnet": {"tokenizer": None, "seed": 15004},  # built by mpnet_tokenizer()
}

TEXTS = {
    "roberta": [
        "Hello world!",
        "The quick brown fox jumps over the lazy dog, twice.",
        "a <pad> inside a sentence",
        "Tokenizers split unknownwordz into byte-level pieces; numbers 12345 too.",
        "ok",
    ],
    "xlmr": [
        "Hello world!",
        "Der schnelle braune Fuchs springt über den faulen Hund.",
        "a <pad> inside a sentence",
        "Ｆｕｌｌ－ｗｉｄｔｈ forms and café naïve résumé",
        "ok",
    ],
    "distilbert": [
        "hello world",
        "the quick brown fox jumps over the lazy dog .",
        "headstart reads model files ; unknownwordz get split !",
        "a",
        "good music and a great film , but the book was bad",
    ],
    "mpnet": [
        "hello world",
        "the quick brown fox jumps over the lazy dog .",
        "a <pad> inside a sentence",
        "headstart reads mpnet graphs ; zyxwvut qrstuv and 0123456789 split into many many pieces !",
        "<mask> is a token too",
    ],
}

# Families also exported with torch.onnx.export(dynamo=True) under transformers 5.x, the same weights
# (DistilBERT: the block layout other than BERT's; RoBERTa's blocks are BERT's, which
# testdata/exportforms/dynamo covers):
# node names after aten ops, module names rebuilt from parameter names (one per block layout).
DYNAMO = ("distilbert", "mpnet")
# Families also exported by `optimum-cli export onnx --task feature-extraction` (optimum-onnx under the
# transformers 4.x overlay), the same weights: the export most published ONNX checkpoints come from.
OPTIMUM = ("distilbert", "mpnet")
RELATIVE_RANGE = 200  # MPNet's bucket reference covers relative positions -200..200

MPNET_WORDS = (
    "the a an and or but not no of to in on at for with from by is was are were be been it this that these "
    "those i you he she we they my your his her our their what which who when where why how all any some "
    "one two three four five good great bad awful fine best worst love hate like film movie book music food "
    "day night time world hello quick brown fox jumps over lazy dog cat read reads model file files text "
    "word words get split head start new old big small long short very much more most less up down out "
    "make made go went see saw say said work play run happy sad funny boring nice poor rich light dark "
    "too token many pieces into inside sentence"
).split()


def mpnet_tokenizer():
    """A small WordPiece tokenizer with all-mpnet-base-v2's pipeline: <s> <pad> </s> <unk> first, [UNK] for
    the model's unknown pieces, <mask> last with lstrip, RobertaProcessing."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    specials = ["<s>", "<pad>", "</s>", "<unk>", "[UNK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-")
    vocab = specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [w for w in MPNET_WORDS if w not in vocab] + ["##s", "##ed", "##ing", "##ly", "##er"]
    vocab = list(dict.fromkeys(vocab)) + ["<mask>"]
    tok = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0), trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok

HIDDEN, LAYERS, HEADS, INTER = 32, 2, 4, 64
OPSET = 17


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def vocab_size(tokenizer_json: Path) -> int:
    d = json.loads(tokenizer_json.read_text())
    v = d["model"]["vocab"]
    ids = list(v.values()) if isinstance(v, dict) else list(range(len(v)))
    ids += [t["id"] for t in d.get("added_tokens", [])]
    return max(ids) + 1


def build_model(family: str, vocab: int, seed: int):
    """A seeded random model: HF's init, then every bias and LayerNorm parameter perturbed too (HF
    starts them at 0 and 1, which would hide a swapped or misread gamma or bias)."""
    import torch
    torch.manual_seed(seed)
    if family in ("roberta", "xlmr"):
        from transformers import RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel
        cfg_cls, model_cls = (RobertaConfig, RobertaModel) if family == "roberta" else (XLMRobertaConfig, XLMRobertaModel)
        cfg = cfg_cls(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      intermediate_size=INTER, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                      bos_token_id=0, eos_token_id=2, initializer_range=0.1, hidden_act="gelu",
                      attn_implementation="eager")
        model = model_cls(cfg, add_pooling_layer=False)
    elif family == "mpnet":
        from transformers import MPNetConfig, MPNetModel
        cfg = MPNetConfig(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                          intermediate_size=INTER, max_position_embeddings=514, relative_attention_num_buckets=32,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2, initializer_range=0.1, hidden_act="gelu",
                          layer_norm_eps=1e-5, attn_implementation="eager")
        model = MPNetModel(cfg, add_pooling_layer=False)
    else:
        from transformers import DistilBertConfig, DistilBertModel
        cfg = DistilBertConfig(vocab_size=vocab, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTER,
                               max_position_embeddings=512, initializer_range=0.1, activation="gelu", pad_token_id=0,
                               attn_implementation="eager")
        model = DistilBertModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "LayerNorm" in name or "layer_norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name:  # MPNet: large enough to move the softmax
                p.copy_(torch.randn_like(p))
    return model.eval()


class Keywords:
    """Wraps a model so that the exporter's positional call passes keywords and gets the last
    hidden state (built lazily: torch is imported in the child only)."""

    def __new__(cls, m):
        import torch

        class K(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return K(m)


def child_dynamo(family: str, out: Path, state: Path):
    """transformers 5.x: the legacy form's weights (state, saved by child) in the same
    configuration, exported with torch.onnx.export(dynamo=True) to out/model.onnx; prints
    {"ort_max_abs_diff"} (Python onnxruntime vs this PyTorch on the reference batch)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoConfig, AutoModel

    legacy = out.parent / out.name.removesuffix("-dynamo")
    out.mkdir(parents=True, exist_ok=True)
    for f in ("tokenizer.json", "config.json"):
        (out / f).write_bytes((legacy / f).read_bytes())
    cfg = AutoConfig.from_pretrained(str(legacy))
    cfg._attn_implementation = "eager"
    model = AutoModel.from_config(cfg, **({} if family == "distilbert" else {"add_pooling_layer": False}))
    missing, unexpected = model.load_state_dict(torch.load(state), strict=False)
    if [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))] or unexpected:
        raise SystemExit(f"{family}: state dict does not fit: missing {missing}, unexpected {unexpected}")
    model.eval()
    batch, mask = torch.load(str(state) + ".batch")
    dyn = {0: "batch_size", 1: "sequence_length"}
    with torch.no_grad():
        torch.onnx.export(Keywords(model), (batch[:2, :6], mask[:2, :6]), str(out / "model.onnx"), dynamo=True,
                          external_data=False, input_names=["input_ids", "attention_mask"],
                          output_names=["last_hidden_state"], opset_version=18,
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "last_hidden_state": dyn})
        want = model(input_ids=batch, attention_mask=mask).last_hidden_state.numpy()
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["last_hidden_state"], {"input_ids": batch.numpy(), "attention_mask": mask.numpy()})[0]
    lens = mask.sum(dim=1).tolist()
    print(json.dumps({"ort_max_abs_diff": max(float(np.abs(got[i, :n] - want[i, :n]).max()) for i, n in enumerate(lens))}))


def child_optimum(family: str, out: Path, state: Path):
    """transformers 4.x: optimum-cli exports the legacy form's checkpoint (saved by child) to
    out/model.onnx; prints {"ort_max_abs_diff"} (Python onnxruntime vs PyTorch on the reference batch)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    ckpt = state.parent / "checkpoint"
    tmp = state.parent / "optimum"
    subprocess.run([sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(ckpt),
                    "--task", "feature-extraction", "--library-name", "transformers", "--opset", str(OPSET), str(tmp)],
                   check=True, stdout=subprocess.DEVNULL)
    out.mkdir(parents=True, exist_ok=True)
    legacy = out.parent / out.name.removesuffix("-optimum")
    for f in ("tokenizer.json", "config.json"):
        (out / f).write_bytes((legacy / f).read_bytes())
    shutil.copyfile(tmp / "model.onnx", out / "model.onnx")
    model = AutoModel.from_pretrained(str(ckpt)).eval()
    batch, mask = torch.load(str(state) + ".batch")
    with torch.no_grad():
        want = model(input_ids=batch, attention_mask=mask).last_hidden_state.numpy()
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": batch.numpy(), "attention_mask": mask.numpy()}
    feed = {i.name: feed[i.name] for i in sess.get_inputs()}
    got = sess.run(["last_hidden_state"], feed)[0]
    lens = mask.sum(dim=1).tolist()
    print(json.dumps({"ort_max_abs_diff": max(float(np.abs(got[i, :n] - want[i, :n]).max()) for i, n in enumerate(lens))}))


def child(family: str, out: Path, state: Path):
    """Builds, exports and runs one family; writes out/model.onnx, config.json, tokenizer.json,
    the weights and the reference batch to state (for child_dynamo), and prints its reference entry
    as JSON on the last line."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer

    spec = FAMILIES[family]
    out.mkdir(parents=True, exist_ok=True)
    if spec["tokenizer"] is None:
        mpnet_tokenizer().save(str(out / "tokenizer.json"))
    else:
        (out / "tokenizer.json").write_text(spec["tokenizer"].read_text())
    model = build_model(family, vocab_size(out / "tokenizer.json"), spec["seed"])
    model.config.to_json_file(str(out / "config.json"))
    torch.save(model.state_dict(), state)
    model.save_pretrained(str(state.parent / "checkpoint"))
    shutil.copyfile(out / "tokenizer.json", state.parent / "checkpoint" / "tokenizer.json")

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    texts = TEXTS[family]
    ids = [tok.encode(t).ids for t in texts]
    pad = model.config.pad_token_id
    tmax = max(len(r) for r in ids)
    batch = torch.tensor([r + [pad] * (tmax - len(r)) for r in ids])
    mask = torch.tensor([[1] * len(r) + [0] * (tmax - len(r)) for r in ids])
    torch.save((batch, mask), str(state) + ".batch")

    dyn = {0: "batch_size", 1: "sequence_length"}
    with torch.no_grad():
        torch.onnx.export(model, (batch[:2, :6], mask[:2, :6]), str(out / "model.onnx"), dynamo=False,
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          opset_version=OPSET,
                          dynamic_axes={"input_ids": dyn, "attention_mask": dyn, "last_hidden_state": dyn})
        res = model(input_ids=batch, attention_mask=mask, output_hidden_states=True)
    hs = [h.numpy() for h in res.hidden_states]

    if family in ("roberta", "xlmr", "mpnet"):
        from transformers.models.roberta.modeling_roberta import create_position_ids_from_input_ids
        pos = create_position_ids_from_input_ids(batch, pad).numpy()
    else:
        pos = np.tile(np.arange(tmax), (len(ids), 1))

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["last_hidden_state"], {"input_ids": batch.numpy(), "attention_mask": mask.numpy()})[0]
    ort_diff = max(float(np.abs(got[i, :len(r)] - hs[-1][i, :len(r)]).max()) for i, r in enumerate(ids))

    def rows(a):
        return [[float(x) for x in row] for row in a]

    entry = {
        "dir": out.name, "hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "intermediate": INTER,
        "padding_idx": pad if family in ("roberta", "xlmr", "mpnet") else None,
        "texts": texts, "ids": ids,
        "position_ids": [[int(p) for p in pos[i, :len(r)]] for i, r in enumerate(ids)],
        "hidden_states": [[rows(h[i, :len(r)]) for h in hs] for i, r in enumerate(ids)],
        "ort_max_abs_diff": ort_diff,
    }
    if family == "mpnet":
        rel = torch.arange(-RELATIVE_RANGE, RELATIVE_RANGE + 1)
        entry["relative_attention_bias"] = [[float(x) for x in row] for row in model.encoder.relative_attention_bias.weight.tolist()]
        entry["buckets"] = {"from": -RELATIVE_RANGE, "values": model.encoder.relative_position_bucket(
            rel, num_buckets=model.config.relative_attention_num_buckets).tolist()}
    print(json.dumps(entry))


def versions():
    import importlib.metadata as md
    v = {"script": "scripts/make_layout_fixtures.py", "python": sys.version.split()[0]}
    for p in ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "numpy"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return v


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--_child":
        child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--_optimum":
        child_optimum(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--_dynamo":
        child_dynamo(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "testdata" / "layouts"))
    ap.add_argument("--families", default=",".join(FAMILIES))
    a = ap.parse_args()
    dst = Path(a.out)
    dst.mkdir(parents=True, exist_ok=True)
    overlay = tf4_overlay()
    env = dict(os.environ, PYTHONPATH=str(overlay) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    header = versions()
    # The child's versions: transformers and tokenizers come from the overlay.
    probe = subprocess.run([sys.executable, "-c", "import transformers, tokenizers; print(transformers.__version__, tokenizers.__version__)"],
                           env=env, stdout=subprocess.PIPE, text=True, check=True).stdout.split()
    header["transformers"], header["tokenizers"] = probe[0], probe[1]
    ref_path = dst / "reference.json"
    ref = json.loads(ref_path.read_text()) if ref_path.exists() else {"families": {}}
    ref["header"] = header
    for fam in [f for f in a.families.split(",") if f]:
        if fam not in FAMILIES:
            raise SystemExit(f"unknown family {fam!r}; want some of {', '.join(FAMILIES)}")
        out = dst / f"{fam}-random"
        state = Path(tempfile.mkdtemp(prefix="layout-")) / "state.pt"
        print(f"{fam}: building and exporting -> {out}", file=sys.stderr)
        p = subprocess.run([sys.executable, __file__, "--_child", fam, str(out), str(state)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-4000:])
            raise SystemExit(f"{fam}: export failed (exit status {p.returncode})")
        entry = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"  {fam}: max |onnxruntime - PyTorch| on last_hidden_state = {entry['ort_max_abs_diff']:.3g}; "
              f"model.onnx {(out / 'model.onnx').stat().st_size} bytes", file=sys.stderr)
        if fam in DYNAMO:
            dout = dst / f"{fam}-random-dynamo"
            print(f"{fam}: dynamo export (transformers 5) -> {dout}", file=sys.stderr)
            p = subprocess.run([sys.executable, __file__, "--_dynamo", fam, str(dout), str(state)],
                               env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                sys.stderr.write(p.stderr[-4000:])
                raise SystemExit(f"{fam}: dynamo export failed (exit status {p.returncode})")
            d = json.loads(p.stdout.strip().splitlines()[-1])["ort_max_abs_diff"]
            entry["dynamo_ort_max_abs_diff"] = d
            print(f"  {fam} dynamo: max |onnxruntime - PyTorch| = {d:.3g}; model.onnx {(dout / 'model.onnx').stat().st_size} bytes",
                  file=sys.stderr)
        if fam in OPTIMUM:
            oout = dst / f"{fam}-random-optimum"
            print(f"{fam}: optimum-cli export (transformers 4) -> {oout}", file=sys.stderr)
            p = subprocess.run([sys.executable, __file__, "--_optimum", fam, str(oout), str(state)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if p.returncode != 0:
                sys.stderr.write(p.stderr[-4000:])
                raise SystemExit(f"{fam}: optimum export failed (exit status {p.returncode})")
            d = json.loads(p.stdout.strip().splitlines()[-1])["ort_max_abs_diff"]
            entry["optimum_ort_max_abs_diff"] = d
            print(f"  {fam} optimum: max |onnxruntime - PyTorch| = {d:.3g}; model.onnx {(oout / 'model.onnx').stat().st_size} bytes",
                  file=sys.stderr)
        shutil.rmtree(state.parent, ignore_errors=True)
        ref["families"][fam] = entry
    ref_path.write_text(json.dumps(ref) + "\n")
    files = sorted(p for p in dst.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    with open(dst / "SHA256SUMS", "w") as f:
        for p in files:
            f.write(f"{sha256(p)}  {p.relative_to(dst).as_posix()}\n")
    print(f"wrote {ref_path} ({ref_path.stat().st_size} bytes) and {dst / 'SHA256SUMS'}", file=sys.stderr)


if __name__ == "__main__":
    main()
