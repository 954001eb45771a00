#!/usr/bin/env bash
# Automation outage bar: the automation computer is gone for OUTAGE during a steady load
# of RATE events a second; afterwards it gets every event, in order, none lost, and
# reception (ACKs to panels) never noticed.
#
#   benches/automation-outage.sh [OUTAGE] [RATE]        (default 10m, 200 events/s)
#
# Steps: start `tocsin automation-sim` and `tocsin run` with an [[automation]] output that
# dials it (journal on a real disk, events also on stdout) → phase 1: `tocsin load` at RATE
# (SIA and Contact ID frames, no polls) for a tenth of the outage (at least 5 s) → the sim
# is killed (SIGKILL, mid-packet as it may be) → phase 2: the same load for OUTAGE, then
# the output's link and backlog are read → a new sim starts → phase 3: the load goes on
# for a tenth of the outage (at least 10 s) while the output catches up → wait for the
# backlog to reach 0 → stop → benches/automation_check.py compares what the automation
# acknowledged with the receiver's events (through `tocsin decode --surgard`) and reads
# the load reports (every frame ACKed, rate held, latencies and the daemon's CPU per frame
# in each phase; catch_up_s runs from the automation's return to a backlog of at most 20).
#
# Environment: MIN_RATE_FRACTION (default 0.9) is the share of RATE each phase must have
# acknowledged; TOCSIN_BIN uses that binary (the tests pass the debug one) instead of a
# release build; CARGO_TARGET_DIR is honoured; BENCH_DIR picks where temp dirs go (default
# the target dir: a real disk, never tmpfs); KEEP=1 keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

OUTAGE=${1:-10m}
RATE=${2:-200}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${TOCSIN_BIN:-}" ]; then
  BIN=$TOCSIN_BIN
else
  cargo build --release --quiet --bin tocsin
  BIN=$TARGET/release/tocsin
fi
secs() { python3 -c '
import sys
t = sys.argv[1]
units = {"s": 1, "m": 60, "h": 3600}
print(int(float(t[:-1]) * units[t[-1]]) if t[-1] in units else int(t))' "$1"; }
OUT_S=$(secs "$OUTAGE")
PRE_S=$(( OUT_S / 10 > 5 ? OUT_S / 10 : 5 ))
POST_S=$(( OUT_S / 10 > 10 ? OUT_S / 10 : 10 ))

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/automation-outage.XXXXXX")
SIM_PID=
TOCSIN_PID=
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

PANEL_PORT=$(free_port)
HTTP_PORT=$(free_port)
AUTO_PORT=$(free_port)

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
stdout = true

[[automation]]
name = "bench"
format = "surgard"
connect = "127.0.0.1:$AUTO_PORT"
receiver_number = "01"
line = "1"
EOF

# The output's entry in /status, one field.
auto() {
  { "$BIN" status --http "127.0.0.1:$HTTP_PORT" --json 2>/dev/null || true; } |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["automation"][0][sys.argv[1]])' "$1"
}
start_sim() {
  "$BIN" automation-sim --listen "127.0.0.1:$AUTO_PORT" >"$WORK/$1" 2>>"$WORK/sim.log" &
  SIM_PID=$!
  wait_port "$AUTO_PORT"
}
load() {
  "$BIN" load --to "127.0.0.1:$PANEL_PORT" --conns 20 --rate "$RATE" --duration "${1}s" \
    --mix sia,cid --json >"$WORK/$2"
}

start_sim sim1.jsonl
"$BIN" run --config "$WORK/tocsin.toml" >"$WORK/events.jsonl" 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
for _ in $(seq 300); do
  [ "$(auto link 2>/dev/null || true)" = up ] && break
  sleep 0.1
done
[ "$(auto link)" = up ] || { echo "the automation link never came up" >&2; cat "$WORK/tocsin.log" >&2; exit 1; }

