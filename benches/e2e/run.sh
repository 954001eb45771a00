#!/usr/bin/env bash
# End-to-end comparison of receivers on this machine, in one run, with one load generator.
#
#   benches/e2e/run.sh [--duration 12s] [--warmup 3s] [--conns "10 100 1000 10000"]
#                      [--mix sia,cid] [--out BENCHMARKS.md]
#                      [--commit-interval 500us --section e2e-interval]
#
# Three receivers listen on loopback side by side, and `tocsin load` (closed-loop panels: one
# frame, wait for the reply, next frame; every reply checked for CRC, sequence and account)
# drives each in turn with the same settings, at each connection count:
#
#   ceiling   examples/ceiling.rs: answers each frame with its ACK and does nothing else; the
#             most any receiver can reach on these cores with this load generator.
#   tocsin    `tocsin run` with its journal on a real disk (under the cargo target dir, never
#             tmpfs) and the default durability: the ACK leaves after the fdatasync. The
#             accounts the load uses are configured (a CSV file); events go nowhere else
#             (no stdout sink, no bus), so only the receiving path is measured.
#   pysia     pysiaalarm (PyPI) in a virtualenv, its asyncio SIAClient with the same accounts
#             and an empty callback (benches/e2e/pysia_server.py).
#
# Every frame carries `R1`: pysiaalarm answers a frame without an `R` field with
# `"ACK"0001NoneL0…` (a Python None printed into the reply), which no panel and not
# `tocsin load` can parse; with a receiver number its ACKs are valid.
#
# For each point, a warm-up run (same connections, --warmup long) precedes the measured run
# (--duration long); the receivers take turns at each point so that noise from the shared
# machine spreads over all three. `tocsin fsync-probe` measures fdatasync latency in the
# journal's directory before and after the sweep, and just before and after each tocsin run;
# a point's disk bound for a closed loop is connections ÷ (fraction of frames that must be
# journaled × mean fsync latency of the probes around its run): with group commit every
# waiting panel can ride the same fsync, so N panels cannot get more than N durable ACKs per
# fsync. The results go into the e2e section of BENCHMARKS.md (other sections
# are kept); raw JSON stays in the work directory with KEEP=1.
#
# --commit-interval sets tocsin's `[journal] commit_interval` (default 0s, as shipped); a run
# with it writes to its own section (--section) so the default run's table is kept.
#
# Environment: CARGO_TARGET_DIR is honoured; BENCH_DIR picks the work directory's parent
# (default: $CARGO_TARGET_DIR/tmp, which must be a real disk).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. benches/lib.sh

DURATION=12s
WARMUP=3s
CONNS="10 100 1000 10000"
MIX=sia,cid
OUT=$ROOT/BENCHMARKS.md
PYSIA_VERSION=3.2.2
COMMIT_INTERVAL=0s
SECTION=e2e
COMMAND="benches/e2e/run.sh${*:+ $(printf '%q ' "$@")}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --mix) MIX=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --commit-interval) COMMIT_INTERVAL=$2; shift 2 ;;
    --section) SECTION=$2; shift 2 ;;
    *) echo "usage: $0 [--duration D] [--warmup D] [--conns \"N …\"] [--mix M] [--out FILE] [--commit-interval D] [--section NAME]" >&2; exit 2 ;;
  esac
done

# 10 000 panels need 10 000 descriptors in the load generator and in each receiver.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building (release): tocsin and examples/ceiling"
cargo build --release --quiet --bin tocsin --example ceiling
BIN=$TARGET/release/tocsin
CEILING=$TARGET/release/examples/ceiling

VENV=$TARGET/e2e-venv
if ! "$VENV/bin/python" -c 'import pysiaalarm' 2>/dev/null; then
  echo "== installing pysiaalarm $PYSIA_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "pysiaalarm==$PYSIA_VERSION"
fi
PYSIA_INSTALLED=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pysiaalarm"))')
PY_VERSION=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/e2e.XXXXXX")
WORK=$(cd "$WORK" && pwd)
mkdir -p "$WORK/results" "$WORK/data"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT


# The accounts tocsin load sends: 100000 + i for i < K (account_id in src/cli/load.rs). One
# account per panel at the largest point; smaller points use the first ones.
MAX_CONNS=0
for n in $CONNS; do [ "$n" -gt "$MAX_CONNS" ] && MAX_CONNS=$n; done
ACCOUNTS=$MAX_CONNS

