#!/usr/bin/env bash
# bench_lora.sh: `pipeline fit-head --mode lora|full|reinit` (the top block(s) trained in Go on
# cached activations) vs the PyTorch/PEFT reference scripts/bench_lora.py (the whole model run
# forward every step), same recipe and settings, in one run on one machine: the first
# BENCH_ROWS SST-2 train sentences, all 872 dev sentences, each seed in BENCH_SEEDS. Prints a
# markdown table (mean final dev accuracy over the seeds, mean train seconds per epoch, Go/PEFT
# ratio, and the one-off cost of the activation cache, which is the frozen forward PEFT pays
# every epoch), writes it to results/bench_lora.md (results/bench_lora_MODE.md for another mode)
# and the raw JSONs to results/bench_lora/.
#
# Settings (environment): BENCH_MODE (lora), BENCH_ROWS (2000), BENCH_SEEDS (0,1,2), BENCH_EPOCHS (3),
# BENCH_LR (1e-3 for lora, 1e-4 otherwise), BENCH_BATCH (32), BENCH_THREADS (2), BENCH_TOP_K (1),
# BENCH_RANK (8), BENCH_ALPHA (16), BENCH_TARGETS (query,value), BENCH_LORA_DROPOUT (0.1),
# BENCH_EMBEDDINGS (0; 1 with BENCH_MODE=full BENCH_TOP_K=6 trains every block and the embeddings on
# both sides, true full fine-tuning: `make bench-full`, table results/bench_lora_full_emb.md),
# BENCH_SUMMARY_ONLY (0; 1 only rewrites the table from the raw JSONs of BENCH_SEEDS).
#
# Usage: scripts/bench_lora.sh   (via `make bench-lora`; needs `scripts/setup.sh venv bench`)
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
data=data/sst2
py=$cache/venv-bench/bin/python
MODE=${BENCH_MODE:-lora}
ROWS=${BENCH_ROWS:-2000}
SEEDS=${BENCH_SEEDS:-0,1,2}
EPOCHS=${BENCH_EPOCHS:-3}
BS=${BENCH_BATCH:-32}
TH=${BENCH_THREADS:-2}
TOPK=${BENCH_TOP_K:-1}
RANK=${BENCH_RANK:-8}
ALPHA=${BENCH_ALPHA:-16}
TARGETS=${BENCH_TARGETS:-query,value}
LDROP=${BENCH_LORA_DROPOUT:-0.1}
EMB=${BENCH_EMBEDDINGS:-0}
SUMMARY_ONLY=${BENCH_SUMMARY_ONLY:-0}
case "$MODE" in
  lora) LR=${BENCH_LR:-1e-3}; md=results/bench_lora.md ;;
  full | reinit) LR=${BENCH_LR:-1e-4}; md=results/bench_lora_$MODE.md ;;
  *) echo "bench_lora: BENCH_MODE $MODE unknown; want one of lora, full, reinit" >&2; exit 2 ;;
esac
[ -x "$py" ] || { echo "bench_lora: no bench venv at $cache/venv-bench; run scripts/setup.sh venv bench" >&2; exit 1; }
[ -x bin/pipeline ] || { echo "bench_lora: bin/pipeline missing; run make build" >&2; exit 1; }
raw=results/bench_lora
mkdir -p "$raw"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
head -n $((ROWS + 1)) "$data/train.csv" > "$W/train.csv"
cp "$data/dev.csv" "$W/dev.csv"

mode_flags=(--mode "$MODE" --top-k "$TOPK")
[ "$MODE" = lora ] && mode_flags+=(--rank "$RANK" --alpha "$ALPHA" --targets "$TARGETS" --lora-dropout "$LDROP")
if [ "$EMB" = 1 ]; then
  [ "$MODE" = full ] || { echo "bench_lora: BENCH_EMBEDDINGS=1 trains with BENCH_MODE=full, not $MODE" >&2; exit 2; }
  mode_flags+=(--embeddings)
  md=results/bench_lora_full_emb.md
  MODE_TAG=full_emb
