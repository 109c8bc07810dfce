#!/usr/bin/env bash
# gpu_prepare.sh: prepare .gpu/ (ignored by git) for scripts/gpu_check.sh, which checks the CUDA
# provider on a GPU machine that has no network (the device tool of this workplace: it copies the
# repo, plus at most 64 MiB of carried files per call, to an H100/H200 machine).
#
#   scripts/gpu_prepare.sh [cu13|cu12]
#
# What the GPU machine lacks is carried; what it has is used. That machine's image has CUDA 13
# (driver 580, PyTorch cu130) and its Python environment holds the CUDA 13 libraries as the
# nvidia-* pip packages (nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13, nvidia-cufft,
# nvidia-curand, nvidia-cuda-nvrtc), but no onnxruntime CUDA build and no CUDA 12. The CUDA 12
# set that scripts/setup.sh gpu fetches (1.8 GB of wheels) cannot be carried, so:
#   cu13 (default): the onnxruntime-gpu 1.27.0 wheel (the first PyPI release built for CUDA 13;
#         same C API as 1.24.1, which onnxruntime_go asks for) supplies libonnxruntime and its
#         CUDA provider; the machine's own CUDA 13 libraries serve it.
#   cu12: the 1.24.1 CUDA build from the cache (scripts/setup.sh gpu), for a machine that has
#         CUDA 12 and cuDNN 9 libraries of its own.
# Carried besides: bin/pipeline (built here), the default model, SST-2 dev and train (the check's
# texts), and the reference: SST-2 dev embedded here on the CPU with the pinned 1.24.1 CPU build.
# All of it goes into one tar.xz (Python's lzma unpacks it there), split into parts of
# $GPU_PART_MIB MiB (default 56): one part per device call, next to a ~1 MiB working tree.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
data=$here/data
variant=${1:-cu13}
part_mib=${GPU_PART_MIB:-56}
log() { printf 'gpu_prepare: %s\n' "$*" >&2; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

CU13_SPEC=onnxruntime-gpu==1.27.0
CU13_WHEEL=onnxruntime_gpu-1.27.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
CU13_WHEEL_SHA256=b2b8d6afabf3c23c2c698639a16388816dc7298f388a9ddddf504b283990ea01

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_prepare.XXXXXX")
trap 'rm -rf "$work"' EXIT
p="$work/payload"
mkdir -p "$p/ort" "$p/bin" "$p/model" "$p/data" "$p/ref"

case "$variant" in
  cu13)
    dl="$cache/downloads/gpu-check"; mkdir -p "$dl"
    if ! sha_ok "$dl/$CU13_WHEEL" "$CU13_WHEEL_SHA256"; then
      log "fetching $CU13_SPEC with pip (220 MB)"
      python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 -d "$work" "$CU13_SPEC"
      mv "$work/$CU13_WHEEL" "$dl/"
      sha_ok "$dl/$CU13_WHEEL" "$CU13_WHEEL_SHA256" || { log "checksum mismatch: $dl/$CU13_WHEEL"; rm -f "$dl/$CU13_WHEEL"; exit 1; }
    fi
    python3 - "$dl/$CU13_WHEEL" "$p/ort" <<'PY'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for m in z.namelist():
        b = os.path.basename(m)
        if b.startswith("libonnxruntime.so.") or b in ("libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"):
            with z.open(m) as src, open(os.path.join(sys.argv[2], b), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
    ;;
  cu12)
    g="$cache/onnxruntime/1.24.1-gpu"
    [ -f "$g/libonnxruntime_providers_cuda.so" ] || { log "no CUDA build in $g: run scripts/setup.sh gpu first"; exit 1; }
    cp "$g"/libonnxruntime.so.1.24.1 "$g"/libonnxruntime_providers_shared.so "$g"/libonnxruntime_providers_cuda.so "$p/ort/"
    ;;
  *) log "unknown variant $variant; want cu13 or cu12"; exit 2 ;;
