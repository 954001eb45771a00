#!/usr/bin/env bash
# End-to-end comparison of receivers on this machine, in one run, with one load generator.
#
#   benches/e2e/run.sh [--duration 12s] [--warmup 3s] [--conns "1000 10000"] [--mix sia,cid]
#                      [--bus] [--out BENCHMARKS.md] [--section e2e] [--commit-interval 0s]
#                      [--receivers "ceiling floor sink tocsin pysia"] [--drain-timeout 120]
#
#   A smoke test (seconds, not figures): benches/e2e/run.sh --duration 2s --warmup 1s \
#       --conns 100 --receivers "ceiling floor sink tocsin" --out /tmp/bench.md
#
# Receivers, side by side on loopback, each driven in turn by the same `tocsin load`
# (closed-loop panels: one frame, wait for the reply, next frame; every reply checked for
# CRC, sequence and account), at each connection count:
#
#   ceiling  examples/ceiling.rs: answers each frame with its ACK and nothing else, no disk.
#   floor    examples/floor.rs, the durable floor: reads each frame, hands its bytes to one
#            writer thread that appends every queued batch with one write and one
#            fdatasync to a preallocated file, then ACKs. What any receiver that ACKs after
#            an fsync must do at least.
#   sink     `tocsin run` with its default JSON-lines sink on, writing to a file on the
#            journal's disk (`[output] file`, `stdout = false`). With --bus it also
#            publishes to a local nats-server (started here: JetStream, store on the same
#            disk). Its CPU is counted until the sinks have delivered every event of the
#            run (see "Drain" below): a sink that lags is not faster.
#   tocsin   `tocsin run` without a sink: the receiving path alone.
#   pysia    pysiaalarm (PyPI) in a virtualenv, its asyncio SIAClient with the same accounts
#            and an empty callback (benches/e2e/pysia_server.py).
#
# Both tocsins: journal on a real disk (under the cargo target dir, never tmpfs), defaults
# otherwise (ACK after fdatasync, 64 MiB preallocated segments); the load's accounts
# configured (a CSV file), unknown accounts refused; per-peer limit raised (all panels come
# from loopback). Every frame carries `R1`: pysiaalarm answers a frame without an `R` field
# with `"ACK"0001NoneL0…`, which no panel and not `tocsin load` can parse.
#
# Each point: a warm-up run (--warmup), then the measured run (--duration); the receivers
# take turns at each point so that noise from the shared machine spreads over all.
# Measured per run: frames/s and ACK latency (the load's summary), and the CPU time of the
# server's whole process (utime + stime from /proc/PID/stat) per answered frame.
#
# Drain: after the warm-up and after the measured run against `sink`, benches/e2e/drain.py
# waits until the file sink's cursor (stored only after a flush, so the file holds every
# event up to it) reaches the journal's durable LSN, and with --bus until the nats sink's
# backlog gauge reads 0. The measured run's CPU is read once drained; "drained after" is
# the time from the load's end. The sinks' delivery latency p99 comes from
# `tocsin_sink_delivery_seconds{sink}` (arrival to written / to PubAck), buckets counted
# between a scrape before the run and one after the drain.
#
# `tocsin fsync-probe` measures fdatasync latency in the journal's directory before and after
# the sweep. Results go into the `--section` (default e2e) section of --out (other sections
# are kept) by benches/e2e/report.py, with the bars; raw files stay in the work directory
# with KEEP=1.
#
# Environment: CARGO_TARGET_DIR is honoured; BENCH_DIR picks the work directory's parent
# (default: $CARGO_TARGET_DIR/tmp, which must be a real disk).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. benches/lib.sh