# Each load run binds its sockets to four loopback addresses of its own, 127.0.K.2–5 for the
# K-th run: the closing side of each earlier connection sits in TIME_WAIT for a minute, and
# binding a new socket to a source address crowded with them gets slow (10 000 connections
# took 4–12 s to open instead of 0.3 s when runs reused the same four addresses). Connecting
# happens before the load starts its clock, so this only keeps set-up times comparable.
RUN_NO=0
next_sources() {
  RUN_NO=$((RUN_NO + 1))
  SOURCES="127.0.$RUN_NO.2,127.0.$RUN_NO.3,127.0.$RUN_NO.4,127.0.$RUN_NO.5"
}

echo "== work directory $WORK"
echo "== fsync probe (before)"
"$BIN" fsync-probe --dir "$WORK/data" --count 3000 --json >"$WORK/results/fsync-before.json"
cat "$WORK/results/fsync-before.json"

# --- receivers -------------------------------------------------------------------------
CEILING_PORT=$(free_port)
"$CEILING" "127.0.0.1:$CEILING_PORT" 2>"$WORK/ceiling.log" &
PIDS+=($!)
CEILING_PID=$!

TOCSIN_PORT=$(free_port)
TOCSIN_HTTP=$(free_port)
{
  echo "id,key,key_encoding,encryption"
  for ((i = 0; i < ACCOUNTS; i++)); do echo "$((100000 + i)),,,"; done
} >"$WORK/accounts.csv"
cat >"$WORK/tocsin.toml" <<EOF
# Written by benches/e2e/run.sh. Defaults unless said: ACK after fdatasync, 10 min dedup
# window, 64 MiB preallocated segments.
[receiver]
id = "e2e"
data_dir = "$WORK/data"

[[listen]]
address = "127.0.0.1:$TOCSIN_PORT"
transport = "tcp"

[http]
address = "127.0.0.1:$TOCSIN_HTTP"

[output]
stdout = false                   # no sink: the receiving path alone

[accounts]
unknown = "reject"
file = "accounts.csv"            # the load's accounts, 100000…$((100000 + ACCOUNTS - 1))

[journal]
commit_interval = "$COMMIT_INTERVAL"      # default 0s

[limits]
max_connections = 19000          # default 16000
max_connections_per_peer = 19000 # default 4000: all panels come from loopback
EOF
"$BIN" check-config "$WORK/tocsin.toml" >/dev/null
"$BIN" run --config "$WORK/tocsin.toml" >"$WORK/tocsin.out" 2>"$WORK/tocsin.log" &
PIDS+=($!)
TOCSIN_PID=$!

PYSIA_PORT=$(free_port)
"$VENV/bin/python" "$ROOT/benches/e2e/pysia_server.py" "$PYSIA_PORT" "$ACCOUNTS" \
  >"$WORK/pysia.out" 2>"$WORK/pysia.log" &
PIDS+=($!)
PYSIA_PID=$!

wait_port "$CEILING_PORT"
wait_port "$PYSIA_PORT"
wait_ready "$TOCSIN_HTTP" "$WORK/tocsin.log"

pid_of() {
  case "$1" in
    ceiling) echo "$CEILING_PID" ;;
    tocsin) echo "$TOCSIN_PID" ;;
    pysia) echo "$PYSIA_PID" ;;
  esac
}
# tocsin's journal counters, to tell what group commit did during a run.
journal_metrics() {
  curl -sf "http://127.0.0.1:$TOCSIN_HTTP/metrics" |
    grep -E '^tocsin_journal_(fsync_seconds|batch_records)_(sum|count) ' || true
}

port_of() {
  case "$1" in
    ceiling) echo "$CEILING_PORT" ;;
    tocsin) echo "$TOCSIN_PORT" ;;
    pysia) echo "$PYSIA_PORT" ;;
  esac
}

