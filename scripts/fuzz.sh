#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx(f *testing.F)) of the packages given (default
# ./...) with `go test -fuzz`, one after another, FUZZTIME each, and prints a table of
# executions, new corpus entries and results. Exits 1 when any target fails (a crasher
# is written to PKG/testdata/fuzz/NAME/ by go test: fix the bug, keep the file as a
# regression seed).
#
#   scripts/fuzz.sh                       # all targets, 60s each
#   FUZZTIME=10s scripts/fuzz.sh ./head ./tokenize
#   FUZZ_MATCH='^FuzzDecodeRequest$' scripts/fuzz.sh ./serve
#
# Environment:
#   FUZZTIME          time per target (go test -fuzztime; "N x" counts also work), default 60s
#   FUZZMINIMIZETIME  how long to minimise each new corpus entry or crasher (go test
#                     -fuzzminimizetime), default 200x (200 calls): go's default (60s) spends a
#                     short run minimising the first few inputs it finds (head: 17k execs a
#                     minute with 1s, 180k in 30s with 200x); raise it to shrink a crasher
#   FUZZ_MATCH        regexp: only targets whose name matches (default: all)
#   FUZZ_PARALLEL     fuzzing workers per target (go test -parallel), default 1
#   FUZZ_LOGS         directory for one log per target, default out/fuzz
#
# Targets that need artifacts (the model, for serve's FuzzHandler) get them from the
# setup cache like the tests do (scripts/setup.sh). The generated corpus lives in go's
# cache ($(go env GOCACHE)/fuzz), so later runs continue from it; only seeds and
# crashers are in testdata.
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-200x}
FUZZ_MATCH=${FUZZ_MATCH:-.}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_LOGS=${FUZZ_LOGS:-out/fuzz}
[ $# -gt 0 ] || set -- ./...
mkdir -p "$FUZZ_LOGS"

# Fuzz targets per package, found in the packages' test files (nothing is compiled).
targets=()
while read -r pkg dir files; do
	[ -n "$files" ] || continue
	for f in $files; do
		grep -ho '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' "$dir/$f" | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/' |
			while read -r name; do
				[[ $name =~ $FUZZ_MATCH ]] && echo "$pkg $name"
			done
	done
done < <($GO list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' "$@") > "$FUZZ_LOGS/targets"
mapfile -t targets < "$FUZZ_LOGS/targets"
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz target matches $FUZZ_MATCH in $*" >&2
	exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, $FUZZTIME each (minimise $FUZZMINIMIZETIME, $FUZZ_PARALLEL worker(s)); logs in $FUZZ_LOGS"

failed=0
summary=()
for t in "${targets[@]}"; do
	read -r pkg name <<< "$t"
	log="$FUZZ_LOGS/${pkg//\//_}.$name.log"
	echo "== $pkg $name"
	start=$(date +%s)
	$GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" \
		-parallel "$FUZZ_PARALLEL" "$pkg" > "$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec), new interesting: 4 (total: 30)".
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<< "$last")
	newi=$(sed -nE 's/.*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 of \2/p' <<< "$last")
	result=ok
	if [ $rc -ne 0 ]; then
		failed=1
		result="FAIL (exit $rc)"
		crasher=$(sed -nE 's/.*Failing input written to (.*)/\1/p' "$log" | tail -1)
		[ -n "$crasher" ] && result="$result: $pkg/$crasher"
		tail -30 "$log"
	fi
	summary+=("$(printf '%-48s %-20s %10s  %-14s %5ss  %s' "$pkg" "$name" "${execs:-?}" "${newi:-?}" "$secs" "$result")")
	echo "${summary[-1]}"
done

echo
printf '%-48s %-20s %10s  %-14s %6s  %s\n' package target execs "new corpus" wall result
printf '%s\n' "${summary[@]}"
exit $failed