DURATION=12s
WARMUP=3s
CONNS="1000 10000"
MIX=sia,cid
OUT=$ROOT/BENCHMARKS.md
PYSIA_VERSION=3.2.2
COMMIT_INTERVAL=0s
SECTION=e2e
BUS=0
RECEIVERS="ceiling floor sink tocsin pysia"
DRAIN_TIMEOUT=120
COMMAND="benches/e2e/run.sh${*:+ $(printf '%q ' "$@")}"
usage() {
  echo "usage: $0 [--duration D] [--warmup D] [--conns \"N …\"] [--mix M] [--bus] [--out FILE]" \
    "[--section NAME] [--commit-interval D] [--receivers \"ceiling floor sink tocsin pysia\"]" \
    "[--drain-timeout SECONDS]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --mix) MIX=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --commit-interval) COMMIT_INTERVAL=$2; shift 2 ;;
    --section) SECTION=$2; shift 2 ;;
    --bus) BUS=1; shift ;;
    --receivers) RECEIVERS=$2; shift 2 ;;
    --drain-timeout) DRAIN_TIMEOUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
for rx in $RECEIVERS; do
  case "$rx" in ceiling | floor | sink | tocsin | pysia) ;; *) usage ;; esac
done
has() { [[ " $RECEIVERS " == *" $1 "* ]]; }
if [ "$BUS" = 1 ]; then
  command -v nats-server >/dev/null || { echo "--bus needs nats-server (Debian package nats-server)" >&2; exit 1; }
fi
command -v jq >/dev/null || { echo "missing: jq (Debian package jq)" >&2; exit 1; }

# 10 000 panels need 10 000 descriptors in the load generator and in each receiver.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building (release): tocsin, examples/ceiling, examples/floor"
cargo build --release --quiet --bin tocsin --example ceiling --example floor
BIN=$TARGET/release/tocsin
CEILING=$TARGET/release/examples/ceiling
FLOOR=$TARGET/release/examples/floor

VENV=$TARGET/e2e-venv
PYSIA_INSTALLED=-
PY_VERSION=-
if has pysia; then
  if ! "$VENV/bin/python" -c 'import pysiaalarm' 2>/dev/null; then
    echo "== installing pysiaalarm $PYSIA_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "pysiaalarm==$PYSIA_VERSION"
  fi
  PYSIA_INSTALLED=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pysiaalarm"))')
  PY_VERSION=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')
fi

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/e2e.XXXXXX")
WORK=$(cd "$WORK" && pwd)
R=$WORK/results
mkdir -p "$R" "$WORK/probe"

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
"$BIN" fsync-probe --dir "$WORK/probe" --count 3000 --json >"$R/fsync-before.json"
cat "$R/fsync-before.json"

# --- receivers -------------------------------------------------------------------------
declare -A PID PORT HTTP
{
  echo "id,key,key_encoding,encryption"
  for ((i = 0; i < ACCOUNTS; i++)); do echo "$((100000 + i)),,,"; done
} >"$WORK/accounts.csv"

NATS_URL=
if [ "$BUS" = 1 ] && has sink; then
  NATS_PORT=$(free_port)
  NATS_MON=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON" -sd "$WORK/nats-store" -n e2e \
    >"$WORK/nats.log" 2>&1 &
  PIDS+=($!)
  NATS_PID=$!
  NATS_URL=nats://127.0.0.1:$NATS_PORT
  wait_port "$NATS_PORT"
fi

# start_tocsin NAME OUTPUT_TOML: a daemon with its own data dir under $WORK/NAME.
start_tocsin() {
  local name=$1 output=$2 dir=$WORK/$1
  mkdir -p "$dir"
  cp "$WORK/accounts.csv" "$dir/accounts.csv"
  PORT[$name]=$(free_port)
  HTTP[$name]=$(free_port)
  cat >"$dir/tocsin.toml" <<EOF
# Written by benches/e2e/run.sh. Defaults unless said: ACK after fdatasync, 10 min dedup
# window, 64 MiB preallocated segments.
[receiver]
id = "e2e-$name"
data_dir = "$dir/data"

[[listen]]
address = "127.0.0.1:${PORT[$name]}"
transport = "tcp"

[http]
address = "127.0.0.1:${HTTP[$name]}"

$output

[accounts]
unknown = "reject"
file = "accounts.csv"            # the load's accounts, 100000…$((100000 + ACCOUNTS - 1))

[journal]
commit_interval = "$COMMIT_INTERVAL"      # default 0s

[limits]
max_connections = 19000          # default 16000
max_connections_per_peer = 19000 # default 4000: all panels come from loopback
EOF
  "$BIN" check-config "$dir/tocsin.toml" >/dev/null
  "$BIN" run --config "$dir/tocsin.toml" >"$dir/tocsin.out" 2>"$dir/tocsin.log" &
  PIDS+=($!)
  PID[$name]=$!
}

