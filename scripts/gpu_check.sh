#!/usr/bin/env bash
# gpu_check.sh: check the CUDA provider on a GPU machine without network, from what
# scripts/gpu_prepare.sh put in .gpu/ (see there). Run it once per part, carrying .gpu/MANIFEST and
# that one part; parts are staged in $HEADSTART_GPU_STAGE (default .gpu-stage/, ignored by git, which
# a warm device machine keeps between calls). Once every part is staged it:
#   1. unpacks the payload (bin/pipeline, onnxruntime CUDA build, model, SST-2, CPU reference);
#   2. records the machine: GPU, driver, glibc, the CUDA libraries it has (into env.txt);
#   3. points the loader at those libraries (LD_LIBRARY_PATH, set before the process starts);
#   4. embeds SST-2 dev with --provider cuda and --provider cpu, and compares both with the
#      reference made on the developer machine (onnxruntime 1.24.1, CPU): max |diff| < 1e-3;
#   5. measures rows/s at batch sizes 32, 128 and 512 on the first SST-2 train rows: CUDA on
#      $GPU_CHECK_ROWS (default 16384), the CPU on $GPU_CHECK_CPU_ROWS (default 4096; rows/s is a rate,
#      and this keeps the last call near 3 minutes on the 16-core machine);
#   6. writes gpu_check.json, gpu_check.md and the logs to $OUT (default out/gpu-check).
# Exit: 0 all staged and checked, parity holds; 0 also while parts are still missing (it says
# which); 1 parity fails; 2 CUDA unavailable (the error names the missing library); 3 setup problem.
# GPU_CHECK_PROVIDER=cpu runs the "cuda" side on the CPU: a dry run of the whole script without a GPU.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
stage=${HEADSTART_GPU_STAGE:-$here/.gpu-stage}
out=${OUT:-$here/out/gpu-check}
gpu=${GPU_CHECK_PROVIDER:-cuda}
rows=${GPU_CHECK_ROWS:-16384}
rows_cpu=${GPU_CHECK_CPU_ROWS:-4096}
tol=1e-3 # fp32 CUDA vs CPU: kernels differ in summation order and fused ops (TF32 is off by default in ORT)
mkdir -p "$out" "$stage"
log() { printf 'gpu_check: %s\n' "$*" | tee -a "$out/gpu_check.log" >&2; }
die() { local code=$1; shift; log "FAILED: $*"; exit "$code"; }

# 1. Stage the carried part(s).
man="$here/.gpu/MANIFEST"
[ -f "$man" ] || man="$stage/MANIFEST"
[ -f "$man" ] || die 3 "no .gpu/MANIFEST: run scripts/gpu_prepare.sh on the developer machine and carry .gpu/MANIFEST with each .gpu/partNN"
if [ -f "$stage/MANIFEST" ] && ! cmp -s "$man" "$stage/MANIFEST"; then
  log "a different payload was staged before: starting over"
  rm -rf "$stage"; mkdir -p "$stage"
fi
[ "$man" = "$stage/MANIFEST" ] || cp "$man" "$stage/MANIFEST"
for f in "$here"/.gpu/part*; do
  [ -f "$f" ] || continue
  want=$(awk -v n="$(basename "$f")" '$2 == n {print $1}' "$stage/MANIFEST")
  have=$(sha256sum "$f" | cut -d' ' -f1)
  [ -n "$want" ] && [ "$want" = "$have" ] || die 3 "$(basename "$f"): sha256 $have does not match the MANIFEST (${want:-not listed})"
  mv "$f" "$stage/" 2>/dev/null || cp "$f" "$stage/"
  log "staged $(basename "$f")"
done
missing=()
for n in $(awk '!/^#/ {print $2}' "$stage/MANIFEST"); do
  want=$(awk -v n="$n" '$2 == n {print $1}' "$stage/MANIFEST")
  sha_ok=0; [ -f "$stage/$n" ] && [ "$(sha256sum "$stage/$n" | cut -d' ' -f1)" = "$want" ] && sha_ok=1
  [ "$sha_ok" = 1 ] || missing+=("$n")
done
if [ -f "$stage/x/.complete" ] && cmp -s "$stage/x/.complete" "$stage/MANIFEST"; then
  missing=()
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "staged $(($(grep -vc '^#' "$stage/MANIFEST") - ${#missing[@]})) of $(grep -vc '^#' "$stage/MANIFEST") parts; still to carry (one per call): ${missing[*]}"
  exit 0
fi

