#!/usr/bin/env python3
"""Turn a HuggingFace / sentence-transformers checkpoint directory into a headstart model directory.

    export_onnx.py CHECKPOINT_DIR OUT_DIR [--name NAME] [--dynamo] [--tol 1e-4]

OUT_DIR gets model.onnx (torch.onnx.export of the checkpoint's AutoModel, inputs input_ids /
attention_mask / token_type_ids, output last_hidden_state, opset 17; with --dynamo the dynamo exporter,
else the TorchScript one, which every headstart graph edit reads), tokenizer.json (the checkpoint's, or
converted from its tokenizer files by transformers' fast tokenizer) and manifest.json in the format of
models/*.json, whose conventions come from the checkpoint:
  pooling    1_Pooling/config.json (pooling_mode_cls_token -> cls, _mean_tokens -> mean, _max_tokens -> max,
             _lasttoken -> last), else mean
  normalize  a sentence_transformers.models.Normalize module in modules.json
  max_len    sentence_bert_config.json max_seq_length, else the tokenizer's model_max_length, capped by
             max_position_embeddings
  prefixes   config_sentence_transformers.json prompts "query" -> query_prefix and "passage" / "document"
             -> passage_prefix
Then it checks parity: the sentence embeddings of the PyTorch model (sentence-transformers when the
checkpoint has modules.json, else AutoModel with the pooling above) against Python onnxruntime on the
exported file with the manifest's pooling and normalisation, max abs diff <= --tol, and prints what it
wrote. Nothing is left in OUT_DIR when a step fails; an existing non-empty OUT_DIR is refused.

Run with the venv of scripts/requirements-export.txt (scripts/setup.sh venv export).
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "A longer sentence, with punctuation; numbers like 42 and 3.14, and an unusual word: antidisestablishmentarianism.",
    "short",
]
POOLING_KEYS = [("pooling_mode_cls_token", "cls"), ("pooling_mode_mean_tokens", "mean"),
                ("pooling_mode_max_tokens", "max"), ("pooling_mode_lasttoken", "last")]


def fail(msg):
    print(f"export_onnx.py: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        fail(f"{path}: {e}")


def conventions(ckpt: Path, cfg: dict):
    """Pooling, normalisation, max length and prefixes from the sentence-transformers files."""
    modules = read_json(ckpt / "modules.json")
    conv = {"pooling": "mean", "normalize": False, "sources": []}
    transformer_path = ""
    if modules is not None:
        conv["sources"].append("modules.json")
        for m in modules:
            t = m.get("type", "")
            if t.endswith("models.Transformer"):
                transformer_path = m.get("path", "")
            elif t.endswith("models.Normalize"):
                conv["normalize"] = True
            elif t.endswith("models.Pooling"):
                pc = read_json(ckpt / m.get("path", "1_Pooling") / "config.json")
                if pc is None:
                    fail(f"{ckpt / m.get('path', '1_Pooling') / 'config.json'} is missing (modules.json names a Pooling module)")
                modes = [name for key, name in POOLING_KEYS if pc.get(key)]
                other = [k for k in pc if k.startswith("pooling_mode_") and pc[k] and k not in dict(POOLING_KEYS)]
                if len(modes) != 1 or other:
                    fail(f"{m.get('path')}/config.json asks for pooling {modes + other}; headstart pools one way: cls, mean, max or last")
                conv["pooling"] = modes[0]
                conv["sources"].append(f"{m.get('path')}/config.json")
            elif not (t.endswith("models.Transformer") or t.endswith("models.Normalize")):
                fail(f"modules.json has module {t!r}, which headstart does not reproduce (only Transformer, Pooling, Normalize)")
    sb = read_json(ckpt / transformer_path / "sentence_bert_config.json") or read_json(ckpt / "sentence_bert_config.json")
    max_pos = int(cfg.get("max_position_embeddings", 512))
    if sb and sb.get("max_seq_length"):
        conv["max_len"] = int(sb["max_seq_length"])
        conv["sources"].append("sentence_bert_config.json")
    else:
        tc = read_json(ckpt / transformer_path / "tokenizer_config.json") or {}
        ml = tc.get("model_max_length")
        conv["max_len"] = int(ml) if isinstance(ml, (int, float)) and ml < 1e6 else max_pos
    conv["max_len"] = min(conv["max_len"], max_pos)
    st_cfg = read_json(ckpt / "config_sentence_transformers.json") or {}
    prompts = st_cfg.get("prompts") or {}
    if prompts.get("query"):
        conv["query_prefix"] = prompts["query"]
    for k in ("passage", "document"):
        if prompts.get(k):
            conv["passage_prefix"] = prompts[k]
            break
    if prompts:
        conv["sources"].append("config_sentence_transformers.json")
    return conv, transformer_path


def pool_np(h, mask, kind):
    import numpy as np
    m = mask[..., None].astype(np.float32)
    if kind == "mean":
        return (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    if kind == "cls":
        return h[:, 0]
    if kind == "max":
        return np.where(m > 0, h, -np.inf).max(1)
    if kind == "last":
        idx = mask.sum(1) - 1
        return h[np.arange(h.shape[0]), idx]
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--name", help="manifest name (default: OUT_DIR's base name)")
    ap.add_argument("--dynamo", action="store_true", help="use torch.onnx's dynamo exporter")
    ap.add_argument("--tol", type=float, default=1e-4, help="max abs diff of sentence embeddings, PyTorch vs onnxruntime")
    a = ap.parse_args()
    ckpt, out = Path(a.checkpoint), Path(a.out)
    if not (ckpt / "config.json").exists() and not (ckpt / "modules.json").exists():
        fail(f"{ckpt} is not a checkpoint directory (no config.json or modules.json)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        fail(f"{out} exists and is not an empty directory; choose a new OUT_DIR")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    # The transformer module's directory (sentence-transformers checkpoints may nest it).
    modules = read_json(ckpt / "modules.json") or []
    tpath = next((m.get("path", "") for m in modules if m.get("type", "").endswith("models.Transformer")), "")
    tdir = ckpt / tpath
    cfg = AutoConfig.from_pretrained(tdir).to_dict()
    conv, _ = conventions(ckpt, cfg)
    model = AutoModel.from_pretrained(tdir).eval()
    for k in ("hidden_size", "num_hidden_layers"):
        if k not in cfg:
            fail(f"{tdir / 'config.json'} has no {k}; not an encoder checkpoint this script knows")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out.parent))
    try:
        # tokenizer.json
        if (tdir / "tokenizer.json").exists():
            shutil.copyfile(tdir / "tokenizer.json", tmp / "tokenizer.json")
        else:
            tok = AutoTokenizer.from_pretrained(tdir, use_fast=True)
            if not tok.is_fast:
                fail(f"{tdir} has no tokenizer.json and its tokenizer has no fast (Rust) version to write one")
            tok.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        from tokenizers import Tokenizer
        rtok = Tokenizer.from_file(str(tmp / "tokenizer.json"))
        rtok.no_padding()
        rtok.enable_truncation(conv["max_len"])

        # model.onnx
        enc = [rtok.encode(t) for t in TEXTS]
        T = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), T), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        tt = np.zeros_like(ids)
        names = ["input_ids", "attention_mask", "token_type_ids"]
        dyn = {n: {0: "batch_size", 1: "sequence_length"} for n in names + ["last_hidden_state"]}

        args = tuple(torch.from_numpy(x) for x in (ids, mask, tt))
        kw = {"input_names": names, "output_names": ["last_hidden_state"], "opset_version": 17, "dynamic_axes": dyn, "dynamo": a.dynamo}
        if a.dynamo:
            kw["external_data"] = False
        class Keywords(torch.nn.Module):
            """Calls the model by keyword: the TorchScript tracer passes inputs positionally, which
            transformers 5's BertModel.forward refuses. Node names become /model/encoder/layer.N/..."""

            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

        with torch.no_grad():
            # .eval(): the exporter restores the wrapper's training flag afterwards, recursively, and a
            # fresh Module is in training mode: the reference below would run with dropout.
            torch.onnx.export(model if a.dynamo else Keywords(model).eval(), args, str(tmp / "model.onnx"), **kw)
        sess = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
        feed = dict(zip(names, (ids, mask, tt)))
        feed = {i.name: feed[i.name] for i in sess.get_inputs()}
        outs = [o.name for o in sess.get_outputs()]
        if "last_hidden_state" not in outs:
            fail(f"the export's outputs are {outs}; want last_hidden_state")
        h = sess.run(["last_hidden_state"], feed)[0]
        got = pool_np(h, mask, conv["pooling"])
        if conv["normalize"]:
            got = got / np.maximum(np.linalg.norm(got, axis=1, keepdims=True), 1e-12)

        # The PyTorch reference.
        try:
            if not modules:
                raise ImportError("no modules.json")
            from sentence_transformers import SentenceTransformer
        except ImportError:
            # No modules.json, or sentence-transformers does not import beside the transformers 4.x
            # overlay (6.x wants huggingface_hub's httpx): the AutoModel with the manifest's pooling.
            modules = None
        if modules:
            st = SentenceTransformer(str(ckpt), device="cpu").eval()
            with torch.no_grad():
                f = st({"input_ids": args[0], "attention_mask": args[1], "token_type_ids": args[2]})
            want = f["sentence_embedding"].numpy()
            ref = "sentence-transformers " + __import__("sentence_transformers").__version__
        else:
            with torch.no_grad():
                hh = model(input_ids=args[0], attention_mask=args[1], token_type_ids=args[2]).last_hidden_state.numpy()
            want = pool_np(hh, mask, conv["pooling"])
            if conv["normalize"]:
                want = want / np.maximum(np.linalg.norm(want, axis=1, keepdims=True), 1e-12)
            ref = "transformers " + __import__("transformers").__version__ + " AutoModel"
        diff = float(np.abs(got - want).max())
        if not diff <= a.tol:
            fail(f"parity: sentence embeddings of onnxruntime and PyTorch ({ref}) differ by {diff:.3g} > {a.tol:g}; nothing written")

        name = a.name or out.name
        manifest = {
            "name": name,
            "description": f"exported by scripts/export_onnx.py from {ckpt.resolve()} (torch.onnx, {'dynamo' if a.dynamo else 'TorchScript'} exporter)",
            "license": "",
            "source": {"kind": "local", "repo": str(ckpt.resolve())},
            "files": {
                "model": {"path": "model.onnx", "sha256": sha256(tmp / "model.onnx"), "size": (tmp / "model.onnx").stat().st_size},
                "tokenizer": {"path": "tokenizer.json", "sha256": sha256(tmp / "tokenizer.json"), "size": (tmp / "tokenizer.json").stat().st_size},
            },
            "architecture": cfg.get("model_type", ""),
            "dtype": "fp32",
            "hidden_size": int(cfg["hidden_size"]),
            "layers": int(cfg["num_hidden_layers"]),
            "max_len": conv["max_len"],
            "inputs": [i.name for i in sess.get_inputs()],
            "output": "last_hidden_state",
            "pooling": conv["pooling"],
            "normalize": conv["normalize"],
        }
        for k in ("query_prefix", "passage_prefix"):
            if k in conv:
                manifest[k] = conv[k]
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    print(f"wrote {out}/")
    for f in ("model.onnx", "tokenizer.json", "manifest.json"):
        print(f"  {f:15s} {(out / f).stat().st_size:>12,d} bytes  sha256 {sha256(out / f)}")
    src = ", ".join(conv["sources"]) or "defaults (no sentence-transformers files)"
    print(f"  pooling {conv['pooling']}, normalize {str(conv['normalize']).lower()}, max_len {conv['max_len']}"
          + "".join(f", {k} {conv[k]!r}" for k in ("query_prefix", "passage_prefix") if k in conv) + f" (from {src})")
    print(f"  parity: max abs diff {diff:.2g} of {len(TEXTS)} sentence embeddings, onnxruntime {ort.__version__} vs PyTorch ({ref}); tolerance {a.tol:g}")


if __name__ == "__main__":
    main()
