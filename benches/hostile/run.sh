#!/usr/bin/env bash
# benches/hostile/run.sh — one well-behaved panel's ACK latency while hostile peers attack
# the same receiver, one kind at a time and then all together, and how many log lines a
# minute each attack costs.
#
#   benches/hostile/run.sh                          # 60 s a phase, the measured run
#   DURATION=5s benches/hostile/run.sh              # a smoke run
#   ATTACKS="garbage udpflood" benches/hostile/run.sh
#
# The good panel is `tocsin load --conns 1 --rate $RATE` from 127.0.0.1 (ACK after
# fdatasync, journal on the real disk under the cargo target dir). Each attacker is one
# Python process (benches/hostile/attack.py) at the full rate it reaches, from its own
# address, 127.0.0.2 and up: a garbage flood on 4 connections, 3 000 slowloris connections
# sending a byte a second, 70 kB lines without a CR, new connections as fast as they are
# accepted, a UDP flood of random datagrams, and a peer that never reads its replies.
# Phases: without attackers (the baseline), each attacker alone, all together, and the
# baseline again (the machine's drift). The bar: the panel's p99 within 3 ms of its own
# baseline p99 in the same run, and at most 60 log lines a minute, under each load.
# Prints a Markdown table for BENCHMARKS.md. On a 2-core machine the attackers, the panel
# and the daemon share the cores: that is the point.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/lib.sh

DURATION=${DURATION:-60s}
RATE=${RATE:-50}
WARMUP=${WARMUP:-5}
ATTACKS=${ATTACKS:-"garbage slowloris longlines connflood udpflood noread"}
ulimit -n "$(ulimit -Hn)"
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin tocsin
BIN=$TARGET/release/tocsin
mkdir -p "$TARGET/tmp"
WORK=$(mktemp -d "$TARGET/tmp/hostile.XXXXXX")
TOCSIN_PID=
ATTACKERS=()
cleanup() {
  for p in "${ATTACKERS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
PORT=$(free_port)
HTTP=$(free_port)
cat >"$WORK/tocsin.toml" <<CONF
[receiver]
id = "hostile"
data_dir = "$WORK/data"
[[listen]]
address = "127.0.0.1:$PORT"
[http]
address = "127.0.0.1:$HTTP"
[output]
stdout = false
CONF
LOG=$WORK/tocsin.log
"$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$LOG" &
TOCSIN_PID=$!
wait_ready "$HTTP" "$LOG"

lines() { wc -l <"$LOG"; }

# phase NAME ATTACK... — runs the attackers and the good panel; prints one table row.
phase() {
  local name=$1
  shift
  ATTACKERS=()
  local i=2
  for a in "$@"; do
    python3 benches/hostile/attack.py "$a" --to "127.0.0.1:$PORT" --from "127.0.0.$i" \
      >"$WORK/$name.$a.json" 2>>"$WORK/attack.err" &
    ATTACKERS+=($!)
    i=$((i + 1))
  done
  [ $# -gt 0 ] && sleep "$WARMUP"
  local l0 t0 l1 t1 c0 c1
  l0=$(lines)
  c0=$(cpu_ticks "$TOCSIN_PID")
  t0=$(date +%s.%N)
  "$BIN" load --to "127.0.0.1:$PORT" --conns 1 --rate "$RATE" --duration "$DURATION" \
    --mix sia >"$WORK/$name.load.json" 2>>"$WORK/load.err" || true
  l1=$(lines)
  c1=$(cpu_ticks "$TOCSIN_PID")
  t1=$(date +%s.%N)
  for p in "${ATTACKERS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${ATTACKERS[@]}"; do wait "$p" 2>/dev/null || true; done
  ATTACKERS=()
  kill -0 "$TOCSIN_PID" 2>/dev/null || { echo "tocsin died during $name:" >&2; tail "$LOG" >&2; exit 1; }
  python3 - "$WORK" "$name" "$l0" "$l1" "$t0" "$t1" "$c0" "$c1" "$(getconf CLK_TCK)" "$@" <<'PY'
import json, sys
work, name, l0, l1, t0, t1, c0, c1, hz, *attacks = sys.argv[1:]
load = json.load(open(f"{work}/{name}.load.json"))
lat = load.get("latency_us") or {}
did = []
for a in attacks:
    try:
        s = json.loads(open(f"{work}/{name}.{a}.json").read().strip().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        did.append(f"{a}: ?")
        continue
    parts = [f"{v} {k.replace('_', ' ')}" for k, v in s.items()
             if k in ("connections", "datagrams", "frames") and v]
    parts.append(f"{s.get('bytes', 0) / 1e6:.1f} MB")
    did.append(f"{a}: " + ", ".join(parts))
minutes = max(float(t1) - float(t0), 1e-9) / 60
row = {
    "name": name, "p50": lat.get("p50"), "p99": lat.get("p99"), "max": lat.get("max"),
    "ack": load.get("ack"), "nak": load.get("nak"), "timeouts": load.get("timeouts"),
    "errors": load.get("errors"), "lines_per_min": (int(l1) - int(l0)) / minutes,
    "did": "; ".join(did) or "-",
    "cpu": (int(c1) - int(c0)) / int(hz) / max(float(t1) - float(t0), 1e-9),
}
print(json.dumps(row))
PY
  sleep 2
}

ROWS=$WORK/rows.jsonl
phase baseline >>"$ROWS"
for a in $ATTACKS; do
  echo "== $a" >&2
  phase "$a" "$a" >>"$ROWS"
done
# shellcheck disable=SC2086
echo "== all together" >&2
phase all $ATTACKS >>"$ROWS"
phase baseline-again >>"$ROWS"
kill -TERM "$TOCSIN_PID"
wait "$TOCSIN_PID" || true
TOCSIN_PID=

echo
echo "Hostile peers on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), $(nproc) CPUs, load before $(cut -d' ' -f1-3 /proc/loadavg); good panel: $RATE frames/s for $DURATION a phase:"
echo
python3 - "$ROWS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
base = rows[0]["p99"] or 0
print("| load | ACK p50 | ACK p99 | p99 − baseline | ≤ +3 ms | max | panel ACK / NAK / timeouts | daemon CPU | log lines a minute | ≤ 60 | what the attacker did |")
print("| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | --- | --- |")
ms = lambda us: "?" if us is None else f"{us / 1000:.2f} ms"
for r in rows:
    d = None if r["p99"] is None else r["p99"] - base
    ok_lat = "?" if d is None else ("yes" if d <= 3000 else "**no**")
    ok_log = "yes" if r["lines_per_min"] <= 60 else "**no**"
    print(f"| {r['name']} | {ms(r['p50'])} | {ms(r['p99'])} | {'' if d is None else ('+' if d >= 0 else '') + ms(d)} | {ok_lat} "
          f"| {ms(r['max'])} | {r['ack']} / {r['nak']} / {r['timeouts']} | {r['cpu'] * 100:.0f} % | {r['lines_per_min']:.0f} | {ok_log} | {r['did']} |")
PY
