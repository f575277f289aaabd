#!/usr/bin/env bash
# SIP load benchmark: Frontdesk beside Kamailio, measured with SIPp in the same run.
#
# Uses ../shared/bench/run.sh (read its README). Starts Kamailio (by run.sh) and Frontdesk
# (here, on a fresh data dir with the benchmark tenant: unauthenticated from loopback, like
# the Kamailio config), ramps REGISTER/s and proxied call setups/s on each, repeats the best
# rates, and prints both figures and the ratio Frontdesk/Kamailio. Then it measures
# Frontdesk's authenticated REGISTER rate (401 + digest, MD5) with SIPp directly.
# Loopback only; every step is bounded. Knobs: FD_PORT [5080], FD_SIP_WORKERS [3], DUR [5], KAM_REG_RATES,
# KAM_CALL_RATES, FD_REG_RATES, FD_CALL_RATES, AUTH_RATES, WORK [/tmp/frontdesk-bench],
# FD_BUILD [pure] (compiled: the mypyc build from scripts/build_compiled.py, built if stale).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared/bench}"
WORK="${WORK:-/tmp/frontdesk-bench}"
FD_PORT="${FD_PORT:-5080}"
FD_SIP_WORKERS="${FD_SIP_WORKERS:-3}"  # serve --sip-workers: the main process and 2 registrar workers (best of 2 and 3 on 2 cores)
export DUR="${DUR:-5}"
KAM_REG_RATES="${KAM_REG_RATES:-5000 10000 20000 30000 40000}"
KAM_CALL_RATES="${KAM_CALL_RATES:-1000 2000 3000 3500 4000}"
FD_REG_RATES="${FD_REG_RATES:-1000 2000 3000 4000 5000 6000 8000 10000 12000 15000 20000}"
FD_CALL_RATES="${FD_CALL_RATES:-250 500 750 1000 1250 1500 2000 2500 3000}"
AUTH_RATES="${AUTH_RATES:-500 1000 1500 2000 3000 4000 5000 6000 8000}"
# the project's virtualenv, installed or brought up to date by scripts/env.sh
. "$ROOT/scripts/env.sh" base
set +e
PY=python
FD_BUILD="${FD_BUILD:-pure}"
if [ "$FD_BUILD" = compiled ]; then
	"$PY" "$ROOT/scripts/build_compiled.py" --if-stale || { echo "no compiled build (see above)"; exit 1; }
	export PYTHONPATH="$ROOT/build/compiled${PYTHONPATH:+:$PYTHONPATH}"
fi
BUILD_LINE="$("$PY" "$ROOT/scripts/build_compiled.py" --which --expect "$FD_BUILD")" || {
	echo "$BUILD_LINE (FD_BUILD=$FD_BUILD)"; exit 1; }
