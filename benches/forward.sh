#!/usr/bin/env bash
# Forwarder bar measurement: catch-up of a pre-filled journal backlog to NATS JetStream,
# first to a single node, then to a three-node cluster with a stream of 3 replicas, in the
# same run (the machine's speed swings between hours: compare within one run). Not a
# test: it prints figures, and the two bars of the R3 run.
#
#   benches/forward.sh [N]            (N records, default 1000000)
#
# Steps: build (release) → fill a journal with N receiver records and set the `nats`
# cursor to 0 (the daemon would otherwise start a missing cursor at the end of the
# journal) → for each bus (one node, then three): start nats-server with JetStream and
# its store in a temp dir on disk, start `tocsin run` on a copy of the journal with the
# bus and without stdout events, poll /metrics until published_total reaches N and the
# backlog is 0, print events/s and the catch-up time (from the daemon's start, so it
# includes connecting and creating the stream). Environment: CARGO_TARGET_DIR is
# honoured; BENCH_DIR picks where temp dirs go (default: the target dir, a real disk:
# never tmpfs); MAX_IN_FLIGHT overrides [bus.nats] max_in_flight; ONLY=single|cluster
# runs one of the two; KEEP=1 keeps the temp dir (logs); PERF_OUT=FILE records a CPU profile of the daemon (perf,
# cpu-clock) for the first 8 s of each catch-up (FILE.single, FILE.cluster).
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
PIDS=()
TOCSIN_PID=
cleanup() {
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

echo "== filling a journal with $N records"
"$FILL" "$WORK/filled" "$N" --cursor-zero

# start_nats NAME COUNT: COUNT nodes (1, or 3 clustered); sets URLS (TOML list items),
# MON (a monitoring port) and NATS_PIDS.
start_nats() {
  local name=$1 count=$2 i j routes
  local -a ports cports
  URLS=
  NATS_PIDS=()
  for i in $(seq "$count"); do
    ports[i]=$(free_port)
    cports[i]=$(free_port)
  done
  MON=$(free_port)
  for i in $(seq "$count"); do
    local args=(-js -a 127.0.0.1 -p "${ports[i]}" -sd "$WORK/$name-store-$i" -n "$name-$i")
    [ "$i" = 1 ] && args+=(-m "$MON")
    if [ "$count" -gt 1 ]; then
      routes=
      for j in $(seq "$count"); do
        [ "$j" != "$i" ] && routes="$routes${routes:+,}nats://127.0.0.1:${cports[j]}"
      done
      args+=(--cluster_name "$name" --cluster "nats://127.0.0.1:${cports[i]}" --routes "$routes")
    fi
    nats-server "${args[@]}" >"$WORK/$name-$i.log" 2>&1 &
    PIDS+=($!)
    NATS_PIDS+=($!)
    URLS="$URLS${URLS:+, }\"nats://127.0.0.1:${ports[i]}\""
  done
  for i in $(seq "$count"); do wait_port "${ports[i]}"; done
}

# measure NAME REPLICAS: one catch-up; sets RESULT_RATE (publishing events/s).
measure() {
  local name=$1 replicas=$2
  local panel_port http_port
  panel_port=$(free_port)
  http_port=$(free_port)
  cp -a "$WORK/filled" "$WORK/$name-data"
  cat >"$WORK/$name.toml" <<TOML
[receiver]
id = "bench"
data_dir = "$WORK/$name-data"

[[listen]]
address = "127.0.0.1:$panel_port"
transport = "tcp"

[http]
address = "127.0.0.1:$http_port"

[output]
stdout = false

[bus.nats]
servers = [$URLS]
replicas = $replicas
${MAX_IN_FLIGHT:+max_in_flight = $MAX_IN_FLIGHT}
TOML
  metric() {
    curl -fsS "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
      awk -v k="$1" '$1 == k { print $2 }' || true
  }
  echo
  echo "== $name: catching up ($replicas replica(s))"
  local T0 NATS_CPU0=0 p
  T0=$(now)
  "$BIN" run --config "$WORK/$name.toml" 2>"$WORK/$name-tocsin.log" >/dev/null &
  TOCSIN_PID=$!
  for p in "${NATS_PIDS[@]}"; do NATS_CPU0=$(awk -v a="$NATS_CPU0" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
  if [ -n "${PERF_OUT:-}" ]; then
    perf record -e cpu-clock -g -p "$TOCSIN_PID" -o "$PERF_OUT.$name" -- sleep 8 >/dev/null 2>&1 &
  fi
  local LAST_P=0 LAST_T=$T0 FIRST_P= FIRST_T= PEAK=0 P B T RATE
  while :; do
    sleep 0.5
    if ! kill -0 "$TOCSIN_PID" 2>/dev/null; then
      echo "tocsin exited:" >&2
      tail -20 "$WORK/$name-tocsin.log" >&2
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
  local T1 TOCSIN_CPU NATS_CPU=0 IN_STREAM
  T1=$(now)
  TOCSIN_CPU=$(cpu_s "$TOCSIN_PID")
  for p in "${NATS_PIDS[@]}"; do NATS_CPU=$(awk -v a="$NATS_CPU" -v b="$(cpu_s "$p")" 'BEGIN { print a + b }'); done
  NATS_CPU=$(awk -v a="$NATS_CPU" -v b="$NATS_CPU0" 'BEGIN { printf "%.2f", a - b }')
  IN_STREAM=$(curl -fsS "http://127.0.0.1:$MON/jsz" 2>/dev/null | awk -F'[:,]' '/"messages"/ { gsub(/ /, "", $2); print $2; exit }' || true)
  kill "$TOCSIN_PID" 2>/dev/null || true
  wait "$TOCSIN_PID" 2>/dev/null || true
  TOCSIN_PID=
  awk -v n="$N" -v t0="$T0" -v t1="$T1" -v peak="$PEAK" 'BEGIN {
    d = t1 - t0
    printf "records          %d\ncatch-up time    %.2f s (daemon start to backlog 0)\nmean throughput  %.0f events/s\npeak (0.5 s)     %.0f events/s\n", n, d, n / d, peak
  }'
  RESULT_RATE=$(awk -v n="$N" -v fp="${FIRST_P:-0}" -v ft="${FIRST_T:-$T0}" -v t1="$T1" 'BEGIN { printf "%.0f", (n - fp) / (t1 - ft) }')
  awk -v r="$RESULT_RATE" -v ft="${FIRST_T:-$T0}" -v t0="$T0" 'BEGIN {
    printf "publishing       %.0f events/s (from the first poll that saw events, %.1f s after start)\n", r, ft - t0
  }'
  echo "messages in the stream (node 1's view): ${IN_STREAM:-?}"
  echo "CPU during catch-up: tocsin ${TOCSIN_CPU} s, nats-server(s) ${NATS_CPU} s (2 cores available)"
}

SINGLE=
CLUSTER=
if [ "${ONLY:-}" != cluster ]; then
  start_nats single 1
  measure single 1
  SINGLE=$RESULT_RATE
  for p in "${NATS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
fi
if [ "${ONLY:-}" != single ]; then
  start_nats r3 3
  measure r3 3
  CLUSTER=$RESULT_RATE
fi

echo
echo "== bars"
if [ -n "$CLUSTER" ]; then
  awk -v c="$CLUSTER" 'BEGIN { printf "R3 cluster       %.0f events/s (bar: >= 30000): %s\n", c, (c >= 30000) ? "met" : "NOT met" }'
fi
if [ -n "$SINGLE" ] && [ -n "$CLUSTER" ]; then
  awk -v c="$CLUSTER" -v s="$SINGLE" 'BEGIN { r = (s > 0) ? 100 * c / s : 0; printf "R3 / single node %.0f %% (%.0f / %.0f events/s; bar: >= 40 %%): %s\n", r, c, s, (r >= 40) ? "met" : "NOT met" }'
fi
