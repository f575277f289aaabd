#!/usr/bin/env bash
# Instructions per call / REGISTER / authenticated registration in the engine, counted by
# valgrind's callgrind (independent of other load on the machine, unlike times).
#
# Runs bench_callpath.py under callgrind four times: a base run, then one workload larger by
# N each time; (instructions of the larger run - base run) / N is the figure per operation
# (start-up, imports and warm-up cancel out). Slow (~1 min per run); never asserts anything.
# Usage: bench/callgrind_callpath.sh [N=200]   (PYTHONPATH selects the code measured;
# FD_BUILD=compiled puts the mypyc build first, built by scripts/build_compiled.py if stale)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
N="${1:-200}"
if [ "${FD_BUILD:-pure}" = compiled ]; then
	"$PY" "$ROOT/scripts/build_compiled.py" --if-stale
	export PYTHONPATH="$ROOT/build/compiled${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" "$ROOT/scripts/build_compiled.py" --which
WORK="$(mktemp -d /tmp/callgrind-callpath-XXXX)"
trap 'rm -rf "$WORK"' EXIT
B_CALLS=50 B_REGS=250 B_AUTH=50
run() {  # name calls registers auth -> total instructions
	valgrind --tool=callgrind --callgrind-out-file="$WORK/$1.out" \
		"$PY" "$ROOT/bench/bench_callpath.py" --repeat 1 --calls "$2" --registers "$3" \
		--auth "$4" >"$WORK/$1.log" 2>&1
	awk '/^summary:|^totals:/ {print $2; exit}' "$WORK/$1.out"
}
base=$(run base $B_CALLS $B_REGS $B_AUTH)
calls=$(run calls $((B_CALLS + N)) $B_REGS $B_AUTH)
regs=$(run regs $B_CALLS $((B_REGS + 5 * N)) $B_AUTH)
auth=$(run auth $B_CALLS $B_REGS $((B_AUTH + N)))
awk -v b="$base" -v c="$calls" -v r="$regs" -v a="$auth" -v n="$N" 'BEGIN {
	printf "instructions per call (INVITE..BYE, 6 messages in, 8 out): %9.0f\n", (c - b) / n
	printf "instructions per REGISTER (no auth):                      %9.0f\n", (r - b) / (5 * n)
	printf "instructions per authenticated registration (401 + 200):  %9.0f\n", (a - b) / n
}'