load() { # receiver conns duration out
  local rc=0
  next_sources
  "$BIN" load --to "127.0.0.1:$(port_of "$1")" --conns "$2" --duration "$3" --mix "$MIX" \
    --accounts "$ACCOUNTS" --receiver 1 --source "$SOURCES" --timeout 10s --json \
    >"$4" 2>"$4.err" || rc=$?
  # Exit 1 means some replies were wrong or missing: the JSON says which, the table shows it.
  if [ ! -s "$4" ]; then
    echo "tocsin load against $1 printed no summary (exit $rc):" >&2
    cat "$4.err" >&2
    echo '{}' >"$4"
  fi
}

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
for n in $CONNS; do
  for rx in ceiling tocsin pysia; do
    echo "== $rx, $n connections: warm-up $WARMUP, then $DURATION"
    load "$rx" "$n" "$WARMUP" "$WORK/results/$rx-$n-warmup.json"
    if [ "$rx" = tocsin ]; then
      # The disk is shared: its fsync latency moves with other processes' writes, so each
      # point's disk bound comes from probes taken just before and just after its run.
      "$BIN" fsync-probe --dir "$WORK/data" --count 1000 --json >"$WORK/results/fsync-$n-before.json"
      journal_metrics >"$WORK/results/$rx-$n.journal-before"
    fi
    cpu0=$(cpu_ticks "$(pid_of "$rx")")
    load "$rx" "$n" "$DURATION" "$WORK/results/$rx-$n.json"
    cpu1=$(cpu_ticks "$(pid_of "$rx")")
    if [ "$rx" = tocsin ]; then
      journal_metrics >"$WORK/results/$rx-$n.journal-after"
      "$BIN" fsync-probe --dir "$WORK/data" --count 1000 --json >"$WORK/results/fsync-$n-after.json"
    fi
    echo "$(((cpu1 - cpu0) * 1000 / $(getconf CLK_TCK)))" >"$WORK/results/$rx-$n.cpu-ms"
    jq -c '{frames_per_s, ack, nak, duh, timeouts, errors, connect_s, p50: .latency_us.p50, p99: .latency_us.p99}' \
      "$WORK/results/$rx-$n.json" || true
  done
done
ELAPSED=$((SECONDS - T0))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== fsync probe (after)"
"$BIN" fsync-probe --dir "$WORK/data" --count 3000 --json >"$WORK/results/fsync-after.json"
cat "$WORK/results/fsync-after.json"

# The receivers' own view: tocsin's NAK reasons and pysiaalarm's counters.
curl -sf "http://127.0.0.1:$TOCSIN_HTTP/metrics" >"$WORK/results/tocsin-metrics.txt" || true
TOCSIN_RSS=$(awk '/^VmHWM/ {print $2}' "/proc/$TOCSIN_PID/status" 2>/dev/null || echo 0)
kill "$PYSIA_PID" 2>/dev/null || true
wait "$PYSIA_PID" 2>/dev/null || true
grep 'pysiaalarm counters' "$WORK/pysia.log" >"$WORK/results/pysia-counters.txt" || true

# --- machine ---------------------------------------------------------------------------
JOURNAL_DEV=$(df --output=source "$WORK/data" | tail -1)
JOURNAL_FS=$(df --output=fstype "$WORK/data" | tail -1)
# The whole disk under the journal's partition (if any), its driver and model.
DISK=$(lsblk -no PKNAME "$JOURNAL_DEV" 2>/dev/null | head -1)
DISK=${DISK:-$(basename "$JOURNAL_DEV")}
DISK_DESC="$DISK: $(basename "$(readlink -f "/sys/block/$DISK/device/driver" 2>/dev/null)" 2>/dev/null || echo '?')"
MODEL=$(lsblk -dno MODEL "/dev/$DISK" 2>/dev/null | xargs || true)
[ -n "$MODEL" ] && DISK_DESC="$DISK_DESC, $MODEL"
DISK_DESC="$DISK_DESC, $(lsblk -dno SIZE "/dev/$DISK" 2>/dev/null | xargs)"
jq -n \
  --arg command "$COMMAND" \
  --arg date "$STARTED" \
  --arg elapsed "$ELAPSED" \
  --arg cores "$(nproc)" \
  --arg cpu "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" \
  --arg kernel "$(uname -sr)" \
  --arg mem "$(free -g | awk '/^Mem:/ {print $2}')" \
  --arg journal_dir "${WORK#"$ROOT"/}/data" \
  --arg journal_dev "$JOURNAL_DEV" \
  --arg journal_fs "$JOURNAL_FS" \
  --arg disk "$DISK_DESC" \
  --arg duration "$DURATION" \
  --arg warmup "$WARMUP" \
  --arg mix "$MIX" \
  --arg conns "$CONNS" \
  --arg accounts "$ACCOUNTS" \
  --arg sources "127.0.K.2–5, K = 1…$RUN_NO, a fresh K for each run" \
  --arg nofile "$NOFILE" \
  --arg pysia "$PYSIA_INSTALLED" \
  --arg python "$PY_VERSION" \
  --arg rustc "$(rustc --version)" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
  --arg tocsin_hwm_kib "$TOCSIN_RSS" \
  --arg commit_interval "$COMMIT_INTERVAL" \
  --arg loadavg "$LOAD_START at the start, $LOAD_END at the end" \
  '$ARGS.named' >"$WORK/results/meta.json"

python3 "$ROOT/benches/e2e/report.py" e2e "$WORK/results" "$OUT" "$SECTION"
echo "== written: $OUT"