fi
MODE_TAG=${MODE_TAG:-$MODE}
common=(--epochs "$EPOCHS" --lr "$LR" --batch-size "$BS")
now() { date +%s.%N; }
load_before=$(uptime)
if [ "$SUMMARY_ONLY" != 1 ]; then

  # (a) headstart: the frozen bottom runs once, into the activation caches; then fit-head per seed,
  # with the head initialised as PEFT's (random, torch.nn.Linear's; fit-head's default starts it from
  # a linear probe instead).
  echo "bench: pipeline extract --cut-top $TOPK (train $ROWS rows, dev)" >&2
  for split in train dev; do
    s=$(now)
    bin/pipeline extract --model all-minilm-l6-v2 --data "$W/$split.csv" --cut-top "$TOPK" --max-len 128 \
      --batch-size "$BS" --threads "$TH" --out "$W/$split.cache" 2> "$W/extract-$split.log" || { cat "$W/extract-$split.log" >&2; exit 1; }
    e=$(now)
    echo "{\"split\": \"$split\", \"wall_seconds\": $(python3 -c "print($e - $s)")}" > "$raw/go-extract-$MODE_TAG-$split.json"
  done
  for seed in ${SEEDS//,/ }; do
    echo "bench: pipeline fit-head --mode $MODE --seed $seed" >&2
    bin/pipeline fit-head --train "$W/train.cache" --valid "$W/dev.cache" "${mode_flags[@]}" "${common[@]}" \
      --head-init random --seed "$seed" --threads "$TH" --out "$W/$MODE-$seed.head" --json \
      > "$raw/go-$MODE_TAG-$seed.json" 2> "$W/fit-$seed.log" || { cat "$W/fit-$seed.log" >&2; exit 1; }
  done

  # (b) PEFT on PyTorch CPU, same files and settings, all seeds in one process.
  echo "bench: PEFT reference (scripts/bench_lora.py)" >&2
  peft_flags=("${mode_flags[@]}")
  "$py" scripts/bench_lora.py "${peft_flags[@]}" "${common[@]}" --threads "$TH" --seeds "$SEEDS" --max-len 128 \
    --train "$W/train.csv" --train-rows 0 --dev "$W/dev.csv" --out "$raw/peft-$MODE_TAG.json" >&2
fi
load_after=$(uptime)

python3 - "$raw" "$MODE_TAG" "$SEEDS" "$md" "$load_before" "$load_after" "${mode_flags[*]} ${common[*]} --threads $TH" <<'PY'
import json, os, statistics as st, sys
raw, mode, seeds, md, load_before, load_after, flags = sys.argv[1:]
seeds = [int(s) for s in seeds.split(",") if s]
peft = json.load(open(os.path.join(raw, f"peft-{mode}.json")))
go = {s: json.load(open(os.path.join(raw, f"go-{mode}-{s}.json"))) for s in seeds}
ext = {sp: json.load(open(os.path.join(raw, f"go-extract-{mode}-{sp}.json")))["wall_seconds"] for sp in ("train", "dev")}
ref = "PEFT" if mode == "lora" else "PyTorch"
pe = {r["seed"]: r["epochs"] for r in peft["seeds"]}
mean = st.mean
def final(rows, k): return rows[-1][k]
g_acc = mean(final(go[s]["epochs"], "valid_accuracy") for s in seeds)
p_acc = mean(final(pe[s], "valid_accuracy") for s in seeds)
g_f1 = mean(final(go[s]["epochs"], "valid_macro_f1") for s in seeds)
p_f1 = mean(final(pe[s], "valid_macro_f1") for s in seeds)
g_tr = mean(e["train_seconds"] for s in seeds for e in go[s]["epochs"])
p_tr = mean(e["train_seconds"] for s in seeds for e in pe[s])
def mean_known(v):  # eval seconds may be missing from a run reconstructed from its log
    v = [x for x in v if x is not None]
    return mean(v) if v else float("nan")
g_ev = mean_known(e["eval_seconds"] for s in seeds for e in go[s]["epochs"])
p_ev = mean_known(e["eval_seconds"] for s in seeds for e in pe[s])
g_ep = mean(len(go[s]["epochs"]) for s in seeds)
p_ep = mean(len(pe[s]) for s in seeds)
set_ = peft["settings"]; m = peft["machine"]; v = peft["versions"]
out = []
out.append(f"SST-2: first {set_['train_rows_read']} train sentences -> {set_['dev_rows_read']} dev; all-MiniLM-L6-v2, "
           f"mode {mode}, flags `{flags}`; seeds {','.join(map(str, seeds))}; {m['cpu']}, {m['torch_threads']} threads; "
           f"PEFT {v['peft']} / torch {v['torch']} / transformers {v['transformers']} ({m['attn_implementation']} attention), "
           f"base-model dropout off on both sides. PyTorch vs ONNX weight check: max |diff| "
           f"{peft['weight_check']['max_abs_diff']:.1e} on {peft['weight_check']['sentences']} sentences.\n")
out.append(f"| | headstart (Go, cached activations) | {'PEFT (PyTorch CPU)' if ref == 'PEFT' else 'PyTorch (CPU)'} | headstart / {ref} |")
out.append("|---|---|---|---|")
out.append(f"| dev accuracy after the last epoch, mean of {len(seeds)} seeds | {g_acc:.4f} | {p_acc:.4f} | {100*(g_acc-p_acc):+.2f} points |")
out.append(f"| dev macro-F1, mean of {len(seeds)} seeds | {g_f1:.4f} | {p_f1:.4f} | {100*(g_f1-p_f1):+.2f} points |")
out.append(f"| train seconds per epoch (mean) | {g_tr:.2f} | {p_tr:.2f} | {g_tr/p_tr:.3f}x |")
out.append(f"| eval seconds per epoch (872 dev rows) | {g_ev:.2f} | {p_ev:.2f} | {g_ev/p_ev:.3f}x |")
out.append(f"| one-off activation cache (`extract --cut-top`, process wall time): train / dev | {ext['train']:.2f} / {ext['dev']:.2f} | - (runs the frozen layers, if any, every step) | |")
g_tot = ext["train"] + g_ep * g_tr
p_tot = p_ep * p_tr
out.append(f"| training total: train cache + {g_ep:g} epochs (Go) vs {p_ep:g} epochs ({ref}) | {g_tot:.2f} | {p_tot:.2f} | {g_tot/p_tot:.3f}x |")
out.append("")
out.append(f"| seed | headstart dev accuracy | {ref} dev accuracy | headstart s/epoch | {ref} s/epoch |")
out.append("|---|---|---|---|---|")
for s in seeds:
    out.append(f"| {s} | {final(go[s]['epochs'], 'valid_accuracy'):.4f} | {final(pe[s], 'valid_accuracy'):.4f} | "
               f"{mean(e['train_seconds'] for e in go[s]['epochs']):.2f} | {mean(e['train_seconds'] for e in pe[s]):.2f} |")
out.append(f"\nload before: {load_before.strip()}  \nload after:  {load_after.strip()}")
cmd = "BENCH_MODE=full BENCH_TOP_K=6 BENCH_EMBEDDINGS=1 scripts/bench_lora.sh` (`make bench-full`" if mode == "full_emb" else f"BENCH_MODE={mode} scripts/bench_lora.sh` (`make bench-lora`"
out.append(f"\nCommand: `{cmd}); raw JSONs in {raw}/.")
text = "\n".join(out) + "\n"
print("\n" + text)
open(md, "w").write(text)
PY
