#!/usr/bin/env bash
# setup.sh: fetch what headstart needs into a user cache outside the clone, pinned and
# verified by sha256, idempotently. Once cached, every step works offline.
#
#   scripts/setup.sh runtime      onnxruntime 1.24.1 CPU shared library (PyPI wheel)
#   scripts/setup.sh model NAME   a model from models/ (default all-minilm-l6-v2), via `pipeline models pull`
#   scripts/setup.sh venv         Python venv with the reference packages (scripts/requirements-test.txt)
#   scripts/setup.sh all          runtime + default model + venv
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
    log "fetching onnxruntime==$ORT_VERSION wheel with pip"
    local tmp; tmp=$(mktemp -d "$cache/downloads/.pip.XXXXXX")
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
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
  log "onnxruntime $ORT_VERSION ready: $dir/$ORT_LIB"
}

model() {
  local name=${1:-all-minilm-l6-v2}
  (cd "$here" && go run ./cmd/pipeline models pull "$name")
}

venv() {
  local req="$here/scripts/requirements-${1:-test}.txt"
  local key; key=$(sha256sum "$req" | cut -c1-12)
  local dir="$cache/venv-${1:-test}-$key"
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.complete" ]; then log "venv cached: $dir"; else
    log "creating venv $dir from $(basename "$req")"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet -r "$req"
    touch "$dir/.complete"
  fi
  ln -sfn "$dir" "$cache/venv-${1:-test}"
}

case "${1:-all}" in
  runtime) runtime ;;
  model) model "${2:-}" ;;
  venv) venv "${2:-test}" ;;
  all) runtime; model all-minilm-l6-v2; venv test ;;
  *) log "unknown step ${1}; want one of runtime, model NAME, venv [test|bench], all"; exit 2 ;;
esac