# Unpack once.
if ! { [ -f "$stage/x/.complete" ] && cmp -s "$stage/x/.complete" "$stage/MANIFEST"; }; then
  log "all parts staged: unpacking"
  rm -rf "$stage/x"; mkdir -p "$stage/x"
  py=$(command -v python3) || die 3 "python3 not found (needed to unpack and to compare)"
  cat $(awk '!/^#/ {print "'"$stage"'/" $2}' "$stage/MANIFEST") | "$py" -c '
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|xz") as t:
    if hasattr(tarfile, "data_filter"):
        t.extractall(sys.argv[1], filter="data")
    else:
        t.extractall(sys.argv[1])
' "$stage/x"
  cp "$stage/MANIFEST" "$stage/x/.complete"
fi
p="$stage/x/payload"
[ -x "$p/bin/pipeline" ] || die 3 "unpacked payload lacks bin/pipeline"

# Python with numpy and safetensors for the comparison (the device image's python3 has both).
py=""
for c in "${HEADSTART_PY:-}" python3 "${HEADSTART_CACHE:-$HOME/.cache/headstart}/venv-test/bin/python"; do
  [ -n "$c" ] && command -v "$c" >/dev/null && "$c" -c 'import numpy, safetensors' 2>/dev/null && { py=$c; break; }
done
[ -n "$py" ] || die 3 "no python with numpy and safetensors (set HEADSTART_PY)"

# 2. The machine. (Informational: nothing here may stop the check.)
set +o pipefail
{
  echo "## machine"; uname -a; ldd --version 2>&1 | sed -n 1p
  echo "## nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi: not available"
  echo "## libcuda.so.1 (driver)"; /sbin/ldconfig -p 2>/dev/null | grep -E 'libcuda\.so\.1 ' || echo "not in the loader cache"
  echo "## python CUDA packages"; "$py" -m pip list 2>/dev/null | grep -iE '^(nvidia-|onnxruntime|torch )' || true
  echo "## CUDA libraries seen by ldconfig"; /sbin/ldconfig -p 2>/dev/null | grep -E 'lib(cudart|cublas|cublasLt|cufft|curand|cudnn|nvrtc)\.so' || echo none
} >"$out/env.txt" 2>&1 || true
set -o pipefail

# 3. Where the machine's CUDA libraries are: the nvidia-* packages' lib folders, then CUDA installs.
libdirs=$("$py" - <<'PY'
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("site-packages")])
dirs = []
for r in sorted(roots):
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "nvidia", "cu*", "lib"))):
        if d not in dirs and glob.glob(os.path.join(d, "lib*.so*")):
            dirs.append(d)
for d in ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]:
    if os.path.isdir(d):
        dirs.append(d)
print(":".join(dirs))
PY
)
echo "## LD_LIBRARY_PATH for the check"$'\n'"$libdirs" >>"$out/env.txt"
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ort_lib="$stage/x/payload/$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ort_lib"])' "$p/info.json")"
export HEADSTART_ORT_LIB="$ort_lib"
log "onnxruntime: $ort_lib; CUDA library folders: ${libdirs:-none found}"

extract() { # provider out data batch limit -> JSON summary on stdout, log in $out
  local prov=$1 o=$2 d=$3 bs=$4 lim=$5
  "$p/bin/pipeline" extract --provider "$prov" --model "$p/model" --data "$d" --out "$o" \
    --batch-size "$bs" --chunk-rows $((bs > 2048 ? bs : 2048)) --limit "$lim" --json 2>>"$out/pipeline.log"
}

# 4. Parity on SST-2 dev.
work="$stage/run"; rm -rf "$work"; mkdir -p "$work"
if ! extract "$gpu" "$work/gpu-dev.safetensors" "$p/data/sst2-dev.csv" 32 0 >"$work/gpu-dev.json"; then
  err=$(grep -E 'pipeline: ' "$out/pipeline.log" | tail -1)
  "$py" - "$out" "$err" <<'PY'
import json, sys
json.dump({"status": "cuda_unavailable", "error": sys.argv[2]}, open(sys.argv[1] + "/gpu_check.json", "w"), indent=1)
open(sys.argv[1] + "/gpu_check.md", "w").write("# GPU check\n\nCUDA unavailable:\n\n    " + sys.argv[2] + "\n")
PY
  die 2 "--provider $gpu: $err"
fi
extract cpu "$work/cpu-dev.safetensors" "$p/data/sst2-dev.csv" 32 0 >"$work/cpu-dev.json" || die 3 "--provider cpu failed (see $out/pipeline.log)"
log "SST-2 dev embedded on $gpu and cpu; benchmarking $rows ($gpu) and $rows_cpu (cpu) rows at batch sizes 32, 128, 512"

