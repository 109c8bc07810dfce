#!/usr/bin/env bash
# load_test.sh: `pipeline serve` under load, on loopback only, with wrk (Debian's package).
#
# Two servers run side by side with the same flags, one with micro-batching and one with
# --no-batching. For LOAD_ROUNDS rounds, at each concurrency, each server in turn gets
# LOAD_DURATION seconds of POST /v1/classify with one short Banking77 query per request
# (wrk, closed loop: each connection sends its next request when the answer arrives):
# throughput, p50/p90/p99 latency, texts per forward (from /metrics), non-2xx answers and
# socket errors. Interleaving the two modes, and taking the median over rounds, keeps the
# comparison fair on a shared machine whose load drifts. Then a soak of the micro-batching
# server at the highest concurrency for LOAD_SOAK seconds, with its RSS read from /proc
# every second. Prints a markdown table for BENCHMARKS.md (also out/loadtest/results.md),
# and fails when any request failed.
#
# Usage: scripts/load_test.sh              (via `make load-test`)
# Environment (defaults): LOAD_DURATION=10 LOAD_ROUNDS=3 LOAD_SOAK=300
#   LOAD_CONCURRENCY="1 8 32" LOAD_SESSIONS=$(nproc) LOAD_THREADS=1 (sessions of each
#   server, onnxruntime threads per session) LOAD_MAX_WAIT=5ms LOAD_SPLIT_COST=16
#   LOAD_MODEL=all-minilm-l6-v2 (any registry name: all-minilm-l6-v2-q is the int8 export)
#   LOAD_FLAGS= (more `pipeline serve` flags for both servers, e.g. "--pack-len 0")
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${LOAD_DURATION:-10}
ROUNDS=${LOAD_ROUNDS:-3}
SOAK=${LOAD_SOAK:-300}
CONC=${LOAD_CONCURRENCY:-"1 8 32"}
SESSIONS=${LOAD_SESSIONS:-$(nproc)}
THREADS=${LOAD_THREADS:-1}
MAX_WAIT=${LOAD_MAX_WAIT:-5ms}
SPLIT=${LOAD_SPLIT_COST:-16}
MODEL=${LOAD_MODEL:-all-minilm-l6-v2}
EXTRA=${LOAD_FLAGS:-}
out=out/loadtest
mkdir -p "$out"

if ! command -v wrk >/dev/null; then
  echo "load_test: wrk missing; installing Debian's package" >&2
  apt-cache policy wrk >&2 || true
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
command -v curl >/dev/null || { echo "load_test: curl is needed for /metrics" >&2; exit 1; }

go build -o bin/pipeline ./cmd/pipeline

# A head to classify with: logistic regression on the shipped Banking77 sample.
headf=$out/intent-$MODEL.safetensors
if [ ! -f "$headf" ]; then
  bin/pipeline models pull "$MODEL" >&2
  bin/pipeline extract --model "$MODEL" --data data/banking77-sample/train.csv --out "$out/train-$MODEL.safetensors" --threads 2 >&2
  bin/pipeline fit-head --train "$out/train-$MODEL.safetensors" --out "$headf" >&2
fi
# Request bodies: one Banking77 test query per request.
python3 - data/banking77-sample/test.csv > "$out/bodies.jsonl" <<'PY'
import csv, json, sys
for row in csv.DictReader(open(sys.argv[1], newline="")):
    print(json.dumps({"texts": [row["text"]]}))
PY

declare -A pid addr
cleanup() { for m in "${!pid[@]}"; do kill "${pid[$m]}" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_server MODE (on | off): `pipeline serve` on a free loopback port.
start_server() {
  local flags=(--addr 127.0.0.1:0 --model "$MODEL" --head "$headf" --sessions "$SESSIONS" --threads "$THREADS" --max-wait "$MAX_WAIT" --split-cost "$SPLIT" $EXTRA)
  [ "$1" = off ] && flags+=(--no-batching)
  bin/pipeline serve "${flags[@]}" 2> "$out/server-$1.log" &
  pid[$1]=$!
  local a=
  for _ in $(seq 600); do
    a=$(sed -n 's|.*listening on http://\([0-9.:]*\).*|\1|p' "$out/server-$1.log")
    [ -n "$a" ] && break
    kill -0 "${pid[$1]}" 2>/dev/null || { cat "$out/server-$1.log" >&2; exit 1; }
    sleep 0.1
  done
  case $a in 127.0.0.1:*) addr[$1]=$a ;; *) echo "load_test: server $1 not on loopback: '$a'" >&2; exit 1 ;; esac
}

# stop_server MODE: SIGTERM, and the server must exit 0 after draining.
stop_server() {
  kill -TERM "${pid[$1]}"
  local rc=0
  wait "${pid[$1]}" || rc=$?
  unset "pid[$1]"
  [ "$rc" = 0 ] || { echo "load_test: server $1 exited $rc after SIGTERM" >&2; cat "$out/server-$1.log" >&2; exit 1; }
}

# run_wrk MODE CONC SECONDS: prints wrk's RESULT line.
run_wrk() {
  local c=$2 t=$(( $2 < 2 ? $2 : 2 ))
  WRK_BODIES=$out/bodies.jsonl WRK_ROUTE=/v1/classify timeout $(( $3 + 60 )) \
    wrk -t"$t" -c"$c" -d"$3"s --timeout 10s -s scripts/wrk_classify.lua "http://${addr[$1]}" | grep '^RESULT'
}