echo "$BUILD_LINE"
mkdir -p "$WORK"
STAMP="$(date +%Y%m%d-%H%M%S)"
DATA="$(mktemp -d "$WORK/fd-data-XXXX")"
FD_PID=""
cleanup() { [ -n "$FD_PID" ] && kill "$FD_PID" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

best_rate() {  # summary.tsv phase -> highest rate with PASS in every run at that rate
	awk -F'\t' -v ph="$2" '!/^#/ && $1==ph { r=$2; seen[r]++; if ($3 ~ /^PASS/) ok[r]++ }
		END { b=0; for (r in seen) if (ok[r]==seen[r] && r+0>b) b=r+0; print b }' "$1"
}

echo "== Kamailio (shared harness)"
RESULTS="$WORK/results/$STAMP-kamailio" REG_RATES="$KAM_REG_RATES" CALL_RATES="$KAM_CALL_RATES" \
	"$SHARED/run.sh" "127.0.0.1:5270" register calls repeat >/dev/null 2>&1
KAM_SUM="$WORK/results/$STAMP-kamailio/summary.tsv"

echo "== Frontdesk (benchmark tenant, data in $DATA)"
"$PY" -m frontdesk bench-setup --data "$DATA" >/dev/null
"$PY" -m frontdesk serve --data "$DATA" --sip "127.0.0.1:$FD_PORT" --http 127.0.0.1:0 \
	--sip-workers "$FD_SIP_WORKERS" \
	>"$DATA/server.log" 2>&1 &
FD_PID=$!
# wait until it answers OPTIONS (start-up loads 20,000 extensions), at most 60 s
"$PY" - "$FD_PORT" <<'PYEOF' || { echo "frontdesk did not start; see $DATA/server.log"; exit 1; }
import socket, sys, time
port = int(sys.argv[1])
msg = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKready\r\n"
       "From: <sip:bench@127.0.0.1>;tag=r\r\nTo: <sip:127.0.0.1>\r\nCall-ID: ready\r\n"
       "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); s.settimeout(0.5)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    s.sendto(msg, ("127.0.0.1", port))
    try:
        s.recv(65535); sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PYEOF
# and until every SIP worker has its registrations handed over (at most 60 s more)
for _ in $(seq 600); do
	[ "$(grep -c 'SIP worker [0-9]* ready' "$DATA/server.log")" -ge $((FD_SIP_WORKERS - 1)) ] && break
	sleep 0.1
done
sleep 2
# the SIP worker processes (children of the server), for the harness's CPU accounting
FD_WORKER_PIDS="$(cat "/proc/$FD_PID/task/$FD_PID/children" 2>/dev/null)"
echo "   frontdesk pid $FD_PID, SIP workers: ${FD_WORKER_PIDS:-none}"
if grep -q '/frontdesk__mypyc\.' "/proc/$FD_PID/maps"; then
	echo "   the server process has the compiled modules loaded (frontdesk__mypyc in its memory map)"
else
	echo "   the server process runs pure Python (no frontdesk__mypyc library in its memory map)"
fi
RESULTS="$WORK/results/$STAMP-frontdesk" REG_RATES="$FD_REG_RATES" CALL_RATES="$FD_CALL_RATES" \
	TARGET_PIDS="$FD_PID $FD_WORKER_PIDS" "$SHARED/run.sh" "127.0.0.1:$FD_PORT" register calls repeat >/dev/null 2>&1
FD_SUM="$WORK/results/$STAMP-frontdesk/summary.tsv"

echo "== Frontdesk authenticated REGISTER (401 challenge + MD5 digest per registration)"
AUTH_BEST=0
AUTH_DIR="$WORK/results/$STAMP-auth"; mkdir -p "$AUTH_DIR"
for rate in $AUTH_RATES; do
	m=$((rate * DUR))
	( cd "$AUTH_DIR" && timeout $((DUR * 3 + 60)) sipp "127.0.0.1:$FD_PORT" -sf "$ROOT/bench/reg_auth_bench.xml" \
		-s bench -au bench -ap bench -i 127.0.0.1 -p 5262 -cp 8994 -mp 26300 -buff_size 1048576 \
		-r "$rate" -m "$m" -timeout $((DUR * 3 + 40))s -timeout_error -nostdin \
		-trace_screen -screen_file "auth_$rate.screen" -trace_rtt -rtt_freq 100 >/dev/null 2>&1 )
	rc=$?
	rtt="$(ls -t "$AUTH_DIR"/*_rtt.csv 2>/dev/null | head -1)"
	line="$(python3 "$SHARED/sipp_summary.py" "$AUTH_DIR/auth_$rate.screen" "${rtt:-/dev/null}" "$rate" auth)"
	rm -f "$rtt"
	ok=$(echo "$line" | cut -f4); failed=$(echo "$line" | cut -f5); achieved=$(echo "$line" | cut -f7)
	echo "   auth register @ $rate/s: rc=$rc ok=$ok failed=$failed achieved=$achieved/s"
	if [ "$rc" = 0 ] && [ "$failed" = 0 ] && awk -v a="$achieved" -v r="$rate" 'BEGIN{exit !(a >= 0.95*r)}'; then
		AUTH_BEST=$rate
	else
		break
	fi
	sleep 2
done

KR=$(best_rate "$KAM_SUM" register); KC=$(best_rate "$KAM_SUM" calls)
FR=$(best_rate "$FD_SUM" register); FC=$(best_rate "$FD_SUM" calls)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b>0) printf "%.0f%%", 100*a/b; else print "n/a" }'; }
echo
echo "Highest rate with 0 failures in every run (SIPp on the same 2 cores, $DUR s steps;"
echo "${BUILD_LINE#frontdesk }):"
printf '  %-34s %10s %10s %8s\n' "" Kamailio Frontdesk ratio
printf '  %-34s %10s %10s %8s\n' "REGISTER/s (no auth)" "$KR" "$FR" "$(ratio "$FR" "$KR")"
printf '  %-34s %10s %10s %8s\n' "call setups/s INVITE..BYE" "$KC" "$FC" "$(ratio "$FC" "$KC")"
printf '  %-34s %10s %10s\n' "REGISTER/s with digest auth" "-" "$AUTH_BEST"
echo "Details: $KAM_SUM, $FD_SUM, $AUTH_DIR"
