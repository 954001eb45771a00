#!/usr/bin/env bash
# Forwarder bar measurement: catch-up of a pre-filled journal backlog to a local NATS
# JetStream, and the publishing throughput that gives. Not a test: it prints figures.
#
#   benches/forward.sh [N]            (N records, default 1000000)
#
# Steps: build (release) → start nats-server -js with its store in a temp dir on disk →
# fill a journal with N receiver records and set the `nats` cursor to 0 (the daemon would
# otherwise start a missing cursor at the end of the journal) → start `tocsin run` with the
# bus and without stdout events → poll /metrics until published_total reaches N and the
# backlog is 0 → print events/s and the catch-up time (from the daemon's start, so it
# includes connecting and creating the stream). Environment: CARGO_TARGET_DIR is honoured;
# BENCH_DIR picks where temp dirs go (default: the target dir, a real disk: never tmpfs);
# MAX_IN_FLIGHT overrides [bus.nats] max_in_flight; PERF_OUT=FILE records a CPU profile
# of the daemon (perf, cpu-clock) for the first 8 s of the catch-up.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

N=${1:-1000000}
TARGET=${CARGO_TARGET_DIR:-target}
command -v nats-server >/dev/null || {
  echo "missing: nats-server (Debian package nats-server)" >&2
  exit 1
}

cargo build --release --quiet --bin tocsin --example fill_journal
BIN=$TARGET/release/tocsin
FILL=$TARGET/release/examples/fill_journal

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/forward-bench.XXXXXX")
NATS_PID=
TOCSIN_PID=
cleanup() {
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  [ -n "$NATS_PID" ] && kill "$NATS_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

NATS_PORT=$(free_port)
PANEL_PORT=$(free_port)
HTTP_PORT=$(free_port)
MON_PORT=$(free_port)

nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$MON_PORT" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$NATS_PORT"

echo "== filling a journal with $N records"
"$FILL" "$WORK/data" "$N" --cursor-zero

cat >"$WORK/tocsin.toml" <<EOF
[receiver]
id = "bench"
data_dir = "$WORK/data"

[[listen]]
address = "127.0.0.1:$PANEL_PORT"
transport = "tcp"

[http]
address = "127.0.0.1:$HTTP_PORT"

[output]
stdout = false

[bus.nats]
url = "nats://127.0.0.1:$NATS_PORT"
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
EOF

metric() {
  curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" 2>/dev/null |
    awk -v k="$1" '$1 == k { print $2 }' || true
}
now() { date +%s.%N; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

echo "== catching up"
T0=$(now)
"$BIN" run --config "$WORK/tocsin.toml" 2>"$WORK/tocsin.log" >/dev/null &
TOCSIN_PID=$!
NATS_CPU0=$(cpu_s "$NATS_PID")
if [ -n "${PERF_OUT:-}" ]; then
  perf record -e cpu-clock -g -p "$TOCSIN_PID" -o "$PERF_OUT" -- sleep 8 >/dev/null 2>&1 &
fi
LAST_P=0
LAST_T=$T0
# First poll that saw events published, to report the publishing rate apart from start-up
# (journal recovery and the dedup window's rebuild read the whole backlog first).
FIRST_P=
FIRST_T=
PEAK=0
while :; do
  sleep 0.5
  if ! kill -0 "$TOCSIN_PID" 2>/dev/null; then
    echo "tocsin exited:" >&2
    tail -20 "$WORK/tocsin.log" >&2
    exit 1
  fi
  P=$(metric 'tocsin_forward_published_total{sink="nats"}')
  B=$(metric 'tocsin_forward_backlog_records{sink="nats"}')
  T=$(now)
  [ -z "$P" ] && continue
  if [ -z "$FIRST_P" ] && awk -v p="$P" 'BEGIN { exit !(p > 0) }'; then
    FIRST_P=$P
    FIRST_T=$T
  fi
  RATE=$(awk -v p="$P" -v lp="$LAST_P" -v t="$T" -v lt="$LAST_T" 'BEGIN { printf "%.0f", (p - lp) / (t - lt) }')
  PEAK=$(awk -v a="$RATE" -v b="$PEAK" 'BEGIN { print (a > b) ? a : b }')
  printf '  %6.1fs  published %9.0f  backlog %9s  %7s ev/s\n' \
    "$(awk -v t="$T" -v t0="$T0" 'BEGIN { print t - t0 }')" "$P" "${B:-?}" "$RATE"
  LAST_P=$P
  LAST_T=$T
  if [ "${B:-1}" = 0 ] && awk -v p="$P" -v n="$N" 'BEGIN { exit !(p >= n) }'; then
    break
  fi
done
T1=$(now)
TOCSIN_CPU=$(cpu_s "$TOCSIN_PID")
NATS_CPU=$(awk -v a="$(cpu_s "$NATS_PID")" -v b="$NATS_CPU0" 'BEGIN { printf "%.2f", a - b }')
IN_STREAM=$(curl -fsS "http://127.0.0.1:$MON_PORT/jsz" 2>/dev/null | awk -F'[:,]' '/"messages"/ { gsub(/ /, "", $2); print $2; exit }' || true)
awk -v n="$N" -v t0="$T0" -v t1="$T1" -v peak="$PEAK" 'BEGIN {
  d = t1 - t0
  printf "\n== result\nrecords          %d\ncatch-up time    %.2f s (daemon start to backlog 0)\nmean throughput  %.0f events/s\npeak (0.5 s)     %.0f events/s\n", n, d, n / d, peak
}'
awk -v n="$N" -v fp="${FIRST_P:-0}" -v ft="${FIRST_T:-$T0}" -v t0="$T0" -v t1="$T1" 'BEGIN {
  printf "publishing       %.0f events/s (from the first poll that saw events, %.1f s after start)\n", (n - fp) / (t1 - ft), ft - t0
}'
echo "messages in the stream: ${IN_STREAM:-?}"
echo "CPU during catch-up: tocsin ${TOCSIN_CPU} s, nats-server ${NATS_CPU} s (2 cores available)"
