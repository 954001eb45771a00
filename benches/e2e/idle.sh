#!/usr/bin/env bash
# Resident memory of tocsin per idle TCP panel, measured with `tocsin load` itself.
#
#   benches/e2e/idle.sh [--conns 15000] [--interval 60] [--out BENCHMARKS.md]
#
# Starts `tocsin run` (journal on a real disk under the cargo target dir, the panels'
# accounts configured, no event sink), reads its VmRSS from /proc/PID/status, then opens
# --conns persistent TCP panels with one `tocsin load` process, each sending a NULL poll every
# --interval seconds: `--rate` is the total over all panels (src/cli/load.rs: a panel's period
# is conns ÷ rate), so --rate = conns ÷ interval, and the panels' first frames are spread
# evenly over the first interval. VmRSS is read again once tocsin holds every connection
# (tocsin_connections_open), and once every panel has had the ACK of its first NULL (one
# interval plus a margin, checked against tocsin_frames_total). The result, (after − before)
# ÷ conns in KiB and the extrapolation to 100 000 panels, is printed and written to the idle
# section of BENCHMARKS.md.
#
# One load process holds 15 000 connections: the open-file limit is 20 000 per process; the
# sockets are bound to four loopback source addresses so that ephemeral ports never run short.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. benches/lib.sh

CONNS=15000
INTERVAL=60
OUT=$ROOT/BENCHMARKS.md
COMMAND="benches/e2e/idle.sh${*:+ $(printf '%q ' "$@")}"
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) CONNS=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--conns N] [--interval SECONDS] [--out FILE]" >&2; exit 2 ;;
  esac
done
MARGIN=5
# A panel of the load leaves (and closes its connection) as soon as its next frame would be
# due after the end of the run. With a duration of two intervals and more, every panel is
# still connected at the last reading (one interval and a margin after the start). The load
# then runs to its end (a paced panel only notices SIGINT when it wakes for its next frame,
# so stopping it early would save nothing).
DURATION=$((2 * INTERVAL + 2 * MARGIN))
SOURCES=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5

ulimit -n "$(ulimit -Hn)"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --quiet --bin tocsin
BIN=$TARGET/release/tocsin

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/idle.XXXXXX")
WORK=$(cd "$WORK" && pwd)
TOCSIN_PID=
LOAD_PID=
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT=$(free_port)
HTTP=$(free_port)
{
  echo "id,key,key_encoding,encryption"
  for ((i = 0; i < CONNS; i++)); do echo "$((100000 + i)),,,"; done
} >"$WORK/accounts.csv"
cat >"$WORK/tocsin.toml" <<EOF
# Written by benches/e2e/idle.sh; defaults otherwise (idle timeout 150 s, ACK after fsync).
[receiver]
id = "idle"
data_dir = "$WORK/data"

[[listen]]
address = "127.0.0.1:$PORT"
transport = "tcp"

[http]
address = "127.0.0.1:$HTTP"

[output]
stdout = false

[accounts]
unknown = "reject"
file = "accounts.csv"

[limits]
max_connections = 19000
max_connections_per_peer = 19000
EOF
"$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
wait_ready "$HTTP" "$WORK/tocsin.log"

rss() { awk '/^VmRSS/ {print $2}' "/proc/$TOCSIN_PID/status"; }
metric() { # sum of a metric's series
  curl -sf "http://127.0.0.1:$HTTP/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d\n", s}'
}

# Let start-up allocations settle (the accounts table, the first journal segment).
sleep 2
RSS_BEFORE=$(rss)
OPEN_BEFORE=$(metric tocsin_connections_open)
echo "== before: VmRSS $RSS_BEFORE KiB, $OPEN_BEFORE connections"

RATE=$(python3 -c "print($CONNS / $INTERVAL)")
"$BIN" load --to "127.0.0.1:$PORT" --conns "$CONNS" --duration "${DURATION}s" --mix null \
  --rate "$RATE" --accounts "$CONNS" --source "$SOURCES" --timeout 10s --json \
  >"$WORK/load.json" 2>"$WORK/load.err" &
LOAD_PID=$!

# All connected: tocsin holds them all (the load starts its clock at that moment too).
for _ in $(seq 1200); do
  [ "$(metric tocsin_connections_open)" -ge "$CONNS" ] && break
  kill -0 "$LOAD_PID" 2>/dev/null || break
  sleep 0.1
done
UP_AT=$SECONDS
OPEN_UP=$(metric tocsin_connections_open)
RSS_UP=$(rss)
FRAMES_UP=$(metric tocsin_frames_total)
echo "== connected: VmRSS $RSS_UP KiB, $OPEN_UP connections, $FRAMES_UP frames so far"

# Every panel's first NULL is due within one interval of the start.
sleep $((INTERVAL + MARGIN))
OPEN_AFTER=$(metric tocsin_connections_open)
RSS_AFTER=$(rss)
FRAMES_AFTER=$(metric tocsin_frames_total)
echo "== after $((SECONDS - UP_AT)) s: VmRSS $RSS_AFTER KiB, $OPEN_AFTER connections, $FRAMES_AFTER frames"
if [ "$FRAMES_AFTER" -lt "$CONNS" ]; then
  echo "warning: only $FRAMES_AFTER frames for $CONNS panels when memory was read" >&2
fi

wait "$LOAD_PID" || true
LOAD_PID=
[ -s "$WORK/load.json" ] || { cat "$WORK/load.err" >&2; echo '{}' >"$WORK/load.json"; }

PER=$(python3 -c "print(round(($RSS_AFTER - $RSS_BEFORE) / $CONNS, 3))")
echo "== $PER KiB per idle panel; 100 000 panels ≈ $(python3 -c "print(round($PER * 100000 / 1024))") MiB"

jq -n \
  --arg command "$COMMAND" \
  --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg cores "$(nproc)" \
  --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
  --arg kernel "$(uname -sr)" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
  --arg sources "$SOURCES" \
  --argjson conns "$CONNS" \
  --argjson interval_s "$INTERVAL" \
  --argjson rate "$RATE" \
  --argjson rss_before_kib "$RSS_BEFORE" \
  --argjson rss_up_kib "$RSS_UP" \
  --argjson rss_after_kib "$RSS_AFTER" \
  --argjson open_before "$OPEN_BEFORE" \
  --argjson open_up "$OPEN_UP" \
  --argjson open_after "$OPEN_AFTER" \
  --argjson frames_up "$FRAMES_UP" \
  --argjson frames_after "$FRAMES_AFTER" \
  --argjson per_panel_kib "$PER" \
  --slurpfile load "$WORK/load.json" \
  '$ARGS.named + ($load[0] | {ack, nak, timeouts, errors, duration_s, connect_s}) | del(.load)' \
  >"$WORK/idle.json"
python3 "$ROOT/benches/e2e/report.py" idle "$WORK/idle.json" "$OUT"
echo "== written: $OUT"