echo "== phase 1: ${PRE_S}s at $RATE events/s, automation up" >&2
CPU1=$(cpu_ticks "$TOCSIN_PID")
load "$PRE_S" load1.json
echo "== phase 2: automation killed for ${OUT_S}s, load goes on" >&2
{ kill -9 "$SIM_PID" && wait "$SIM_PID"; } 2>/dev/null || true
SIM_PID=
CPU2=$(cpu_ticks "$TOCSIN_PID")
load "$OUT_S" load2.json
CPU3=$(cpu_ticks "$TOCSIN_PID")
LINK_DURING=$(auto link)
BACKLOG_DURING=$(auto backlog_records)
echo "   link $LINK_DURING, backlog $BACKLOG_DURING records" >&2
echo "== phase 3: automation back, ${POST_S}s more load while it catches up" >&2
T_BACK=$(date +%s.%N)
start_sim sim2.jsonl
load "$POST_S" load3.json &
LOAD_PID=$!
# Caught up once the backlog is down to what a live flow keeps in transit.
T_CAUGHT=
for _ in $(seq 6000); do
  B=$(auto backlog_records 2>/dev/null || echo -1)
  if [ "$B" -ge 0 ] 2>/dev/null && [ "$B" -le 20 ]; then T_CAUGHT=$(date +%s.%N); break; fi
  sleep 0.1
done
wait "$LOAD_PID"
CPU4=$(cpu_ticks "$TOCSIN_PID")
for _ in $(seq 6000); do
  [ "$(auto backlog_records)" = 0 ] && break
  sleep 0.1
done
[ "$(auto backlog_records)" = 0 ] || { echo "backlog never drained" >&2; exit 1; }
[ -n "$T_CAUGHT" ] || T_CAUGHT=$(date +%s.%N)
kill -TERM "$TOCSIN_PID"
wait "$TOCSIN_PID" || { echo "tocsin did not stop cleanly" >&2; exit 1; }
TOCSIN_PID=
sleep 0.5
kill "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
SIM_PID=

echo "== checking" >&2
set +e
python3 benches/automation_check.py --bin "$BIN" --events "$WORK/events.jsonl" \
  --sim "$WORK/sim1.jsonl" "$WORK/sim2.jsonl" \
  --load "$WORK/load1.json" "$WORK/load2.json" "$WORK/load3.json" --rate "$RATE" \
  --min-rate-fraction "${MIN_RATE_FRACTION:-0.9}" >"$WORK/check.json"
RC=$?
python3 - "$WORK/check.json" "$OUT_S" "$LINK_DURING" "$BACKLOG_DURING" "$T_BACK" "$T_CAUGHT" \
  "$CPU1 $CPU2 $CPU3 $CPU4" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["outage_s"] = int(sys.argv[2])
c["link_during_outage"] = sys.argv[3]
c["backlog_at_end_of_outage"] = int(sys.argv[4])
c["catch_up_s"] = round(float(sys.argv[6]) - float(sys.argv[5]), 1)
# The daemon's CPU per frame acknowledged in each phase: what the outage costs reception.
ticks = [int(t) for t in sys.argv[7].split()]
hz = int(sys.argv[8])
for phase, (a, b) in zip(c["load_phases"], zip(ticks, ticks[1:])):
    phase["daemon_cpu_us_per_frame"] = round((b - a) / hz / max(phase["ack"], 1) * 1e6, 1)
if c["link_during_outage"] != "down" or c["backlog_at_end_of_outage"] <= 0:
    c["failures"].append("the outage did not show (link not down, or no backlog)")
print(json.dumps(c, indent=2))
sys.exit(1 if c["failures"] else 0)
EOF
RC2=$?
if [ "$RC" = 0 ] && [ "$RC2" = 0 ]; then
  echo "automation outage: PASS" >&2
else
  echo "automation outage: FAIL (files kept in $WORK)" >&2
  KEEP=1
  exit 1
fi
