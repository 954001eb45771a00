#!/usr/bin/env bash
# ACK latency at a sustainable load: tocsin against the durable floor at the same pace.
#
#   benches/e2e/latency.sh [--conns 1000] [--duration 20s] [--peak-duration 8s]
#                          [--sink file|none] [--rate N] [--pin] [--commit-interval D]
#
#   A smoke test (seconds, not figures):
#       benches/e2e/latency.sh --conns 100 --peak-duration 2s --duration 3s
#
# Bar: at 1000 panels paced at half of tocsin's peak, tocsin's ACK p99 ≤ the durable floor's
# ACK p99 at the same pace + 1 ms.
#
# Starts `tocsin run` (journal on a real disk under the cargo target dir, ACK after
# fdatasync, the load's accounts configured; with --sink file, the default, its JSON-lines
# sink writes to a file on the same disk, as in benches/e2e/run.sh) and the durable floor
# (examples/floor.rs: one writer thread, one write and one fdatasync per queued batch, ACK
# after it; its file on the same disk). Then, one after the other, with the same
# `tocsin load` and N closed-loop panels:
#   1. tocsin at full speed (--peak-duration) finds its peak frames/s (--rate N skips this
#      and paces at N);
#   2. tocsin paced at half the peak (`--rate`, total over all panels), --duration long;
#   3. the floor paced at the same rate, as long.
# Before each paced run, the sink (if any) has written every event of the previous run
# (benches/e2e/drain.py), so no catch-up runs beside a measured run. `tocsin fsync-probe`
# in the same directory before and after gives the disk's own fdatasync latency, and
# tocsin's histograms and its threads' scheduler counts over its paced run say where its
# time went. Prints the results and the bar; writes nothing.
#
# --commit-interval sets tocsin's `[journal] commit_interval` (the daemon's default if not
# given), to weigh its added latency against the CPU it saves under load.
#
# --pin runs both servers on CPU 0 and the load generator on CPU 1 (`taskset`), so that the
# generator's threads do not take the server's CPU at random moments and show up as ACK
# latency: on two cores that contention is much of an unpinned run's tail.
#
# Environment: CARGO_TARGET_DIR is honoured; BENCH_DIR picks the work directory's parent
# (default: $CARGO_TARGET_DIR/tmp, which must be a real disk); KEEP=1 keeps it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. benches/lib.sh
CONNS=1000
DURATION=20s
PEAK_DURATION=8s
SINK=file
RATE=
PIN_DAEMON=()
PIN_LOAD=()
JOURNAL=
usage() {
  echo "usage: $0 [--conns N] [--duration D] [--peak-duration D] [--sink file|none] [--rate N] [--pin] [--commit-interval D]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --peak-duration) PEAK_DURATION=$2; shift 2 ;;
    --sink)
      SINK=$2; shift 2
      case "$SINK" in file | none) ;; *) usage ;; esac ;;
    --rate) RATE=$2; shift 2 ;;
    --commit-interval) JOURNAL="[journal]
commit_interval = \"$2\""; shift 2 ;;
    --pin)
      command -v taskset >/dev/null || { echo "--pin needs taskset (util-linux)" >&2; exit 1; }
      [ "$(nproc)" -ge 2 ] || { echo "--pin needs two CPUs" >&2; exit 1; }
      PIN_DAEMON=(taskset -c 0); PIN_LOAD=(taskset -c 1); shift ;;
    *) usage ;;
  esac
