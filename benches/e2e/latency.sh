#!/usr/bin/env bash
# ACK latency at a sustainable load, against the disk's own fdatasync latency.
#
#   benches/e2e/latency.sh [--conns 1000] [--duration 20s] [--pin]
#
# --pin runs the daemon on CPU 0 and the load generator on CPU 1 (`taskset`), peak run
# included, so that the generator's threads do not take the daemon's CPU at random moments
# and show up as ACK latency: on a two-core machine, that CPU contention, not the
# daemon's queueing or the disk, is what an unpinned run's tail mostly measures.
#
# Starts `tocsin run` (journal on a real disk under the cargo target dir, ACK after
# fdatasync), finds its peak rate with N closed-loop panels (a short full-speed run), then
# runs the same panels capped at half that rate (`--rate`, total over all panels) and compares
# the ACK latency p99 with the p99 of `tocsin fsync-probe` in the journal's directory, taken
# just before and just after the paced run. Bar: p99 ACK ≤ p99 fdatasync + 2 ms.
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/lib.sh
CONNS=1000
DURATION=20s
PIN_DAEMON=()
PIN_LOAD=()
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) CONNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --pin)
      command -v taskset >/dev/null || { echo "--pin needs taskset (util-linux)" >&2; exit 1; }
      [ "$(nproc)" -ge 2 ] || { echo "--pin needs two CPUs" >&2; exit 1; }
      PIN_DAEMON=(taskset -c 0); PIN_LOAD=(taskset -c 1); shift ;;
    *) echo "usage: $0 [--conns N] [--duration D] [--pin]" >&2; exit 2 ;;
  esac