# 5. Throughput.
for bs in 32 128 512; do
  for side in gpu cpu; do
    prov=$gpu n=$rows; [ $side = cpu ] && prov=cpu n=$rows_cpu
    extract "$prov" "$work/bench-$side-$bs.safetensors" "$p/data/sst2-train.csv" "$bs" "$n" >"$work/bench-$side-$bs.json" ||
      die 3 "bench --provider $prov --batch-size $bs failed (see $out/pipeline.log)"
    rm -f "$work/bench-$side-$bs.safetensors"
  done
done

# 6. Compare and report. ($OUT brings back at most 8 files: gpu_check.{json,md,log}, env.txt,
# pipeline.log and runs.json.)
set +e
"$py" - "$p" "$work" "$out" "$gpu" "$tol" "$rows" "$rows_cpu" <<'PY'
import json, os, sys
import numpy as np
from safetensors.numpy import load_file
p, work, out, gpu, tol, rows, rows_cpu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
info = json.load(open(os.path.join(p, "info.json")))
ref = load_file(os.path.join(p, "ref", "cpu-sst2-dev.safetensors"))
g = load_file(os.path.join(work, "gpu-dev.safetensors"))
c = load_file(os.path.join(work, "cpu-dev.safetensors"))
def diff(a, b):
    if not np.array_equal(a["row_ids"], b["row_ids"]):
        return float("nan")
    d = np.abs(a["features"].astype(np.float64) - b["features"].astype(np.float64))
    return float(d.max()) if d.size else float("nan")
parity = {"gpu_vs_ref": diff(g, ref), "cpu_vs_ref": diff(c, ref), "gpu_vs_cpu": diff(g, c)}
ok = all(v < tol for v in parity.values())  # NaN fails
summ = lambda f: json.load(open(os.path.join(work, f)))
bench = []
for bs in (32, 128, 512):
    row = {"batch_size": bs}
    for key in ("gpu", "cpu"):
        s = summ(f"bench-{key}-{bs}.json")
        row[key + "_provider"] = s["provider"]
        row[key + "_rows_per_s"] = s["rows_per_s"]
        row[key + "_run_rows_per_s"] = s["rows"] / s["run_seconds"] if s["run_seconds"] else None
    row["speedup"] = row["gpu_rows_per_s"] / row["cpu_rows_per_s"]
    bench.append(row)
env = open(os.path.join(out, "env.txt")).read()
res = {"status": "ok" if ok else "parity_failed", "tolerance": tol, "max_abs_diff": parity,
       "dev_rows": int(len(ref["row_ids"])), "gpu_provider": summ("gpu-dev.json")["provider"],
       "bench_rows": {"gpu": rows, "cpu": rows_cpu}, "bench": bench, "payload": {k: info[k] for k in ("variant", "ort_lib", "commit", "prepared")}}
json.dump(res, open(os.path.join(out, "gpu_check.json"), "w"), indent=1)
json.dump({f: summ(f) for f in sorted(os.listdir(work)) if f.endswith(".json")}, open(os.path.join(out, "runs.json"), "w"), indent=1)
md = [f"# GPU check ({res['status']})", "",
      f"Payload: {info['variant']}, {info['ort_lib']}, commit {info['commit']}, prepared {info['prepared']}.", "",
      f"## Parity, SST-2 dev ({res['dev_rows']} rows, mean pooling, fp32), max |diff|, tolerance {tol:g}", "",
      "| pair | max abs diff |", "|---|---|"]
md += [f"| {k} | {v:.3g} |" for k, v in parity.items()]
md += ["", "ref = CPU, onnxruntime 1.24.1, developer machine; cpu = CPU of this machine with the carried build.", "",
       f"## Throughput, first SST-2 train rows ({rows} on {gpu}, {rows_cpu} on cpu); rows/s of the whole run and inside onnxruntime's Run", "",
       "| batch | gpu rows/s | gpu Run rows/s | cpu rows/s | cpu Run rows/s | speedup |", "|---|---|---|---|---|---|"]
md += [f"| {b['batch_size']} | {b['gpu_rows_per_s']:.0f} | {b['gpu_run_rows_per_s']:.0f} | {b['cpu_rows_per_s']:.0f} | {b['cpu_run_rows_per_s']:.0f} | {b['speedup']:.1f}x |" for b in bench]
md += ["", "## Machine", "", "```", env.strip(), "```", ""]
open(os.path.join(out, "gpu_check.md"), "w").write("\n".join(md))
print("\n".join(md[:md.index("## Machine")]))
sys.exit(0 if ok else 1)
PY
rc=$?
set -e
case $rc in
  0) log "OK: parity within $tol; results in $out/gpu_check.md" ;;
  1) log "FAILED: parity beyond $tol (see $out/gpu_check.md)" ;;
  *) log "FAILED: the comparison script broke (exit $rc)"; rc=3 ;;
esac
exit $rc