if has ceiling; then
  PORT[ceiling]=$(free_port)
  "$CEILING" "127.0.0.1:${PORT[ceiling]}" 2>"$WORK/ceiling.log" &
  PIDS+=($!)
  PID[ceiling]=$!
fi
if has floor; then
  PORT[floor]=$(free_port)
  "$FLOOR" "127.0.0.1:${PORT[floor]}" "$WORK/floor" 2>"$WORK/floor.log" &
  PIDS+=($!)
  PID[floor]=$!
fi
if has sink; then
  SINK_OUTPUT="[output]
stdout = false                   # the default sink, to a file instead of a pipe:
file = \"$WORK/sink/events.jsonl\"  # on the journal's disk"
  if [ -n "$NATS_URL" ]; then
    SINK_OUTPUT="$SINK_OUTPUT

[bus.nats]
servers = [\"$NATS_URL\"]        # nats-server -js started by run.sh, store on the same disk"
  fi
  start_tocsin sink "$SINK_OUTPUT"
fi
if has tocsin; then
  start_tocsin tocsin "[output]
stdout = false                   # no sink: the receiving path alone"
fi
if has pysia; then
  PORT[pysia]=$(free_port)
  "$VENV/bin/python" "$ROOT/benches/e2e/pysia_server.py" "${PORT[pysia]}" "$ACCOUNTS" \
    >"$WORK/pysia.out" 2>"$WORK/pysia.log" &
  PIDS+=($!)
  PID[pysia]=$!
fi

for rx in $RECEIVERS; do
  case "$rx" in
    sink | tocsin) wait_ready "${HTTP[$rx]}" "$WORK/$rx/tocsin.log" ;;
    *) wait_port "${PORT[$rx]}" ;;
  esac
done

scrape() { # receiver file
  curl -sf "http://127.0.0.1:${HTTP[$1]}/metrics" >"$2" || true
}

load() { # receiver conns duration out
  local rc=0
  next_sources
  "$BIN" load --to "127.0.0.1:${PORT[$1]}" --conns "$2" --duration "$3" --mix "$MIX" \
    --accounts "$ACCOUNTS" --receiver 1 --source "$SOURCES" --timeout 10s --json \
    >"$4" 2>"$4.err" || rc=$?
  # Exit 1 means some replies were wrong or missing: the JSON says which, the table shows it.
  if [ ! -s "$4" ]; then
    echo "tocsin load against $1 printed no summary (exit $rc):" >&2
    cat "$4.err" >&2
    echo '{}' >"$4"
  fi
}

drain() { # load-end-time out
  local args=("${HTTP[sink]}" "$WORK/sink/data" "$1" --timeout "$DRAIN_TIMEOUT")
  [ -n "$NATS_URL" ] && args+=(--nats)
  python3 "$ROOT/benches/e2e/drain.py" "${args[@]}" >"$2"
}