esac
chmod 0755 "$p"/ort/*

log "building bin/pipeline"
(cd "$here" && CGO_ENABLED=1 go build -trimpath -ldflags='-s -w' -o "$p/bin/pipeline" ./cmd/pipeline)
cpu_lib="$cache/onnxruntime/1.24.1/libonnxruntime.so.1.24.1"
model="$cache/models/all-minilm-l6-v2"
for f in "$cpu_lib" "$model/model.onnx" "$model/tokenizer.json" "$data/sst2/dev.csv" "$data/sst2/train.csv"; do
  [ -f "$f" ] || { log "missing $f (run scripts/setup.sh all)"; exit 1; }
done
cp "$model"/model.onnx "$model"/tokenizer.json "$p/model/"
[ -f "$model/manifest.json" ] && cp "$model/manifest.json" "$p/model/"
cp "$data/sst2/dev.csv" "$p/data/sst2-dev.csv"
cp "$data/sst2/train.csv" "$p/data/sst2-train.csv"

log "embedding SST-2 dev on the CPU with onnxruntime 1.24.1 (the reference)"
HEADSTART_ORT_LIB="$cpu_lib" "$p/bin/pipeline" extract --provider cpu --model "$p/model" \
  --data "$p/data/sst2-dev.csv" --out "$p/ref/cpu-sst2-dev.safetensors" --json >"$p/ref/cpu-sst2-dev.json"

python3 - "$p" "$variant" "$(cd "$here" && git rev-parse HEAD 2>/dev/null || echo unknown)" <<'PY'
import glob, hashlib, json, os, sys, time
p, variant, commit = sys.argv[1:]
def sha(f):
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for b in iter(lambda: fh.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
files = {os.path.relpath(f, p): sha(f) for f in sorted(glob.glob(p + "/**/*", recursive=True)) if os.path.isfile(f)}
ort = [os.path.basename(f) for f in glob.glob(p + "/ort/libonnxruntime.so.*")][0]
json.dump({"variant": variant, "ort_lib": "ort/" + ort, "commit": commit,
           "prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files},
          open(os.path.join(p, "info.json"), "w"), indent=1)
PY

log "compressing (xz -9; a few minutes on 2 cores)"
(cd "$work" && tar -cf - payload | xz -9 -T0 >payload.tar.xz)
rm -rf "$here/.gpu"; mkdir -p "$here/.gpu"
split -b "${part_mib}m" -d -a 2 "$work/payload.tar.xz" "$here/.gpu/part"
{
  echo "# gpu_prepare.sh $variant $(date -u +%Y-%m-%dT%H:%M:%SZ); payload sha256 $(sha256sum "$work/payload.tar.xz" | cut -d' ' -f1)"
  (cd "$here/.gpu" && sha256sum part*)
} >"$work/MANIFEST"
mv "$work/MANIFEST" "$here/.gpu/MANIFEST"

n=$(ls "$here"/.gpu/part* | wc -l)
tree=$(cd "$here" && { git ls-files; git ls-files --others --exclude-standard; } | sort -u | xargs -d '\n' du -cb 2>/dev/null | tail -1 | cut -f1)
log "payload $(du -b "$work/payload.tar.xz" | cut -f1) bytes compressed ($(du -sb "$p" | cut -f1) unpacked) in $n part(s) of <= $part_mib MiB; working tree $tree bytes"
if [ $((tree + part_mib * 1048576)) -gt $((64 * 1048576)) ]; then
  log "WARNING: working tree + one part exceeds the device tool's 64 MiB: rerun with a smaller GPU_PART_MIB"
fi
log "on the GPU machine, make $n device calls back to back (a warm machine keeps what the earlier ones staged):"
for f in "$here"/.gpu/part*; do
  log "  command: scripts/gpu_check.sh   carry: [\".gpu/MANIFEST\", \".gpu/$(basename "$f")\"]"
done
log "the last one runs the check and writes gpu_check.json and gpu_check.md to \$OUT"