done
ulimit -n "$(ulimit -Hn)"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building (release): tocsin, examples/floor"
cargo build --release --quiet --bin tocsin --example floor
BIN=$TARGET/release/tocsin
FLOOR=$TARGET/release/examples/floor
BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/latency.XXXXXX")
WORK=$(cd "$WORK" && pwd)
mkdir -p "$WORK/probe"
PIDS=()
TOCSIN_PID=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
PORT=$(free_port)
HTTP=$(free_port)
FLOOR_PORT=$(free_port)
# The daemon's threads as the scheduler saw them: name, CPU ns, ns runnable but waiting
# for a CPU, times run (/proc/PID/task/TID/schedstat).
sched_stats() {
  for t in /proc/"$TOCSIN_PID"/task/*; do
    echo "$(cat "$t/comm") $(cat "$t/schedstat" 2>/dev/null || echo 0 0 0)"
  done
}
{
  echo "id,key,key_encoding,encryption"
  for ((i = 0; i < CONNS; i++)); do echo "$((100000 + i)),,,"; done
} >"$WORK/accounts.csv"
if [ "$SINK" = file ]; then
  OUTPUT="stdout = false
file = \"$WORK/events.jsonl\""
else
  OUTPUT="stdout = false"
fi
cat >"$WORK/tocsin.toml" <<CONF
[receiver]
id = "latency"
data_dir = "$WORK/data"
[[listen]]
address = "127.0.0.1:$PORT"
transport = "tcp"
[http]
address = "127.0.0.1:$HTTP"
[output]
$OUTPUT
[accounts]
unknown = "reject"
file = "accounts.csv"
[limits]
max_connections = 19000
max_connections_per_peer = 19000
$JOURNAL
CONF
"$BIN" check-config "$WORK/tocsin.toml" >/dev/null
"${PIN_DAEMON[@]}" "$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
PIDS+=($!)
"${PIN_DAEMON[@]}" "$FLOOR" "127.0.0.1:$FLOOR_PORT" "$WORK/floor" 2>"$WORK/floor.log" &
PIDS+=($!)
wait_ready "$HTTP" "$WORK/tocsin.log"
wait_port "$FLOOR_PORT"

RUN_NO=76
load() { # port out [load args…]
  local port=$1 out=$2
  shift 2
  RUN_NO=$((RUN_NO + 1))
  "${PIN_LOAD[@]}" "$BIN" load --to "127.0.0.1:$port" --conns "$CONNS" --mix sia,cid \
    --accounts "$CONNS" --receiver 1 --json \
    --source "127.0.$RUN_NO.2,127.0.$RUN_NO.3,127.0.$RUN_NO.4,127.0.$RUN_NO.5" "$@" >"$out" || true
  [ -s "$out" ] || { echo "tocsin load printed no summary" >&2; exit 1; }
}
# Waits until the sink has written every event journaled so far (nothing without a sink).
settle() {
  if [ "$SINK" = file ]; then
    python3 "$ROOT/benches/e2e/drain.py" "$HTTP" "$WORK/data" "$(date +%s.%N)" >"$WORK/drain-$1.json"
    echo "   sink drained: $(cat "$WORK/drain-$1.json")"
  fi
}

if [ -z "$RATE" ]; then
  echo "== peak: tocsin, $CONNS panels at full speed, $PEAK_DURATION"
  load "$PORT" "$WORK/peak.json" --duration "$PEAK_DURATION"
  PEAK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames_per_s"])' "$WORK/peak.json")
  RATE=$(python3 -c "print(max(1, round($PEAK / 2)))")
  echo "   peak $PEAK frames/s; pacing at $RATE"
  settle peak
else
  echo '{}' >"$WORK/peak.json"
  echo "== pacing at $RATE frames/s (--rate)"
fi
"$BIN" fsync-probe --dir "$WORK/probe" --count 2000 --json >"$WORK/fsync-before.json"

echo "== tocsin paced: $CONNS panels at $RATE frames/s in all, $DURATION"
curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/metrics-before.txt"
sched_stats >"$WORK/sched-before.txt"
load "$PORT" "$WORK/paced.json" --duration "$DURATION" --rate "$RATE"
curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/metrics-after.txt"
sched_stats >"$WORK/sched-after.txt"
settle paced

echo "== floor paced: $CONNS panels at $RATE frames/s in all, $DURATION"
load "$FLOOR_PORT" "$WORK/floor.json" --duration "$DURATION" --rate "$RATE"
"$BIN" fsync-probe --dir "$WORK/probe" --count 2000 --json >"$WORK/fsync-after.json"

python3 - "$WORK" "$CONNS" "$SINK" <<'PY'
import json, sys
w, conns, sink = sys.argv[1], sys.argv[2], sys.argv[3]
peak = json.load(open(f"{w}/peak.json"))
paced = json.load(open(f"{w}/paced.json"))
floor = json.load(open(f"{w}/floor.json"))
fb = json.load(open(f"{w}/fsync-before.json"))["latency_us"]
fa = json.load(open(f"{w}/fsync-after.json"))["latency_us"]
print(f"\n== result ({conns} panels, tocsin's sink: {sink})")
if peak:
    print(f"tocsin peak          {peak['frames_per_s']:.0f} frames/s")
for name, r in (("tocsin paced", paced), ("floor paced", floor)):
    l = r["latency_us"]
    print(f"{name:<20} {r['frames_per_s']:.0f} frames/s (ack {r['ack']}, nak {r['nak']}, timeouts {r['timeouts']}, errors {r['errors']})")
    print(f"{'':<20} ACK p50 {l['p50']} µs, p90 {l['p90']} µs, p99 {l['p99']} µs, p99.9 {l['p99_9']} µs, max {l['max']} µs")
print(f"fdatasync (probe)    p50 {fb['p50']} / {fa['p50']} µs, p99 {fb['p99']} / {fa['p99']} µs (before / after)")
# tocsin's own fdatasyncs during the paced run (histogram difference): the disk as the
# journal met it, batches and all.
def hist(path, name):
    # Summed over label sets (the ACK latency has one per transport and reply).
    out = {}
    for line in open(path):
        if line.startswith(name + "_bucket{"):
            le = line.split('le="')[1].split('"')[0]
            le = float("inf") if le == "+Inf" else float(le)
            out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            out["sum"] = out.get("sum", 0.0) + float(line.split()[-1])
    return out
def summary(name):
    hb, ha = hist(f"{w}/metrics-before.txt", name), hist(f"{w}/metrics-after.txt", name)
    buckets = sorted(k for k in ha if k != "sum")
    count = ha.get(float("inf"), 0) - hb.get(float("inf"), 0)
    if not count:
        return None
    def q(p):
        for le in buckets:
            if ha[le] - hb.get(le, 0) >= p * count:
                return le
    mean = (ha["sum"] - hb.get("sum", 0)) / count
    over_1ms = count - (ha.get(0.001, 0) - hb.get(0.001, 0))
    return count, mean, q(0.5), q(0.99), over_1ms
s = summary("tocsin_journal_fsync_seconds")
if s:
    count, mean, p50, p99, over = s
    print(f"tocsin's fdatasyncs  {int(count)} in the paced run: mean {mean * 1e6:.0f} µs, p50 ≤ {p50 * 1e6:.0f} µs, p99 ≤ {p99 * 1e6:.0f} µs (bucket bounds), {100 * over / count:.1f} % over 1 ms")
# Frame by frame, inside the daemon: from a frame's arrival to its reply being ready, and
# the part of it spent waiting for the journal (append to durable).
for name, what in (
    ("tocsin_ack_latency_seconds", "arrival to reply in the daemon"),
    ("tocsin_journal_append_seconds", "journal wait (append to durable)"),
):
    s = summary(name)
    if s:
        count, mean, p50, p99, _ = s
        print(f"{what}: {int(count)} frames, mean {mean * 1e6:.0f} µs, p50 ≤ {p50 * 1e6:.0f} µs, p99 ≤ {p99 * 1e6:.0f} µs (bucket bounds)")
# Per thread kind, over tocsin's paced run: CPU used, time spent runnable but waiting for a
# CPU (the two cores are shared with the load generator), and that wait per wake-up.
def sched(path):
    out = {}
    for line in open(path):
        parts = line.split()
        if len(parts) < 4:
            continue
        name, cpu, wait, runs = " ".join(parts[:-3]), *parts[-3:]
        kind = "tocsin-sync" if name.startswith("tocsin-sync") else name
        t = out.setdefault(kind, [0, 0, 0])
        t[0] += int(cpu); t[1] += int(wait); t[2] += int(runs)
    return out
sb, sa = sched(f"{w}/sched-before.txt"), sched(f"{w}/sched-after.txt")
for kind in sorted(sa):
    cpu, wait, runs = (sa[kind][i] - sb.get(kind, [0, 0, 0])[i] for i in range(3))
    if runs > 0:
        print(f"threads {kind}: CPU {cpu / 1e9:.2f} s, waiting for a CPU {wait / 1e9:.2f} s over {runs} wake-ups ({wait / runs / 1e3:.0f} µs each)")
tp99, fp99 = paced["latency_us"]["p99"], floor["latency_us"]["p99"]
bar = fp99 + 1000
ok = tp99 <= bar and paced["nak"] == 0 and paced["timeouts"] == 0 and paced["errors"] == 0
print(f"bar: tocsin ACK p99 {tp99} µs ≤ floor ACK p99 {fp99} µs + 1 ms = {bar} µs: {'met' if ok else 'not met'}")
PY