metric() { curl -s "http://${addr[$1]}/metrics" | awk -v n="$2" '$1 == n {print $2}'; }

echo "load_test: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start_server off
start_server on
for m in off on; do run_wrk "$m" 8 3 > /dev/null; done # warm-up
: > "$out/runs.txt"
for round in $(seq "$ROUNDS"); do
  for c in $CONC; do
    for m in off on; do
      b0=$(metric "$m" headstart_batch_size_count); s0=$(metric "$m" headstart_batch_size_sum)
      r=$(run_wrk "$m" "$c" "$DURATION")
      b1=$(metric "$m" headstart_batch_size_count); s1=$(metric "$m" headstart_batch_size_sum)
      per=$(awk -v a="$b0" -v b="$b1" -v x="$s0" -v y="$s1" 'BEGIN { if (b > a) printf "%.2f", (y - x) / (b - a); else print 0 }')
      echo "round=$round mode=$m c=$c $r per_forward=$per" | tee -a "$out/runs.txt" >&2
    done
  done
done
stop_server off

# Soak: highest concurrency, micro-batching on; RSS every second.
c_soak=$(echo "$CONC" | tr ' ' '\n' | sort -n | tail -n 1)
: > "$out/rss.tsv"
touch "$out/soaking"
( while [ -f "$out/soaking" ] && kill -0 "${pid[on]}" 2>/dev/null; do
    echo "$(date +%s) $(awk '/^VmRSS/ {print $2}' "/proc/${pid[on]}/status" 2>/dev/null)" >> "$out/rss.tsv"
    sleep 1
  done ) &
sampler=$!
soak=$(run_wrk on "$c_soak" "$SOAK")
rm -f "$out/soaking"
wait "$sampler" 2>/dev/null || true
echo "soak c=$c_soak $soak" | tee -a "$out/runs.txt" >&2
stop_server on
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load_test: load average after: $load_after" >&2

python3 - "$out/runs.txt" "$out/rss.tsv" <<PY | tee "$out/results.md"
import statistics as st, sys
runs, rssf = sys.argv[1], sys.argv[2]
rows, soak = {}, None
for line in open(runs):
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if line.startswith("soak"):
        soak = kv
    else:
        rows.setdefault((kv["mode"], int(kv["c"])), []).append(kv)
print(f"\n\`pipeline serve --sessions $SESSIONS --threads $THREADS --split-cost $SPLIT $EXTRA\` ($MODEL + a 77-class logistic-regression "
      f"head), POST /v1/classify with one Banking77 query per request; wrk closed loop on loopback, "
      f"{$ROUNDS} rounds of {$DURATION} s per row with the two modes interleaved, medians; $(nproc) cores, "
      f"load average $load_before before, $load_after after (\`scripts/load_test.sh\`)\n")
print("| micro-batching | concurrency | requests/s | p50 ms | p90 ms | p99 ms | texts per forward | non-2xx | socket errors |")
print("|---|---|---|---|---|---|---|---|---|")
med = lambda rs, k: st.median(float(r[k]) for r in rs)
rps = {}
for (mode, c), rs in sorted(rows.items(), key=lambda x: (x[0][0] == "on", x[0][1])):
    rps[(mode, c)] = med(rs, "rps")
    name = "on (max wait $MAX_WAIT)" if mode == "on" else "off"
    print(f"| {name} | {c} | {rps[(mode, c)]:.1f} | {med(rs, 'p50_ms'):.1f} | {med(rs, 'p90_ms'):.1f} | "
          f"{med(rs, 'p99_ms'):.1f} | {med(rs, 'per_forward'):.1f} | {sum(int(r['non2xx']) for r in rs)} | "
          f"{sum(int(r['socket_errors']) for r in rs)} |")
cs = sorted({c for _, c in rps})
if ("on", cs[-1]) in rps and ("off", cs[0]) in rps:
    ratio = rps[("on", cs[-1])] / rps[("off", cs[0])]
    print(f"\nThroughput at concurrency {cs[-1]} with micro-batching / concurrency {cs[0]} without: "
          f"{ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'}); with / without micro-batching "
          f"at concurrency {cs[-1]}: {rps[('on', cs[-1])] / rps[('off', cs[-1])]:.2f}x.")
samples = [int(l.split()[1]) for l in open(rssf) if len(l.split()) == 2]
if samples and soak:
    warm = samples[min(len(samples) - 1, max(1, len(samples) // 10))]
    print(f"\nSoak: {$SOAK} s at concurrency {soak['c']} with micro-batching: {int(soak['requests']):,} requests, "
          f"{float(soak['rps']):.1f}/s, p99 {float(soak['p99_ms']):.1f} ms, {soak['non2xx']} non-2xx, "
          f"{soak['socket_errors']} socket errors. RSS (MiB, {len(samples)} samples, one a second): at 10% "
          f"{warm/1024:.0f}, max {max(samples)/1024:.0f}, at the end {samples[-1]/1024:.0f} "
          f"(end minus 10%: {(samples[-1]-warm)/1024:+.1f}).")
PY

# Fail on any failed request.
if awk '{for (i = 1; i <= NF; i++) if ($i ~ /^(non2xx|socket_errors)=/) { split($i, a, "="); if (a[2] != 0) bad = 1 }} END { exit !bad }' "$out/runs.txt"; then
  echo "load_test: FAILED: some requests failed (see $out/runs.txt)" >&2
  exit 1
fi