done
ulimit -n "$(ulimit -Hn)"
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin tocsin
BIN=$TARGET/release/tocsin
mkdir -p "$TARGET/tmp"
WORK=$(mktemp -d "$TARGET/tmp/latency.XXXXXX")
TOCSIN_PID=
cleanup() {
  [ -n "$TOCSIN_PID" ] && kill "$TOCSIN_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(free_port)
HTTP=$(free_port)
# The daemon's threads as the scheduler saw them: name, CPU ns, ns runnable but waiting
# for a CPU, times run (/proc/PID/task/TID/schedstat).
sched_stats() {
  for t in /proc/"$TOCSIN_PID"/task/*; do
    echo "$(cat "$t/comm") $(cat "$t/schedstat" 2>/dev/null || echo 0 0 0)"
  done
}
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
stdout = false
[limits]
max_connections_per_peer = 19000
CONF
"${PIN_DAEMON[@]}" "$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
wait_ready "$HTTP" "$WORK/tocsin.log"
SRC="127.0.77.2,127.0.77.3,127.0.77.4,127.0.77.5"
LOAD=("${PIN_LOAD[@]}" "$BIN" load --to "127.0.0.1:$PORT" --conns "$CONNS" --mix sia,cid --accounts "$CONNS" --source "$SRC")
echo "== peak: $CONNS panels at full speed, 8 s"
"${LOAD[@]}" --duration 8s >"$WORK/peak.json"
PEAK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frames_per_s"])' "$WORK/peak.json")
RATE=$(python3 -c "print(round($PEAK / 2))")
echo "   peak $PEAK frames/s; pacing at $RATE"
"$BIN" fsync-probe --dir "$WORK/data" --count 2000 --json >"$WORK/fsync-before.json"
echo "== paced: $CONNS panels at $RATE frames/s in all, $DURATION"
curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/metrics-before.txt"
sched_stats >"$WORK/sched-before.txt"
"${LOAD[@]}" --duration "$DURATION" --rate "$RATE" >"$WORK/paced.json"
curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/metrics-after.txt"
sched_stats >"$WORK/sched-after.txt"
"$BIN" fsync-probe --dir "$WORK/data" --count 2000 --json >"$WORK/fsync-after.json"
python3 - "$WORK" "$CONNS" <<'PY'
import json, sys
w, conns = sys.argv[1], sys.argv[2]
peak = json.load(open(f"{w}/peak.json"))
paced = json.load(open(f"{w}/paced.json"))
fb = json.load(open(f"{w}/fsync-before.json"))["latency_us"]
fa = json.load(open(f"{w}/fsync-after.json"))["latency_us"]
l = paced["latency_us"]
fsync_p99 = max(fb["p99"], fa["p99"])
bar = fsync_p99 + 2000
print(f"\n== result ({conns} panels)")
print(f"peak                {peak['frames_per_s']:.0f} frames/s")
print(f"paced               {paced['frames_per_s']:.0f} frames/s (ack {paced['ack']}, nak {paced['nak']}, timeouts {paced['timeouts']}, errors {paced['errors']})")
print(f"ACK latency         p50 {l['p50']} µs, p90 {l['p90']} µs, p99 {l['p99']} µs, p99.9 {l['p99_9']} µs, max {l['max']} µs")
print(f"fdatasync p99       {fb['p99']} µs before, {fa['p99']} µs after (p50 {fb['p50']} / {fa['p50']} µs)")
# tocsin's own fdatasyncs during the paced run (histogram difference): the disk as the
# journal met it, batches and all. This disk has been seen to switch between ~50 µs and
# ~4 ms per fdatasync for seconds at a time, so the probes around the run may miss it.
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
name = "tocsin_journal_fsync_seconds"
hb, ha = hist(f"{w}/metrics-before.txt", name), hist(f"{w}/metrics-after.txt", name)
buckets = sorted(k for k in ha if k != "sum")
count = ha[float("inf")] - hb.get(float("inf"), 0)
def q(p):
    for le in buckets:
        if ha[le] - hb.get(le, 0) >= p * count:
            return le
if count:
    mean = (ha["sum"] - hb.get("sum", 0)) / count
    over_1ms = count - (ha[0.001] - hb.get(0.001, 0))
    print(f"tocsin's fdatasyncs {int(count)} in the paced run: mean {mean * 1e6:.0f} µs, p50 ≤ {q(0.5) * 1e6:.0f} µs, p99 ≤ {q(0.99) * 1e6:.0f} µs (bucket bounds), {100 * over_1ms / count:.1f} % over 1 ms")
# Frame by frame, inside the daemon: from a frame's arrival to its reply being ready, and
# the part of it spent waiting for the journal (append to durable). A slow fdatasync
# holds every frame that arrives while it runs, so these weigh the disk's slow moments by
# the frames they hold, where the fdatasync percentiles above count each sync once.
for name, what in (
    ("tocsin_ack_latency_seconds", "arrival to reply in the daemon"),
    ("tocsin_journal_append_seconds", "journal wait (append to durable)"),
):
    hb, ha = hist(f"{w}/metrics-before.txt", name), hist(f"{w}/metrics-after.txt", name)
    buckets = sorted(k for k in ha if k != "sum")
    count = ha.get(float("inf"), 0) - hb.get(float("inf"), 0)
    if count:
        mean = (ha["sum"] - hb.get("sum", 0)) / count
        print(f"{what}: {int(count)} frames, mean {mean * 1e6:.0f} µs, p50 ≤ {q(0.5) * 1e6:.0f} µs, p99 ≤ {q(0.99) * 1e6:.0f} µs (bucket bounds)")
# Per thread kind, over the paced run: CPU used, time spent runnable but waiting for a CPU
# (the two cores are shared with the load generator), and that wait per wake-up.
def sched(path):
    out = {}
    for line in open(path):
        name, cpu, wait, runs = line.split()
        kind = "tocsin-sync" if name.startswith("tocsin-sync") else name
        t = out.setdefault(kind, [0, 0, 0])
        t[0] += int(cpu); t[1] += int(wait); t[2] += int(runs)
    return out
sb, sa = sched(f"{w}/sched-before.txt"), sched(f"{w}/sched-after.txt")
for kind in sorted(sa):
    cpu, wait, runs = (sa[kind][i] - sb.get(kind, [0, 0, 0])[i] for i in range(3))
    if runs > 0:
        print(f"threads {kind}: CPU {cpu / 1e9:.2f} s, waiting for a CPU {wait / 1e9:.2f} s over {runs} wake-ups ({wait / runs / 1e3:.0f} µs each)")
print(f"bar: p99 ACK {l['p99']} µs ≤ {bar} µs (larger fsync p99 + 2 ms): {'met' if l['p99'] <= bar else 'NOT met'}")
PY
