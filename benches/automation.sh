#!/usr/bin/env bash
# Automation output bar: packets per second to an automation that ACKs at once, on
# loopback (the bar is 5 000; automation software is far slower, so this shows the
# receiver is never the bottleneck). Not a test: it prints figures.
#
#   benches/automation.sh [N]            (N events, default 100000)
#
# Steps: build (release) → start `tocsin run` with an [[automation]] output that dials a
# port where nothing listens yet (journal on a real disk, no stdout events) → `tocsin
# load` sends N SIA and Contact ID frames as fast as the receiver takes them, so the
# output's backlog holds N events → start `tocsin automation-sim` → wait until the backlog
# is 0 → packets/s from the automation's side (packets ACKed between its first and last
# event packet, by automation-sim's clock) and the daemon's CPU per packet meanwhile.
#
# Environment: TOCSIN_BIN uses that binary instead of a release build; CARGO_TARGET_DIR is
# honoured; BENCH_DIR picks where temp dirs go (default the target dir: a real disk, never
# tmpfs); KEEP=1 keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

N=${1:-100000}
TARGET=${CARGO_TARGET_DIR:-target}
if [ -n "${TOCSIN_BIN:-}" ]; then
  BIN=$TOCSIN_BIN
else
  cargo build --release --quiet --bin tocsin
  BIN=$TARGET/release/tocsin
fi

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/automation-bench.XXXXXX")
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
stdout = false

[[automation]]
name = "bench"
format = "surgard"
connect = "127.0.0.1:$AUTO_PORT"
receiver_number = "01"
line = "1"
EOF

auto() {
  { "$BIN" status --http "127.0.0.1:$HTTP_PORT" --json 2>/dev/null || true; } |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["automation"][0][sys.argv[1]])' "$1"
}

"$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
wait_port "$PANEL_PORT"

echo "== $N events into the journal, the automation away" >&2
"$BIN" load --to "127.0.0.1:$PANEL_PORT" --conns 50 --frames "$N" --mix sia,cid --json \
  >"$WORK/load.json"
BACKLOG=$(auto backlog_records)
echo "   backlog $BACKLOG records" >&2

echo "== automation-sim starts; catching up" >&2
CPU0=$(cpu_ticks "$TOCSIN_PID")
"$BIN" automation-sim --listen "127.0.0.1:$AUTO_PORT" >"$WORK/sim.jsonl" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 36000); do
  [ "$(auto backlog_records)" = 0 ] && break
  sleep 0.1
done
CPU1=$(cpu_ticks "$TOCSIN_PID")
[ "$(auto backlog_records)" = 0 ] || { echo "backlog never drained" >&2; exit 1; }
DELIVERED=$(auto delivered)
kill "$SIM_PID"
wait "$SIM_PID" 2>/dev/null || true
SIM_PID=

python3 - "$WORK/sim.jsonl" "$WORK/load.json" "$DELIVERED" "$CPU0" "$CPU1" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
sim, load, delivered, cpu0, cpu1, hz = sys.argv[1:]
ts = []
with open(sim) as f:
    for line in f:
        l = json.loads(line)
        if l["answer"] == "ack" and l["kind"] != "heartbeat":
            ts.append(l["t"])
span = ts[-1] - ts[0] if len(ts) > 1 else 0.0
rate = (len(ts) - 1) / span if span > 0 else 0.0
cpu_s = (int(cpu1) - int(cpu0)) / int(hz)
l = json.load(open(load))
out = {
    "events_sent": l["ack"],
    "packets_acked_by_automation": len(ts),
    "delivered_metric": int(delivered),
    "catch_up_s": round(span, 3),
    "packets_per_s": round(rate),
    "daemon_cpu_s": round(cpu_s, 2),
    "daemon_cpu_us_per_packet": round(cpu_s / len(ts) * 1e6, 1) if ts else None,
    "bar_5000_per_s": "pass" if rate >= 5000 else "FAIL",
}
print(json.dumps(out, indent=2))
EOF
