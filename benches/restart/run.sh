#!/usr/bin/env bash
# benches/restart/run.sh — how long a restarted receiver stays deaf: the time from
# `tocsin run` to ready (its TCP port accepting and /readyz answering 200) with a large
# journal, after a clean stop and after kill -9 under load.
#
#   benches/restart/run.sh                       # 5 M records, the bar (≤ 2 s)
#   RECORDS=200000 RUNS=1 benches/restart/run.sh # a smoke run
#
# The journal is made directly, without the network (examples/fill_journal.rs), twice:
# "now", every record stamped at the time of the fill, so the whole journal lies in the
# dedup window of the daemon started after it (the worst case: the dedup rebuild has the
# most to read), and "30 d", stamped over the last 30 days as a station's journal is.
# Each journal gets a first start (a journal written by another program: no supervision
# snapshot yet), then RUNS restarts after SIGTERM and RUNS after kill -9 (the kill comes
# during 2 s of load, so the active segment has a live tail). Prints a Markdown table for
# BENCHMARKS.md. Needs about 0.7 KB of disk a record, twice; release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/lib.sh

RECORDS=${RECORDS:-5000000}
RUNS=${RUNS:-3}
SPREADS=${SPREADS:-"now 30d"}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --bin tocsin --example fill_journal >&2
BIN=$TARGET/release/tocsin
FILL=$TARGET/release/examples/fill_journal
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/tocsin-restart.XXXXXX")
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

ROWS=()
for spread in $SPREADS; do
  data=$WORK/$spread
  args=("$data" "$RECORDS")
  [ "$spread" != now ] && args+=(--spread "$spread")
  echo "== filling $RECORDS records ($spread)" >&2
  "$FILL" "${args[@]}" 2>&1 | tail -1 >&2
  size=$(du -sh "$data/journal" | cut -f1)
  port=$(free_port)
  http=$(free_port)
  log=$WORK/$spread.log

  start() {
    local out
    out=$(python3 benches/restart/ready.py --port "$port" --http "$http" --log "$log" -- \
      "$BIN" run --listen "127.0.0.1:$port" --http "127.0.0.1:$http" --data-dir "$data")
    PID=${out#* }
    READY=${out% *}
  }
  row() {
    # The dedup keys the start rebuilt, from its log line.
    local keys
    keys=$(grep 'state rebuilt' "$log" | tail -1 | sed -n 's/.*keys=\([0-9]*\).*/\1/p')
    ROWS+=("| $RECORDS | $spread | $size | $1 | $READY s | ${keys:-?} |")
    echo "   $1: ready in $READY s (dedup keys ${keys:-?})" >&2
  }

  start
  row "first start"
  for i in $(seq "$RUNS"); do
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
    start
    row "after SIGTERM ($i)"
  done
  for i in $(seq "$RUNS"); do
    "$BIN" load --to "127.0.0.1:$port" --conns 8 --duration 2s >/dev/null 2>&1 || true
    kill -9 "$PID"
    while kill -0 "$PID" 2>/dev/null; do sleep 0.01; done
    start
    row "after kill -9 under load ($i)"
  done
  kill -TERM "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.05; done
  PID=
  rm -rf "$data"
done

echo
echo "Restart on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), journal on $(df --output=source "$WORK" | tail -1):"
echo
echo "| records | stamped | journal size | start | ready (listening, /readyz 200) | dedup keys rebuilt |"
echo "| ---: | --- | ---: | --- | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