HZ=$(getconf CLK_TCK)
ms_between() { echo $((($2 - $1) * 1000 / HZ)); }

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$SECONDS
for n in $CONNS; do
  for rx in $RECEIVERS; do
    echo "== $rx, $n connections: warm-up $WARMUP, then $DURATION"
    load "$rx" "$n" "$WARMUP" "$R/$rx-$n-warmup.json"
    if [ "$rx" = sink ]; then
      # The warm-up's events must be out before the measured run starts, or its CPU and
      # its delivery latency would carry them.
      drain "$(date +%s.%N)" "$R/$rx-$n-warmup.drain.json"
    fi
    case "$rx" in sink | tocsin) scrape "$rx" "$R/$rx-$n.metrics-before" ;; esac
    cpu0=$(cpu_ticks "${PID[$rx]}")
    [ "$rx" = sink ] && [ -n "$NATS_URL" ] && nats0=$(cpu_ticks "$NATS_PID")
    load "$rx" "$n" "$DURATION" "$R/$rx-$n.json"
    cpu1=$(cpu_ticks "${PID[$rx]}")
    ended=$(date +%s.%N)
    ms_between "$cpu0" "$cpu1" >"$R/$rx-$n.cpu-ms"
    if [ "$rx" = sink ]; then
      drain "$ended" "$R/$rx-$n.drain.json"
      cpu2=$(cpu_ticks "${PID[$rx]}")
      ms_between "$cpu0" "$cpu2" >"$R/$rx-$n.cpu-drained-ms"
      # The bus's own CPU is not tocsin's; shown beside it.
      [ -n "$NATS_URL" ] && ms_between "$nats0" "$(cpu_ticks "$NATS_PID")" >"$R/$rx-$n.nats-cpu-ms"
      echo "   drain: $(cat "$R/$rx-$n.drain.json")"
    fi
    case "$rx" in sink | tocsin) scrape "$rx" "$R/$rx-$n.metrics-after" ;; esac
    jq -c '{frames_per_s, ack, nak, duh, timeouts, errors, connect_s, p50: .latency_us.p50, p99: .latency_us.p99}' \
      "$R/$rx-$n.json" || true
  done
done
ELAPSED=$((SECONDS - T0))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== fsync probe (after)"
"$BIN" fsync-probe --dir "$WORK/probe" --count 3000 --json >"$R/fsync-after.json"
cat "$R/fsync-after.json"

HWM=
for rx in sink tocsin; do
  if has "$rx"; then
    HWM="$HWM${HWM:+, }$rx $(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/${PID[$rx]}/status" 2>/dev/null || echo '?') MiB"
  fi
done
EVENTS_WRITTEN=$( (has sink && wc -l <"$WORK/sink/events.jsonl") 2>/dev/null || echo 0)
if has pysia; then
  kill "${PID[pysia]}" 2>/dev/null || true
  wait "${PID[pysia]}" 2>/dev/null || true
  grep 'pysiaalarm counters' "$WORK/pysia.log" >"$R/pysia-counters.txt" || true
fi

# --- machine ---------------------------------------------------------------------------
JOURNAL_DEV=$(df --output=source "$WORK/probe" | tail -1)
JOURNAL_FS=$(df --output=fstype "$WORK/probe" | tail -1)
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
  --arg work_dir "${WORK#"$ROOT"/}" \
  --arg journal_dev "$JOURNAL_DEV" \
  --arg journal_fs "$JOURNAL_FS" \
  --arg disk "$DISK_DESC" \
  --arg duration "$DURATION" \
  --arg warmup "$WARMUP" \
  --arg mix "$MIX" \
  --arg conns "$CONNS" \
  --arg receivers "$RECEIVERS" \
  --arg bus "$BUS" \
  --arg accounts "$ACCOUNTS" \
  --arg sources "127.0.K.2–5, K = 1…$RUN_NO, a fresh K for each run" \
  --arg nofile "$NOFILE" \
  --arg pysia "$PYSIA_INSTALLED" \
  --arg python "$PY_VERSION" \
  --arg nats "$( [ "$BUS" = 1 ] && nats-server --version 2>/dev/null || echo -)" \
  --arg rustc "$(rustc --version)" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')" \
  --arg hwm "$HWM" \
  --arg events_written "$EVENTS_WRITTEN" \
  --arg commit_interval "$COMMIT_INTERVAL" \
  --arg drain_timeout "$DRAIN_TIMEOUT s" \
  --arg loadavg "$LOAD_START at the start, $LOAD_END at the end" \
  '$ARGS.named' >"$R/meta.json"

python3 "$ROOT/benches/e2e/report.py" e2e "$R" "$OUT" "$SECTION"
echo "== written: $OUT ($SECTION section)"
